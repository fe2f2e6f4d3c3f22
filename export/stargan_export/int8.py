"""INT8 generator: static QDQ quantization of a bundle's FP32 ONNX from a folder of face images, with a PSNR check.

Usage: art = quantize_onnx(fp32_onnx, out, prepare_calibration("faces/", 128, attributes))
(run by `stargan-export build --int8-calibration` and, on an existing bundle, `stargan-export quantize`)

Why ONNX Runtime's `quantize_static` rather than OpenVINO NNCF: it is already an export dependency (NNCF
3.4 would add ten packages to the dev environment, scikit-learn, ninja and pydot among them), and its
output is a plain QDQ ONNX file that ONNX Runtime and OpenVINO both run natively (OpenVINO maps
QuantizeLinear/DequantizeLinear pairs to its INT8 kernels), so one standard artifact serves every CPU
backend, where an OpenVINO IR would serve one. The PSNR is measured with ONNX Runtime, the reference runtime
of every export check; OpenVINO's INT8 result agrees with it to ~0.3 dB (tests/export/test_int8.py).
Only Conv and ConvTranspose are quantized, and only they read rounded tensors (`stargan_export.int8_graph`);
InstanceNormalization, ReLU, the residual Adds and Tanh stay float because per-instance statistics are what the
model's quality depends on and they cost little time. Which convolutions stay float besides the first and the
last is measured against a PSNR target (`stargan_export.int8_search`).
"""

from __future__ import annotations

import dataclasses
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
from onnxruntime.quantization import CalibrationDataReader

from stargan_export.errors import ExportError
from stargan_export.int8_graph import ConvQuantizer
from stargan_export.int8_search import keep_float_until
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
from stargan_sdk.bundle.manifest_schema import MAX_NAME
from stargan_sdk.bundle.tolerances import AUTO_INT8_MIN_PSNR_DB
from stargan_sdk.errors import ImageInputError
from stargan_sdk.host.files import atomic_write
from stargan_sdk.images.imaging import IMAGE_SUFFIXES, Normalizer, center_crop, to_model_rgb

MIN_IMAGES = 2  # one to calibrate on, one held out for the PSNR check
CHUNK = 8  # images per evaluation run: bounds memory at 256 px
SEARCH_IMAGES = 16  # calibration images that rank the convolutions by sensitivity (see int8_search)
FLOAT_KEY = "float:"  # parity key prefix of a convolution kept float; its value is that layer's share of the MACs


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
    target_psnr_db: float = AUTO_INT8_MIN_PSNR_DB,
    opset: int | None = None,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> Artifact:
    """Calibrate on three quarters of the images, write `out` atomically, measure PSNR on the rest.

    Every convolution but the first and the last runs in INT8 when that meets `target_psnr_db` on the held-out
    images; otherwise the convolutions that cost the most PSNR per MAC stay float until it does
    (`stargan_export.int8_search`). The parity records which stayed float and the share of MACs in INT8."""
    images, labels = calibration.images, calibration.labels
    held = max(1, len(images) // 4)
    calib, test = slice(0, len(images) - held), slice(len(images) - held, None)
    search = slice(max(0, len(images) - held - SEARCH_IMAGES), len(images) - held)
    with tempfile.TemporaryDirectory(prefix="stargan-int8-") as tmp, Steps(3, enabled=progress) as steps:
        work = Path(tmp)
        quantizer = ConvQuantizer(fp32_path, work, _Batches(images[calib], labels[calib]))
        rank, check = steps.run(
            "FP32 reference outputs",
            lambda: (
                _Scorer(fp32_path, images[search], labels[search]),
                _Scorer(fp32_path, images[test], labels[test]),
            ),
        )
        base = [quantizer.convs[0], quantizer.convs[-1]] if len(quantizer.convs) > 2 else []
        # The first conv sees the raw image + label planes and the last one writes the image: kept float (about
        # 5 % of the MACs of the 128 px generator) they lift its PSNR by 1.1 dB (39.6 -> 40.6 dB).
        found = steps.run(
            "INT8 calibration and PSNR search",
            lambda: keep_float_until(
                quantizer,
                work / "candidate.onnx",
                target_db=target_psnr_db,
                base=base,
                rank=rank.psnr,
                check=check.psnr,
                note=log or (lambda _: None),
            ),
        )
        steps.run("INT8 model", lambda: atomic_write(out, lambda t: shutil.copyfile(work / "candidate.onnx", t)))
        metrics = check.metrics(out)
    parity = {
        "psnr_db": metrics["psnr_db"],
        "max_abs": metrics["max_abs"],
        "mean_abs": metrics["mean_abs"],
        "usable": float(metrics["psnr_db"] >= min_psnr_db),
        "min_psnr_db": float(min_psnr_db),
        "calibration_images": float(len(images) - held),
        "held_out_images": float(held),
        "target_psnr_db": float(target_psnr_db),
        "target_met": float(found.met),
        "quantized_mac_fraction": 1.0 - quantizer.float_fraction(found.keep_float),
        "variants_measured": float(found.variants),
        **{_float_key(n): quantizer.float_fraction([n]) for n in quantizer.convs if n in found.keep_float},
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


def float_convolutions(parity: Mapping[str, float]) -> dict[str, float]:
    """The convolutions an INT8 artifact keeps float, each with its share of the MACs (from its parity record)."""
    return {k.removeprefix(FLOAT_KEY): v for k, v in parity.items() if k.startswith(FLOAT_KEY)}


def _float_key(node: str) -> str:
    return FLOAT_KEY + node[: MAX_NAME - len(FLOAT_KEY)]  # a manifest key is at most MAX_NAME characters


class _Scorer:
    """PSNR of a written INT8 model vs the FP32 outputs on a fixed set of images (computed once, in chunks)."""

    def __init__(self, fp32_path: Path, images: np.ndarray, labels: np.ndarray) -> None:
        self._images, self._labels = images, labels
        self._reference = self._run(fp32_path)

    def metrics(self, path: Path) -> dict[str, float]:
        return measure(self._reference, self._run(path))

    def psnr(self, path: Path) -> float:
        return self.metrics(path)["psnr_db"]

    def _run(self, path: Path) -> np.ndarray:
        session = ort_session(path)
        return np.concatenate(
            [
                session.run(
                    [OUTPUT_IMAGE],
                    {INPUT_IMAGE: self._images[i : i + CHUNK], INPUT_LABEL: self._labels[i : i + CHUNK]},
                )[0]
                for i in range(0, len(self._images), CHUNK)
            ]
        )


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
