"""ONNX Runtime session options tuned for this machine, shared by the ORT backend and the attribute classifier.

Usage: ort.InferenceSession(path, session_options(threads), providers=["CPUExecutionProvider"])

Not a backend: a rule below the ORT backend and the classifier, so neither imports the other.
"""

from __future__ import annotations

from typing import Any

from stargan_sdk.host.hardware import physical_cores


def session_options(threads: int | None = None) -> Any:
    """Tuned options: every graph optimisation, one intra-op thread per physical core, sequential."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL  # the graph is a chain: nothing to run in parallel
    so.intra_op_num_threads = threads or physical_cores()
    so.inter_op_num_threads = 1
    so.log_severity_level = 3  # warnings about unused initialisers etc. are noise for users
    return so
