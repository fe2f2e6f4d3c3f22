"""What one input becomes before the engine: model-size crops, and how to put their edits back.

Usage: plan = plan_image(image, "crop", 64); out = plan.finish(edit_plans(t, [plan], changes)[0])

Planning (decode, detect, crop, resize) runs in the pipeline's workers and finishing (resize back, paste, blend)
in its writer pool; the engine thread only sees crops, so the faces of many photos share one engine call and the
engine never calls back into the pipeline.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, NamedTuple

import numpy as np

from stargan_sdk.errors import NoFaceFoundError
from stargan_sdk.images.imaging import ImageMeta, center_crop, restore, to_model_rgb

MODES = ("whole", "crop", "photo", "auto")


class WholePlan(NamedTuple):
    """The image edited whole (its centre square, as `Translator.translate`)."""

    rgb: np.ndarray
    meta: ImageMeta

    @property
    def crops(self) -> list[np.ndarray]:
        return [self.rgb]

    def finish(self, edited: list[np.ndarray]) -> Any:
        return restore(edited[0], self.meta)


class FacesPlan(NamedTuple):
    """The faces of a photo (`stargan_sdk.photo.faces.PhotoPlan`), pasted back in order."""

    photo: Any

    @property
    def crops(self) -> list[np.ndarray]:
        return self.photo.faces

    def finish(self, edited: list[np.ndarray]) -> Any:
        return self.photo.paste(edited)


def plan_image(
    image: Any, mode: str, size: int, max_pixels: int, framing: Any = None, note: Callable[[str], None] | None = None
) -> WholePlan | FacesPlan:
    """The plan for one decoded image. `mode`: "whole" (as `translate`), "crop" (centre square first), "photo"
    (as `translate_photo`), "auto" (`framing.choose`, the CLI's rule; `note` hears when an aligned shape without
    a detected face is edited whole)."""
    if mode == "crop":
        return WholePlan(*to_model_rgb(center_crop(image), size, max_pixels))
    if mode == "whole":
        return WholePlan(*to_model_rgb(image, size, max_pixels))
    from stargan_sdk.photo.faces import plan_photo  # OpenCV only where faces are looked for

    if mode == "photo":
        return FacesPlan(plan_photo(image, size, max_pixels=max_pixels))
    choice = framing.choose(image)
    if choice.why == "aligned" and not choice.detector_missing and note is not None:
        from stargan_sdk.photo.framing import shape_name

        note(f"no face detected; edited whole as an aligned face ({shape_name(image.size, size)})")
    if choice.whole:
        return WholePlan(*to_model_rgb(image, size, max_pixels))
    if choice.why == "no-face":
        raise NoFaceFoundError(
            "no face found"
            if not choice.detector_missing
            else f"no face detector to look for faces ({choice.detector_missing})"
        )
    faces = list(choice.faces)  # found once, in this worker: not detected a second time
    return FacesPlan(plan_photo(image, size, detector=lambda _rgb: faces, max_pixels=max_pixels))


def edit_plans(
    t: Any,
    plans: list[WholePlan | FacesPlan],
    changes: Mapping[str, object],
    original: Mapping[str, object] | None = None,
    staging: np.ndarray | None = None,
) -> list[list[np.ndarray]]:
    """One engine call for the crops of all `plans` (the classifier batched with it); edited crops per plan."""
    crops = [c for p in plans for c in p.crops]
    edited = list(t.edit_rgb(crops, changes, original=original, staging=staging)) if crops else []
    out, i = [], 0
    for p in plans:
        n = len(p.crops)
        out.append(edited[i : i + n])
        i += n
    return out
