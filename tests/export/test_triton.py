"""Triton model repository: config.pbtxt parsed with Triton's own protobuf schema, model files, errors."""

from __future__ import annotations

import dataclasses

import pytest
from google.protobuf import text_format

from procs import free_ports
from stargan_export.errors import ExportError
from stargan_export.triton import write_triton_repository
from stargan_sdk.bundle.manifest import Artifact, Profile, read_manifest, sha256_file, write_manifest
from stargan_sdk.errors import BundleError

model_config_pb2 = pytest.importorskip("tritonclient.grpc.model_config_pb2")


def _parse(model_dir):
    return text_format.Parse((model_dir / "config.pbtxt").read_text(), model_config_pb2.ModelConfig())


def test_onnxruntime_repository_matches_manifest(tiny_bundle, tmp_path):
    model_dir = write_triton_repository(
        tiny_bundle, tmp_path / "repo", backend="onnxruntime", max_batch=16, instances=3, model_name="faces", kind="cpu"
    )
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
    engine = Artifact(
        "tensorrt",
        "generator",
        "generator.plan",
        sha256_file(bundle_copy / "generator.plan"),
        "fp16",
        tensorrt_version="10.9.0",
        gpu_name="H100",
        compute_capability="9.0",
        profile=Profile(1, 8, 32),
    )
    write_manifest(bundle_copy, dataclasses.replace(m, artifacts=m.artifacts + (engine,)))
    model_dir = write_triton_repository(
        bundle_copy, tmp_path / "repo", backend="tensorrt", precision="fp16", max_batch=32
    )
    config = _parse(model_dir)
    assert config.platform == "tensorrt_plan" and config.max_batch_size == 32
    assert (model_dir / "1" / "model.plan").read_bytes() == b"plan bytes"
    with pytest.raises(ExportError, match="profile covers batches 1..32"):
        write_triton_repository(bundle_copy, tmp_path / "repo", backend="tensorrt", precision="fp16", max_batch=64)
    with pytest.raises(ExportError, match="only on a GPU"):
        write_triton_repository(bundle_copy, tmp_path / "repo", backend="tensorrt", kind="cpu")


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"backend": "tf"}, "unknown backend"),
        ({"kind": "tpu"}, "unknown instance kind"),
        ({"max_batch": 0}, "must be >= 1"),
        ({"model_name": "a/b"}, "model name"),
        ({"precision": "int8"}, "precision"),
    ],
)
def test_bad_options(tiny_bundle, tmp_path, kwargs, message):
    with pytest.raises(ExportError, match=message):
        write_triton_repository(tiny_bundle, tmp_path / "repo", **{"backend": "onnxruntime", **kwargs})


def _edited_manifest(bundle, key: str, value: str):
    import json

    path = bundle / "manifest.json"
    d = json.loads(path.read_text())
    d["outputs"][0][key] = value  # outputs: the SDK reads inputs by name, so only this check stands here
    path.write_text(json.dumps(d))  # raw edit: no schema check, as an attacker would
    return bundle


@pytest.mark.parametrize("backend", ["onnxruntime", "python"])
@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        (
            "name",
            'image"\n    dims: [ 1 ]\n  }\n]\ninstance_group [ { count: 99 } ]\ninput [\n  {\n    name: "x',
            "not a plain identifier|name: .* must be printable",
        ),
        ("dtype", "int4", "dtype .int4.|'int4' is not one of"),
    ],
)
def test_crafted_manifest_is_refused_and_nothing_written(bundle_copy, tmp_path, backend, key, value, message):
    """Refused by the manifest schema on reading, or by the repository writer's own name/dtype rules."""
    _edited_manifest(bundle_copy, key, value)
    with pytest.raises((ExportError, BundleError), match=message):
        write_triton_repository(bundle_copy, tmp_path / "repo", backend=backend, kind="cpu")
    assert not (tmp_path / "repo").exists()


def test_module_is_torch_free():
    import subprocess
    import sys

    code = "import sys, stargan_export.triton; assert 'torch' not in sys.modules and 'stargan_train' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_python_repository_runs_the_sdk_in_the_real_tritonserver(tiny_bundle, tmp_path):
    """`stargan-export triton --backend python` output, loaded by the tritonserver binary of the nvidia-pytriton
    wheel, answers with the SDK's outputs."""
    import importlib.util

    import numpy as np
    from typer.testing import CliRunner

    from stargan_export.cli import app
    from stargan_sdk import Translator
    from stargan_sdk.serve.remote import RemoteTranslator
    from stargan_sdk.serve.triton_server import TritonServer

    if importlib.util.find_spec("pytriton") is None:
        pytest.skip("needs the serve extra (nvidia-pytriton ships the tritonserver binary)")
    result = CliRunner().invoke(
        app,
        [
            "triton",
            str(tiny_bundle),
            "--out",
            str(tmp_path / "repo"),
            "--backend",
            "python",
            "--kind",
            "cpu",
            "--max-batch",
            "8",
        ],
    )
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in (tmp_path / "repo").iterdir()) == ["stargan", "stargan_classifier", "stargan_edit"]
    http, grpc, metrics = free_ports(3)
    rng = np.random.default_rng(0)
    x, c = rng.uniform(-1, 1, (3, 3, 32, 32)).astype(np.float32), rng.integers(0, 2, (3, 5)).astype(np.float32)
    with TritonServer(
        tmp_path / "repo", http_port=http, grpc_port=grpc, metrics_port=metrics, workdir=tmp_path
    ) as server:
        with RemoteTranslator.load(server.http_url) as remote, Translator.load(tiny_bundle) as local:
            assert remote.backend.max_batch == 8
            np.testing.assert_allclose(remote.infer(x, c), local.infer(x, c), atol=1e-5)
            np.testing.assert_array_equal(remote.classifier.logits(x), local.classifier.logits(x))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["repo"]  # the server's workspace is gone


def _external_data_bundle(bundle):
    """The bundle's FP32 generator re-saved with its weights in `weights.bin`, listed in the manifest."""
    onnx = pytest.importorskip("onnx")
    model = onnx.load(str(bundle / "generator.onnx"))
    onnx.save_model(model, str(bundle / "generator.onnx"), save_as_external_data=True, location="weights.bin")
    m = read_manifest(bundle)
    arts = tuple(
        dataclasses.replace(
            a, sha256=sha256_file(bundle / a.file), external_data={"weights.bin": sha256_file(bundle / "weights.bin")}
        )
        if a.file == "generator.onnx"
        else a
        for a in m.artifacts
    )
    write_manifest(bundle, dataclasses.replace(m, artifacts=arts))
    assert (bundle / "generator.onnx").stat().st_size < 100_000  # the weights really moved out
    return bundle


def test_onnxruntime_repository_copies_the_external_data_file(bundle_copy, tiny_bundle, tmp_path):
    import numpy as np
    import onnxruntime as ort

    _external_data_bundle(bundle_copy)
    model_dir = write_triton_repository(bundle_copy, tmp_path / "repo", backend="onnxruntime", kind="cpu")
    assert (model_dir / "1" / "weights.bin").read_bytes() == (bundle_copy / "weights.bin").read_bytes()
    rng = np.random.default_rng(0)
    feeds = {
        "image": rng.uniform(-1, 1, (2, 3, 32, 32)).astype(np.float32),
        "label": rng.integers(0, 2, (2, 5)).astype(np.float32),
    }
    served = ort.InferenceSession(str(model_dir / "1" / "model.onnx"), providers=["CPUExecutionProvider"])
    original = ort.InferenceSession(str(tiny_bundle / "generator.onnx"), providers=["CPUExecutionProvider"])
    np.testing.assert_array_equal(served.run(None, feeds)[0], original.run(None, feeds)[0])


def test_python_repository_copies_the_external_data_file(bundle_copy, tmp_path):
    from stargan_sdk import Translator

    _external_data_bundle(bundle_copy)
    model_dir = write_triton_repository(bundle_copy, tmp_path / "repo", backend="python", kind="cpu")
    assert (model_dir / "bundle" / "weights.bin").read_bytes() == (bundle_copy / "weights.bin").read_bytes()
    with Translator.load(model_dir / "bundle", backend="onnxruntime") as t:  # what the served model.py loads
        assert t.backend_name == "onnxruntime"


def test_python_backend_says_everything_it_writes(tiny_bundle, tmp_path):
    import json

    from typer.testing import CliRunner

    from stargan_export.cli import app

    out = tmp_path / "repo"
    result = CliRunner().invoke(
        app, ["triton", str(tiny_bundle), "--out", str(out), "--backend", "python", "--kind", "cpu"]
    )
    assert result.exit_code == 0, result.output
    said = result.output.replace("\n", "")
    for model in ("stargan", "stargan_classifier", "stargan_edit"):
        assert f"wrote {out / model}/config.pbtxt and {out / model}/1/model.py" in said
        assert (out / model / "1" / "model.py").is_file()
    assert f"wrote {out / 'stargan' / 'bundle'}/ (a copy of the bundle" in said
    assert (out / "stargan" / "bundle" / "manifest.json").is_file()
    result = CliRunner().invoke(
        app, ["triton", str(tiny_bundle), "--out", str(out), "--backend", "python", "--kind", "cpu", "--json"]
    )
    report = json.loads(result.output)
    assert report["models"] == [str(out / m) for m in ("stargan", "stargan_classifier", "stargan_edit")]
    assert report["bundle_copy"] == str(out / "stargan" / "bundle")
