"""INT8 generator: static QDQ quantization of a bundle's FP32 ONNX from a folder of face images, with a PSNR check.

Usage: art = quantize_onnx(fp32_onnx, out, prepare_calibration("faces/", 128, attributes))
(run by `stargan-export build --int8-calibration` and, on an existing bundle, `stargan-export quantize`)

Why ONNX Runtime's `quantize_static` rather than OpenVINO NNCF: it is already an export dependency (NNCF
3.4 would add ten packages to the dev environment, scikit-learn, ninja and pydot among them), and its
output is a plain QDQ ONNX file that ONNX Runtime and OpenVINO both run natively (OpenVINO maps
QuantizeLinear/DequantizeLinear pairs to its INT8 kernels), so one standard artifact serves every CPU
backend, where an OpenVINO IR would serve one. The PSNR is measured with ONNX Runtime, the reference runtime
of every export check; OpenVINO's INT8 result agrees with it to ~0.3 dB (tests/export/test_int8.py).
Only Conv and ConvTranspose are quantized (per-channel symmetric int8 weights, asymmetric uint8
activations: the VNNI/AMX-friendly u8s8 form); InstanceNormalization, ReLU and Tanh stay float because
per-instance statistics are what the model's quality depends on and they cost little time.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationDataReader,
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quantize_static,
)

from stargan_export.errors import ExportError
from stargan_export.parity import measure, ort_session
from stargan_export.progress import Steps
from stargan_sdk.bundle.constants import INPUT_IMAGE, INPUT_LABEL, OUTPUT_IMAGE
from stargan_sdk.bundle.manifest import (
    Artifact,
    AttributeGroup,
    Manifest,
    derive_groups,
    sha256_file,
)
from stargan_sdk.errors import ImageInputError
from stargan_sdk.host.files import atomic_write
from stargan_sdk.images.imaging import IMAGE_SUFFIXES, Normalizer, center_crop, to_model_rgb

MIN_IMAGES = 2  # one to calibrate on, one held out for the PSNR check
CHUNK = 8  # images per evaluation run: bounds memory at 256 px


class _Batches(CalibrationDataReader):
    """Feeds (image, label) pairs to the calibrator one image per run (see `_quantize` for why)."""

    def __init__(self, images: np.ndarray, labels: np.ndarray) -> None:
        self._chunks: Iterator[dict[str, np.ndarray]] = (
            {INPUT_IMAGE: images[i : i + 1], INPUT_LABEL: labels[i : i + 1]} for i in range(len(images))
        )

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._chunks, None)


@dataclasses.dataclass(frozen=True)
class Calibration:
    """Prepared calibration data: images (float32 NCHW, normalised) and one valid target label per image."""

    images: np.ndarray
    labels: np.ndarray


def prepare_calibration(
    folder: str | Path,
    image_size: int,
    attributes: Sequence[str],
    *,
    groups: Sequence[AttributeGroup] | None = None,
    num_images: int = 64,
    seed: int = 0,
    normalizer: Normalizer | None = None,
) -> Calibration:
    """Read and check every calibration image used; called before an export writes anything, so a bad
    image fails the build before any bundle file is touched."""
    if isinstance(num_images, bool) or not isinstance(num_images, int) or num_images < MIN_IMAGES:
        raise ExportError(f"num_images must be an integer >= {MIN_IMAGES}, got {num_images!r}")
    rng = np.random.default_rng(seed)
    images = read_calibration_images(folder, image_size, num_images, rng, normalizer or Normalizer())
    space = _LabelSpace(tuple(attributes), tuple(groups) if groups is not None else derive_groups(attributes))
    return Calibration(images, random_labels(space, len(images), rng))


def quantize_onnx(
    fp32_path: Path,
    out: Path,
    calibration: Calibration,
    *,
    min_psnr_db: float = 30.0,
    opset: int | None = None,
    progress: bool = False,
) -> Artifact:
    """Calibrate on three quarters of the images, write `out` atomically, measure PSNR on the rest."""
    images, labels = calibration.images, calibration.labels
    held = max(1, len(images) // 4)
    calib, test = slice(0, len(images) - held), slice(len(images) - held, None)
    with Steps(2, enabled=progress) as steps:
        steps.run(
            "INT8 calibration",
            lambda: atomic_write(out, lambda tmp: _quantize(fp32_path, tmp, images[calib], labels[calib])),
        )
        metrics = steps.run("INT8 PSNR check", lambda: _compare(fp32_path, out, images[test], labels[test]))
    parity = {
        "psnr_db": metrics["psnr_db"],
        "max_abs": metrics["max_abs"],
        "mean_abs": metrics["mean_abs"],
        "usable": float(metrics["psnr_db"] >= min_psnr_db),
        "min_psnr_db": float(min_psnr_db),
        "calibration_images": float(len(images) - held),
        "held_out_images": float(held),
    }
    return Artifact(
        kind="onnx",
        role="generator",
        file=out.name,
        sha256=sha256_file(out),
        precision="int8",
        opset=opset,
        parity=parity,
    )


def _quantize(fp32_path: Path, out: Path, images: np.ndarray, labels: np.ndarray) -> None:
    convs = [
        n.name
        for n in onnx.load(str(fp32_path), load_external_data=False).graph.node
        if n.op_type in ("Conv", "ConvTranspose")
    ]
    with _root_logger_level(logging.ERROR):  # ORT's "consider pre-processing" warning: measured, no gain here
        quantize_static(
            str(fp32_path),
            str(out),
            _Batches(images, labels),
            quant_format=QuantFormat.QDQ,
            op_types_to_quantize=["Conv", "ConvTranspose"],
            # The first conv sees the raw image + label planes and the last one writes the image: kept float
            # (about 5 % of the MACs) they lift PSNR by ~3 dB on the 128 px generator.
            nodes_to_exclude=[convs[0], convs[-1]] if len(convs) > 2 else [],
            per_channel=True,
            activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            # MinMax keeps only per-tensor minima/maxima per run, so memory stays flat with more images
            # (histogram methods keep every activation). With one image per run and the moving average, a range
            # is the mean of per-image extremes rather than the single most extreme pixel: +2.5 dB here.
            # Never set CalibMaxIntermediateOutputs: in ONNX Runtime 1.32 the MinMax calibrator drops, rather
            # than merges, the runs it flushes.
            calibrate_method=CalibrationMethod.MinMax,
            extra_options={"CalibMovingAverage": True},
        )


@contextlib.contextmanager
def _root_logger_level(level: int) -> Iterator[None]:
    root = logging.getLogger()
    old = root.level
    root.setLevel(max(level, old))
    try:
        yield
    finally:
        root.setLevel(old)


def _compare(fp32_path: Path, int8_path: Path, images: np.ndarray, labels: np.ndarray) -> dict[str, float]:
    ref_session, int8_session = ort_session(fp32_path), ort_session(int8_path)
    ref, got = [], []
    for i in range(0, len(images), CHUNK):
        feeds = {INPUT_IMAGE: images[i : i + CHUNK], INPUT_LABEL: labels[i : i + CHUNK]}
        ref.append(ref_session.run([OUTPUT_IMAGE], feeds)[0])
        got.append(int8_session.run([OUTPUT_IMAGE], feeds)[0])
    return measure(np.concatenate(ref), np.concatenate(got))


def read_calibration_images(
    folder: str | Path, image_size: int, num_images: int, rng: np.random.Generator, normalizer: Normalizer
) -> np.ndarray:
    root = Path(folder)
    if not root.is_dir():
        raise ExportError(f"calibration folder not found: {root}")
    files = sorted(p for p in root.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
    if len(files) < MIN_IMAGES:
        raise ExportError(
            f"{root} holds {len(files)} image(s) ({', '.join(IMAGE_SUFFIXES)}); INT8 calibration needs at least "
            f"{MIN_IMAGES}, a few dozen faces like the ones you will edit work best"
        )
    if len(files) > num_images:
        files = [files[i] for i in sorted(rng.choice(len(files), num_images, replace=False))]
    return normalizer.preprocess(np.stack([_model_rgb(p, image_size) for p in files]))


def _model_rgb(path: Path, size: int) -> np.ndarray:
    from stargan_sdk.photo.faces import open_photo  # header-checked decode: a bomb is refused before decoding

    try:
        rgb, _ = to_model_rgb(center_crop(open_photo(path)), size)
    except ImageInputError as e:
        raise ExportError(f"cannot use calibration image {path.name}: {e}") from None
    return rgb


@dataclasses.dataclass(frozen=True)
class _LabelSpace:
    attributes: tuple[str, ...]
    groups: tuple[AttributeGroup, ...]


def random_labels(manifest: Manifest | _LabelSpace, n: int, rng: np.random.Generator) -> np.ndarray:
    """Valid target labels: one member on per exclusive group, a coin flip per binary attribute, and for
    joint CelebA+RaFD bundles one dataset half picked by its mask (the other half zeroed, as the SDK does)."""
    index = {a: i for i, a in enumerate(manifest.attributes)}
    labels = np.zeros((n, len(index)), np.float32)
    for row in labels:
        for group in manifest.groups:
            cols = [index[a] for a in group.attributes]
            if group.kind == "binary":
                row[cols] = rng.integers(0, 2, len(cols))
            else:  # exclusive groups and the dataset mask are one-hot
                row[cols[int(rng.integers(len(cols)))]] = 1.0
        if "mask_rafd" in index:
            rafd = row[index["mask_rafd"]] == 1.0
            for group in manifest.groups:
                if group.kind != "mask" and (group.name == "expression") != rafd:
                    row[[index[a] for a in group.attributes]] = 0.0
    return labels
