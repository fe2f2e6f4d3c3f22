"""CUDA streams, events and graphs captured from stream work (cuda-bindings).

Usage: with Stream() as s: graph = CudaGraph.capture(s, lambda: queue_work(s)); graph.launch(s); s.synchronize()
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from stargan_sdk.cuda.runtime import Resource, api, check


class Stream(Resource):
    """A non-blocking stream: it never synchronises with the legacy default stream."""

    def __init__(self) -> None:
        rt = api()
        self._handle = check(rt.cudaStreamCreateWithFlags(rt.cudaStreamNonBlocking), "cudaStreamCreateWithFlags")

    @property
    def raw(self) -> Any:
        """The cudaStream_t object for cuda-bindings calls."""
        return self._live()

    @property
    def handle(self) -> int:
        """The stream address as an int (what TensorRT's `execute_async_v3` takes)."""
        return int(self._live())

    def synchronize(self) -> None:
        check(api().cudaStreamSynchronize(self.raw), "cudaStreamSynchronize")

    def wait(self, event: Event) -> None:
        """Make later work on this stream wait until `event` completes (GPU-side, the host does not block)."""
        check(api().cudaStreamWaitEvent(self.raw, event.raw, 0), "cudaStreamWaitEvent")

    def _release(self, handle: Any) -> None:
        check(api().cudaStreamDestroy(handle), "cudaStreamDestroy")


class Event(Resource):
    """A CUDA event: ordering between streams, host synchronisation, and GPU-side timing.

    Args:
        timing: record timestamps; sync-only events (timing=False) are cheaper.
    """

    def __init__(self, timing: bool = True) -> None:
        rt = api()
        flags = rt.cudaEventDefault if timing else rt.cudaEventDisableTiming
        self._handle = check(rt.cudaEventCreateWithFlags(flags), "cudaEventCreateWithFlags")

    @property
    def raw(self) -> Any:
        return self._live()

    def record(self, stream: Stream) -> None:
        check(api().cudaEventRecord(self.raw, stream.raw), "cudaEventRecord")

    def synchronize(self) -> None:
        check(api().cudaEventSynchronize(self.raw), "cudaEventSynchronize")

    def elapsed_ms(self, end: Event) -> float:
        """Milliseconds from this (start) event to `end`; both must have completed."""
        return float(check(api().cudaEventElapsedTime(self.raw, end.raw), "cudaEventElapsedTime"))

    def _release(self, handle: Any) -> None:
        check(api().cudaEventDestroy(handle), "cudaEventDestroy")


def _instantiate(graph: Any) -> Any:
    rt = api()
    # cudaGraphInstantiateWithFlags(graph, flags) has one signature from CUDA 11.4 to 13; plain
    # cudaGraphInstantiate took (graph, errorNode, logBuffer, size) before 12 and (graph, flags) since.
    fn = getattr(rt, "cudaGraphInstantiateWithFlags", None) or rt.cudaGraphInstantiate
    exec_ = check(fn(graph, 0), "cudaGraphInstantiate")
    return exec_[0] if isinstance(exec_, tuple) else exec_


def _abort_capture(stream: Stream) -> None:
    """End a capture whose work failed so the stream is usable again; discard the partial graph."""
    rt = api()
    result = rt.cudaStreamEndCapture(stream.raw)
    if int(result[0]) == 0 and result[1] is not None and int(result[1]) != 0:
        rt.cudaGraphDestroy(result[1])
    rt.cudaGetLastError()  # capture errors are not sticky; clear the last-error slot anyway


class CudaGraph(Resource):
    """An instantiated CUDA graph captured from stream work; `launch` replays it with one call.

    Capture records work without running it, and the recorded pointers are baked in: a replay reads and
    writes the same buffers, with whatever they hold at replay time.
    """

    def __init__(self, graph: Any, graph_exec: Any) -> None:
        self._handle = (graph, graph_exec)

    @classmethod
    def capture(cls, stream: Stream, work: Callable[[], None]) -> CudaGraph:
        """Capture what `work()` queues on `stream` (thread-local mode: other threads may keep using CUDA)."""
        rt = api()
        mode = rt.cudaStreamCaptureMode.cudaStreamCaptureModeThreadLocal
        check(rt.cudaStreamBeginCapture(stream.raw, mode), "cudaStreamBeginCapture")
        try:
            work()
        except BaseException:
            _abort_capture(stream)
            raise
        graph = check(rt.cudaStreamEndCapture(stream.raw), "cudaStreamEndCapture")
        try:
            return cls(graph, _instantiate(graph))
        except BaseException:
            rt.cudaGraphDestroy(graph)
            raise

    def launch(self, stream: Stream) -> None:
        check(api().cudaGraphLaunch(self._live()[1], stream.raw), "cudaGraphLaunch")

    def _release(self, handle: Any) -> None:
        graph, graph_exec = handle
        check(api().cudaGraphExecDestroy(graph_exec), "cudaGraphExecDestroy")
        check(api().cudaGraphDestroy(graph), "cudaGraphDestroy")
