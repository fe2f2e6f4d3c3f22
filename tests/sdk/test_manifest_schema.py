"""The manifest schema: every malformed field is one specific ManifestError, and the SDK loader and
`stargan-export validate` accept exactly the same manifests (they share `read_manifest`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from stargan_sdk import Translator
from stargan_sdk.bundle.manifest import Manifest, read_manifest
from stargan_sdk.errors import ManifestError


def _set(path: str, value):
    """A change that sets manifest[path] (dotted, with list indices) to value."""

    def change(m: dict) -> None:
        *parents, last = path.split(".")
        node = m
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        if isinstance(node, list):
            node[int(last)] = value
        else:
            node[last] = value

    return change


def _drop(path: str):
    def change(m: dict) -> None:
        *parents, last = path.split(".")
        node = m
        for key in parents:
            node = node[int(key)] if isinstance(node, list) else node[key]
        del node[last]

    return change


CASES = [
    (_drop("normalization.std"), "missing the field normalization.std"),
    (_set("normalization.mean", [0.5, 0.5]), "normalization.mean: must hold 3..3 entries"),
    (_set("normalization.std", [0.5, 0.0, 0.5]), "normalization.std: must be positive"),
    (_set("normalization.mean", [float("nan")] * 3), "normalization.mean\\[0\\]: must be a finite number"),
    (_set("normalization.extra", 1), "normalization.extra: is not a manifest field"),
    (_set("attributes", [1, 2, 3, 4, 5]), "attributes\\[0\\]: must be a string"),
    (_set("attributes.0", "Black\x1b[31m_Hair"), "attributes\\[0\\]: .* must be printable"),
    (_set("artifacts.0.sha256", 12345), "artifacts\\[0\\].sha256: must be 64 lowercase hex"),
    (_set("artifacts.0.sha256", "ab" * 31), "artifacts\\[0\\].sha256: must be 64 lowercase hex"),
    (_set("artifacts.0.file", "../generator.onnx"), "artifacts\\[0\\].file: .* plain file name"),
    (_set("artifacts.0.profile", {"min": 1, "opt": 1}), "missing the field artifacts\\[0\\].profile.max"),
    (_set("artifacts.0.parity", {"max_abs": "small"}), "artifacts\\[0\\].parity.max_abs: must be a finite number"),
    (_set("inputs.0.dtype", "float64"), "inputs\\[0\\].dtype: 'float64' is not one of float32"),
    (_set("inputs.0.name", "pixels"), "declares tensors \\['pixels', 'label'\\]"),
    (_set("inputs.0.shape", ["N", 3, 32, "W"]), "inputs\\[0\\].shape\\[3\\]: must be an integer"),
    (_set("outputs.0.shape", ["N", 3, 64, 64]), "inconsistent: output 'output'"),
    (_set("groups.0.attributes", []), "groups\\[0\\].attributes: must hold 1..4096 entries, got 0"),
    (_set("groups.0.name", "binary"), "attribute group names must be unique"),
    (_set("groups", []), "groups: must hold 1..4096"),
    (_set("image_size", 32.0), "image_size: must be an integer, got a number 32.0"),
    (_set("image_size", 100000), "image_size: 100000 is outside 4..2048"),
    (_set("image_size", "32"), "image_size: must be an integer, got a string"),
    (_set("generator.c_dim", True), "generator.c_dim: must be an integer, got a boolean"),
    (_set("format_version", True), "format_version True is not supported"),
    (_set("dataset", None), "dataset: must be a string, got null"),
    (_set("source.checkpoint", ["a"]), "source.checkpoint: must be a string"),
    (_set("surprise", 1), "field surprise: is not a manifest field"),
    (_drop("inputs"), "missing the field inputs"),
]


def edit(bundle: Path, change) -> None:
    path = bundle / "manifest.json"
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


@pytest.mark.parametrize("change, message", CASES)
def test_a_malformed_field_is_one_specific_error(bundle_copy: Path, change, message: str) -> None:
    edit(bundle_copy, change)
    with pytest.raises(ManifestError, match=message) as info:
        read_manifest(bundle_copy)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize(
    "text, message",
    [
        ("[" * 100_000 + "]" * 100_000, "nested too deeply"),
        ("{" * 5, "not valid JSON"),
        ('{"format": "stargan-bundle", "format_version": 1}', "missing the field attributes"),
        ("[]", "must hold a JSON object"),
    ],
)
def test_hostile_json_text(bundle_copy: Path, text: str, message: str) -> None:
    (bundle_copy / "manifest.json").write_text(text)
    with pytest.raises(ManifestError, match=message):
        read_manifest(bundle_copy)


def test_an_oversized_manifest_is_refused_before_parsing(bundle_copy: Path) -> None:
    (bundle_copy / "manifest.json").write_text(" " * (5 << 20) + "{}")
    with pytest.raises(ManifestError, match="a manifest is a few kB"):
        read_manifest(bundle_copy)


def test_the_exporter_cannot_write_what_the_loader_refuses(bundle_copy: Path) -> None:
    from stargan_sdk.bundle.manifest import write_manifest

    m = read_manifest(bundle_copy)
    object.__setattr__(m, "dataset", "bad\x1b[2J")  # past the constructor's checks, as a bug would
    with pytest.raises(ManifestError, match="dataset"):
        write_manifest(bundle_copy, m)
    assert read_manifest(bundle_copy).dataset != m.dataset  # the old manifest is still there
    assert Manifest.from_dict(read_manifest(bundle_copy).to_dict()) == read_manifest(bundle_copy)


@pytest.mark.parametrize("change, message", CASES[::3] + [(lambda m: None, None)])
def test_validate_and_the_loader_agree(
    bundle_copy: Path, change, message: str | None, capsys: pytest.CaptureFixture[str]
) -> None:
    """`stargan-export validate` fails (exit 1, the loader's one-line message) exactly when Translator.load does."""
    from stargan_export.cli import main

    edit(bundle_copy, change)
    with pytest.raises(SystemExit) as info:
        main(["validate", str(bundle_copy)])
    err = capsys.readouterr().err
    if message is None:
        assert (info.value.code or 0) == 0, err
        Translator.load(bundle_copy, backend="onnxruntime").close()
        return
    assert info.value.code == 1 and len(err.strip().splitlines()) == 1
    with pytest.raises(ManifestError) as loader:
        Translator.load(bundle_copy, backend="onnxruntime")
    assert err.strip() == f"error: {loader.value}"
