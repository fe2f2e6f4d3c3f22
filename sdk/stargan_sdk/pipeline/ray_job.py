"""Ray Data batch jobs with the same Translator: CPU decode tasks -> an actor pool running the engine -> CPU encode.

Usage: edited = edit_dataset(ray.data.read_binary_files(src, include_paths=True), bundle, {"Young": 1},
                             load=Translator.load)   # rows {path, name, data, error}

Ray is imported by the caller only: this module needs numpy and PIL, so the SDK imports without ray. The stages are
the local pipeline's (`to_model_rgb` / `center_crop` to prepare, `Translator.edit_rgb` for a batch of crops,
`Translator.translate_photo` for photos, `restore` and the same encoder as `save_image`); Ray only moves them
between processes. Every stage catches per row: a bad file is a row with an `error` text, never an exception that
kills the job, and a batch the engine refuses is retried row by row so only the bad row fails.
"""

from __future__ import annotations

import io
import pickle
import warnings
from collections.abc import Callable, Mapping
from pathlib import PurePosixPath
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from stargan_sdk.bundle.manifest import read_manifest
from stargan_sdk.errors import ImageInputError, StarGANError
from stargan_sdk.images.imaging import (
    MAX_IMAGE_PIXELS, center_crop, check_pixels, image_bytes, restore, to_model_rgb,
)

MODES = ("auto", "crop", "photo")  # auto: the whole image (translate_files calls it "whole"), centre square, faces
# Prepared items cross process boundaries as pickles of our own stage outputs (arrays, ImageMeta, PIL images):
# made and read by this module's stages only, never by user data.


def _one_line(exc: BaseException) -> str:
    """The SDK's own errors speak for themselves; anything else is named by its type."""
    text = str(exc) if isinstance(exc, StarGANError) else f"{type(exc).__name__}: {exc}"
    return " ".join(text.split())


def _open(data: bytes, max_pixels: int) -> Image.Image:
    try:
        image = Image.open(io.BytesIO(data))
    except UnidentifiedImageError:  # its message names an in-memory buffer, which tells the user nothing
        raise ImageInputError("not an image file PIL can read") from None
    check_pixels(image.width, image.height, max_pixels)  # sized before its pixels are decoded, as the CLI does
    image.load()  # decoded here, in the CPU task, not in the actor
    return image


def decode_batch(batch: dict[str, Any], *, mode: str, image_size: int, max_pixels: int) -> dict[str, Any]:
    """CPU task: file bytes -> what the engine needs (model-size uint8 crop and how to restore it, or the photo)."""
    prepared, errors = [], []
    for data in batch["bytes"]:
        item, error = b"", ""
        try:
            image = _open(bytes(data), max_pixels)
            if mode == "photo":
                item = pickle.dumps(image)
            else:
                item = pickle.dumps(to_model_rgb(center_crop(image) if mode == "crop" else image, image_size,
                                                 max_pixels))
        except Exception as exc:  # noqa: BLE001 - PIL raises many types on bad data; one bad file is one error row
            error = _one_line(exc)
        prepared.append(item)
        errors.append(error)
    return {"path": list(batch["path"]), "item": prepared, "error": errors}


class EditActor:
    """Actor: loads the Translator once (any backend; `auto` picks the GPU engine on a GPU node), then runs it."""

    def __init__(self, bundle: str, changes: Mapping[str, object], load: Callable[..., Any], mode: str = "auto",
                 backend: str = "auto", original: Mapping[str, object] | None = None) -> None:
        # `load` is Translator.load, passed in: the pipeline sits below the translator in the SDK's layers
        self.translator = load(bundle, backend=backend)
        self.changes = self.translator.space.validate_changes(dict(changes))
        self.mode, self.original = mode, dict(original) if original else None

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        errors = list(batch["error"])
        items: list[Any] = [pickle.loads(bytes(b)) if not e else None for b, e in zip(batch["item"], errors)]
        edited: list[Any] = [None] * len(items)
        ok = [i for i, e in enumerate(errors) if not e]
        if self.mode == "photo":
            for i in ok:
                edited[i], errors[i] = self._guarded(lambda im=items[i]: self.translator.translate_photo(
                    im, self.changes, original=self.original))
        elif ok:
            try:  # one engine call for the batch, as the local pipeline
                for i, rgb in zip(ok, self._edit([items[i][0] for i in ok])):
                    edited[i] = (rgb, items[i][1])
            except Exception:  # noqa: BLE001 - find the row that fails; the others still get their edit
                for i in ok:
                    result, errors[i] = self._guarded(lambda i=i: self._edit([items[i][0]])[0])
                    edited[i] = (result, items[i][1]) if result is not None else None
        return {"path": list(batch["path"]), "item": [pickle.dumps(x) if x is not None else b"" for x in edited],
                "error": errors}

    def _edit(self, rgbs: list[np.ndarray]) -> np.ndarray:
        return self.translator.edit_rgb(rgbs, self.changes, original=self.original)

    @staticmethod
    def _guarded(step: Callable[[], Any]) -> tuple[Any, str]:
        try:
            return step(), ""
        except Exception as exc:  # noqa: BLE001 - a failing row is an error row, the job goes on
            return None, _one_line(exc)


def encode_batch(batch: dict[str, Any], *, mode: str) -> dict[str, Any]:
    """CPU task: the edit back at the input's size and mode, encoded in the format of the input's suffix."""
    names, data, errors = [], [], []
    for path, item, error in zip(batch["path"], batch["item"], batch["error"]):
        name, encoded = PurePosixPath(str(path)).name, b""
        if not error:
            try:
                edited = pickle.loads(bytes(item))
                encoded = image_bytes(edited if mode == "photo" else restore(*edited), name)
            except Exception as exc:  # noqa: BLE001
                error = _one_line(exc)
        names.append(name)
        data.append(encoded)
        errors.append(error)
    return {"path": [str(p) for p in batch["path"]], "name": names, "data": data, "error": errors}


def _one_cpu() -> dict[str, float]:
    return {"num_cpus": 1}


def edit_dataset(ds: Any, bundle: str, changes: Mapping[str, object], *, load: Callable[..., Any],
                 mode: str = "auto", batch_size: int = 64, concurrency: int = 1, num_gpus: float = 0,
                 actor_cpus: float = 1, backend: str = "auto", original: Mapping[str, object] | None = None,
                 max_pixels: int = MAX_IMAGE_PIXELS) -> Any:
    """A Dataset of rows {path, name, data (the encoded edit), error} from rows {path, bytes}.

    Args:
        ds: a Ray Dataset with `path` and `bytes` columns (`ray.data.read_binary_files(..., include_paths=True)`).
        bundle: a bundle folder every node can read (a shared path).
        changes: attribute edits, e.g. {"Blond_Hair": 1}.
        load: `Translator.load` (each actor calls it once with the bundle and backend).
        mode: "auto" (the whole image, as `Translator.translate`), "crop" (its centred square) or "photo"
            (faces found and pasted back, as `Translator.translate_photo`).
        batch_size: rows per task and actor call.
        concurrency: actors in the pool (one per GPU on a GPU cluster).
        num_gpus: GPUs per actor (1 on GPU nodes: `auto` then picks the GPU engine).
        actor_cpus: CPUs Ray reserves per actor; the decode and encode tasks need what is left (on a CPU-only
            machine with N cores, keep concurrency * actor_cpus below N or the tasks wait forever).
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}, got {mode!r}")
    image_size = read_manifest(bundle).image_size
    # ray_remote_args_fn keeps decoding in CPU tasks: Ray Data otherwise fuses a task stage into the actor stage
    # after it when their resources match (CPU actors), and the actors would decode between engine calls.
    # It is deprecated for Ray 2.64 with no replacement in 2.60 (the `ray` extra pins 2.60.x).
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*ray_remote_args_fn.*deprecated")
        decoded = ds.map_batches(decode_batch, fn_kwargs={"mode": mode, "image_size": image_size,
                                                          "max_pixels": max_pixels},
                                 batch_size=batch_size, batch_format="numpy", ray_remote_args_fn=_one_cpu)
    edited = decoded.map_batches(EditActor, fn_constructor_kwargs={
        "bundle": str(bundle), "changes": dict(changes), "load": load, "mode": mode, "backend": backend,
        "original": dict(original) if original else None,
    }, batch_size=batch_size, batch_format="numpy", concurrency=concurrency, num_gpus=num_gpus, num_cpus=actor_cpus)
    return edited.map_batches(encode_batch, fn_kwargs={"mode": mode}, batch_size=batch_size, batch_format="numpy")
