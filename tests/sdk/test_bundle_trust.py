"""Bundle trust audit (issue 25, bundle items): external-data names read as protobuf, artifacts confined to the
bundle folder, huge integers and float versions refused, duplicate artifacts refused, `stargan info` exit code.

Each case reproduces one audit finding on a copy of the shipped toyfaces bundle (a real export).
"""

from __future__ import annotations

import hashlib
import shutil
import time
from pathlib import Path

import numpy as np
import onnx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from onnx import TensorProto, helper, numpy_helper
from typer.testing import CliRunner

from bundle_edits import SHIPPED, copy_shipped, edit_manifest, protobuf_field, rehash
from stargan_sdk.bundle.manifest import read_manifest, verify_artifact
from stargan_sdk.bundle.onnx_refs import external_locations
from stargan_sdk.cli.stargan import app
from stargan_sdk.errors import BundleError, ManifestError, StarGANError

FUZZ = settings(
    max_examples=20,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)


@pytest.fixture
def shipped_copy(tmp_path: Path) -> Path:
    return copy_shipped(tmp_path / "bundle")


def _external_model(location: str) -> onnx.ModelProto:
    """A tiny seeded graph whose one weight lives in an external file named `location`."""
    w = numpy_helper.from_array(np.random.default_rng(0).standard_normal((4, 4)).astype(np.float32), "w")
    w.data_location = TensorProto.EXTERNAL
    w.ClearField("raw_data")
    entry = w.external_data.add()
    entry.key, entry.value = "location", location
    graph = helper.make_graph(
        [helper.make_node("Add", ["x", "w"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 4])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 4])],
        [w],
    )
    return helper.make_model(graph)


# --- item 5: external data read as protobuf ---------------------------------------------------------------


@pytest.mark.parametrize("length", [1, 127, 128, 200, 255])
def test_long_external_data_names_are_seen(length: int) -> None:
    name = "d" * length
    assert external_locations(_external_model(name).SerializeToString()) == {name}


def test_value_before_key_is_seen() -> None:
    entry = protobuf_field(2, b"evil.bin") + protobuf_field(1, b"location")  # value first: valid protobuf
    model = protobuf_field(7, protobuf_field(5, protobuf_field(13, entry)))  # ModelProto.graph.initializer
    assert external_locations(model) == {"evil.bin"}


def test_unlisted_long_external_data_is_refused(shipped_copy: Path) -> None:
    name = "x" * 150 + ".data"
    (shipped_copy / name).write_bytes(b"\0" * 64)
    onnx.save_model(_external_model(name), str(shipped_copy / "generator.onnx"))
    rehash(shipped_copy, "generator.onnx")
    m = read_manifest(shipped_copy)
    with pytest.raises(BundleError, match="does not checksum"):
        verify_artifact(shipped_copy, m.artifact(role="generator", precision="fp32"))


@FUZZ
@given(name=st.text(st.characters(blacklist_categories=("Cs",)), min_size=1, max_size=300))
def test_fuzzed_external_data_names(name: str) -> None:
    assert external_locations(_external_model(name).SerializeToString()) == {name}


@FUZZ
@given(data=st.binary(max_size=200))
def test_fuzzed_onnx_bytes_give_names_or_bundle_error(data: bytes) -> None:
    try:
        external_locations(data)
    except BundleError:
        pass


# --- item 6: symlinks out of the bundle ----------------------------------------------------------------------


def test_artifact_symlinked_outside_is_refused(shipped_copy: Path, tmp_path: Path) -> None:
    outside = tmp_path / "secret.onnx"
    outside.write_bytes(b"a file of the machine, not of the bundle\n")
    (shipped_copy / "generator.onnx").unlink()
    (shipped_copy / "generator.onnx").symlink_to(outside)
    m = read_manifest(shipped_copy)
    with pytest.raises(BundleError, match="outside the bundle"):
        verify_artifact(shipped_copy, m.artifact(role="generator", precision="fp32"))
    result = CliRunner().invoke(app, ["info", str(shipped_copy), "--json"])
    assert result.exit_code != 0
    assert hashlib.sha256(outside.read_bytes()).hexdigest()[:12] not in result.output


def test_manifest_symlinked_outside_is_refused(shipped_copy: Path, tmp_path: Path) -> None:
    outside = tmp_path / "other.json"
    shutil.move(shipped_copy / "manifest.json", outside)
    (shipped_copy / "manifest.json").symlink_to(outside)
    with pytest.raises(BundleError, match="outside the bundle"):
        read_manifest(shipped_copy)


def test_external_data_symlinked_outside_is_refused(shipped_copy: Path, tmp_path: Path) -> None:
    (tmp_path / "w.data").write_bytes(b"\0" * 64)
    (shipped_copy / "w.data").symlink_to(tmp_path / "w.data")
    onnx.save_model(_external_model("w.data"), str(shipped_copy / "generator.onnx"))
    rehash(shipped_copy, "generator.onnx")
    sha = hashlib.sha256(b"\0" * 64).hexdigest()
    edit_manifest(shipped_copy, lambda m: m["artifacts"][0].update(external_data={"w.data": sha}))
    m = read_manifest(shipped_copy)
    with pytest.raises(BundleError, match="outside the bundle"):
        verify_artifact(shipped_copy, m.artifacts[0])


# --- item 8: errors that are not the SDK's -------------------------------------------------------------------


def test_huge_integer_in_manifest_is_a_manifest_error(shipped_copy: Path) -> None:
    text = (shipped_copy / "manifest.json").read_text()
    (shipped_copy / "manifest.json").write_text(text.replace('"image_size": 64', '"image_size": ' + "9" * 5000, 1))
    with pytest.raises(ManifestError):
        read_manifest(shipped_copy)
    from stargan_sdk import Translator

    with pytest.raises(StarGANError):
        Translator.load(shipped_copy, backend="onnxruntime")


@pytest.mark.parametrize("version", [1.0, True, "1"])
def test_format_version_must_be_the_integer(shipped_copy: Path, version) -> None:
    edit_manifest(shipped_copy, lambda m: m.update(format_version=version))
    with pytest.raises(ManifestError, match="format_version"):
        read_manifest(shipped_copy)


# --- item 9: duplicate artifacts -----------------------------------------------------------------------------


def test_one_artifact_listed_4000_times_is_refused_fast(shipped_copy: Path) -> None:
    edit_manifest(shipped_copy, lambda m: m.update(artifacts=m["artifacts"][:1] * 4000))
    start = time.perf_counter()
    with pytest.raises(ManifestError, match="more than once"):
        read_manifest(shipped_copy)
    result = CliRunner().invoke(app, ["info", str(shipped_copy)])
    assert result.exit_code == 2 and "more than once" in result.stderr
    assert time.perf_counter() - start < 5.0


# --- item 10: info's exit code -------------------------------------------------------------------------------


@pytest.mark.parametrize("as_json", [False, True])
def test_info_fails_when_an_artifact_fails(shipped_copy: Path, as_json: bool) -> None:
    ok = CliRunner().invoke(app, ["info", str(shipped_copy)] + (["--json"] if as_json else []))
    assert ok.exit_code == 0, ok.output
    with open(shipped_copy / "classifier.onnx", "r+b") as f:
        f.seek(1000)
        f.write(b"\xff" * 8)
    bad = CliRunner().invoke(app, ["info", str(shipped_copy)] + (["--json"] if as_json else []))
    assert bad.exit_code == 1


def test_classifier_replaced_by_the_generator_is_refused(shipped_copy: Path) -> None:
    shutil.copy(shipped_copy / "generator.onnx", shipped_copy / "classifier.onnx")
    rehash(shipped_copy, "classifier.onnx")
    from stargan_sdk import Translator

    with pytest.raises(BundleError, match="classifier takes only"):
        Translator.load(shipped_copy, backend="onnxruntime")


@pytest.mark.parametrize("key,values", [("std", [1e-300] * 3), ("std", [1e300] * 3), ("mean", [1e300] * 3)])
def test_normalisation_the_sdk_cannot_use_is_refused_by_the_schema(shipped_copy: Path, key: str, values) -> None:
    edit_manifest(shipped_copy, lambda m: m["normalization"].update({key: values}))
    with pytest.raises(ManifestError, match=f"normalization.{key}"):
        read_manifest(shipped_copy)


# --- item 7: resources before trust -------------------------------------------------------------------------


def _loop_model() -> onnx.ModelProto:
    """A Loop of 1e12 iterations: an ONNX Runtime session would run it to the end."""
    body = helper.make_graph(
        [helper.make_node("Identity", ["c"], ["c_out"])],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("c", TensorProto.BOOL, []),
        ],
        [helper.make_tensor_value_info("c_out", TensorProto.BOOL, [])],
    )
    trip = numpy_helper.from_array(np.array(10**12, np.int64), "trip")
    cond = numpy_helper.from_array(np.array(True), "cond")
    graph = helper.make_graph(
        [
            helper.make_node("Loop", ["trip", "cond"], [], body=body),
            helper.make_node("Identity", ["image"], ["output"]),
        ],
        "g",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 64, 64])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 3, 64, 64])],
        [trip, cond],
    )
    return helper.make_model(graph)


def _constant_of_shape_model() -> onnx.ModelProto:
    shape = numpy_helper.from_array(np.array([10**6, 10**6], np.int64), "shape")
    graph = helper.make_graph(
        [helper.make_node("ConstantOfShape", ["shape"], ["big"]), helper.make_node("Identity", ["image"], ["output"])],
        "g",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 64, 64])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 3, 64, 64])],
        [shape],
    )
    return helper.make_model(graph)


def _huge_constant_model() -> onnx.ModelProto:
    """An initializer whose dims claim 1e12 elements (its raw bytes are a few: a runtime would allocate first)."""
    w = TensorProto(name="w", data_type=TensorProto.FLOAT, dims=[10**6, 10**6], raw_data=b"\0" * 16)
    graph = helper.make_graph(
        [helper.make_node("Add", ["image", "w"], ["output"])],
        "g",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 64, 64])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 3, 64, 64])],
        [w],
    )
    return helper.make_model(graph)


@pytest.mark.parametrize(
    "build,match",
    [
        (_loop_model, "operator 'Loop'"),
        (_constant_of_shape_model, "operator 'ConstantOfShape'"),
        (_huge_constant_model, "constant of 1,000,000,000,000 elements"),
    ],
)
@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_hostile_graphs_are_refused_before_a_session(shipped_copy: Path, build, match: str, backend: str) -> None:
    if backend == "openvino":
        pytest.importorskip("openvino")
    onnx.save_model(build(), str(shipped_copy / "generator.onnx"))
    rehash(shipped_copy, "generator.onnx")
    from stargan_sdk import Translator

    start = time.perf_counter()
    with pytest.raises(StarGANError, match=match):
        Translator.load(shipped_copy, backend=backend, precision="fp32")
    assert time.perf_counter() - start < 20


def test_the_shipped_graphs_pass_the_allow_list() -> None:
    from stargan_sdk.bundle.graph_rules import check_graph
    from stargan_sdk.bundle.onnx_refs import graph_facts

    for name in ("generator.onnx", "generator.fp16.onnx", "classifier.onnx"):
        check_graph(graph_facts((SHIPPED / name).read_bytes()), name)


@FUZZ
@given(op=st.text(st.characters(min_codepoint=33, max_codepoint=126), min_size=1, max_size=20))
def test_fuzzed_operators_outside_the_list_are_refused(op: str) -> None:
    from stargan_sdk.bundle.graph_rules import ALLOWED_OPS, check_graph
    from stargan_sdk.bundle.onnx_refs import graph_facts

    graph = helper.make_graph(
        [helper.make_node(op, ["x"], ["y"])],
        "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
    )
    facts = graph_facts(helper.make_model(graph).SerializeToString())
    if op in ALLOWED_OPS:
        check_graph(facts, "g.onnx")
    else:
        with pytest.raises(BundleError, match="operator"):
            check_graph(facts, "g.onnx")


@pytest.mark.parametrize("config", [(2, 3, 1), (4, 5, 2), (8, 15, 0)])
def test_weights_layout_is_the_torch_generator(config) -> None:
    pytest.importorskip("torch")
    from stargan_sdk.backends.torch_generator import StarGANGenerator
    from stargan_sdk.bundle.weights_layout import generator_layout

    want = {k: tuple(v.shape) for k, v in StarGANGenerator(*config).state_dict().items()}
    assert generator_layout(*config) == want


def test_huge_conv_dim_is_refused_before_allocating(shipped_copy: Path) -> None:
    pytest.importorskip("torch")
    edit_manifest(shipped_copy, lambda m: m["generator"].update(conv_dim=4096))
    from stargan_sdk import Translator

    start = time.perf_counter()
    with pytest.raises(BundleError, match="refused before building the model"):
        Translator.load(shipped_copy, backend="torch")
    assert time.perf_counter() - start < 20
