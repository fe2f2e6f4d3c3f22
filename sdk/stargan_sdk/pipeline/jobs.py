"""The translator's jobs on the pipeline: folders of files (`translate_files`) and in-memory streams.

Usage: for r in run_files(translator, paths, "out/", {"Blond_Hair": 1}): print(r.output or r.error)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from stargan_sdk.errors import ImageInputError
from stargan_sdk.images.imaging import PNG_LEVEL, image_bytes, upright
from stargan_sdk.photo.faces import open_photo
from stargan_sdk.pipeline.durable import commit_groups
from stargan_sdk.pipeline.files import FileResult, StageTimes, run_stages
from stargan_sdk.pipeline.plans import MODES, edit_plans, plan_image

DEFAULT_BATCH = 16


def default_workers() -> int:
    """Decode and encode threads: one per core (PIL releases the GIL while it decodes, resizes and encodes)."""
    return max(1, len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1)


def output_paths(inputs: Sequence[Path], out: str | os.PathLike[str] | Sequence[Any]) -> list[Path]:
    """`out` a folder: each input's name in it; else one output path per input."""
    if isinstance(out, (str, os.PathLike)):
        return [Path(out) / Path(p).name for p in inputs]
    outs = [Path(o) for o in out]
    if len(outs) != len(inputs):
        raise ImageInputError(f"{len(outs)} outputs for {len(inputs)} inputs")
    return outs


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False  # the output is not there yet: writing it replaces no input


def run_files(
    t: Any,
    inputs: Iterable[Any],
    out: Any,
    changes: Mapping[str, object] | None = None,
    *,
    mode: str = "whole",
    workers: int | None = None,
    batch_size: int | None = None,
    skip_existing: bool = False,
    original: Mapping[str, object] | None = None,
    times: StageTimes | None = None,
    png_level: int = PNG_LEVEL,
    framing: Any = None,
    note: Callable[[str], None] | None = None,
    overwrite_inputs: bool = False,
    error_line: Callable[[Any, BaseException], str] | None = None,
    fatal: tuple[type[BaseException], ...] = (),
) -> Iterator[FileResult]:
    """Edit image files into `out` (a folder, or one path per input); per-file results in input order.

    Args:
        mode: "whole" (each image as `translate` edits it), "crop" (its centre square), "photo" (its faces, as
            `translate_photo`; the faces of several photos share an engine call) or "auto" (the CLI's framing
            rule, `stargan_sdk.photo.framing`; `framing` is a `Framing`, made here when None).
        workers: threads that decode/plan and restore/encode/write (default: one per core).
        batch_size: images per engine call (photo mode: their faces, however many).
        skip_existing: leave outputs that exist (resume an interrupted run).
        png_level: zlib level of PNG outputs (default 1: see README, "Folders of files").
        note: hears one line per image edited whole in "auto" mode without a detected face.
        overwrite_inputs: allow an output to be an input (refused by default, file by file).
        error_line, fatal: as `run_stages` (the CLI words its errors itself).
    """
    if mode not in MODES:
        raise ImageInputError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    paths = [Path(p) for p in inputs]
    pairs = list(zip(paths, output_paths(paths, out)))
    merged = t.space.validate_changes(dict(changes or {}))  # fail before any work
    if mode == "auto" and framing is None:
        from stargan_sdk.photo.framing import Framing

        framing = Framing(model_size=t.image_size, max_pixels=t.max_pixels)

    def prepare(pair: tuple[Path, Path]) -> Any:
        src, dst = pair
        if not overwrite_inputs and _same_file(src, dst):
            raise ImageInputError(f"{dst} is an input; it would be replaced by its own edit")
        if skip_existing and dst.exists():
            return FileResult(src, output=dst, skipped=True)
        image = upright(open_photo(src, max_pixels=t.max_pixels))  # decoded here, in the worker
        return plan_image(
            image,
            mode,
            t.image_size,
            t.max_pixels,
            framing,
            lambda line: notes.setdefault(src, []).append(f"{src}: {line}"),
        )

    def finish(pair: tuple[Path, Path], edited: Any) -> FileResult:
        plan, crops = edited  # restore or paste back, and encode: CPU work, in the pool
        return FileResult(pair[0], output=pair[1], value=image_bytes(plan.finish(crops), pair[1].name, png_level))

    notes: dict[Path, list[str]] = {}  # said by the workers, passed on in input order with each result
    for result in run_stages(
        pairs,
        prepare,
        _engine(t, merged, original),
        finish,
        workers=workers or default_workers(),
        batch_size=batch_size or DEFAULT_BATCH,
        times=times,
        source=lambda pair: pair[0],
        fatal=fatal,
        # The I/O stage: temp files, one sync per group of files, renames (`durable`: why groups, what survives)
        commit=lambda results: commit_groups(results, fatal=fatal),
        **({"error_line": error_line} if error_line else {}),
    ):
        for line in notes.pop(result.source, []):
            if note is not None:
                note(line)
        yield result


def _engine(t: Any, changes: Mapping[str, object], original: Mapping[str, object] | None) -> Callable[[list], list]:
    """The engine stage: one `edit_rgb` call per batch of plans, normalising into one reused buffer."""
    staging = np.empty((0, 3, t.image_size, t.image_size), np.float32)

    def engine(plans: list[Any]) -> list[Any]:
        nonlocal staging
        n = sum(len(p.crops) for p in plans)
        if n > len(staging):
            staging = np.empty((n, 3, t.image_size, t.image_size), np.float32)
        return list(zip(plans, edit_plans(t, plans, changes, original, staging)))

    return engine


def run_stream(
    t: Any,
    images: Iterable[Any],
    changes: Mapping[str, object] | None = None,
    *,
    workers: int | None = None,
    batch_size: int | None = None,
    original: Mapping[str, object] | None = None,
) -> Iterator[Any]:
    """In-memory images in (any iterable, read lazily), edited images out in the same order."""
    merged = t.space.validate_changes(dict(changes or {}))

    def finish(item: Any, edited: Any) -> FileResult:
        plan, crops = edited
        return FileResult(None, value=plan.finish(crops))

    for r in run_stages(
        images,
        lambda im: plan_image(im, "whole", t.image_size, t.max_pixels),
        _engine(t, merged, original),
        finish,
        workers=workers or default_workers(),
        batch_size=batch_size or DEFAULT_BATCH,
    ):
        if r.error is not None:
            raise ImageInputError(r.error)
        yield r.value
