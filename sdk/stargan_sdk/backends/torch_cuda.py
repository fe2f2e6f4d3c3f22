"""CUDA execution for the torch-based backends: pinned staging, a private stream, one CUDA graph per batch size.

Usage: runner = CudaGraphRunner(torch, forward, device, max_batch, (3, S, S), c_dim); y = runner.run(x, c)

Mirrors the TensorRT backend: pinned input staging and device buffers allocated once for `max_batch`, async
copies and the model on a non-default stream, and a graph captured per batch size after one warm-up run
(cuDNN's algorithm search and Inductor's compilation must not happen inside a capture). Capture failing
means eager execution from then on, with the reason kept for `describe()`. Imports nothing heavy itself:
the caller passes the torch module in.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable

import numpy as np

from stargan_sdk.hostmem import copy_into


class CudaGraphRunner:
    """Staging buffers, a private stream and per-batch-size CUDA graphs around one `forward(x, c)`.

    Args:
        torch: the imported torch module.
        forward: float32 device tensors [n, 3, S, S] and [n, c_dim] -> float32 device tensor [n, 3, S, S].
        device: the torch.device to run on.
        max_batch: largest batch; buffers are sized for it.
        image: (3, S, S).
        c_dim: label length.
        graphs: capture CUDA graphs (else eager launches every call).
    """

    def __init__(self, torch: Any, forward: Callable[[Any, Any], Any], device: Any, max_batch: int,
                 image: tuple[int, ...], c_dim: int, graphs: bool = True) -> None:
        self.torch, self.forward, self.device = torch, forward, device
        self.graphs_enabled, self.graph_error = graphs, ""
        self.stream = torch.cuda.Stream(device)
        pinned = dict(dtype=torch.float32, pin_memory=True)
        self.host_img = torch.empty((max_batch, *image), **pinned)
        self.host_lbl = torch.empty((max_batch, c_dim), **pinned)
        self.image = tuple(image)
        self.dev_img = torch.empty((max_batch, *image), dtype=torch.float32, device=device)
        self.dev_lbl = torch.empty((max_batch, c_dim), dtype=torch.float32, device=device)
        self.graphs: dict[int, tuple[Any, Any]] = {}
        self.pool = torch.cuda.graph_pool_handle()  # graphs replay one at a time, so they can share memory

    def _capture(self, n: int) -> tuple[Any, Any] | None:
        torch = self.torch
        x, c = self.dev_img[:n], self.dev_lbl[:n]
        try:
            with torch.cuda.stream(self.stream):
                self.forward(x, c)  # warm-up: algorithm choice, compilation and lazy init stay out of the capture
            self.stream.synchronize()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self.pool, stream=self.stream):
                out = self.forward(x, c)
            return graph, out
        except Exception as e:  # capture is an optimisation: any failure means eager from now on
            torch.cuda.synchronize(self.device)
            self.graphs_enabled, self.graph_error = False, f"{type(e).__name__}: {e}"
            warnings.warn(f"CUDA graph capture failed, running eagerly: {self.graph_error}", RuntimeWarning, stacklevel=3)
            return None

    def run(self, image: np.ndarray, label: np.ndarray, timings: dict[str, float] | None = None) -> np.ndarray:
        """One batch; with `timings`, CUDA events split it into h2d_ms / compute_ms / d2h_ms."""
        torch, n = self.torch, image.shape[0]
        copy_into(self.host_img[:n].numpy(), image)  # the one input copy, straight into pinned memory
        self.host_lbl[:n].numpy()[...] = label
        # The output lands in pinned memory from torch's caching host allocator and is handed out as is: no
        # second host copy, and a freed output's block is reused (after its copy's event) by a later call.
        host_out = torch.empty((n, *self.image), dtype=torch.float32, pin_memory=True)
        if self.graphs_enabled and n not in self.graphs:
            captured = self._capture(n)
            if captured is not None:
                self.graphs[n] = captured
        events = [torch.cuda.Event(enable_timing=True) for _ in range(4)] if timings is not None else None
        with torch.cuda.stream(self.stream):
            self._mark(events, 0)
            self.dev_img[:n].copy_(self.host_img[:n], non_blocking=True)
            self.dev_lbl[:n].copy_(self.host_lbl[:n], non_blocking=True)
            self._mark(events, 1)
            if n in self.graphs:
                graph, out = self.graphs[n]
                graph.replay()
            else:
                out = self.forward(self.dev_img[:n], self.dev_lbl[:n])
            self._mark(events, 2)
            host_out.copy_(out, non_blocking=True)
            self._mark(events, 3)
        self.stream.synchronize()
        if events is not None and timings is not None:
            for i, key in enumerate(("h2d_ms", "compute_ms", "d2h_ms")):
                timings[key] = events[i].elapsed_time(events[i + 1])
        return host_out.numpy()

    def _mark(self, events: list[Any] | None, i: int) -> None:
        if events is not None:
            events[i].record(self.stream)
