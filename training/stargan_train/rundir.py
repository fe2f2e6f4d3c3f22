"""A training run's folder: start/overwrite/resume checks, and the TensorBoard + progress-bar log written into it.

Usage: state = prepare_run_dir(Path("runs/toy"), cfg, ctx, resume=True, overwrite=False)  # TrainState | None
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

from stargan_train import checkpoint as ckpt
from stargan_train.config import RunConfig
from stargan_train.distributed import DistContext, barrier, broadcast_object

# Fields a resumed run may change: they move files or extend the schedule, not what was learned so far.
RESUMABLE_CHANGES = frozenset(
    {
        "train.num_iters",
        "train.num_iters_decay",
        "train.device",
        "train.log_step",
        "train.sample_step",
        "train.model_save_step",
        "train.keep_checkpoints",
        "data.num_workers",
        "data.celeba_image_dir",
        "data.attr_path",
        "data.rafd_image_dir",
        "data.rafd_test_dir",
    }
)
_OUTPUTS = ("checkpoints", "samples", "logs")


class RunDirError(ValueError):
    """A run dir that cannot be used as asked (checkpoints present without --resume, nothing to resume, ...)."""


def config_differences(stored: RunConfig, new: RunConfig) -> list[str]:
    """'section.field (checkpoint X, now Y)' for every field that differs and may not change on resume."""
    a, b = stored.to_dict(), new.to_dict()
    out = []
    for section in a:
        for name, old in a[section].items():
            key = f"{section}.{name}"
            if b[section].get(name) != old and key not in RESUMABLE_CHANGES:
                out.append(f"{key} (checkpoint {old!r}, now {b[section].get(name)!r})")
    return out


def remove_stale_temp_files(run_dir: Path) -> list[Path]:
    """Delete `.NAME.*.tmp` leftovers of a process killed mid-write (atomic_write's temp names)."""
    removed = []
    for folder in (run_dir, *(run_dir / d for d in _OUTPUTS)):
        if folder.is_dir():
            for p in folder.glob(".*.tmp"):
                p.unlink(missing_ok=True)
                removed.append(p)
    return removed


def _prepare_main(run_dir: Path, config: RunConfig, resume: bool, overwrite: bool) -> ckpt.TrainState | None:
    """Rank 0's checks and clean-up; returns the checkpoint to resume from, if any."""
    if resume and overwrite:
        raise RunDirError("--resume and --overwrite exclude each other: pick one")
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"run dir {run_dir} exists and is not a folder")
    latest = ckpt.latest_checkpoint(run_dir)
    if resume:
        if latest is None:
            raise RunDirError(f"nothing to resume: {run_dir} has no checkpoints/NNNNNN.ckpt")
        state = ckpt.load_checkpoint(latest)
        diffs = config_differences(state.config, config)
        if diffs:
            raise RunDirError(f"cannot resume {run_dir} with a different config: {'; '.join(diffs)}")
        remove_stale_temp_files(run_dir)
        return state
    if latest is not None and not overwrite:
        raise RunDirError(
            f"{run_dir} already holds checkpoints (newest {latest.name}); "
            f"pass --resume to continue that run or --overwrite to start over"
        )
    if overwrite:
        for name in _OUTPUTS:
            shutil.rmtree(run_dir / name, ignore_errors=True)
        (run_dir / "config.json").unlink(missing_ok=True)
    remove_stale_temp_files(run_dir)
    ckpt.atomic_write_text(run_dir / "config.json", json.dumps(config.to_dict(), indent=2) + "\n")
    return None


def prepare_run_dir(
    run_dir: Path, config: RunConfig, ctx: DistContext, *, resume: bool, overwrite: bool
) -> ckpt.TrainState | None:
    """Check and set up the run dir on rank 0; other ranks then load the same checkpoint (shared filesystem)."""
    run_dir = Path(run_dir)
    state: ckpt.TrainState | None = None
    shared: tuple[str | None, str | None] = (None, None)  # (error, checkpoint to load) for the other ranks
    if ctx.is_main:
        try:
            state = _prepare_main(run_dir, config, resume, overwrite)
        except ValueError as e:
            broadcast_object(ctx, (str(e), None))
            raise
        if state is not None:
            shared = (None, str(ckpt.checkpoint_dir(run_dir) / f"{state.iteration:06d}.ckpt"))
    error, path = broadcast_object(ctx, shared)  # type: ignore[misc]
    if error is not None:  # only ranks other than 0 get here with an error
        raise RunDirError(error)
    barrier(ctx)
    if state is None and path is not None:
        state = ckpt.load_checkpoint(Path(path), map_location="cpu")
    return state


class TrainLog:
    """TensorBoard scalars (`logs/`) and a rich progress bar with it/s and ETA; inert on ranks other than 0.

    Args:
        run_dir: the run folder; events go to `run_dir/logs`.
        start: first iteration of this session (events after it from an earlier session are purged).
        total: the run's last iteration.
        enabled: False on every rank but 0.
        progress: show the bar (only if stderr is a terminal as well).
    """

    def __init__(self, run_dir: Path, start: int, total: int, *, enabled: bool, progress: bool) -> None:
        self.run_dir, self.start, self.total, self.enabled = Path(run_dir), start, total, enabled
        self.show_bar = enabled and progress and sys.stderr.isatty()
        self.writer: Any = None
        self.bar: Any = None
        self._mark = (start, time.perf_counter())

    def __enter__(self) -> TrainLog:
        if not self.enabled:
            return self
        from torch.utils.tensorboard import SummaryWriter  # imports tensorboard: only where it is used

        # purge_step drops events a killed session logged after its last checkpoint.
        self.writer = SummaryWriter(str(self.run_dir / "logs"), purge_step=self.start or None)
        if self.show_bar:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

            self.bar = Progress(
                TextColumn("train"),
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("{task.fields[rate]} it/s"),
                TextColumn("ETA"),
                TimeRemainingColumn(),
                TextColumn("{task.fields[info]}"),
                console=Console(stderr=True),
            )
            self.bar.start()
            self.task = self.bar.add_task("train", total=self.total, completed=self.start, rate="-", info="")
        return self

    def step(
        self, done: int, logs: dict[str, float], *, every: int, on_log: Callable[[int, dict[str, float]], None] | None
    ) -> None:
        if not self.enabled:
            return
        if done % every == 0 or done == self.total:
            now = time.perf_counter()
            rate = (done - self._mark[0]) / max(now - self._mark[1], 1e-9)
            self._mark = (done, now)
            logs = {**logs, "speed/it_per_s": rate}
            for key, value in logs.items():
                self.writer.add_scalar(key, value, done)
            if self.bar is not None:
                info = " ".join(f"{k}={v:.3f}" for k, v in logs.items() if k.endswith("/loss"))
                self.bar.update(self.task, rate=f"{rate:.2f}", info=info)
            if on_log is not None:
                on_log(done, logs)
        if self.bar is not None:
            self.bar.update(self.task, completed=done)

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.bar is not None:
            self.bar.stop()
        if self.writer is not None:
            self.writer.close()
