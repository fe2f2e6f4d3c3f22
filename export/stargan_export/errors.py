"""Exceptions of the export stage; each carries a one-line reason that says what to do.

Usage: except stargan_export.errors.ExportError as e: print(f"error: {e}")
"""

from __future__ import annotations


class ExportError(ValueError):
    """Bad export input (attributes, sizes, opset, paths) or an export step that failed."""


class ParityError(ExportError):
    """An exported artifact's outputs differ from the torch model beyond its named tolerance."""


class EngineUnavailableError(ExportError):
    """A TensorRT engine was requested but TensorRT or a CUDA GPU is missing here."""
