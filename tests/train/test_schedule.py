"""Learning-rate schedules: the paper's linear decay, and today's official step decay against the official loop."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from stargan_train.checkpoint import latest_checkpoint, load_checkpoint
from stargan_train.config import DataConfig, DiscriminatorConfig, GeneratorConfig, RunConfig, TrainConfig
from stargan_train.data.toyfaces import generate_toyfaces
from stargan_train.rundir import RunDirError
from stargan_train.schedule import lr_at, official_lr, paper_lr
from stargan_train.trainer import Trainer


def official_solver_lrs(
    g_lr: float, d_lr: float, num_iters: int, num_iters_decay: int, lr_update_step: int, start: int = 0
) -> list[tuple[float, float]]:
    """(g_lr, d_lr) each iteration trains with, by the loop of yunjey/stargan solver.py (train and train_multi):
    the lr cache starts at the base values, and after iteration i both are lowered when
    (i+1) % lr_update_step == 0 and (i+1) > num_iters - num_iters_decay. Written out here independently."""
    g, d = g_lr, d_lr
    out = []
    for i in range(num_iters):
        out.append((g, d))
        if (i + 1) % lr_update_step == 0 and (i + 1) > (num_iters - num_iters_decay):
            g -= g_lr / float(num_iters_decay)
            d -= d_lr / float(num_iters_decay)
    return out[start:]


class RecordingTrainer(Trainer):
    """Records the lr each optimizer actually holds (every param group) when a critic / generator step runs."""

    def train_iteration(self, it: int) -> dict[str, float]:
        self.it = it
        return super().train_iteration(it)

    def d_step(self, batch):  # type: ignore[no-untyped-def]
        self.seen.append(("D", self.it, {g["lr"] for g in self.d_opt.param_groups}))
        return super().d_step(batch)

    def g_step(self, batch):  # type: ignore[no-untyped-def]
        self.seen.append(("G", self.it, {g["lr"] for g in self.g_opt.param_groups}))
        return super().g_step(batch)


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_toyfaces(
        tmp_path_factory.mktemp("toy"), 16, seed=0, width=36, height=44, expressions=True, progress=False
    )


def config(toy: Path, dataset: str = "toyfaces", **train: object) -> RunConfig:
    n, k = (15, 13) if dataset == "both" else (5, 5)
    data = DataConfig(
        dataset=dataset,
        celeba_image_dir=str(toy / "images"),
        attr_path=str(toy / "list_attr_celeba.txt"),
        rafd_image_dir=str(toy / "rafd" / "train"),
        celeba_crop_size=36,
        image_size=32,
        test_count=4,
        num_workers=0,
    )
    options: dict[str, object] = dict(
        batch_size=2,
        num_iters=12,
        num_iters_decay=7,
        lr_schedule="official",
        lr_update_step=2,
        g_lr=3e-4,
        d_lr=1e-4,
        n_critic=2,
        log_step=100,
        sample_step=100,
        model_save_step=100,
        device="cpu",
    )
    options.update(train)
    return RunConfig(GeneratorConfig(4, n, 0), DiscriminatorConfig(32, 4, k, 3), data, TrainConfig(**options))  # type: ignore[arg-type]


def run(cfg: RunConfig, run_dir: Path, resume: bool = False) -> list[tuple[str, int, set[float]]]:
    trainer = RecordingTrainer(cfg, run_dir, progress=False, resume=resume)
    trainer.seen = []
    trainer.fit()
    return trainer.seen


def expected_steps(cfg: RunConfig, start: int = 0) -> list[tuple[str, int, set[float]]]:
    """Which optimizer steps when, per dataset of the iteration, with the lr the official loop gives it."""
    t = cfg.train
    lrs = official_solver_lrs(t.g_lr, t.d_lr, t.num_iters, t.num_iters_decay, t.lr_update_step)
    parts = 2 if cfg.data.dataset == "both" else 1
    out = []
    for i in range(start, t.num_iters):
        for _ in range(parts):
            out.append(("D", i, {lrs[i][1]}))
            if (i + 1) % t.n_critic == 0:
                out.append(("G", i, {lrs[i][0]}))
    return out


@pytest.mark.parametrize("dataset", ["toyfaces", "both"])
def test_official_schedule_trains_with_the_official_lr_at_every_step(toy: Path, tmp_path: Path, dataset: str) -> None:
    cfg = config(toy, dataset)
    seen = run(cfg, tmp_path)
    assert seen == expected_steps(cfg)  # exact float equality, both optimizers, every critic and generator step
    d_lrs = [lr for what, _, (lr,) in seen if what == "D"]
    assert len(set(d_lrs)) == 4 and d_lrs[0] == 1e-4 and d_lrs[-1] < 1e-4  # it did decay: steps after 6, 8, 10


def test_official_schedule_survives_a_resume_and_is_stored(toy: Path, tmp_path: Path) -> None:
    cfg = config(toy, model_save_step=5)
    run(cfg, tmp_path)  # checkpoints at 5, 10 and 12
    for p in (tmp_path / "checkpoints").glob("000012*"):  # as if killed after iteration 10's checkpoint
        p.unlink()
    state = load_checkpoint(latest_checkpoint(tmp_path))
    assert state.iteration == 10 and state.config.train.lr_schedule == "official"
    assert state.config.train.lr_update_step == 2
    assert run(cfg, tmp_path, resume=True) == expected_steps(cfg, start=10)
    with pytest.raises(RunDirError, match="train.lr_schedule \\(checkpoint 'official', now 'paper'\\)"):
        Trainer(config(toy, lr_schedule="paper"), tmp_path, progress=False, resume=True)


def test_checkpoints_without_the_field_load_as_paper(toy: Path, tmp_path: Path) -> None:
    cfg = config(toy, lr_schedule="paper", num_iters=2, num_iters_decay=1, model_save_step=2)
    run(cfg, tmp_path)
    path = latest_checkpoint(tmp_path)
    raw = torch.load(path, weights_only=True)
    for field in ("lr_schedule", "lr_update_step"):  # a checkpoint written before the option existed
        del raw["config"]["train"][field]
    torch.save(raw, path)
    train = load_checkpoint(path).config.train
    assert (train.lr_schedule, train.lr_update_step) == ("paper", 1000)
    stored = json.loads((tmp_path / "config.json").read_text())
    del stored["train"]["lr_schedule"]
    assert RunConfig.from_dict(stored).train.lr_schedule == "paper"


def test_official_lr_equals_the_official_loop_over_a_full_default_run() -> None:
    """200,000 iterations with the official defaults (decay 100,000, a step every 1,000): every value equal."""
    lrs = official_solver_lrs(1e-4, 1e-4, 200_000, 100_000, 1000)
    assert all(official_lr(1e-4, i, 200_000, 100_000, 1000) == g for i, (g, _) in enumerate(lrs))
    assert lrs[-1][0] == pytest.approx(1e-4 - 99e-9, abs=1e-18)  # ends at 99.9% of the lr: barely a decay
    # Asked out of order (a resume far into the run) it still gives the same values.
    assert (
        official_lr(2e-4, 199_999, 200_000, 100_000, 1000)
        == official_solver_lrs(2e-4, 0, 200_000, 100_000, 1000)[-1][0]
    )


def test_official_schedule_without_decay_keeps_the_base_lr() -> None:
    assert official_lr(1e-4, 999, 1000, 0, 1) == 1e-4
    assert official_solver_lrs(1e-4, 1e-4, 1000, 0, 1)[-1] == (1e-4, 1e-4)


@pytest.mark.parametrize(
    ("iteration", "expected"),
    [(0, 1e-4), (100_000, 1e-4), (150_000, 5e-5), (199_999, 1e-9), (200_000, 0.0)],
)
def test_paper_lr_decays_linearly_to_zero_over_the_last_iterations(iteration: int, expected: float) -> None:
    assert paper_lr(1e-4, iteration, 200_000, 100_000) == pytest.approx(expected, abs=1e-15)


def test_paper_lr_without_decay_stays_constant() -> None:
    assert paper_lr(1e-4, 199_999, 200_000, 0) == 1e-4


def test_lr_at_follows_the_configured_schedule() -> None:
    paper, official = TrainConfig(), TrainConfig(lr_schedule="official")
    assert paper.lr_schedule == "paper"  # the default
    assert lr_at(paper, 1e-4, 150_000) == pytest.approx(5e-5)
    assert (
        lr_at(official, 1e-4, 150_000)
        == official_lr(1e-4, 150_000, 200_000, 100_000, 1000)
        == pytest.approx(1e-4 - 50e-9, abs=1e-18)
    )
    with pytest.raises(ValueError, match="lr_schedule must be one of paper, official, got 'linear'"):
        TrainConfig(lr_schedule="linear")
    with pytest.raises(ValueError, match="lr_update_step must be > 0"):
        TrainConfig(lr_update_step=0)
