"""TensorRT engine build (strongly typed, one profile, timing cache), run by the SDK's engine runner vs ONNX Runtime;
real TensorRT on a GPU only (tests/export/test_tensorrt_build_api.py runs the same code against the real bindings'
API)."""

from __future__ import annotations

import pytest

from stargan_export.errors import ExportError
from stargan_export.parity import measure, ort_session, sample_images, sample_labels
from stargan_sdk.bundle.constants import GENERATOR_FP16_ONNX, GENERATOR_ONNX

pytestmark = pytest.mark.tensorrt
SIZE, C_DIM, MAX_BATCH = 32, 5, 8


def _build(bundle, tmp_path, source: str):
    from stargan_export.tensorrt_build import onnx_to_engine

    plan = tmp_path / f"{source}.plan"
    info = onnx_to_engine(
        bundle / source,
        plan,
        min_batch=1,
        opt_batch=4,
        max_batch=MAX_BATCH,
        image_size=SIZE,
        c_dim=C_DIM,
        workspace_gib=1.0,
        timing_cache_path=tmp_path / "timing.cache",
    )
    return plan, info


@pytest.mark.parametrize(("source", "precision"), [(GENERATOR_ONNX, "fp32"), (GENERATOR_FP16_ONNX, "fp16")])
def test_engine_matches_onnxruntime(tiny_bundle, tmp_path, source, precision):
    import tensorrt as trt

    from stargan_sdk.backends.tensorrt_engine import TrtEngine

    plan, info = _build(tiny_bundle, tmp_path, source)
    assert info.tensorrt_version == trt.__version__ and info.compute_capability.count(".") == 1
    assert (tmp_path / "timing.cache").stat().st_size > 0
    engine = trt.Runtime(trt.Logger(trt.Logger.WARNING)).deserialize_cuda_engine(plan.read_bytes())
    assert engine is not None  # a raw plan: no header in front of the serialized engine
    assert engine.get_tensor_dtype("image") == trt.DataType.FLOAT  # FP32 I/O in both precisions
    assert [tuple(d) for d in engine.get_tensor_profile_shape("label", 0)] == [
        (1, C_DIM),
        (4, C_DIM),
        (MAX_BATCH, C_DIM),
    ]
    session = ort_session(tiny_bundle / GENERATOR_ONNX)
    with TrtEngine(plan.read_bytes(), image_size=SIZE, c_dim=C_DIM, cuda_graphs=False) as runner:
        outputs = {}
        for n in (1, 3, MAX_BATCH):
            image, label = sample_images(n, SIZE, seed=n), sample_labels(n, C_DIM, seed=n)
            outputs[n] = (session.run(["output"], {"image": image, "label": label})[0],
                          runner.infer({"image": image, "label": label})["output"])  # fmt: skip
    for reference, actual in outputs.values():
        metrics = measure(reference, actual)
        if precision == "fp32":
            assert metrics["max_abs"] <= 1e-3
        else:
            assert metrics["psnr_db"] >= 40.0 and metrics["finite"] == 1.0


def test_parser_errors_are_reported_per_line(tmp_path):
    import onnx
    from onnx import TensorProto, helper

    node = helper.make_node("NoSuchOp", ["image"], ["output"], domain="example.invalid")
    graph = helper.make_graph(
        [node],
        "g",
        [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 4, 4])],
        [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 4, 4])],
    )
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("example.invalid", 1)]
    )
    onnx.save(model, str(tmp_path / "bad.onnx"))
    from stargan_export.tensorrt_build import onnx_to_engine

    with pytest.raises(ExportError, match=r"TensorRT could not parse bad.onnx:\nnode 0: ") as info:
        onnx_to_engine(
            tmp_path / "bad.onnx", tmp_path / "bad.plan", min_batch=1, opt_batch=1, max_batch=1, image_size=4, c_dim=1
        )
    assert not (tmp_path / "bad.plan").exists()
    assert len(str(info.value).splitlines()) >= 2


def test_bundle_with_engine_records_gpu_and_profile(official_checkpoint, tmp_path):
    import tensorrt as trt

    from stargan_export.bundle import build_bundle
    from stargan_export.validate import validate_bundle

    m = build_bundle(
        official_checkpoint,
        tmp_path / "b",
        attributes=["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"],
        image_size=SIZE,
        engine=True,
        torch_weights=False,
        opt_batch=2,
        max_batch=4,
    )
    engine = m.artifact("generator", "tensorrt")
    assert engine is not None and engine.precision == "fp16" and engine.tensorrt_version == trt.__version__
    from stargan_sdk import cuda

    assert engine.compute_capability == cuda.device_properties(0).compute_capability and engine.gpu_name
    assert (engine.profile.min, engine.profile.opt, engine.profile.max) == (1, 2, 4)
    assert engine.parity is not None and engine.parity["psnr_db"] >= 40.0
    assert (tmp_path / "b" / "timing.cache").is_file()
    assert {r.file: r.status for r in validate_bundle(tmp_path / "b")}["generator.plan"] == "ok"
