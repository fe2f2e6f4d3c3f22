"""validate_bundle: passes on a fresh bundle, catches tampered files, wrong parity and wrong I/O."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from stargan_export.errors import ParityError
from stargan_export.validate import validate_bundle
from stargan_sdk.bundle.manifest import read_manifest, sha256_file, write_manifest
from stargan_sdk.errors import BundleError


def test_fresh_bundle_validates(bundle_copy):
    results = {r.file: r for r in validate_bundle(bundle_copy)}
    assert set(results) == {"generator.onnx", "generator.fp16.onnx", "classifier.onnx", "generator.safetensors"}
    assert all(r.status == "ok" for r in results.values())
    assert "PSNR" in results["generator.fp16.onnx"].detail


def test_tampered_artifact_is_detected(bundle_copy):
    path = bundle_copy / "generator.fp16.onnx"
    data = bytearray(path.read_bytes())
    data[-10] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="generator.fp16.onnx is corrupted or was replaced"):
        validate_bundle(bundle_copy)


def _replace_with_rescaled_weights(bundle, file: str, factor: float) -> None:
    """Rewrite an ONNX artifact with its last conv scaled (no norm after it to undo that), and give the
    manifest the matching checksum."""
    model = onnx.load(str(bundle / file))
    conv = [n for n in model.graph.node if n.op_type == "Conv"][-1]
    tensor = next(t for t in model.graph.initializer if t.name == conv.input[1])
    tensor.CopyFrom(
        numpy_helper.from_array(
            numpy_helper.to_array(tensor) * np.float16(factor).astype(numpy_helper.to_array(tensor).dtype), tensor.name
        )
    )
    onnx.save(model, str(bundle / file))
    m = read_manifest(bundle)
    artifacts = tuple(
        dataclasses.replace(a, sha256=sha256_file(bundle / a.file)) if a.file == file else a for a in m.artifacts
    )
    write_manifest(bundle, dataclasses.replace(m, artifacts=artifacts))


def test_parity_regression_is_detected(bundle_copy):
    _replace_with_rescaled_weights(bundle_copy, "generator.fp16.onnx", -1.0)
    with pytest.raises(ParityError, match=r"generator.fp16.onnx PSNR vs generator.onnx is .* < required 40 dB"):
        validate_bundle(bundle_copy)


def test_io_mismatch_with_manifest_is_detected(bundle_copy):
    data = json.loads((bundle_copy / "manifest.json").read_text())
    data["inputs"][0]["name"] = "pixels"
    (bundle_copy / "manifest.json").write_text(json.dumps(data))
    with pytest.raises(BundleError, match="declares tensors \\['pixels', 'label'\\].*engine boundary"):
        validate_bundle(bundle_copy)


def test_missing_manifest(tmp_path):
    with pytest.raises(BundleError, match="no manifest.json"):
        validate_bundle(tmp_path)


def test_unloadable_artifacts_give_one_line_errors(bundle_copy):
    """Files whose manifest checksum matches but that no runtime can load (e.g. written by a broken tool)."""
    cases = (
        ("generator.safetensors", b"not a safetensors file", BundleError, "is not a readable safetensors file"),
        # refused by the SDK's protobuf walk before any runtime opens it (issue 25 item 7)
        ("generator.fp16.onnx", b"\x00garbage", BundleError, "cannot load generator.fp16.onnx"),
    )
    for name, payload, error, message in cases:
        copy = bundle_copy.parent / f"c-{name}"
        shutil.copytree(bundle_copy, copy)
        (copy / name).write_bytes(payload)
        m = read_manifest(copy)
        artifacts = tuple(
            dataclasses.replace(a, sha256=sha256_file(copy / a.file)) if a.file == name else a for a in m.artifacts
        )
        write_manifest(copy, dataclasses.replace(m, artifacts=artifacts))
        with pytest.raises(error, match=message) as info:
            validate_bundle(copy)
        assert "\n" not in str(info.value)
