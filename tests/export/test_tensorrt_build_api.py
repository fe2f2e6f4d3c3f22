"""The engine builder against NVIDIA's real TensorRT 10.0, 10.13 and 11.4 bindings (simulated on the CPU, `trt_api`).

Every name, enum member, method and keyword `onnx_to_engine` and the bundle build use must exist in that release
with that signature (see tests/trtsim); the plan is then built, stored, checked for parity and validated through
the same code paths a GPU would take, with ONNX Runtime standing in for the engine's kernels.
"""

from __future__ import annotations

import pytest

from stargan_export.errors import ExportError
from stargan_sdk.bundle.constants import GENERATOR_FP16_ONNX, GENERATOR_ONNX
from trtsim.bindings import VERSIONS
from trtsim.fixtures import sim, trt_surface  # noqa: F401

pytestmark = pytest.mark.trt_api
SIZE, C_DIM = 32, 5
LATEST = list(VERSIONS)[-1]


@pytest.mark.parametrize("source", [GENERATOR_ONNX, GENERATOR_FP16_ONNX])
def test_engine_build_uses_only_this_releases_api(sim, tiny_bundle, tmp_path, source):
    from stargan_export.tensorrt_build import onnx_to_engine

    cache = tmp_path / "timing.cache"
    info = onnx_to_engine(tiny_bundle / source, tmp_path / "g.plan", min_batch=1, opt_batch=4, max_batch=8,
                          image_size=SIZE, c_dim=C_DIM, workspace_gib=1.0, timing_cache_path=cache)  # fmt: skip
    fake = sim.fake
    strongly_typed = fake.types["NetworkDefinitionCreationFlag"]["values"]["STRONGLY_TYPED"]
    assert fake.called("Builder.create_network") == [{"flags": 1 << strongly_typed}]  # bit 1 in 10.x, bit 0 in 11.x
    assert not fake.called("IBuilderConfig.set_flag")  # precision comes from the graph, never from FP16 flags
    assert [c["pool"].name for c in fake.called("IBuilderConfig.set_memory_pool_limit")] == ["WORKSPACE"]
    assert [c["flag"].name for c in fake.called("IBuilderConfig.clear_flag")] == ["TF32"]
    assert [c["ignore_mismatch"] for c in fake.called("IBuilderConfig.set_timing_cache")] == [True]
    shapes = {c["input"]: tuple(tuple(c[k]) for k in ("min", "opt", "max"))
              for c in fake.called("IOptimizationProfile.set_shape")}  # fmt: skip
    assert shapes == {"image": ((1, 3, SIZE, SIZE), (4, 3, SIZE, SIZE), (8, 3, SIZE, SIZE)),
                      "label": ((1, C_DIM), (4, C_DIM), (8, C_DIM))}  # fmt: skip
    # The file holds exactly the bytes the builder serialized: no header of ours in front or behind.
    assert (tmp_path / "g.plan").read_bytes() == sim.plans[-1]
    assert cache.read_bytes() == b"simulated timing cache " + sim.version.encode()
    assert (info.tensorrt_version, info.gpu_name, info.compute_capability) == (sim.version, "Simulated GPU", "9.0")


def test_parser_errors_are_reported_per_line(sim, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    from stargan_export.tensorrt_build import onnx_to_engine

    node = helper.make_node("NoSuchOp", ["image"], ["output"], domain="example.invalid")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 4, 4])],
                              [helper.make_tensor_value_info("output", TensorProto.FLOAT, [1, 3, 4, 4])])  # fmt: skip
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("example.invalid", 1)]
    )
    onnx.save(model, str(tmp_path / "bad.onnx"))
    with pytest.raises(ExportError, match=r"TensorRT could not parse bad.onnx:\nnode 0: simulated parser: "):
        onnx_to_engine(tmp_path / "bad.onnx", tmp_path / "bad.plan", min_batch=1, opt_batch=1, max_batch=1,
                       image_size=4, c_dim=1)  # fmt: skip
    assert not (tmp_path / "bad.plan").exists()
    assert sim.fake.called("OnnxParser.get_error") == [{"index": 0}]


@pytest.mark.parametrize("trt_surface", [LATEST], indirect=True)  # the calls are those above, once per release
def test_bundle_with_engine_measures_parity_with_the_sdk_runner(sim, official_checkpoint, tmp_path):
    """CPU torch and no torch CUDA: parity is still measured, by the SDK's engine runner, and validate runs it."""
    from stargan_export.bundle import build_bundle
    from stargan_export.validate import validate_bundle

    attrs = ["Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young"]
    m = build_bundle(official_checkpoint, tmp_path / "b", attributes=attrs, image_size=SIZE, engine=True,
                     torch_weights=False, opt_batch=2, max_batch=4)  # fmt: skip
    engine = m.artifact("generator", "tensorrt")
    assert engine is not None and engine.precision == "fp16" and engine.tensorrt_version == sim.version
    assert (engine.gpu_name, engine.compute_capability) == ("Simulated GPU", "9.0")
    assert (engine.profile.min, engine.profile.opt, engine.profile.max) == (1, 2, 4)
    assert engine.parity is not None and engine.parity["psnr_db"] >= 40.0 and engine.parity["max_batch_checked"] == 4
    results = {r.file: r for r in validate_bundle(tmp_path / "b")}
    assert results["generator.plan"].status == "ok", results["generator.plan"].detail
    assert sim.fake.called("IExecutionContext.execute_async_v3")  # the engine really ran in both checks
