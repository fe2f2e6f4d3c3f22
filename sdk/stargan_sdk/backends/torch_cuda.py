"""CUDA execution for the torch-based backends: pinned staging, a private stream, one CUDA graph per batch size.

Usage: runner = CudaGraphRunner(torch, forward, device, max_batch, (3, S, S), c_dim)
       outs, ranges = runner.run([(x, c)])

Mirrors the TensorRT backend: device buffers allocated once for `max_batch`, async copies and the model on a
non-default stream, and a graph captured per batch size after one warm-up run (cuDNN's algorithm search and
Inductor's compilation must not happen inside a capture; capture failing means eager launches from then on,
with the reason kept for `describe()`). Several chunks in one call are pipelined: two pinned staging slots
alternate, so the host copies chunk i+1 while the GPU runs chunk i; images that already lie in page-locked
memory (e.g. `torch.empty(..., pin_memory=True).numpy()`, or an earlier output of this runner) skip that copy
and are uploaded from where they are, as the device can read them directly. Each graph also records its input's
(min, max) on the device, so the [-1, 1] check costs no host pass over the images. Outputs land in pinned
blocks of torch's caching host allocator and are handed out without a second copy. Imports nothing heavy:
the caller passes the torch module in.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from stargan_sdk.host.hostmem import copy_into

Chunk = tuple[np.ndarray, np.ndarray]


class CudaGraphRunner:
    """Staging slots, a private stream and per-batch-size CUDA graphs around one `forward(x, c)`.

    Args:
        torch: the imported torch module.
        forward: float32 device tensors [n, 3, S, S] and [n, c_dim] -> float32 device tensor [n, 3, S, S].
        device: the torch.device to run on.
        max_batch: largest chunk; buffers are sized for it.
        image: (3, S, S).
        c_dim: label length.
        graphs: capture CUDA graphs (else eager launches every call).
        dtype: the torch dtype of images in and out (torch.float32; torch.uint8 for `uint8_forward`, whose
            output has the input's shape too).
        input_range: record each input's (min, max) for the [-1, 1] check (pointless for uint8 pixels).
    """

    def __init__(
        self,
        torch: Any,
        forward: Callable[[Any, Any], Any],
        device: Any,
        max_batch: int,
        image: tuple[int, ...],
        c_dim: int,
        graphs: bool = True,
        dtype: Any = None,
        input_range: bool = True,
    ) -> None:
        self.torch, self.forward, self.device, self.image = torch, forward, device, tuple(image)
        self.graphs_enabled, self.graph_error = graphs, ""
        self.dtype = torch.float32 if dtype is None else dtype
        self.np_dtype = torch.empty(0, dtype=self.dtype).numpy().dtype
        self.input_range = input_range
        self.no_range = torch.zeros(2, dtype=torch.float32, device=device)  # what a runner without the check reports
        self.stream = torch.cuda.Stream(device)
        pinned = dict(dtype=self.dtype, pin_memory=True)
        labels = dict(dtype=torch.float32, pin_memory=True)
        self.slots = [
            (torch.empty((max_batch, *image), **pinned), torch.empty((max_batch, c_dim), **labels)) for _ in range(2)
        ]
        self.slot_free: list[Any] = [None, None]  # event after the upload that last read each slot
        self.dev_img = torch.empty((max_batch, *image), dtype=self.dtype, device=device)
        self.dev_lbl = torch.empty((max_batch, c_dim), dtype=torch.float32, device=device)
        self.graphs: dict[int, tuple[Any, Any, Any]] = {}
        self.pool = torch.cuda.graph_pool_handle()  # graphs replay one at a time, so they can share memory

    def _step(self, x: Any, c: Any) -> tuple[Any, Any]:
        """The captured work: the output and the input's (min, max); NaN propagates into both."""
        if not self.input_range:
            return self.forward(x, c), self.no_range
        low, high = self.torch.aminmax(x)
        return self.forward(x, c), self.torch.stack([low, high])

    def _capture(self, n: int) -> None:
        torch = self.torch
        x, c = self.dev_img[:n], self.dev_lbl[:n]
        try:
            with torch.cuda.stream(self.stream):
                self._step(x, c)  # warm-up: algorithm choice, compilation and lazy init stay out of the capture
            self.stream.synchronize()
            graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(graph, pool=self.pool, stream=self.stream):
                out, stats = self._step(x, c)
            self.graphs[n] = (graph, out, stats)
        except Exception as e:  # capture is an optimisation: any failure means eager from now on
            torch.cuda.synchronize(self.device)
            self.graphs_enabled, self.graph_error = False, f"{type(e).__name__}: {e}"
            warnings.warn(
                f"CUDA graph capture failed, running eagerly: {self.graph_error}", RuntimeWarning, stacklevel=3
            )

    def run(
        self, chunks: Sequence[Chunk], timings: dict[str, float] | None = None
    ) -> tuple[list[np.ndarray], list[tuple[float, float]]]:
        """Outputs and input (min, max) of each chunk, all finished. `timings` (one chunk only): CUDA events
        split it into h2d_ms / compute_ms / d2h_ms."""
        torch = self.torch
        events = [torch.cuda.Event(enable_timing=True) for _ in range(4)] if timings is not None else None
        pending = []
        for i, (image, label) in enumerate(chunks):
            slot, n = i % 2, len(image)
            if self.slot_free[slot] is not None:
                self.slot_free[slot].synchronize()  # the upload that read this slot two chunks ago is done
            host_img, host_lbl = self.slots[slot]
            source = self._pinned(image)
            if source is None:
                source = host_img[:n]
                copy_into(source.numpy(), image)  # overlaps with the GPU's work on the previous chunk
            host_lbl[:n].numpy()[...] = label
            if self.graphs_enabled and n not in self.graphs:
                self._capture(n)
            pending.append(self._enqueue(source, host_lbl[:n], slot, events))
        self.stream.synchronize()
        if events is not None and timings is not None:
            for i, key in enumerate(("h2d_ms", "compute_ms", "d2h_ms")):
                timings[key] = events[i].elapsed_time(events[i + 1])
        return [out.numpy() for out, _ in pending], [(float(s[0]), float(s[1])) for _, s in pending]

    def _pinned(self, image: np.ndarray) -> Any:
        """A tensor over `image` itself when the DMA engine can read it in place (the runner's dtype,
        C-contiguous, page-locked), else None. The run synchronises before returning, so the caller's array is
        not read after."""
        if image.dtype != self.np_dtype or not image.flags.c_contiguous or not image.flags.writeable:
            return None  # torch.from_numpy warns on read-only arrays; those take the staging copy
        tensor = self.torch.from_numpy(image)
        return tensor if tensor.is_pinned() else None

    def _enqueue(self, host_img: Any, host_lbl: Any, slot: int, events: list[Any] | None) -> tuple[Any, Any]:
        torch, n = self.torch, len(host_img)
        out_host = torch.empty((n, *self.image), dtype=self.dtype, pin_memory=True)
        stats_host = torch.empty(2, dtype=torch.float32, pin_memory=True)
        with torch.cuda.stream(self.stream):
            self._mark(events, 0)
            self.dev_img[:n].copy_(host_img, non_blocking=True)
            self.dev_lbl[:n].copy_(host_lbl, non_blocking=True)
            self.slot_free[slot] = torch.cuda.Event()
            self.slot_free[slot].record(self.stream)
            self._mark(events, 1)
            if n in self.graphs:
                graph, out, stats = self.graphs[n]
                graph.replay()
            else:
                out, stats = self._step(self.dev_img[:n], self.dev_lbl[:n])
            self._mark(events, 2)
            out_host.copy_(out, non_blocking=True)
            stats_host.copy_(stats, non_blocking=True)
            self._mark(events, 3)
        return out_host, stats_host

    def _mark(self, events: list[Any] | None, i: int) -> None:
        if events is not None:
            events[i].record(self.stream)
