"""Corrupted, mismatched or incomplete bundles are refused at load with a message saying what to do."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stargan_sdk import Translator
from stargan_sdk.errors import BundleError, ManifestError


def edit_manifest(bundle: Path, change) -> None:
    path = bundle / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def flip_byte(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("name", ["generator.onnx", "classifier.onnx"])
def test_flipped_byte_fails_the_checksum(bundle_copy: Path, name: str) -> None:
    flip_byte(bundle_copy / name, (bundle_copy / name).stat().st_size // 2)
    with pytest.raises(BundleError, match=f"{name} is corrupted.*re-export"):
        Translator.load(bundle_copy, backend="onnxruntime")


def test_torch_weights_checksum_is_verified_too(bundle_copy: Path) -> None:
    flip_byte(bundle_copy / "generator.safetensors", 100)
    with pytest.raises(BundleError, match="generator.safetensors is corrupted"):
        Translator.load(bundle_copy, backend="torch")


def _drop_young(m: dict) -> None:
    """A self-consistent manifest for c_dim 4: only the graph disagrees."""
    m["attributes"].remove("Young")
    m["generator"]["c_dim"] = 4
    for g in m["groups"]:
        g["attributes"] = [a for a in g["attributes"] if a != "Young"]
    next(t for t in m["inputs"] if t["name"] == "label")["shape"] = ["N", 4]


def _resize_64(m: dict) -> None:
    m["image_size"] = 64
    next(t for t in m["inputs"] if t["name"] == "image")["shape"] = ["N", 3, 64, 64]
    m["outputs"][0]["shape"] = ["N", 3, 64, 64]


@pytest.mark.parametrize(
    "change, message",
    [
        (_drop_young, "does not match its manifest: input 'label' is \\['N', 5\\].*c_dim 4"),
        (_resize_64, "does not match its manifest: input 'image'.*image_size 64"),
        (lambda m: m.update(image_size=64), "manifest is inconsistent: input 'image'"),
    ],
)
def test_graph_and_manifest_must_agree(bundle_copy: Path, change, message: str) -> None:
    edit_manifest(bundle_copy, change)
    with pytest.raises(BundleError, match=message):
        Translator.load(bundle_copy, backend="onnxruntime")


def test_c_dim_disagreeing_with_attributes_is_a_manifest_error(bundle_copy: Path) -> None:
    edit_manifest(bundle_copy, lambda m: m["generator"].update(c_dim=7))
    with pytest.raises(ManifestError, match="5 attributes but the generator's c_dim is 7"):
        Translator.load(bundle_copy)


def test_missing_manifest(bundle_copy: Path) -> None:
    (bundle_copy / "manifest.json").unlink()
    with pytest.raises(BundleError, match="no manifest.json"):
        Translator.load(bundle_copy)


def test_unreadable_manifest(bundle_copy: Path) -> None:
    (bundle_copy / "manifest.json").write_text("{not json")
    with pytest.raises(ManifestError, match="not valid JSON"):
        Translator.load(bundle_copy)


def test_missing_artifact_file(bundle_copy: Path) -> None:
    (bundle_copy / "generator.onnx").unlink()
    with pytest.raises(BundleError, match="missing generator.onnx listed in its manifest"):
        Translator.load(bundle_copy, backend="onnxruntime")


def test_missing_bundle_folder(tmp_path: Path) -> None:
    with pytest.raises(BundleError, match="bundle folder not found"):
        Translator.load(tmp_path / "nope")


def test_onnx_external_data_must_be_checksummed(bundle_copy: Path, face) -> None:
    """A graph that keeps its weights in a separate file: that file is covered by the manifest or refused."""
    import numpy as np

    onnx = pytest.importorskip("onnx")
    from stargan_sdk.bundle.manifest import sha256_file

    with Translator.load(bundle_copy, backend="onnxruntime") as t:
        expected = t.translate(face, Male=1, original={"Black_Hair": 1, "Male": 0, "Young": 1})
    model = onnx.load(str(bundle_copy / "generator.onnx"))
    onnx.save_model(model, str(bundle_copy / "generator.onnx"), save_as_external_data=True, location="weights.bin")

    def rehash(m: dict) -> None:
        art = next(a for a in m["artifacts"] if a["file"] == "generator.onnx")
        art["sha256"] = sha256_file(bundle_copy / "generator.onnx")

    edit_manifest(bundle_copy, rehash)
    with pytest.raises(BundleError, match="loads external data 'weights.bin' that the manifest does not checksum"):
        Translator.load(bundle_copy, backend="onnxruntime")
    edit_manifest(
        bundle_copy,
        lambda m: next(a for a in m["artifacts"] if a["file"] == "generator.onnx").update(
            external_data={"weights.bin": sha256_file(bundle_copy / "weights.bin")}
        ),
    )
    with Translator.load(bundle_copy, backend="onnxruntime") as t:
        got = t.translate(face, Male=1, original={"Black_Hair": 1, "Male": 0, "Young": 1})
    np.testing.assert_array_equal(got, expected)
    flip_byte(bundle_copy / "weights.bin", 1000)
    with pytest.raises(BundleError, match="weights.bin is corrupted or was replaced"):
        Translator.load(bundle_copy, backend="onnxruntime")
