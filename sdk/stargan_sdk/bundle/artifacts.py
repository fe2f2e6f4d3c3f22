"""Which generator ONNX file a precision runs, and when the bundle's INT8 model may be used at all.

Usage: art = generator_onnx(manifest, "int8")  # BackendUnavailableError if the INT8 model missed its PSNR bar

These rules are shared by the CPU backends (ONNX Runtime and OpenVINO), so they live below both.
"""

from __future__ import annotations

from stargan_sdk.bundle.manifest import Artifact, Manifest
from stargan_sdk.errors import BackendUnavailableError


def generator_onnx(manifest: Manifest, precision: str) -> Artifact | None:
    """The generator ONNX for `precision` ("fp32", "fp16", "int8"), or None when the bundle has none. An
    INT8 model that is present but missed the PSNR bar raises, saying its PSNR."""
    if precision == "int8" and manifest.artifact(role="generator", kind="onnx", precision="int8") is not None:
        return int8_artifact(manifest)
    return manifest.artifact(role="generator", kind="onnx", precision=precision)


def fp32_artifact(manifest: Manifest) -> Artifact:
    art = manifest.artifact(role="generator", kind="onnx", precision="fp32")
    if art is None:
        raise BackendUnavailableError("the bundle has no FP32 generator ONNX; re-export the bundle")
    return art


def int8_artifact(manifest: Manifest) -> Artifact:
    """The bundle's INT8 generator, refused unless its PSNR vs FP32 passed the bar at quantization."""
    art = manifest.artifact(role="generator", kind="onnx", precision="int8")
    if art is None:
        raise BackendUnavailableError(
            "the bundle has no INT8 generator; add one with `stargan-export quantize BUNDLE --calibration FACES_DIR` "
            "(or build with --int8-calibration FACES_DIR)"
        )
    parity = art.parity or {}
    if parity.get("usable") != 1.0:
        psnr = parity.get("psnr_db")
        measured = f"measured {psnr:.1f} dB PSNR vs FP32" if psnr is not None else "has no measured PSNR"
        bar = parity.get("min_psnr_db", 30.0)
        raise BackendUnavailableError(
            f"{art.file} {measured}, below the {bar:g} dB bar, so it is not used; run precision='bf16' or "
            f"'fp32', or re-quantize with calibration images closer to the faces you edit"
        )
    return art
