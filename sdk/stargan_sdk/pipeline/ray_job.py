"""Ray Data batch jobs with the same Translator: CPU decode tasks -> an actor pool running the engine -> CPU encode.

Usage: edited = edit_dataset(ray.data.read_binary_files(src, include_paths=True), bundle, {"Young": 1},
                             load=Translator.load)   # rows {path, name, data, error}

Ray is imported by the caller only: this module needs numpy and PIL, so the SDK imports without ray. The stages are
the local pipeline's (`pipeline.plans`: `plan_image` decodes, detects and crops in CPU tasks, `edit_plans` makes one
engine call for the crops of a whole batch in the actors, `plan.finish` puts the edits back, and `image_bytes` is
`save_image`'s encoder); Ray only moves them between processes. Every stage catches per row: a bad file is a row
with an `error` text, never an exception that kills the job, and a batch the engine refuses is retried row by row
so only the bad row fails.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Mapping
from pathlib import PurePosixPath
from typing import Any

import numpy as np
from PIL import Image, UnidentifiedImageError

from stargan_sdk.bundle.manifest import read_manifest
from stargan_sdk.errors import ImageInputError, StarGANError
from stargan_sdk.images.imaging import MAX_IMAGE_PIXELS, PNG_LEVEL, check_pixels, image_bytes, upright
from stargan_sdk.pipeline.plans import MODES, edit_plans, plan_image


def _objects(items: list[Any]) -> np.ndarray:
    """A column of Python objects (plans, edits; None for an error row) that Ray Data carries between stages as
    they are. Built element by element: np.array would unpack the tuples into a 2-D array."""
    column = np.empty(len(items), dtype=object)
    for i, item in enumerate(items):
        column[i] = item
    return column


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
    """CPU task: file bytes -> the pipeline's plan (model-size crops and how to put their edits back); faces are
    detected here, in the CPU tasks, not in the actors."""
    framing = None
    if mode == "auto":  # the CLI's rule; OpenCV is imported only where faces are looked for
        from stargan_sdk.photo.framing import Framing

        framing = Framing(model_size=image_size, max_pixels=max_pixels)
    plans, errors = [], []
    for data in batch["bytes"]:
        plan, error = None, ""
        try:
            plan = plan_image(upright(_open(bytes(data), max_pixels)), mode, image_size, max_pixels, framing)
        except Exception as exc:  # noqa: BLE001 - PIL raises many types on bad data; one bad file is one error row
            error = _one_line(exc)
        plans.append(plan)
        errors.append(error)
    return {"path": list(batch["path"]), "item": _objects(plans), "error": errors}


class EditActor:
    """Actor: loads the Translator once (any backend; `auto` picks the GPU engine on a GPU node), then only runs
    the engine: the crops of all the batch's plans in one call (faces of many photos together)."""

    def __init__(
        self,
        bundle: str,
        changes: Mapping[str, object],
        load: Callable[..., Any],
        backend: str = "auto",
        original: Mapping[str, object] | None = None,
    ) -> None:
        # `load` is Translator.load, passed in: the pipeline sits below the translator in the SDK's layers
        self.translator = load(bundle, backend=backend)
        self.changes = self.translator.space.validate_changes(dict(changes))
        self.original = dict(original) if original else None

    def __call__(self, batch: dict[str, Any]) -> dict[str, Any]:
        errors = list(batch["error"])
        plans = {i: plan for i, (plan, e) in enumerate(zip(batch["item"], errors)) if not e}
        edited: dict[int, Any] = {}
        try:  # one engine call for the batch, as the local pipeline
            edited = dict(zip(plans, self._edit(list(plans.values()))))
        except Exception:  # noqa: BLE001 - find the row that fails; the others still get their edit
            for i, plan in plans.items():
                try:
                    edited[i] = self._edit([plan])[0]
                except Exception as exc:  # noqa: BLE001 - a failing row is an error row, the job goes on
                    errors[i] = _one_line(exc)
        items = [(plans[i], edited[i]) if i in edited else None for i in range(len(errors))]
        return {"path": list(batch["path"]), "item": _objects(items), "error": errors}

    def _edit(self, plans: list[Any]) -> list[list[np.ndarray]]:
        return edit_plans(self.translator, plans, self.changes, self.original)


def encode_batch(batch: dict[str, Any], *, png_level: int = PNG_LEVEL) -> dict[str, Any]:
    """CPU task: the edits put back (resize, paste, blend) and encoded in the format of the input's suffix."""
    names, data, errors = [], [], []
    for path, item, error in zip(batch["path"], batch["item"], batch["error"]):
        name, encoded = PurePosixPath(str(path)).name, b""
        if not error:
            try:
                plan, edited = item
                encoded = image_bytes(plan.finish(edited), name, png_level)
            except Exception as exc:  # noqa: BLE001
                error = _one_line(exc)
        names.append(name)
        data.append(encoded)
        errors.append(error)
    return {"path": [str(p) for p in batch["path"]], "name": names, "data": data, "error": errors}


def _one_cpu() -> dict[str, float]:
    return {"num_cpus": 1}


def edit_dataset(
    ds: Any,
    bundle: str,
    changes: Mapping[str, object],
    *,
    load: Callable[..., Any],
    mode: str = "whole",
    batch_size: int = 64,
    concurrency: int = 1,
    num_gpus: float = 0,
    actor_cpus: float = 1,
    backend: str = "auto",
    original: Mapping[str, object] | None = None,
    max_pixels: int = MAX_IMAGE_PIXELS,
    png_level: int = PNG_LEVEL,
) -> Any:
    """A Dataset of rows {path, name, data (the encoded edit), error} from rows {path, bytes}.

    Args:
        ds: a Ray Dataset with `path` and `bytes` columns (`ray.data.read_binary_files(..., include_paths=True)`).
        bundle: a bundle folder every node can read (a shared path).
        changes: attribute edits, e.g. {"Blond_Hair": 1}.
        load: `Translator.load` (each actor calls it once with the bundle and backend).
        mode: as `Translator.translate_files`: "whole" (as `Translator.translate`), "crop" (the centred square),
            "photo" (faces found and pasted back, as `Translator.translate_photo`), "auto" (the CLI's framing
            rule: an aligned face whole, else its faces).
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
        decoded = ds.map_batches(
            decode_batch,
            fn_kwargs={"mode": mode, "image_size": image_size, "max_pixels": max_pixels},
            batch_size=batch_size,
            batch_format="numpy",
            ray_remote_args_fn=_one_cpu,
        )
    edited = decoded.map_batches(
        EditActor,
        fn_constructor_kwargs={
            "bundle": str(bundle),
            "changes": dict(changes),
            "load": load,
            "backend": backend,
            "original": dict(original) if original else None,
        },
        batch_size=batch_size,
        batch_format="numpy",
        concurrency=concurrency,
        num_gpus=num_gpus,
        num_cpus=actor_cpus,
    )
    return edited.map_batches(
        encode_batch, fn_kwargs={"png_level": png_level}, batch_size=batch_size, batch_format="numpy"
    )
