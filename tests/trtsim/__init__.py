"""Conformance harness for the TensorRT code: NVIDIA's real bindings' surface, a checked fake, a CPU simulation.

Usage (in a test module): from trtsim.fixtures import sim, trt_surface  # noqa: F401
(`tests/` is on sys.path because the root conftest.py lives there and tests have no __init__.py.)
"""
