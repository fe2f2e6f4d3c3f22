"""The things the latency benchmark times: the eager baseline, the raw engine, and the SDK backends.

Usage: runner = make_runner("onnxruntime", bundle, device="cpu"); runner.prepare(batch); runner.run()

Every runner takes the same host-side float32 inputs (NCHW in [-1, 1] and labels) and returns host
outputs, so GPU runners include their host<->device transfers, like an application would see them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from bench_runner_base import BASELINE, BASELINE_STRICT, ORT_RAW, TRT_RAW, Runner, make_inputs


def psnr_db(reference: np.ndarray, actual: np.ndarray) -> float:
    """PSNR over the [-1, 1] range (peak-to-peak 2), capped at 200 dB so JSON never holds infinity."""
    from stargan_sdk.bundle.tolerances import psnr_db as sdk_psnr

    return sdk_psnr(reference, actual)


def make_runner(
    name: str,
    bundle: Path,
    device: str,
    image_size: int,
    c_dim: int,
    batch_sizes: tuple[int, ...],
    pinned: bool = False,
) -> Runner:
    """`pinned`: the eager baselines and the SDK rows get page-locked input images (trt-raw always stages
    through its own pinned buffers; ort-raw is CPU only)."""
    if name == BASELINE:
        return _eager_runner(bundle, device, image_size, c_dim, tf32=True, pinned=pinned)
    if name == BASELINE_STRICT:
        return _eager_runner(bundle, device, image_size, c_dim, tf32=False, pinned=pinned)
    if name == ORT_RAW:
        return _ort_raw_runner(bundle, image_size, c_dim)
    if name == TRT_RAW:
        from bench_trt_raw import trt_raw_runner

        return trt_raw_runner(bundle, device, image_size, c_dim, max(batch_sizes))
    return _sdk_runner(name, bundle, device, image_size, c_dim, batch_sizes, pinned)


def _eager_runner(bundle: Path, device: str, image_size: int, c_dim: int, tf32: bool, pinned: bool) -> Runner:
    """The official code's way: eager PyTorch, FP32, per-instance InstanceNorm, same weights.

    The weights come from the bundle's generator.safetensors, whose keys are the official ones.
    `tf32` is cuDNN's switch as PyTorch ships it (on: convolutions in TF32 on Ampere and later); it is
    set for each call because other runners in the process may flip it. cudnn.benchmark is on, as in
    the official main.py.
    """
    import torch
    from safetensors.torch import load_file

    from stargan_train.model import Generator
    from stargan_train.weights import infer_generator_config

    state = load_file(str(bundle / "generator.safetensors"))
    G = Generator.from_config(infer_generator_config(state))
    G.load_state_dict(state, strict=True)
    G.to(device)
    feeds: dict[str, Any] = {}

    def prepare(batch: int) -> None:
        x, c = make_inputs(batch, image_size, c_dim, pinned=pinned)
        feeds["x"], feeds["c"] = x, c

    @torch.inference_mode()
    def run() -> np.ndarray:
        torch.backends.cudnn.allow_tf32 = tf32
        torch.backends.cudnn.benchmark = True
        x = torch.from_numpy(feeds["x"]).to(device)
        c = torch.from_numpy(feeds["c"]).to(device)
        return G(x, c).cpu().numpy()

    name = BASELINE if tf32 else BASELINE_STRICT
    return Runner(
        name,
        run,
        prepare,
        info={
            "precision": "fp32",
            "device": device,
            "cuda_graphs": False,
            "cudnn_tf32": tf32 and device != "cpu",
            "transfers_included": device != "cpu",
            "pinned_inputs": pinned,
        },
    )


def _ort_raw_runner(bundle: Path, image_size: int, c_dim: int) -> Runner:
    """A bare `InferenceSession.run` on the FP32 graph with default options: the engine without the SDK."""
    import onnxruntime as ort

    sess = ort.InferenceSession(str(bundle / "generator.onnx"), providers=["CPUExecutionProvider"])
    feeds: dict[str, np.ndarray] = {}

    def prepare(batch: int) -> None:
        x, c = make_inputs(batch, image_size, c_dim)
        feeds.clear()
        feeds.update({"image": x, "label": c})

    return Runner(
        ORT_RAW,
        lambda: sess.run(None, feeds)[0],
        prepare,
        info={"precision": "fp32", "device": "cpu", "provider": "CPUExecutionProvider"},
    )


def sdk_options(name: str, device: str, batch_sizes: tuple[int, ...]) -> tuple[str, dict[str, Any]]:
    """Backend and options for a benchmark row name, e.g. openvino-bf16, torch-cl, inductor-nchw."""
    options: dict[str, Any] = {}
    backend = name
    if name.startswith(("onnxruntime-", "openvino-")):  # e.g. onnxruntime-fp16, openvino-bf16, openvino-int8
        backend, options["precision"] = name.split("-", 1)
    if name == "torch-cl":  # the torch backend with NHWC (channels_last) weights
        backend, options["channels_last"] = "torch", True
    elif name.startswith("torch-") and name != BASELINE:  # torch-fp32 runs the generator in FP32
        backend, options["precision"] = "torch", name.split("-", 1)[1]
    if name.startswith("inductor"):  # inductor, inductor-fp32, inductor-nchw, inductor-autotune, inductor-pipe32
        backend, variant = "inductor", name.partition("-")[2]
        options["batch_sizes"] = tuple(batch_sizes)  # compile exactly the sizes measured
        options.update(
            {
                "": {},
                "fp32": {"precision": "fp32"},
                "nchw": {"channels_last": False},
                "autotune": {"mode": "max-autotune-no-cudagraphs"},
                "pipe32": {"pipeline_chunk": 32},
            }[variant]
        )
    if device == "cpu" and backend in ("torch", "inductor"):
        options["device_type"] = "cpu"
    return backend, options


def _sdk_runner(
    name: str, bundle: Path, device: str, image_size: int, c_dim: int, batch_sizes: tuple[int, ...], pinned: bool
) -> Runner:
    from stargan_sdk import Translator

    backend, options = sdk_options(name, device, batch_sizes)
    t = Translator.load(bundle, backend=backend, device=_ordinal(device), max_batch=max(batch_sizes), **options)
    feeds: dict[str, np.ndarray] = {}

    def prepare(batch: int) -> None:
        feeds["x"], feeds["c"] = make_inputs(batch, image_size, c_dim, pinned=pinned)

    describe = getattr(t, "describe", None)
    info = {**(describe() if callable(describe) else {"backend": t.backend_name}), "pinned_inputs": pinned}
    split = None
    backend = getattr(t, "backend", None)
    timed = backend.timed_infer if getattr(backend, "times_transfers", False) else None
    if timed is not None and device != "cpu":

        def split() -> dict[str, float]:  # median of 20 event-timed calls per phase
            runs = [timed({"image": feeds["x"], "label": feeds["c"]})[1] for _ in range(20)]
            return {k: float(np.median([r[k] for r in runs])) for k in runs[0]}

    return Runner(name, lambda: t.infer(feeds["x"], feeds["c"]), prepare, t.close, info=info, split=split)


def _ordinal(device: str) -> int:
    return int(device.split(":", 1)[1]) if ":" in device else 0


def rss_mib() -> float:
    """Current resident set size of this process (Linux /proc), MiB."""
    return _proc_status_kib("VmRSS") / 1024


def peak_rss_mib() -> float:
    return _proc_status_kib("VmHWM") / 1024


def _proc_status_kib(key: str) -> float:
    try:
        with open(f"/proc/{os.getpid()}/status") as f:
            for line in f:
                if line.startswith(key + ":"):
                    return float(line.split()[1])
    except OSError:
        pass
    return float("nan")
