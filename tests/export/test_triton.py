"""Triton model repository: config.pbtxt parsed with Triton's own protobuf schema, model files, errors."""

from __future__ import annotations

import dataclasses

import pytest
from google.protobuf import text_format

from stargan_export.errors import ExportError
from stargan_export.triton import write_triton_repository
from stargan_sdk.manifest import Artifact, Profile, read_manifest, sha256_file, write_manifest

model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")


def _parse(model_dir):
    return text_format.Parse((model_dir / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())


def test_onnxruntime_repository_matches_manifest(tiny_bundle, tmp_path):
    model_dir = write_triton_repository(tiny_bundle, tmp_path / "repo", backend="onnxruntime", max_batch=16,
                                        instances=3, model_name="faces", kind="cpu")
    config = _parse(model_dir)
    m = read_manifest(tiny_bundle)
    assert config.name == "faces" and config.platform == "onnxruntime_onnx" and config.max_batch_size == 16
    fp32 = model_config_pb2.DataType.Value("TYPE_FP32")
    got = [(t.name, list(t.dims), t.data_type) for t in list(config.input) + list(config.output)]
    want = [(s.name, list(s.shape[1:]), fp32) for s in m.inputs + m.outputs]
    assert got == want == [("image", [3, 32, 32], fp32), ("label", [5], fp32), ("output", [3, 32, 32], fp32)]
    assert list(config.dynamic_batching.preferred_batch_size) == [4, 8, 16]
    assert config.dynamic_batching.max_queue_delay_microseconds == 100
    group = config.instance_group[0]
    assert group.count == 3 and group.kind == model_config_pb2.ModelInstanceGroup.Kind.Value("KIND_CPU")
    assert (model_dir / "1" / "model.onnx").read_bytes() == (tiny_bundle / "generator.onnx").read_bytes()


def test_fp16_precision_copies_the_fp16_graph(tiny_bundle, tmp_path):
    model_dir = write_triton_repository(tiny_bundle, tmp_path / "repo", backend="onnxruntime", precision="fp16")
    assert _parse(model_dir).instance_group[0].kind == model_config_pb2.ModelInstanceGroup.Kind.Value("KIND_GPU")
    assert (model_dir / "1" / "model.onnx").read_bytes() == (tiny_bundle / "generator.fp16.onnx").read_bytes()


def test_tensorrt_backend_needs_an_engine(tiny_bundle, tmp_path):
    with pytest.raises(ExportError, match="the bundle has no TensorRT engine"):
        write_triton_repository(tiny_bundle, tmp_path / "repo", backend="tensorrt")
    assert not (tmp_path / "repo").exists()


def test_tensorrt_repository_from_an_engine_entry(bundle_copy, tmp_path):
    """A bundle listing a plan (stand-in bytes: Triton is not run here) gives a tensorrt_plan model."""
    (bundle_copy / "generator.plan").write_bytes(b"plan bytes")
    m = read_manifest(bundle_copy)
    engine = Artifact("tensorrt", "generator", "generator.plan", sha256_file(bundle_copy / "generator.plan"), "fp16",
                      tensorrt_version="10.9.0", gpu_name="H100", compute_capability="9.0", profile=Profile(1, 8, 32))
    write_manifest(bundle_copy, dataclasses.replace(m, artifacts=m.artifacts + (engine,)))
    model_dir = write_triton_repository(bundle_copy, tmp_path / "repo", backend="tensorrt", precision="fp16", max_batch=32)
    config = _parse(model_dir)
    assert config.platform == "tensorrt_plan" and config.max_batch_size == 32
    assert (model_dir / "1" / "model.plan").read_bytes() == b"plan bytes"
    with pytest.raises(ExportError, match="profile covers batches 1..32"):
        write_triton_repository(bundle_copy, tmp_path / "repo", backend="tensorrt", precision="fp16", max_batch=64)
    with pytest.raises(ExportError, match="only on a GPU"):
        write_triton_repository(bundle_copy, tmp_path / "repo", backend="tensorrt", kind="cpu")


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"backend": "tf"}, "unknown backend"), ({"kind": "tpu"}, "unknown instance kind"),
    ({"max_batch": 0}, "must be >= 1"), ({"model_name": "a/b"}, "model name"), ({"precision": "int8"}, "precision"),
])
def test_bad_options(tiny_bundle, tmp_path, kwargs, message):
    with pytest.raises(ExportError, match=message):
        write_triton_repository(tiny_bundle, tmp_path / "repo", **{"backend": "onnxruntime", **kwargs})
