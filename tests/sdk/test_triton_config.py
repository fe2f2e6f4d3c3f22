"""Triton config text: parsed with Triton's own protobuf schema; crafted names refused, strings escaped."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stargan_sdk.bundle.manifest import read_manifest
from stargan_sdk.errors import BundleError, StarGANError
from stargan_sdk.serve.triton_config import ModelSpec, Tensor, check_tensor, model_config, pbtxt_string
from stargan_sdk.serve.triton_repo import model_specs, write_python_repository

model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2", reason="needs the triton extra")
from google.protobuf import text_format  # noqa: E402  (comes with tritonclient)


def _parse(text: str):
    return text_format.Parse(text, model_config_pb2.ModelConfig())


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_any_parameter_string_round_trips_and_adds_no_field(value: str) -> None:
    spec = ModelSpec("m", (Tensor("x", "float32", (3,)),), (Tensor("y", "float32", (3,)),), {"p": value})
    config = _parse(model_config(spec, backend="python", max_batch=4, instances=1))
    assert config.parameters["p"].string_value == value
    assert list(config.parameters) == ["p"] and len(config.input) == 1 and config.name == "m"


@pytest.mark.parametrize(
    "name", ['image"\n    dims: [ 1 ]\n  }\n  {\n    name: "x', "a b", "", "1abc\n", "é", "x" * 200]
)
def test_crafted_tensor_names_are_refused(name: str) -> None:
    with pytest.raises(BundleError, match="not a plain identifier"):
        check_tensor(Tensor(name, "float32", (3,)))


def test_unknown_dtype_and_bad_dims_are_refused() -> None:
    with pytest.raises(BundleError, match="dtype 'int4'.*supported: float32"):
        check_tensor(Tensor("x", "int4", (3,)))
    with pytest.raises(BundleError, match="dims"):
        check_tensor(Tensor("x", "float32", (0,)))


def test_pbtxt_string_escapes_quotes_backslashes_and_controls() -> None:
    assert pbtxt_string('a"b\\c\nd') == '"a\\"b\\\\c\\012d"'


def test_python_repository_configs_parse_and_publish_the_manifest(bundle, tmp_path) -> None:
    write_python_repository(bundle, tmp_path / "repo", max_batch=8, instances=2, queue_delay_us=500)
    m = read_manifest(bundle)
    gen = _parse((tmp_path / "repo/stargan/config.pbtxt").read_text())
    assert gen.backend == "python" and gen.max_batch_size == 8 and gen.instance_group[0].count == 2
    assert gen.dynamic_batching.max_queue_delay_microseconds == 500
    assert [(t.name, list(t.dims)) for t in gen.input] == [("image", [3, 32, 32]), ("label", [5])]
    assert json.loads(gen.parameters["manifest"].string_value) == json.loads(json.dumps(m.to_dict()))
    edit = _parse((tmp_path / "repo/stargan_edit/config.pbtxt").read_text())
    assert [(t.name, t.optional) for t in edit.input] == [("image", False), ("changes", False), ("original", True)]
    assert edit.parameters["bundle"].string_value == "../stargan/bundle"
    assert (tmp_path / "repo/stargan/bundle/manifest.json").read_bytes() == (bundle / "manifest.json").read_bytes()
    assert "stargan_sdk.serve.triton_python_model" in (tmp_path / "repo/stargan_classifier/1/model.py").read_text()


def test_crafted_manifest_tensor_name_writes_nothing(bundle_copy, tmp_path) -> None:
    """A manifest edited to inject config lines through a tensor name is refused before any file is written."""
    path = bundle_copy / "manifest.json"
    d = json.loads(path.read_text())
    d["outputs"][0]["name"] = (
        'output"\n    dims: [ 1 ]\n  }\n]\ninstance_group [ { count: 64 kind: KIND_GPU } ]\noutput [\n  {\n    name: "x'
    )
    path.write_text(json.dumps(d))
    with pytest.raises(StarGANError):
        write_python_repository(bundle_copy, tmp_path / "repo")
    assert not (tmp_path / "repo").exists()


def test_model_specs_refuse_an_unknown_sdk_backend(bundle) -> None:
    with pytest.raises(StarGANError, match="unknown SDK backend 'tf'"):
        model_specs(read_manifest(bundle), "stargan", "tf")
