"""Add (or replace) the INT8 generator of an existing bundle without rebuilding it from a checkpoint.

Usage: manifest = quantize_bundle("models/toyfaces-64", "heldout-faces/", num_images=200)  # stargan-export quantize

The calibration and the PSNR check are `stargan_export.int8`'s, the ones `build --int8-calibration` runs. The
new `generator.int8.onnx` and manifest are written in a staging folder beside the bundle, every other file
hard-linked there, and the two folders swapped in one atomic exchange (`stargan_export.staging`), as a build
does: a run killed at any instant leaves the old bundle or the new one whole, never a manifest whose INT8
checksum disagrees with the file.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from pathlib import Path

from stargan_export import int8
from stargan_export.errors import ExportError
from stargan_export.staging import Staging, remove_stale
from stargan_sdk.bundle import constants as C
from stargan_sdk.bundle.artifacts import fp32_artifact
from stargan_sdk.bundle.manifest import Manifest, read_manifest, verify_artifact, write_manifest
from stargan_sdk.bundle.tolerances import AUTO_INT8_MIN_PSNR_DB
from stargan_sdk.images.imaging import Normalizer

_log = logging.getLogger("stargan_export")


def quantize_bundle(
    bundle_dir: str | Path,
    calibration: str | Path,
    *,
    num_images: int = 64,
    seed: int = 0,
    min_psnr_db: float = 30.0,
    target_psnr_db: float = AUTO_INT8_MIN_PSNR_DB,
    progress: bool = False,
    log: Callable[[str], None] | None = None,
) -> Manifest:
    """Calibrate `generator.int8.onnx` from the bundle's FP32 generator on faces from `calibration` (a quarter of
    the `num_images` held out for the recorded PSNR), and commit it with the updated manifest atomically.

    Args:
        bundle_dir: an existing bundle (its FP32 generator is verified against the manifest first).
        calibration: a folder of face images like the ones to be edited, not the training set.
        num_images: images drawn from the folder (all of them when it holds fewer); >= 2.
        seed: picks the images and their random target labels.
        min_psnr_db: below this PSNR vs FP32 the model is recorded but marked unusable.
        target_psnr_db: convolutions are kept float until the held-out PSNR reaches this (see `int8_search`);
            the default is the bar `auto` uses to run the INT8 model.
        progress: show the steps. log: one-line notes (default: the `stargan_export` logger).
    """
    note = log or _log.info
    out = Path(bundle_dir)
    if not out.is_dir():
        raise ExportError(f"bundle folder not found: {out}")
    manifest = read_manifest(out)
    fp32 = fp32_artifact(manifest)
    fp32_path = verify_artifact(out, fp32)  # quantizing a damaged graph would record a meaningless PSNR
    norm = manifest.normalization
    data = int8.prepare_calibration(
        calibration,
        manifest.image_size,
        manifest.attributes,
        groups=manifest.groups,
        num_images=num_images,
        seed=seed,
        normalizer=Normalizer(norm["mean"], norm["std"]),
    )
    for stale in remove_stale(out):
        note(f"removed {stale.name}, left by an export that was killed")
    with Staging(out) as stage:
        art = int8.quantize_onnx(
            fp32_path,
            stage.path / C.GENERATOR_INT8_ONNX,
            data,
            min_psnr_db=min_psnr_db,
            target_psnr_db=target_psnr_db,
            opset=fp32.opset,
            progress=progress,
            log=note,
        )
        kept = tuple(a for a in manifest.artifacts if not (a.role == "generator" and a.precision == "int8"))
        updated = dataclasses.replace(manifest, artifacts=(*kept, art))
        # Only the INT8 file is new: every other artifact, the card and the timing cache are linked over as they are.
        stage.commit([art.file], [], lambda d: write_manifest(d, updated), C.MANIFEST_NAME)
    return updated
