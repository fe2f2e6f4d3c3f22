"""Hostile-bundle fuzz suite (issue 25): the audit's bundle inputs as generated cases on copies of the shipped
bundle — external-data names of any length and field order, symlinks, huge or wrong graph dims, control-flow and
computed-size graphs, huge integers, duplicate artifacts, generator weights of another shape.

Every case ends in one specific stargan_sdk error, raised from the files alone: no ONNX Runtime or OpenVINO
session is created (the session constructors are replaced by ones that fail the test).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from bundle_edits import copy_shipped, edit_manifest, protobuf_field, rehash
from stargan_sdk import Translator
from stargan_sdk.bundle.manifest import read_manifest, verify_artifact
from stargan_sdk.cli.stargan import app
from stargan_sdk.errors import BundleError, ManifestError, StarGANError

FILES = ("manifest.json", "generator.onnx", "generator.fp16.onnx", "classifier.onnx", "generator.safetensors")
FUZZ = settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
S, C = 64, 5  # the shipped bundle's image size and c_dim


@pytest.fixture
def no_sessions(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any ONNX Runtime session or OpenVINO model read fails the test: refusals must come before them."""

    def refuse(*args, **kwargs):
        raise AssertionError("a runtime session was created for a bundle that should have been refused")

    import onnxruntime

    monkeypatch.setattr(onnxruntime, "InferenceSession", refuse)
    try:
        import openvino

        monkeypatch.setattr(openvino.Core, "read_model", refuse)
    except ImportError:
        pass


def _fresh(base: Path) -> Path:
    return copy_shipped(base / "bundle")


def _generator_onnx(bundle: Path) -> None:
    """Verify the generator ONNX against the manifest, as every loader does first."""
    m = read_manifest(bundle)
    verify_artifact(bundle, m.artifact(role="generator", kind="onnx", precision="fp32"), m)


# --- external data: any name, either field order, never followed unlisted -----------------------------------


@FUZZ
@given(
    name=st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\0"), min_size=1, max_size=300),
    value_first=st.booleans(),
)
def test_generated_external_data_references_are_refused_unless_listed(
    tmp_path: Path, no_sessions, name: str, value_first: bool
) -> None:
    bundle = _fresh(tmp_path)
    entry = (
        protobuf_field(2, name.encode()) + protobuf_field(1, b"location")
        if value_first
        else protobuf_field(1, b"location") + protobuf_field(2, name.encode())
    )
    tensor = protobuf_field(13, entry) + bytes([8 << 3 | 2, 1]) + b"w"  # external_data, then name "w"
    data = (bundle / "generator.onnx").read_bytes() + protobuf_field(
        7, protobuf_field(5, tensor)
    )  # merged into the main graph
    (bundle / "generator.onnx").write_bytes(data)
    rehash(bundle, "generator.onnx")  # the audit's attack: only the graph is re-hashed
    with pytest.raises(BundleError, match="does not checksum"):
        _generator_onnx(bundle)
    assert CliRunner().invoke(app, ["info", str(bundle), "--json"]).exit_code == 1


# --- symlinks: whichever file, whatever the link points at outside -------------------------------------------


@FUZZ
@given(file=st.sampled_from(FILES), how=st.sampled_from(["absolute", "relative", "chain", "loop", "dangling"]))
def test_generated_symlinks_out_of_the_bundle_are_refused(tmp_path: Path, no_sessions, file: str, how: str) -> None:
    bundle = _fresh(tmp_path)
    outside = tmp_path / "outside" / file
    outside.parent.mkdir(exist_ok=True)
    outside.write_bytes((bundle / file).read_bytes() + b"a file of the machine")  # its hash must never show
    link = bundle / file
    link.unlink()
    if how == "absolute":
        link.symlink_to(outside)
    elif how == "relative":
        link.symlink_to(Path("..") / "outside" / file)
    elif how == "chain":  # a link inside the bundle to a link that leaves it
        (bundle / "hop").symlink_to(outside)
        link.symlink_to("hop")
    elif how == "loop":
        os.symlink(file, link)
    else:
        link.symlink_to(tmp_path / "nowhere" / file)
    with pytest.raises(StarGANError):
        Translator.load(bundle, backend="onnxruntime")
    result = CliRunner().invoke(app, ["info", str(bundle), "--json"])
    assert result.exit_code != 0
    assert hashlib.sha256(outside.read_bytes()).hexdigest()[:12] not in result.output  # no hash oracle


# --- graph I/O: any dims, checked on the protobuf before a session ------------------------------------------

dims = st.one_of(st.just(S), st.just(C), st.just(3), st.integers(-2, 2**63 - 1), st.sampled_from([2**40, 2**31]))


def _io_graph(image: list, label: list, output: list, elem: int) -> onnx.ModelProto:
    """A generator-shaped graph with the given declared dims (the body is plain allowed operators)."""
    graph = helper.make_graph(
        [helper.make_node("Identity", ["image"], ["output"])],
        "g",
        [helper.make_tensor_value_info("image", elem, image), helper.make_tensor_value_info("label", elem, label)],
        [helper.make_tensor_value_info("output", elem, output)],
    )
    return helper.make_model(graph)


@FUZZ
@given(
    image=st.tuples(dims, dims, dims),
    label=dims,
    output=st.tuples(dims, dims, dims),
    elem=st.sampled_from([TensorProto.FLOAT, TensorProto.FLOAT, TensorProto.FLOAT16, TensorProto.INT64]),
)
def test_generated_graph_dims_must_match_the_manifest(
    tmp_path: Path, no_sessions, image, label, output, elem: int
) -> None:
    bundle = _fresh(tmp_path)
    onnx.save_model(_io_graph(["N", *image], ["N", label], ["N", *output], elem), str(bundle / "generator.onnx"))
    rehash(bundle, "generator.onnx")
    fits = image == (3, S, S) and label == C and output == (3, S, S) and elem == TensorProto.FLOAT
    if fits:
        _generator_onnx(bundle)  # a graph with the manifest's boundary passes the check
    else:
        with pytest.raises(BundleError, match="re-export the bundle"):
            _generator_onnx(bundle)
        with pytest.raises(BundleError):
            Translator.load(bundle, backend="onnxruntime", precision="fp32")


# --- control flow and computed sizes: refused by operator, whatever their sizes -----------------------------


@FUZZ
@given(
    op=st.sampled_from(["Loop", "ConstantOfShape", "Scan", "If", "Range", "RandomNormal", "Resize"]),
    size=st.integers(0, 2**62),
    at=st.integers(0, 2),
)
def test_generated_control_flow_and_computed_size_graphs_are_refused(
    tmp_path: Path, no_sessions, op: str, size: int, at: int
) -> None:
    bundle = _fresh(tmp_path)
    body = helper.make_graph(
        [helper.make_node("Identity", ["c"], ["c_out"])],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("c", TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info("c_out", TensorProto.BOOL, [])],
    )
    hostile = {
        "Loop": helper.make_node("Loop", ["n", "cond"], [], body=body),
        "Scan": helper.make_node("Scan", ["n"], [], body=body, num_scan_inputs=1),
        "If": helper.make_node("If", ["cond"], [], then_branch=body, else_branch=body),
    }.get(op) or helper.make_node(op, ["n"], ["big"])
    nodes = [helper.make_node("Identity", ["image"], ["t"]), helper.make_node("Identity", ["t"], ["output"])]
    nodes.insert(at, hostile)
    graph = helper.make_graph(
        nodes,
        "g",
        [
            helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, S, S]),
            helper.make_tensor_value_info("label", TensorProto.FLOAT, ["N", C]),
        ],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 3, S, S])],
        [
            numpy_helper.from_array(np.array([size, size], np.int64), "n"),
            numpy_helper.from_array(np.array(True), "cond"),
        ],
    )
    onnx.save_model(helper.make_model(graph), str(bundle / "generator.onnx"))
    rehash(bundle, "generator.onnx")
    start = time.perf_counter()
    with pytest.raises(BundleError, match=f"operator '{op}'"):
        Translator.load(bundle, backend="onnxruntime", precision="fp32")
    assert time.perf_counter() - start < 10


# --- manifests: huge integers anywhere, artifacts listed many times ----------------------------------------

INTEGER_FIELDS = (
    ("image_size",),
    ("format_version",),
    ("generator", "conv_dim"),
    ("generator", "c_dim"),
    ("generator", "repeat_num"),
    ("artifacts", 0, "opset"),
    ("inputs", 0, "shape", 2),
)


@FUZZ
@given(where=st.sampled_from(INTEGER_FIELDS), digits=st.integers(19, 6000), sign=st.sampled_from(["", "-"]))
def test_generated_huge_integers_are_manifest_errors(tmp_path: Path, where: tuple, digits: int, sign: str) -> None:
    bundle = _fresh(tmp_path)
    m = json.loads((bundle / "manifest.json").read_text())
    node = m
    for key in where[:-1]:
        node = node[key]
    node[where[-1]] = "@HUGE@"
    (bundle / "manifest.json").write_text(json.dumps(m).replace('"@HUGE@"', sign + "9" * digits))
    with pytest.raises(ManifestError):
        read_manifest(bundle)
    result = CliRunner().invoke(app, ["info", str(bundle)])
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert len(result.stderr.strip().splitlines()) == 1


@FUZZ
@given(which=st.integers(0, 3), copies=st.integers(2, 3000), vary=st.booleans())
def test_generated_duplicate_artifacts_are_refused_fast(tmp_path: Path, which: int, copies: int, vary: bool) -> None:
    bundle = _fresh(tmp_path)

    def duplicate(m: dict) -> None:
        a = m["artifacts"][which % len(m["artifacts"])]
        twins = [dict(a, precision="fp16" if vary and i % 2 else a["precision"]) for i in range(copies - 1)]
        m["artifacts"] = m["artifacts"] + twins

    edit_manifest(bundle, duplicate)
    start = time.perf_counter()
    with pytest.raises(ManifestError, match="more than once"):
        read_manifest(bundle)
    assert time.perf_counter() - start < 2


# --- generator weights of another shape: refused by info and validate, not only by torch --------------------


def _resized_weights(bundle: Path, key: str, grow: int) -> None:
    """Rewrite generator.safetensors' header so one tensor claims another shape (data size kept consistent)."""
    from safetensors.numpy import load_file, save_file

    tensors = load_file(str(bundle / "generator.safetensors"))
    old = tensors[key]
    tensors[key] = np.zeros((old.shape[0] + grow, *old.shape[1:]), old.dtype)
    save_file(tensors, str(bundle / "generator.safetensors"))
    rehash(bundle, "generator.safetensors")


@FUZZ
@given(index=st.integers(0, 40), grow=st.integers(1, 3))
def test_generated_weight_shapes_fail_info_without_torch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, index: int, grow: int
) -> None:
    from safetensors import safe_open

    bundle = _fresh(tmp_path)
    with safe_open(str(bundle / "generator.safetensors"), "np") as f:
        keys = sorted(f.keys())
    key = keys[index % len(keys)]
    _resized_weights(bundle, key, grow)
    monkeypatch.setitem(__import__("sys").modules, "torch", None)  # info must not need torch to see it
    result = CliRunner().invoke(app, ["info", str(bundle), "--json"])
    assert result.exit_code == 1
    status = next(a["status"] for a in json.loads(result.output)["artifacts"] if a["file"] == "generator.safetensors")
    assert key in status and "refused before building the model" in status


def test_weight_shapes_fail_export_validate(tmp_path: Path) -> None:
    pytest.importorskip("stargan_export")
    from stargan_export.validate import validate_bundle

    bundle = _fresh(tmp_path)
    _resized_weights(bundle, "main.0.weight", 1)
    with pytest.raises(BundleError, match="main.0.weight.*refused before building the model"):
        validate_bundle(bundle)
