"""Ray Data batch jobs with the same Translator: CPU decode -> GPU/CPU actor pool -> CPU encode, per-row errors.

Usage: edit_dataset(ray.data.read_binary_files(src, include_paths=True), bundle, {"Young": 1}, load=Translator.load)

Ray is imported inside the functions only: the SDK imports without ray (the `ray` extra installs it).
Every stage catches per row: a bad file becomes a row with an `error` text, never an exception that
kills the job. The stages are small named functions so the local pipeline's stages can replace them.
"""

from __future__ import annotations

import io
import pickle
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from PIL import Image

from stargan_sdk.bundle.manifest import read_manifest
from stargan_sdk.images.imaging import restore, to_model_rgb

MODES = ("crop",)  # "photo"/"auto" (face detection per photo) are not wired into the Ray job yet


def _rows(batch: Mapping[str, Any]) -> int:
    return len(batch["path"])


def decode_batch(batch: dict[str, Any], image_size: int) -> dict[str, Any]:
    """CPU stage: file bytes -> the model-size uint8 square (as Translator prepares it) and how to restore it."""
    squares, metas, errors = [], [], []
    for data, error in zip(batch["bytes"], batch.get("error", [""] * _rows(batch))):
        square, meta = np.zeros((image_size, image_size, 3), np.uint8), b""
        if not error:
            try:
                square, info = to_model_rgb(Image.open(io.BytesIO(data)), image_size)
                meta = pickle.dumps(info)  # ImageMeta holds arrays: carried as bytes between stages
            except Exception as exc:  # noqa: BLE001 - one bad file is one error row
                error = f"{type(exc).__name__}: {exc}"
        squares.append(square)
        metas.append(meta)
        errors.append(error)
    return {"path": list(batch["path"]), "square": np.stack(squares), "meta": metas, "error": errors}


class EditActor:
    """Actor stage: loads the Translator once, then only runs the engine on prepared squares."""

    def __init__(self, bundle: str, changes: Mapping[str, object], load: Callable[..., Any],
                 backend: str = "auto") -> None:
        # `load` is Translator.load, passed in: the pipeline sits below the translator in the SDK's layers
        self.translator = load(bundle, backend=backend)
        self.changes = dict(changes)

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        ok = [i for i, e in enumerate(batch["error"]) if not e]
        edited = np.array(batch["square"], copy=True)
        errors = list(batch["error"])
        if ok:
            try:  # the squares are already model-size, so translate_batch's own preparation is the identity
                edited[ok] = self.translator.translate_batch(edited[ok], self.changes)
            except Exception as exc:  # noqa: BLE001 - a failing batch is error rows, the job goes on
                for i in ok:
                    errors[i] = f"{type(exc).__name__}: {exc}"
        return {"path": list(batch["path"]), "square": edited, "meta": list(batch["meta"]), "error": errors}


def encode_batch(batch: dict[str, Any], fmt: str = "PNG") -> dict[str, Any]:
    """CPU stage: the edited square back at the input's size and mode, encoded as image bytes."""
    outputs, errors = [], []
    for square, meta, error in zip(batch["square"], batch["meta"], batch["error"]):
        data = b""
        if not error:
            try:
                image = restore(np.asarray(square, np.uint8), pickle.loads(meta))
                image = image if isinstance(image, Image.Image) else Image.fromarray(image)
                buffer = io.BytesIO()
                image.save(buffer, format=fmt)
                data = buffer.getvalue()
            except Exception as exc:  # noqa: BLE001
                error = f"{type(exc).__name__}: {exc}"
        outputs.append(data)
        errors.append(error)
    return {"path": list(batch["path"]), "image": outputs, "error": errors}


def edit_dataset(ds: Any, bundle: str, changes: Mapping[str, object], *, mode: str = "crop", batch_size: int = 64,
                 concurrency: int = 1, num_gpus: float = 0, backend: str = "auto", load: Callable[..., Any]) -> Any:
    """A Dataset of rows {path, image (PNG bytes), error} from one of rows {path, bytes} (read_binary_files).

    Args:
        ds: a Ray Dataset with `path` and `bytes` columns (`ray.data.read_binary_files(..., include_paths=True)`).
        bundle: a bundle folder every node can read (a shared path).
        changes: attribute edits, e.g. {"Blond_Hair": 1}.
        mode: "crop" (the largest centred square, as `Translator.translate`).
        batch_size: rows per actor call.
        concurrency: actors in the pool (one per GPU on a GPU cluster).
        num_gpus: GPUs per actor (1 on GPU nodes: `auto` then picks the GPU engine).
        load: `Translator.load` (each actor calls it once with the bundle and backend).
    """
    if mode not in MODES:
        raise ValueError(f"mode {mode!r} is not supported by the Ray job yet; use one of {MODES}")
    image_size = read_manifest(bundle).image_size
    decoded = ds.map_batches(decode_batch, fn_kwargs={"image_size": image_size}, batch_size=batch_size,
                             batch_format="numpy")
    edited = decoded.map_batches(EditActor, fn_constructor_kwargs={"bundle": str(bundle), "changes": dict(changes),
                                                                   "backend": backend, "load": load},
                                 batch_size=batch_size, batch_format="numpy", concurrency=concurrency,
                                 num_gpus=num_gpus)
    return edited.map_batches(encode_batch, batch_size=batch_size, batch_format="numpy")
