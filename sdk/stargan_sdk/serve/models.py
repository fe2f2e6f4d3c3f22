"""What a served model does with one batch of Triton requests: check each, run the valid ones together.

Usage: model = GeneratorModel(translator); results = model.run([{"image": x, "label": c}, ...])

Triton's dynamic batcher hands a model several clients' requests at once. Each request is checked on its
own and a bad one (NaN, values outside [-1, 1], a wrong shape, undecodable bytes, an unknown attribute)
gets its own error message while the others in the batch are answered normally. A result is either a
dict of named output arrays or a `Refusal` (the client's error: HTTP 400 / gRPC INVALID_ARGUMENT) or a `Failure`
(the server's: 500 / INTERNAL), both strings. Whatever a request raises stays with that request, and no message
carries a traceback or a server path (those go to the server's log).
"""

from __future__ import annotations

import base64
import binascii
import io
import json
import logging
import traceback
from collections.abc import Callable, Sequence

import numpy as np
from PIL import Image

from stargan_sdk.bundle.constants import INPUT_IMAGE, INPUT_LABEL, OUTPUT_IMAGE
from stargan_sdk.errors import ImageInputError, StarGANError
from stargan_sdk.images.imaging import center_crop
from stargan_sdk.translator import Translator

log = logging.getLogger(__name__)
MAX_MESSAGE = 400  # characters of an error message sent back (a message can quote what the client sent)


class Refusal(str):
    """A request the client got wrong (bad input): its own error, HTTP 400 / gRPC INVALID_ARGUMENT."""


class Failure(str):
    """A request the server could not answer for a reason of its own: HTTP 500 / gRPC INTERNAL."""


Request = dict[str, np.ndarray]
Result = dict[str, np.ndarray] | str
LOGITS = "logits"
EDIT_IMAGE, EDIT_CHANGES, EDIT_ORIGINAL, EDIT_OUTPUT = "image", "changes", "original", "edited"
MAX_PIXELS = 6000 * 6000  # a decoded upload larger than this is refused before decoding (decompression bombs)
_IMAGE_MAGIC = (b"\x89PNG", b"\xff\xd8\xff", b"GIF8", b"BM", b"RIFF", b"II*\x00", b"MM\x00*")


def _batched(
    requests: Sequence[Request],
    check: Callable[[Request], str | None],
    run: Callable[[list[Request]], list[dict[str, np.ndarray]]],
) -> list[Result]:
    """Check every request, run the valid ones in one call; if that call fails, run them one by one so
    the failure is charged to the request that caused it."""
    errors = [_checked(check, r) for r in requests]
    valid = [r for r, e in zip(requests, errors) if e is None]
    try:
        outputs = iter(run(valid)) if valid else iter(())
    except Exception:  # noqa: BLE001 - whatever the batch raised, find the request that caused it
        outputs = iter([_one(run, r) for r in valid])
    return [e if e is not None else next(outputs) for e in errors]


def _checked(check: Callable[[Request], str | None], request: Request) -> Result | None:
    try:
        error = check(request)
    except Exception as e:  # noqa: BLE001 - a check that trips on odd input refuses that input only
        return _error(e)
    return None if error is None else Refusal(_short(error))


def _one(run: Callable[[list[Request]], list[dict[str, np.ndarray]]], request: Request) -> Result:
    try:
        return run([request])[0]
    except Exception as e:  # noqa: BLE001 - one request's failure, of any type, stays that request's
        return _error(e)


def _short(message: str) -> str:
    return message if len(message) <= MAX_MESSAGE else message[: MAX_MESSAGE - 1] + "…"


def _error(e: Exception) -> Result:
    """The client's message for an exception: an SDK error says what was wrong with the input; anything else
    is logged here with its traceback and answered with its type only (no server paths, no traceback)."""
    if isinstance(e, StarGANError):
        try:
            return Refusal(_short(str(e)))
        except ValueError:  # a message quoting a 5,000-digit integer cannot even be formatted
            return Refusal(f"the request was refused ({type(e).__name__})")
    if isinstance(e, (RecursionError, ValueError, TypeError, OverflowError)):
        return Refusal(
            f"the request could not be read ({type(e).__name__}: nested too deep, a number too "
            f"large or a value of the wrong type)"
        )
    log.error("request failed:\n%s", "".join(traceback.format_exception(e)))
    return Failure(f"the server failed on this request ({type(e).__name__}); see the server log")


def _split(array: np.ndarray, requests: Sequence[Request], key: str) -> list[np.ndarray]:
    bounds = np.cumsum([len(r[key]) for r in requests])[:-1]
    return np.split(array, bounds)


class GeneratorModel:
    """`stargan`: image float32 [n, 3, S, S] in [-1, 1] + label float32 [n, C] -> output float32 [n, 3, S, S]."""

    def __init__(self, translator: Translator) -> None:
        self.t = translator

    def check(self, r: Request) -> str | None:
        s, c = self.t.image_size, self.t.manifest.c_dim
        image, label = r.get(INPUT_IMAGE), r.get(INPUT_LABEL)
        if image is None or label is None:
            return f"a request needs the inputs {INPUT_IMAGE!r} and {INPUT_LABEL!r}"
        return _check_images(image, s) or _check_labels(label, len(image), c)

    def _run(self, requests: list[Request]) -> list[dict[str, np.ndarray]]:
        images = np.concatenate([r[INPUT_IMAGE] for r in requests])
        labels = np.concatenate([r[INPUT_LABEL] for r in requests])
        out = self.t.infer(np.ascontiguousarray(images), np.ascontiguousarray(labels))
        return [{OUTPUT_IMAGE: part} for part in _split(out, requests, INPUT_IMAGE)]

    def run(self, requests: Sequence[Request]) -> list[Result]:
        return _batched(requests, self.check, self._run)

    def warm_up(self, max_batch: int) -> None:
        """Run every batch size the batcher can form once: backends that compile per shape (OpenVINO's
        static shapes, CUDA graphs, Inductor) then never compile while a client waits."""
        s, c = self.t.image_size, self.t.manifest.c_dim
        for n in range(1, max_batch + 1):
            self.t.infer(np.zeros((n, 3, s, s), np.float32), np.zeros((n, c), np.float32))


class ClassifierModel:
    """`stargan_classifier`: image float32 [n, 3, S, S] in [-1, 1] -> logits float32 [n, C] (the bundle's
    classifier)."""

    def __init__(self, translator: Translator) -> None:
        if translator.classifier is None:
            raise StarGANError("this bundle has no classifier to serve")
        self.t = translator

    def check(self, r: Request) -> str | None:
        image = r.get(INPUT_IMAGE)
        return (
            f"a request needs the input {INPUT_IMAGE!r}" if image is None else _check_images(image, self.t.image_size)
        )

    def _run(self, requests: list[Request]) -> list[dict[str, np.ndarray]]:
        logits = self.t.classifier.logits(np.ascontiguousarray(np.concatenate([r[INPUT_IMAGE] for r in requests])))
        return [{LOGITS: np.asarray(part, np.float32)} for part in _split(logits, requests, INPUT_IMAGE)]

    def run(self, requests: Sequence[Request]) -> list[Result]:
        return _batched(requests, self.check, self._run)

    def warm_up(self, max_batch: int) -> None:
        pass  # ONNX Runtime on the CPU: dynamic shapes, nothing to compile


class EditModel:
    """`stargan_edit`, for clients without numpy: image (encoded file bytes, or their base64 text) + changes
    (JSON object, e.g. {"Blond_Hair": 1}) [+ original (JSON object)] -> edited (base64 PNG text).

    Non-square images are centre-cropped first. Without `original`, the bundle's classifier estimates it.
    """

    def __init__(self, translator: Translator) -> None:
        self.t = translator

    def _parse(self, r: Request) -> tuple[Image.Image, dict[str, int], dict[str, int] | None]:
        if EDIT_IMAGE not in r or EDIT_CHANGES not in r:
            raise StarGANError(f"a request needs the inputs {EDIT_IMAGE!r} and {EDIT_CHANGES!r}")
        if r[EDIT_IMAGE].size != 1 or r[EDIT_CHANGES].size != 1:
            raise StarGANError("send one image per request (inputs of shape [1, 1])")
        image = center_crop(decode_image(_scalar_bytes(r[EDIT_IMAGE])))
        changes = self.t.space.validate_changes(_json_object(r[EDIT_CHANGES], EDIT_CHANGES))
        original = _json_object(r[EDIT_ORIGINAL], EDIT_ORIGINAL) if EDIT_ORIGINAL in r else None
        return image, changes, original

    def _edit(self, r: Request) -> dict[str, np.ndarray]:
        image, changes, original = self._parse(r)
        edited = self.t.translate(image, changes, original=original)
        buffer = io.BytesIO()
        edited.save(buffer, format="PNG")
        return {EDIT_OUTPUT: np.array([[base64.b64encode(buffer.getvalue())]], dtype=np.object_)}

    def warm_up(self, max_batch: int) -> None:
        GeneratorModel(self.t).warm_up(1)  # edits run one image at a time

    def run(self, requests: Sequence[Request]) -> list[Result]:
        # One request, one image: the generator runs per request here; the `stargan` model batches arrays.
        return [_one(lambda rs: [self._edit(rs[0])], r) for r in requests]


def _check_images(image: np.ndarray, s: int) -> str | None:
    if image.dtype != np.float32 or image.ndim != 4 or image.shape[1:] != (3, s, s) or len(image) == 0:
        return f"image must be float32 [n, 3, {s}, {s}], got {image.dtype}{list(image.shape)}"
    lo, hi = float(image.min()), float(image.max())  # NaN fails both comparisons
    if not (lo >= -1.0 - 1e-3 and hi <= 1.0 + 1e-3):
        return f"image values must be finite and in [-1, 1], found [{lo}, {hi}]"
    return None


def _check_labels(label: np.ndarray, n: int, c: int) -> str | None:
    if label.dtype != np.float32 or label.shape != (n, c):
        return f"label must be float32 [{n}, {c}], got {label.dtype}{list(label.shape)}"
    if not np.isfinite(label).all():
        return "label contains NaN or infinity"
    return None


def _scalar_bytes(array: np.ndarray) -> bytes:
    value = array.reshape(-1)[0]
    return value.encode() if isinstance(value, str) else bytes(value)


def _json_object(array: np.ndarray, name: str) -> dict[str, object]:
    try:
        value = json.loads(_scalar_bytes(array).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise StarGANError(f'{name} must be a JSON object such as {{"Blond_Hair": 1}}: {e}') from None
    except (RecursionError, ValueError):  # 100,000 levels deep; an integer of more than 4,300 digits
        raise StarGANError(
            f'{name} must be a small JSON object such as {{"Blond_Hair": 1}}: it is nested too '
            f"deep or holds a number too long"
        ) from None
    if not isinstance(value, dict):
        raise StarGANError(f'{name} must be a JSON object such as {{"Blond_Hair": 1}}, got {type(value).__name__}')
    return value


def decode_image(data: bytes) -> Image.Image:
    """An RGB(A)/L PIL image from encoded file bytes or their base64 text; refuses garbage and huge images."""
    if not data.startswith(_IMAGE_MAGIC):
        try:
            data = base64.b64decode(data, validate=True)
        except (binascii.Error, ValueError):
            raise ImageInputError("image is neither an encoded image file (PNG, JPEG, ...) nor base64 of one") from None
    try:
        with Image.open(io.BytesIO(data)) as im:
            if im.width * im.height > MAX_PIXELS:
                raise ImageInputError(
                    f"image is {im.width}x{im.height}; the server accepts at most {MAX_PIXELS} pixels"
                )
            im.load()
            return im if im.mode in ("RGB", "RGBA", "L", "LA") else im.convert("RGB")
    except ImageInputError:
        raise
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
        raise ImageInputError(f"image bytes could not be decoded: {e}") from None
