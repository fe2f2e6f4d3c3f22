"""The `trt_api` harness itself: it reads signatures right, knows what each real release has, and catches misuse.

Proof that the conformance tests can fail: a name the bindings lack, a keyword or argument type they do not
accept, and the project's own builder changed to use a flag TensorRT 11 removed, are each caught.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from trtsim.bindings import VERSIONS
from trtsim.dump_surface import parse_signature
from trtsim.fake import ApiMismatch, FakeTensorRT
from trtsim.fixtures import load_surface, trt_surface  # noqa: F401
from trtsim.simulate import Simulation

pytestmark = pytest.mark.trt_api
HAS_FP16_FLAG = {"10.0.1": True, "10.13.3.9": True, "11.4.0.106": False}


def test_pybind11_signatures_are_parsed():
    sig = parse_signature("set_shape(self: tensorrt_bindings.tensorrt.IOptimizationProfile, input: str, "
                          "min: tensorrt_bindings.tensorrt.Dims, opt: Dict[str, Tuple[int, int]] = {'a': (1, 2)}, "
                          "*, max: typing.SupportsInt = <Severity.WARNING: 2>) -> None")  # fmt: skip
    assert [(p["name"], p["default"], p["kind"]) for p in sig["params"]] == [
        ("self", False, "positional_or_keyword"), ("input", False, "positional_or_keyword"),
        ("min", False, "positional_or_keyword"), ("opt", True, "positional_or_keyword"), ("max", True, "keyword_only"),
    ]  # fmt: skip
    assert sig["params"][3]["type"] == "Dict[str, Tuple[int, int]]" and sig["returns"] == "None"
    assert parse_signature("2. f(self: X, arg0: int) -> List[Dims]")["params"][1]["kind"] == "positional_only"
    assert parse_signature("Construct a builder") is None


def test_each_release_has_what_the_design_says(trt_surface):
    types = trt_surface["types"]
    assert trt_surface["version"] in VERSIONS
    assert ("FP16" in types["BuilderFlag"]["values"]) == HAS_FP16_FLAG[trt_surface["version"]]
    # STRONGLY_TYPED moved from bit 1 (10.x) to bit 0 (11.x): the builder reads it from the enum.
    major = int(trt_surface["version"].split(".")[0])
    assert types["NetworkDefinitionCreationFlag"]["values"]["STRONGLY_TYPED"] == (0 if major >= 11 else 1)
    (timing,) = types["IBuilderConfig"]["members"]["set_timing_cache"]["overloads"]
    assert [(p["name"], p["default"]) for p in timing["params"]] == [("self", False), ("cache", False),
                                                                     ("ignore_mismatch", False)]  # fmt: skip
    assert types["IHostMemory"]["buffer"] is True and types["ICudaEngine"]["buffer"] is False


@pytest.mark.parametrize("version", list(VERSIONS))
def test_a_name_the_bindings_lack_is_caught(version):
    fake = FakeTensorRT(load_surface(version))
    trt = fake.module
    if HAS_FP16_FLAG[version]:
        assert int(trt.BuilderFlag.FP16) == 0 and fake.missing == []
    else:
        with pytest.raises(AttributeError, match=f"TensorRT {version} has no BuilderFlag.FP16"):
            _ = trt.BuilderFlag.FP16
        assert fake.missing == ["BuilderFlag.FP16"]
    assert not hasattr(trt, "IParserError") and not hasattr(trt.Builder, "build_engine")  # gone since 10.0
    assert fake.missing[-2:] == ["tensorrt.IParserError", "Builder.build_engine"]


def test_calls_outside_the_signatures_are_caught_even_when_swallowed():
    fake = FakeTensorRT(load_surface(list(VERSIONS)[-1]))
    trt = fake.module
    logger = trt.Logger(trt.Logger.WARNING)
    config = trt.Builder(logger).create_builder_config()
    cache = config.create_timing_cache(b"")
    try:
        config.set_timing_cache(cache, ignore=True)  # the keyword is ignore_mismatch
    except Exception:  # noqa: BLE001 - a caller that swallows it is still caught: `problems` keeps it
        pass
    assert "no keyword argument 'ignore'" in fake.problems[-1]
    with pytest.raises(ApiMismatch, match="'model' must be str"):
        trt.OnnxParser(trt.Builder(logger).create_network(0), logger).parse_from_file(Path("g.onnx"))
    with pytest.raises(ApiMismatch, match="missing argument 'logger'"):
        trt.Builder()
    with pytest.raises(ApiMismatch, match="'min' must be Dims"):  # a tuple would need an implicit conversion
        trt.Builder(logger).create_optimization_profile().set_shape("image", (1, 3), (1, 3), (1, 3))
    engine = trt.Runtime(logger).deserialize_cuda_engine(b"plan")
    with pytest.raises(ApiMismatch, match="num_io_tensors cannot be assigned"):
        engine.num_io_tensors = 3
    with pytest.raises(ApiMismatch, match="'stream_handle' must be typing.SupportsInt"):
        engine.create_execution_context().execute_async_v3("stream")
    assert len(fake.problems) == 6


def _tiny_onnx(path: Path) -> Path:
    import onnx
    from onnx import TensorProto, helper

    inputs = [helper.make_tensor_value_info("image", TensorProto.FLOAT, ["N", 3, 4, 4]),
              helper.make_tensor_value_info("label", TensorProto.FLOAT, ["N", 1])]  # fmt: skip
    output = helper.make_tensor_value_info("output", TensorProto.FLOAT, ["N", 3, 4, 4])
    graph = helper.make_graph([helper.make_node("Identity", ["image"], ["output"])], "g", inputs, [output])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    return path


@pytest.mark.parametrize("version", list(VERSIONS))
def test_the_builder_using_a_flag_removed_in_11_fails_there_only(version, monkeypatch, tmp_path):
    """A mutation of the project's own builder: setting BuilderFlag.FP16 (as pre-10.12 code did)."""
    from stargan_export import tensorrt_build

    sim = Simulation(load_surface(version)).install(monkeypatch)
    original = tensorrt_build._load_timing_cache

    def with_fp16_flag(config, cache_path):
        config.set_flag(sim.trt.BuilderFlag.FP16)
        return original(config, cache_path)

    monkeypatch.setattr(tensorrt_build, "_load_timing_cache", with_fp16_flag)

    def build() -> None:
        tensorrt_build.onnx_to_engine(_tiny_onnx(tmp_path / "g.onnx"), tmp_path / "g.plan", min_batch=1, opt_batch=1,
                                      max_batch=2, image_size=4, c_dim=1)  # fmt: skip

    if HAS_FP16_FLAG[version]:
        build()
        assert [c["flag"].name for c in sim.fake.called("IBuilderConfig.set_flag")] == ["FP16"]
        sim.assert_clean()
    else:
        with pytest.raises(AttributeError, match="has no BuilderFlag.FP16"):
            build()
        with pytest.raises(AssertionError, match="missing: BuilderFlag.FP16"):
            sim.assert_clean()
