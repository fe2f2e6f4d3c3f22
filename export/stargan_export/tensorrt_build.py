"""ONNX → TensorRT engine (raw plan file), TensorRT 10.x and 11.x Python API; all version branches live here.

Usage: info = onnx_to_engine("b/generator.fp16.onnx", "b/generator.plan", min_batch=1, opt_batch=8,
       max_batch=64, image_size=128, c_dim=5, workspace_gib=4.0, timing_cache_path="b/timing.cache")
       uint8_engines("b", batches=(1, 8, 64), image_size=128, mean=m, std=s)  # preprocess.plan, postprocess.plan
       classifier_engine("b/classifier.onnx", "b/classifier.plan", batches=(1, 8, 64), image_size=128)

Networks are strongly typed: precision comes from the ONNX graph (FP16 convolutions, FP32 norms), never
from builder flags (BuilderFlag.FP16 is deprecated since 10.12 and gone in 11). On 11.x strong typing is
always on and the creation flag is accepted and ignored, so setting it is right for both.
"""

from __future__ import annotations

import importlib.util
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from stargan_export.errors import EngineUnavailableError, ExportError
from stargan_sdk import cuda
from stargan_sdk.backends.tensorrt_compat import import_tensorrt
from stargan_sdk.bundle.constants import (
    CLASSIFIER_INPUT,
    INPUT_IMAGE,
    INPUT_LABEL,
    OUTPUT_IMAGE,
    PIXELS,
    POSTPROCESS_PLAN,
    PREPROCESS_PLAN,
)
from stargan_sdk.errors import BackendUnavailableError
from stargan_sdk.host.files import atomic_write_bytes

INSTALL_HINT = "pip install stargan[tensorrt] on a machine with an NVIDIA GPU"


@dataclass(frozen=True)
class EngineInfo:
    tensorrt_version: str
    gpu_name: str
    compute_capability: str


def engine_unavailable_reason() -> str | None:
    """Why no engine can be built here (one line), or None when TensorRT and a CUDA GPU are present."""
    if importlib.util.find_spec("tensorrt") is None:
        return f"TensorRT is not installed ({INSTALL_HINT})"
    available = cuda.cuda_available()  # the SDK's view of the GPU: the same one that will run the engine
    if not available.ok:
        return f"no usable CUDA GPU: {available.reason} ({INSTALL_HINT})"
    return None


def gpu_properties() -> tuple[str, str]:
    """(name, "major.minor") of GPU 0, the one engines are built on."""
    gpu = cuda.device_properties(0)
    return gpu.name, gpu.compute_capability


def _network_flags(trt: Any) -> int:
    # The bit position is read from the enum: STRONGLY_TYPED's value changed between 10.x and 11.x.
    flag = getattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED", None)
    return 0 if flag is None else 1 << int(flag)


def _parse(trt: Any, network: Any, logger: Any, onnx_path: Path) -> Any:
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        lines = []
        for i in range(parser.num_errors):
            error = parser.get_error(i)
            lines.append(f"node {error.node()}: {error.desc()}")
        raise ExportError(f"TensorRT could not parse {onnx_path.name}:\n" + "\n".join(lines or ["(no details)"]))
    return parser


def _load_timing_cache(config: Any, cache_path: Path | None) -> Any:
    data = cache_path.read_bytes() if cache_path is not None and cache_path.is_file() else b""
    cache = config.create_timing_cache(data)
    config.set_timing_cache(cache, ignore_mismatch=True)  # a cache from another GPU/version is just ignored
    return cache


def onnx_to_engine(
    onnx_path: str | Path,
    plan_path: str | Path,
    *,
    min_batch: int,
    opt_batch: int,
    max_batch: int,
    image_size: int,
    c_dim: int,
    workspace_gib: float = 4.0,
    timing_cache_path: str | Path | None = None,
) -> EngineInfo:
    """Build a strongly typed engine with one batch profile on both inputs; write the raw plan atomically."""
    rows = {INPUT_IMAGE: (3, image_size, image_size), INPUT_LABEL: (c_dim,)}
    batches = (min_batch, opt_batch, max_batch)
    return build_engine(onnx_path, plan_path, rows, batches, workspace_gib, timing_cache_path)


def uint8_engines(
    folder: str | Path,
    *,
    batches: tuple[int, int, int],
    image_size: int,
    mean: Sequence[float],
    std: Sequence[float],
    timing_cache_path: str | Path | None = None,
) -> EngineInfo:
    """preprocess.plan and postprocess.plan in `folder`: the tiny uint8 <-> float graphs of `uint8_graphs` as
    engines with the generator's batch profile (their ONNX is built in a temporary folder, not shipped)."""
    from stargan_export.onnx_export import save_onnx
    from stargan_export.uint8_graphs import postprocess_graph, preprocess_graph

    s, info = image_size, None
    jobs = (
        (PREPROCESS_PLAN, preprocess_graph, {PIXELS: (s, s, 3)}),
        (POSTPROCESS_PLAN, postprocess_graph, {OUTPUT_IMAGE: (3, s, s)}),
    )
    with tempfile.TemporaryDirectory(prefix="stargan-uint8-") as tmp:
        for plan, graph, rows in jobs:
            onnx_path = Path(tmp) / Path(plan).with_suffix(".onnx").name
            save_onnx(graph(image_size, mean, std), onnx_path)
            # a few kB of elementwise work: a small workspace is plenty
            info = build_engine(onnx_path, Path(folder) / plan, rows, batches, 0.25, timing_cache_path)
    assert info is not None
    return info


def classifier_engine(
    onnx_path: str | Path,
    plan_path: str | Path,
    *,
    batches: tuple[int, int, int],
    image_size: int,
    workspace_gib: float = 1.0,
    timing_cache_path: str | Path | None = None,
) -> EngineInfo:
    """classifier.plan from the bundle's FP32 classifier.onnx, with the generator's batch profile: it reads what
    preprocess.plan writes, so both must take the same batches (TF32 off, as every engine here)."""
    rows = {CLASSIFIER_INPUT: (3, image_size, image_size)}
    return build_engine(onnx_path, plan_path, rows, batches, workspace_gib, timing_cache_path)


def build_engine(
    onnx_path: str | Path,
    plan_path: str | Path,
    rows: dict[str, tuple[int, ...]],
    batches: tuple[int, int, int],
    workspace_gib: float,
    timing_cache_path: str | Path | None,
) -> EngineInfo:
    """A strongly typed engine from an ONNX graph with one profile over the batch dimension of every input
    (`rows`: each input's shape after the batch); the raw plan written atomically."""
    reason = engine_unavailable_reason()
    if reason is not None:
        raise EngineUnavailableError(f"cannot build a TensorRT engine: {reason}")
    min_batch, opt_batch, max_batch = batches
    if not 1 <= min_batch <= opt_batch <= max_batch:
        raise ExportError(f"batch profile needs 1 <= min <= opt <= max, got {min_batch}/{opt_batch}/{max_batch}")
    try:
        trt = import_tensorrt()  # the SDK's import: the same version floor and library errors as at run time
    except BackendUnavailableError as e:
        raise EngineUnavailableError(f"cannot build a TensorRT engine: {e}") from None
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(_network_flags(trt))
    _parser = _parse(trt, network, logger, Path(onnx_path))  # keep alive until the build: it owns weights
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * (1 << 30)))
    if hasattr(trt.BuilderFlag, "TF32"):
        # FP32 tensors stay true FP32 so an FP32 engine meets its parity tolerance; FP16 is in the graph.
        config.clear_flag(trt.BuilderFlag.TF32)
    profile = builder.create_optimization_profile()
    for name, row in rows.items():
        # Explicit Dims: set_shape is declared with Dims only, and a tuple would rely on an implicit conversion
        profile.set_shape(name, *[trt.Dims([b, *row]) for b in batches])
    config.add_optimization_profile(profile)
    cache_path = Path(timing_cache_path) if timing_cache_path is not None else None
    cache = _load_timing_cache(config, cache_path)
    plan = builder.build_serialized_network(network, config)
    if plan is None:
        raise ExportError("TensorRT failed to build the engine (see the TensorRT log above)")
    data = bytes(plan)  # exactly the serialized engine, no header of ours in front (ultralytics #15025)
    atomic_write_bytes(Path(plan_path), data)
    if cache_path is not None:
        cache_bytes = bytes(cache.serialize())
        atomic_write_bytes(cache_path, cache_bytes)
    name, capability = gpu_properties()
    return EngineInfo(tensorrt_version=trt.__version__, gpu_name=name, compute_capability=capability)
