"""The translator's jobs on the pipeline: folders of files (`translate_files`) and in-memory streams.

Usage: for r in run_files(translator, paths, "out/", {"Blond_Hair": 1}): print(r.output or r.error)
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from PIL import Image

from stargan_sdk.errors import ImageInputError
from stargan_sdk.images.imaging import center_crop, restore, save_image, to_model_rgb
from stargan_sdk.pipeline.files import FileResult, StageTimes, run_stages

MODES = ("auto", "crop", "photo")
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


def _open(path: Path) -> Image.Image:
    with Image.open(path) as im:
        im.load()  # decode here, in the worker, not later in the engine thread
        return im


def run_files(t: Any, inputs: Iterable[Any], out: Any, changes: Mapping[str, object] | None = None, *,
              mode: str = "auto", workers: int | None = None, batch_size: int | None = None,
              skip_existing: bool = False, original: Mapping[str, object] | None = None,
              times: StageTimes | None = None) -> Iterator[FileResult]:
    """Edit image files into `out` (a folder, or one path per input); per-file results in input order."""
    if mode not in MODES:
        raise ImageInputError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    paths = [Path(p) for p in inputs]
    pairs = list(zip(paths, output_paths(paths, out)))
    merged = t.space.validate_changes(dict(changes or {}))  # fail before any work

    def prepare(pair: tuple[Path, Path]) -> Any:
        src, dst = pair
        if _same_file(src, dst):
            raise ImageInputError(f"{dst} is an input; it would be replaced by its own edit")
        if skip_existing and dst.exists():
            return FileResult(src, output=dst, skipped=True)
        image = _open(src)
        if mode == "photo":
            return image
        return to_model_rgb(center_crop(image) if mode == "crop" else image, t.image_size, t.max_pixels)

    def engine(prepared: list[Any]) -> list[Any]:
        if mode == "photo":  # faces are still edited photo by photo (see README: what remains)
            return [t.translate_photo(im, merged, original=original) for im in prepared]
        edited = t.edit_rgb([rgb for rgb, _ in prepared], merged, original=original)
        return [(rgb, meta) for rgb, (_, meta) in zip(edited, prepared)]  # restored in the pool, not here

    def finish(pair: tuple[Path, Path], out_image: Any) -> FileResult:
        image = out_image if mode == "photo" else restore(*out_image)
        return FileResult(pair[0], output=save_image(image, pair[1]))

    yield from run_stages(pairs, prepare, engine, finish, workers=workers or default_workers(),
                          batch_size=batch_size or DEFAULT_BATCH, times=times, source=lambda pair: pair[0])


def run_stream(t: Any, images: Iterable[Any], changes: Mapping[str, object] | None = None, *,
               workers: int | None = None, batch_size: int | None = None,
               original: Mapping[str, object] | None = None) -> Iterator[Any]:
    """In-memory images in (any iterable, read lazily), edited images out in the same order."""
    merged = t.space.validate_changes(dict(changes or {}))

    def engine(prepared: list[Any]) -> list[Any]:
        edited = t.edit_rgb([rgb for rgb, _ in prepared], merged, original=original)
        return [(rgb, meta) for rgb, (_, meta) in zip(edited, prepared)]

    def finish(item: Any, out_image: Any) -> FileResult:
        return FileResult(None, value=restore(*out_image))

    for r in run_stages(images, lambda im: to_model_rgb(im, t.image_size, t.max_pixels), engine, finish,
                        workers=workers or default_workers(), batch_size=batch_size or DEFAULT_BATCH):
        if r.error is not None:
            raise ImageInputError(r.error)
        yield r.value
