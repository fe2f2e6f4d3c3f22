"""Translator: load a bundle on a backend and edit face attributes of images.

Usage: with Translator.load("models/toyfaces-64") as t: blond = t.translate(Image.open("face.png"), Blond_Hair=1)

Images: a PIL image or uint8 numpy array (HxW, HxWx1, HxWx3 RGB, HxWx4 RGBA) of any size, upright by its
EXIF orientation. As in training, its largest centred square (CelebA: 178x178 of an aligned 178x218 face)
is resized to the model size; the result is resized back and put in place, returned at the input's size,
type and mode. Photos where the face is small go through `translate_photo` (face detection). Edits apply on top of
the image's current attributes: `original={...}` or, when omitted, the bundle's classifier's estimate.
See `stargan_sdk.images.labels` for the exclusive-group rules.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable, Mapping, Sequence
from contextlib import nullcontext
from typing import TYPE_CHECKING, Any

import numpy as np

from stargan_sdk.backends.base import Backend
from stargan_sdk.backends.classifier import AttributeClassifier, load_classifier
from stargan_sdk.backends.registry import load_backend
from stargan_sdk.bundle.checks import check_input_shapes
from stargan_sdk.bundle.constants import INPUT_IMAGE, INPUT_LABEL, OUTPUT_IMAGE
from stargan_sdk.bundle.folder import Bundle
from stargan_sdk.bundle.manifest import Manifest
from stargan_sdk.errors import AttributeValueError, ImageInputError, StarGANError
from stargan_sdk.host.hardware import Availability
from stargan_sdk.host.hostmem import check_image_range, value_range
from stargan_sdk.images.imaging import MAX_IMAGE_PIXELS, ImageMeta, Normalizer, restore, to_model_rgb
from stargan_sdk.images.labels import AttributeSpace

if TYPE_CHECKING:
    from stargan_sdk.backends.classifier_torch import TorchClassifier
    from stargan_sdk.backends.tensorrt_classifier import TrtClassifier

Changes = Mapping[str, object]
CHUNK_PIXELS = 16 * 128 * 128  # translate_batch prepares and runs at most this many model pixels at once (16 at 128 px)


def _merge(changes: Changes | None, keyword: dict[str, object]) -> dict[str, object]:
    if changes is not None and not isinstance(changes, Mapping):
        raise AttributeValueError(f"changes must be a dict of attribute -> 0/1, got {type(changes).__name__}")
    overlap = set(changes or {}) & set(keyword)
    if overlap:
        raise AttributeValueError(f"{', '.join(sorted(overlap))} given both in the dict and as keywords")
    return {**(changes or {}), **keyword}


def _listed(items: Any, what: str) -> Any:
    """A mapping or None as given; any other iterable (a generator too) as a list; anything else refused."""
    if items is None or isinstance(items, Mapping):
        return items
    if isinstance(items, (str, bytes)) or not isinstance(items, Iterable):
        raise AttributeValueError(
            f"{what} must be one dict or an iterable of dicts (one per image), got {type(items).__name__}"
        )
    return items if isinstance(items, Sequence) else list(items)


class Translator:
    """An opened bundle plus a loaded backend; use `Translator.load`.

    Args:
        manifest: the bundle's verified manifest (what the model takes and gives).
        backend: a loaded backend.
        classifier: the bundle's attribute classifier, if any (`load_classifier`: ONNX Runtime's, or the backend's
            own on the generator's GPU).
        candidates: availability of each backend considered when choosing (for `stargan info`).
        bundle: the opened local bundle; None when the model runs elsewhere (RemoteTranslator).

    `max_pixels` (default MAX_IMAGE_PIXELS, the CLI's --max-megapixels too) caps every image given to it:
    larger ones raise ImageInputError before they are decoded; set it on the instance to change it.
    """

    def __init__(
        self,
        manifest: Manifest,
        backend: Backend,
        classifier: AttributeClassifier | TorchClassifier | TrtClassifier | None = None,
        candidates: dict[str, Availability] | None = None,
        *,
        bundle: Bundle | None = None,
    ) -> None:
        self.bundle = bundle
        self.manifest = manifest
        self.backend = backend
        self.classifier = classifier
        self.candidates = dict(candidates or {})
        self.space = AttributeSpace.from_manifest(manifest)
        self.normalizer = Normalizer.of_manifest(manifest)
        self.max_pixels = MAX_IMAGE_PIXELS
        # Backends that are not thread-safe get one lock; ORT sessions and the torch backend need none here.
        self._lock = nullcontext() if backend.thread_safe else threading.Lock()

    @classmethod
    def load(
        cls,
        bundle_dir: str | os.PathLike[str],
        backend: str = "auto",
        device: int = 0,
        max_batch: int | None = None,
        cuda_graphs: bool = True,
        **backend_options: Any,
    ) -> Translator:
        """Open and verify a bundle (manifest schema and consistency, checksums of the artifacts used, graph
        input shapes) and load it on a backend; raises BundleError for a corrupted or mismatched bundle.

        Args:
            bundle_dir: the bundle folder.
            backend: "auto" (GPU: TensorRT with a matching engine, else inductor, else torch; CPU: OpenVINO,
                else ONNX Runtime; a backend that fails to load hands over to the next, see `candidates`),
                "tensorrt", "inductor", "torch", "onnxruntime" or "openvino".
            device: CUDA device ordinal for GPU backends.
            max_batch: largest batch per backend call; larger batches are split (None: backend default).
            cuda_graphs: capture one CUDA graph per batch size on GPU backends.
            backend_options: passed to the backend, e.g. precision="fp16", provider="cpu", threads=4.
        """
        if max_batch is not None and (not isinstance(max_batch, int) or max_batch < 1):
            raise StarGANError(f"max_batch must be a positive integer or None, got {max_batch!r}")
        bundle = Bundle.open(bundle_dir)  # one object: each artifact is verified once, whoever asks
        runner, candidates = load_backend(
            backend, bundle, device=device, max_batch=max_batch, cuda_graphs=cuda_graphs, **backend_options
        )
        try:
            shapes = runner.input_shapes()  # what the loaded engine reports (a TensorRT plan is not ONNX)
            if shapes is not None:
                check_input_shapes(bundle.manifest, shapes, f"the {runner.name} backend's generator")
            classifier = load_classifier(bundle, runner)  # on the generator's GPU where it can be
        except BaseException:
            runner.close()
            raise
        return cls(bundle.manifest, runner, classifier, candidates, bundle=bundle)

    @property
    def attributes(self) -> tuple[str, ...]:
        """Attributes users can set, in label order."""
        return self.space.editable

    @property
    def image_size(self) -> int:
        return self.manifest.image_size

    @property
    def backend_name(self) -> str:
        return self.backend.name

    def close(self) -> None:
        closing = getattr(self.classifier, "close", None)  # a classifier on the GPU has memory to free
        try:
            if closing is not None:
                closing()
        finally:
            self.backend.close()

    def __enter__(self) -> Translator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def infer(self, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """The raw path: float32 [N, 3, S, S] in [-1, 1] and float32 [N, c_dim] labels -> float32 outputs.
        A batch larger than the backend's max batch is split and run with `backend.infer_batches`."""
        self._check_arrays(images, labels)
        step = self.backend.max_batch or len(images)
        parts = [{INPUT_IMAGE: images[i : i + step], INPUT_LABEL: labels[i : i + step]}
                 for i in range(0, len(images), step)]  # fmt: skip
        with self._lock:
            if len(parts) == 1:
                return self.backend.infer(parts[0])[OUTPUT_IMAGE]
            outputs = self.backend.infer_batches(parts)
        return np.concatenate([out[OUTPUT_IMAGE] for out in outputs])

    def _check_arrays(self, images: np.ndarray, labels: np.ndarray) -> None:
        self._require_open()
        s = self.image_size
        is_array = isinstance(images, np.ndarray)
        if not is_array or images.dtype != np.float32 or images.ndim != 4 or images.shape[1:] != (3, s, s):
            desc = f"{images.dtype}{list(images.shape)}" if isinstance(images, np.ndarray) else type(images).__name__
            raise ImageInputError(f"infer expects float32 images [N, 3, {s}, {s}] in [-1, 1], got {desc}")
        self._check_labels(labels, len(images))
        if not self.backend.checks_input_range:  # GPU backends check on the device
            check_image_range(*value_range(images))

    def _check_labels(self, labels: np.ndarray, n: int) -> None:
        c = self.manifest.c_dim
        if n == 0:
            raise ImageInputError("empty batch: pass at least one image")
        if not isinstance(labels, np.ndarray) or labels.dtype != np.float32 or labels.shape != (n, c):
            desc = f"{labels.dtype}{list(labels.shape)}" if isinstance(labels, np.ndarray) else type(labels).__name__
            raise AttributeValueError(f"infer expects float32 labels [{n}, {c}], got {desc}")
        if not np.isfinite(labels).all():
            raise AttributeValueError("labels contain NaN or infinity")

    def _require_open(self) -> None:
        if not self.backend.loaded:
            raise StarGANError("this Translator is closed; load the bundle again")

    def estimate(self, image: Any) -> dict[str, int]:
        """The classifier's estimate of an image's current attributes."""
        self._require_open()
        rgb, _ = to_model_rgb(image, self.image_size, self.max_pixels)
        vec = self._originals(self.normalizer.preprocess([rgb]), None)[0]
        return {a: int(vec[self.space.attributes.index(a)]) for a in self.attributes}

    def _originals(
        self, x: np.ndarray, original: Changes | Sequence[Changes] | None, uint8: bool = False
    ) -> np.ndarray:
        """Attribute vectors of the images `x` (float NCHW; uint8 NHWC crops with `uint8`): given or estimated."""
        if original is None:
            if self.classifier is None:
                raise AttributeValueError(
                    "this bundle has no classifier to estimate what the image shows; pass original={...}, "
                    f"e.g. original={{{', '.join(repr(a) + ': 0' for a in self.attributes)}}}"
                )
            logits = self.classifier.logits_uint8(x) if uint8 else self.classifier.logits(x)
            return self.space.estimate_from_logits(logits)
        if isinstance(original, Mapping):
            return np.tile(self.space.original_vector(original), (len(x), 1))
        if len(original) != len(x):
            raise AttributeValueError(f"{len(original)} originals for {len(x)} images")
        return np.stack([self.space.original_vector(o) for o in original])

    def _prepare(self, images: Sequence[Any]) -> tuple[np.ndarray, list[ImageMeta]]:
        self._require_open()
        if len(images) == 0:
            raise ImageInputError("empty batch: pass at least one image")
        prepared = [to_model_rgb(im, self.image_size, self.max_pixels) for im in images]
        return self.normalizer.preprocess([p[0] for p in prepared]), [p[1] for p in prepared]

    def _finish(self, outputs: np.ndarray, metas: Sequence[ImageMeta]) -> list[Any]:
        return [restore(rgb, meta) for rgb, meta in zip(self.normalizer.postprocess(outputs), metas)]

    def translate(
        self,
        image: Any,
        changes: Changes | None = None,
        /,
        *,
        original: Changes | None = None,
        **keyword_changes: object,
    ) -> Any:
        """One edited image, same type/size/mode as given: `t.translate(img, Blond_Hair=1, Young=0)`."""
        if isinstance(image, (list, tuple)) or (isinstance(image, np.ndarray) and image.ndim == 4):
            raise ImageInputError("translate takes one image; use translate_batch for several")
        return self.translate_batch([image], _merge(changes, keyword_changes), original=original)[0]

    def translate_batch(
        self,
        images: Sequence[Any] | np.ndarray,
        changes: Changes | Sequence[Changes] | None = None,
        *,
        original: Changes | Sequence[Changes] | None = None,
    ) -> list[Any] | np.ndarray:
        """Edit several images in one run. `changes`: one dict for all or a list with one per image;
        `original` likewise (any iterable, a generator too). A uint8 [N, H, W, C] array in gives an array
        out, a list gives a list."""
        stacked = isinstance(images, np.ndarray)
        if not stacked and not isinstance(images, (list, tuple)):
            raise ImageInputError(
                f"translate_batch takes a list of images, got {type(images).__name__}; use translate for one"
            )
        if stacked and images.ndim != 4:
            raise ImageInputError(
                f"translate_batch takes a list of images or a uint8 [N, H, W, C] array, got shape {images.shape}"
            )
        changes, original = _listed(changes, "changes"), _listed(original, "original")
        per_image = self._per_image_changes(changes, len(images))
        if original is not None and not isinstance(original, Mapping) and len(original) != len(images):
            raise AttributeValueError(f"{len(original)} originals for {len(images)} images")
        self._require_open()
        if len(images) == 0:
            raise ImageInputError("empty batch: pass at least one image")
        results: list[Any] = []
        step = max(1, CHUNK_PIXELS // (self.image_size * self.image_size))
        for i in range(0, len(images), step):  # bounded memory: float tensors of one chunk at a time
            x, metas = self._prepare(list(images[i : i + step]))
            part = original if original is None or isinstance(original, Mapping) else original[i : i + step]
            targets = np.stack(
                [self.space.apply_changes(o, c) for o, c in zip(self._originals(x, part), per_image[i : i + step])]
            )
            results += self._finish(self.infer(x, targets), metas)
        return np.stack(results) if stacked else results

    def _per_image_changes(self, changes: Changes | Sequence[Changes] | None, n: int) -> list[dict[str, int]]:
        if changes is None or isinstance(changes, Mapping):
            return [self.space.validate_changes(changes or {})] * n
        if isinstance(changes, (str, bytes)) or len(changes) != n:
            raise AttributeValueError(f"changes must be one dict or a list of {n} dicts (one per image)")
        return [self.space.validate_changes(_merge(c, {})) for c in changes]

    def edit_rgb(
        self,
        rgbs: Sequence[np.ndarray],
        changes: Changes,
        *,
        original: Changes | None = None,
        staging: np.ndarray | None = None,
    ) -> np.ndarray:
        """The engine step of the pipeline: model-size uint8 RGB crops in, edited uint8 RGB crops out (the
        classifier, when it estimates the originals, runs once on the whole batch). `staging`: a float32
        [>= N, 3, S, S] buffer to normalise into, reused across calls by the pipeline instead of a new one."""
        self._require_open()
        if len(rgbs) == 0:
            raise ImageInputError("empty batch: pass at least one image")
        batch = np.stack(rgbs)
        s = self.image_size
        if batch.dtype != np.uint8 or batch.shape[1:] != (s, s, 3):
            raise ImageInputError(f"edit_rgb takes uint8 crops [{s}, {s}, 3], got {batch.dtype}{list(batch.shape[1:])}")
        on_device = getattr(self.backend, "uint8_on_device", False)
        # uint8 all the way to the device where the generator takes it and the classifier, if asked, does too
        uint8_classifier = original is not None or getattr(self.classifier, "uint8_on_device", False)
        x = (
            None
            if on_device and uint8_classifier
            else (
                self.normalizer.preprocess(batch)
                if staging is None
                else self.normalizer.preprocess_into(batch, staging)
            )
        )
        per_image = self._per_image_changes(changes, len(batch))
        originals = self._originals(batch if x is None else x, original, uint8=x is None)
        targets = np.stack([self.space.apply_changes(o, c) for o, c in zip(originals, per_image)])
        if on_device:  # uint8 up and down, normalised on the GPU
            return self.infer_uint8(batch, targets)
        return self.normalizer.postprocess(self.infer(x, targets))

    def infer_uint8(self, images: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """uint8 [N, S, S, 3] RGB and float32 [N, c_dim] labels -> edited uint8 [N, S, S, 3]: `infer` between
        the bundle's normalisation and its inverse, done on the GPU by GPU backends (4x less to copy each way)."""
        s = self.image_size
        if not isinstance(images, np.ndarray) or images.dtype != np.uint8 or images.shape[1:] != (s, s, 3):
            desc = f"{images.dtype}{list(images.shape)}" if isinstance(images, np.ndarray) else type(images).__name__
            raise ImageInputError(f"infer_uint8 expects uint8 images [N, {s}, {s}, 3], got {desc}")
        self._require_open()
        self._check_labels(labels, len(images))  # uint8 needs no range check: every value is a pixel
        step = self.backend.max_batch or len(images)
        with self._lock:
            return np.concatenate(
                [
                    self.backend.infer_uint8(images[i : i + step], labels[i : i + step])
                    for i in range(0, len(images), step)
                ]
            )

    def translate_files(self, inputs: Iterable[Any], out: Any, changes: Changes | None = None, /, **options: Any):
        """Edit image files into a folder (or one output path per input) through the streaming pipeline;
        yields per-file results in input order (see `stargan_sdk.pipeline.jobs.run_files` for the options)."""
        from stargan_sdk.pipeline.jobs import run_files

        return run_files(self, inputs, out, changes, **options)

    def translate_stream(self, images: Iterable[Any], changes: Changes | None = None, /, **options: Any):
        """Edit an iterable of in-memory images through the pipeline; edited images out in the same order."""
        from stargan_sdk.pipeline.jobs import run_stream

        return run_stream(self, images, changes, **options)

    def translate_all(self, image: Any, *, original: Changes | None = None) -> dict[str, Any]:
        """Every single-attribute edit of one image, in label order (the paper's figure row):
        {"Black_Hair": img, "Blond_Hair": img, ..., "Male=0": img, "Young=1": img}."""
        x, metas = self._prepare([image])
        targets = self.space.single_attribute_targets(self._originals(x, original)[0])
        labels = np.stack([vec for _, vec in targets])
        outputs = self._finish(self.infer(np.repeat(x, len(targets), axis=0), labels), metas * len(targets))
        return {name: out for (name, _), out in zip(targets, outputs)}

    def translate_photo(
        self,
        photo: Any,
        changes: Changes | None = None,
        /,
        *,
        original: Changes | None = None,
        face_index: int | None = None,
        on_no_face: str = "raise",
        detector: Any = None,
        **keyword_changes: object,
    ) -> Any:
        """Edit the face(s) in a photo of any shape and paste them back (see `stargan_sdk.photo.faces`)."""
        from stargan_sdk.photo.faces import translate_photo  # needs OpenCV: imported only for photos

        merged = self.space.validate_changes(_merge(changes, keyword_changes))  # fail before detecting faces
        return translate_photo(
            self,
            photo,
            merged,
            original=original,
            face_index=face_index,
            on_no_face=on_no_face,
            detector=detector,
            max_pixels=self.max_pixels,
        )

    def describe(self) -> dict[str, Any]:
        return {
            "bundle": str(self.bundle.folder) if self.bundle else None,
            "attributes": list(self.attributes),
            "image_size": self.image_size,
            "classifier": self.classifier is not None,
            "classifier_runs_on": self.classifier.describe() if self.classifier is not None else None,
            **self.backend.describe(),
        }
