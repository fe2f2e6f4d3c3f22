"""What the web page's controls do, without gradio: open an upload, estimate it, edit it, list every edit.

Usage: prepared = prepare(t, "face.png", "auto"); result, row = edit(t, prepared, {"Blond_Hair": 1}, original)

Works on any object with the Translator API the page relies on (`attributes`, `image_size`, `estimate`,
`translate`, `translate_batch`, `translate_all` when present, and `space.groups` or `manifest.groups`), so a
local `Translator` and a remote client are interchangeable. Errors are `stargan_sdk.errors` exceptions.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from PIL import Image

from stargan_sdk.errors import AttributeValueError, NoFaceFoundError
from stargan_sdk.images import imaging
from stargan_sdk.images.imaging import center_crop
from stargan_sdk.images.modes import PhotoCodec
from stargan_sdk.photo.face_detect import FaceBox
from stargan_sdk.photo.faces import celeba_crop_box, detect_faces, open_photo, padded_crop, translate_photo
from stargan_sdk.photo.framing import Framing, shape_name

MODES = ("auto", "whole", "faces")
NO_FACE = (
    "no face found in the image: upload a photo with a clear frontal face, or choose 'whole image' to edit "
    "it as one aligned face"
)
HAIR_NONE = "none of these"


@dataclass(frozen=True)
class Controls:
    """How the page lays out the bundle's attributes.

    Args:
        choice: members of the exclusive group shown as one choice (hair colours); empty when there is none.
        toggles: every other editable attribute, one on/off toggle each.
    """

    choice: tuple[str, ...]
    toggles: tuple[str, ...]


@dataclass
class Prepared:
    """An uploaded image, ready to edit.

    Args:
        image: the upright RGB image as uploaded (centre-cropped in "whole" mode when not square).
        whole: True when the image is edited whole, False when its faces are found and blended back.
        face: the square face the page estimates and shows the single-attribute row for.
        faces: detected face boxes (photo mode).
        note: one sentence saying how the image will be edited.
        estimate: the classifier's estimate for `face` (None when the bundle has no classifier).
    """

    image: Image.Image
    whole: bool
    face: Image.Image
    faces: list[FaceBox] = field(default_factory=list)
    note: str = ""
    estimate: dict[str, int] | None = None


def controls_for(translator: Any) -> Controls:
    """The first exclusive group becomes the choice, everything else a toggle, in label order."""
    space = getattr(translator, "space", None) or getattr(translator, "manifest", None)
    groups = getattr(space, "groups", ())
    editable = tuple(translator.attributes)
    exclusive = next((g for g in groups if g.kind == "exclusive"), None)
    choice = tuple(a for a in exclusive.attributes if a in editable) if exclusive else ()
    return Controls(choice, tuple(a for a in editable if a not in choice))


def open_upload(path: str | os.PathLike[str]) -> Image.Image:
    """The uploaded file as an upright RGB image; bombs, non-images and corrupt files raise ImageInputError."""
    upright = imaging.upright(open_photo(path))  # as the CLI: an unparseable EXIF block means no turn
    if upright.mode in ("RGBA", "LA", "PA") or (upright.mode == "P" and "transparency" in upright.info):
        white = Image.new("RGBA", upright.size, "white")
        return Image.alpha_composite(white, upright.convert("RGBA")).convert("RGB")
    return Image.fromarray(PhotoCodec(upright).to_rgb())  # 16-bit and float greyscale scaled, not clipped


def prepare(translator: Any, path: str | os.PathLike[str], mode: str = "auto") -> Prepared:
    """Open an upload, decide how to edit it (see `choose_whole`) and estimate what its face shows."""
    if mode not in MODES:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    image = open_upload(path)
    whole, faces, note = choose_whole(image, mode, translator.image_size)
    if whole and image.width != image.height:
        image = center_crop(image)
        note = f"{note[:-1]}, centre-cropped to {image.width}x{image.height}."
    face = image if whole else face_crop(image, faces[0])
    return Prepared(image, whole, face, faces, note, estimate_or_none(translator, face))


def choose_whole(image: Image.Image, mode: str, model_size: int) -> tuple[bool, list[FaceBox], str]:
    """(edit whole?, faces found, note). `auto` is the CLI's rule, `stargan_sdk.photo.framing`; `faces` needs a face."""
    if mode == "whole":
        return True, [], "Editing the whole image as one aligned face."
    if mode == "faces":
        faces = detect_faces(image)  # a missing detector is an error here: this mode is face detection
        if not faces:
            raise NoFaceFoundError(NO_FACE)
        return False, faces, _found(faces)
    choice = Framing(model_size=model_size).choose(image)
    shape = shape_name(image.size, model_size)
    if choice.why == "fills":
        return True, list(choice.faces), "The face fills the frame: editing the whole image as one aligned face."
    if choice.why == "aligned":
        why = f"No face detector here ({choice.detector_missing})" if choice.detector_missing else "No face detected"
        return True, [], f"{why}; the image is {shape}, so it is edited whole as one aligned face."
    if choice.why == "no-face" and choice.detector_missing:
        raise NoFaceFoundError(
            f"no face detector here ({choice.detector_missing}); choose 'whole image' to edit it as one aligned face"
        )
    if choice.why == "no-face":
        raise NoFaceFoundError(NO_FACE)
    return False, list(choice.faces), _found(choice.faces)


def _found(faces: Sequence[FaceBox]) -> str:
    return f"Found {len(faces)} face{'s' if len(faces) != 1 else ''}: each is edited and blended back into the photo."


def face_crop(image: Image.Image, box: FaceBox) -> Image.Image:
    """The CelebA-framed square around a face, mirrored where it reaches past the border: the photo path's crop."""
    return Image.fromarray(np.ascontiguousarray(padded_crop(np.asarray(image), celeba_crop_box(box))))


def estimate_or_none(translator: Any, face: Image.Image) -> dict[str, int] | None:
    """The classifier's estimate, or None when the bundle has no classifier (the page then asks the user)."""
    try:
        return {a: int(v) for a, v in translator.estimate(face).items()}
    except AttributeValueError as e:
        if "classifier" in str(e):
            return None
        raise


def changes_from(
    controls: Controls, original: Mapping[str, int], hair: str | None, toggles: Mapping[str, bool]
) -> dict[str, int]:
    """The edit asked for: the chosen colour (unless 'keep') and every toggle that differs from the original."""
    changes: dict[str, int] = {}
    if hair in controls.choice:
        changes[hair] = 1
    elif hair not in (None, "", "keep"):
        raise AttributeValueError(f"unknown choice {hair!r}; this model offers {', '.join(controls.choice)}")
    for name in controls.toggles:
        if name in toggles and int(bool(toggles[name])) != int(original.get(name, 0)):
            changes[name] = int(bool(toggles[name]))
    return changes


def original_from(controls: Controls, hair: str | None, toggles: Mapping[str, bool]) -> dict[str, int]:
    """What the input shows, from the page's 'input shows' controls (the classifier's estimate, corrected)."""
    out = {name: int(name == hair) for name in controls.choice}
    out.update({name: int(bool(toggles.get(name, False))) for name in controls.toggles})
    return out


def edit(
    translator: Any, prepared: Prepared, changes: Mapping[str, int], original: Mapping[str, int] | None
) -> tuple[Image.Image, dict[str, Image.Image]]:
    """(the edited image, every single-attribute edit of the face). `original=None`: each face is estimated
    by the bundle's classifier (the right thing for photos with several faces)."""
    if prepared.whole:
        result = translator.translate(prepared.image, dict(changes), original=original)
    else:
        result = translate_photo(
            translator, prepared.image, dict(changes), original=original, detector=lambda _rgb: prepared.faces
        )
    row_original = original if original is not None else prepared.estimate
    return result, single_edits(translator, prepared.face, row_original)


def single_edits(translator: Any, face: Image.Image, original: Mapping[str, int] | None) -> dict[str, Image.Image]:
    """The paper's row: each exclusive member switched on, each binary attribute flipped."""
    if hasattr(translator, "translate_all"):
        return translator.translate_all(face, original=dict(original) if original is not None else None)
    if original is None:
        original = translator.estimate(face)
    controls = controls_for(translator)
    edits = [(name, {name: 1}) for name in controls.choice]
    flips = [(name, 1 - int(original.get(name, 0))) for name in controls.toggles]
    edits += [(f"{name}={value}", {name: value}) for name, value in flips]
    outputs = translator.translate_batch([face] * len(edits), [c for _, c in edits], original=dict(original))
    return {name: out for (name, _), out in zip(edits, outputs)}


def describe(controls: Controls, values: Mapping[str, int] | None) -> str:
    """'Brown_Hair · Male · Young' style summary of an estimate (attributes that are 0 read 'not X')."""
    if values is None:
        return "This bundle has no classifier: say what the input shows under 'Correct the estimate'."
    parts = [name for name in controls.choice if values.get(name)]
    if controls.choice and not parts:
        parts.append(f"none of {', '.join(controls.choice)}")
    parts += [name if values.get(name) else f"not {name}" for name in controls.toggles]
    return " · ".join(parts)
