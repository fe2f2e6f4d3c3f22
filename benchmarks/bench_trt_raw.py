"""The raw TensorRT engine, as trtexec runs it: the plan, one execution context, no SDK in between.

Usage: runner = trt_raw_runner(bundle, "cuda", image_size=128, c_dim=5, max_batch=64)

The "x raw engine" column compares each backend with this. Host float32 in and out through pinned
buffers (torch allocates them and the device buffers), the v3 named-tensor API on a private stream.
Uses only calls that TensorRT 10 and 11 share; needs tensorrt and a CUDA torch.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from bench_runner_base import TRT_RAW, Runner, make_inputs


def trt_raw_runner(bundle: Path, device: str, image_size: int, c_dim: int, max_batch: int) -> Runner:
    import tensorrt as trt
    import torch

    if device == "cpu":
        raise RuntimeError("the raw TensorRT engine needs a CUDA device")
    plan = (bundle / "generator.plan").read_bytes()
    runtime = trt.Runtime(trt.Logger(trt.Logger.ERROR))
    engine = runtime.deserialize_cuda_engine(plan)
    if engine is None:
        raise RuntimeError("TensorRT could not deserialize generator.plan (built for another version or GPU)")
    context = engine.create_execution_context()
    dev = torch.device(device)
    stream = torch.cuda.Stream(dev)
    shape = (max_batch, 3, image_size, image_size)
    host = {
        "image": torch.empty(shape, pin_memory=True),
        "label": torch.empty((max_batch, c_dim), pin_memory=True),
        "output": torch.empty(shape, pin_memory=True),
    }
    gpu = {k: torch.empty(v.shape, device=dev) for k, v in host.items()}
    for name, tensor in gpu.items():
        context.set_tensor_address(name, tensor.data_ptr())
    state: dict[str, Any] = {}

    def prepare(batch: int) -> None:
        x, c = make_inputs(batch, image_size, c_dim)
        host["image"][:batch].numpy()[...] = x
        host["label"][:batch].numpy()[...] = c
        context.set_input_shape("image", (batch, 3, image_size, image_size))
        context.set_input_shape("label", (batch, c_dim))
        state["n"] = batch

    def run() -> np.ndarray:
        n = state["n"]
        with torch.cuda.stream(stream):
            gpu["image"][:n].copy_(host["image"][:n], non_blocking=True)
            gpu["label"][:n].copy_(host["label"][:n], non_blocking=True)
            if not context.execute_async_v3(stream.cuda_stream):
                raise RuntimeError("TensorRT execute_async_v3 failed")
            host["output"][:n].copy_(gpu["output"][:n], non_blocking=True)
        stream.synchronize()
        return host["output"][:n].numpy().copy()

    return Runner(
        TRT_RAW,
        run,
        prepare,
        info={"precision": "plan", "device": device, "cuda_graphs": False, "transfers_included": True},
    )
