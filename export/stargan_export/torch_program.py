"""Torch → `torch.export` program (`generator.pt2`) with a dynamic batch dim, for the SDK's torch backend.

Usage: torch_to_pt2(generator, "bundle/generator.pt2", image_size=128, c_dim=5); load_pt2(path)(x, c)

The program is traced on CPU. Its graph asserts the example's device (an `_assert_tensor_metadata` node),
so a runtime that wants CUDA must call `torch.export.passes.move_to_device_pass(program, "cuda")` before
`.module()`; moving the module with `.to()` alone is not enough.
"""

from __future__ import annotations

import io
from pathlib import Path

import torch

from stargan_export.atomic import write_bytes
from stargan_export.errors import ExportError


def torch_to_pt2(generator: torch.nn.Module, path: str | Path, image_size: int, c_dim: int) -> torch.export.ExportedProgram:
    """Export the generator with `torch.export` (batch dim dynamic, ≥ 1) and save it atomically."""
    generator = generator.eval()
    example = (torch.zeros(2, 3, image_size, image_size), torch.zeros(2, c_dim))
    batch = torch.export.Dim("N", min=1)
    try:
        program = torch.export.export(generator, example, dynamic_shapes=({0: batch}, {0: batch}))
    except Exception as e:  # torch.export raises several internal types; report one line
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ExportError(f"torch.export of the generator failed: {first}") from e
    buffer = io.BytesIO()
    # Saved through a buffer: torch.export.save wants a `.pt2` file name, and the atomic temp name is not.
    torch.export.save(program, buffer)
    write_bytes(Path(path), buffer.getvalue())
    return program


def load_pt2(path: str | Path, device: str = "cpu") -> torch.nn.Module:
    """The callable module of a saved program, moved to `device` (see the module docstring)."""
    try:
        with open(path, "rb") as f:
            program = torch.export.load(f)
    except Exception as e:  # version skew or a damaged archive: torch raises many internal types
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise ExportError(f"torch {torch.__version__} cannot load {Path(path).name}: {first}") from None
    if device != "cpu":
        from torch.export.passes import move_to_device_pass  # a submodule: not loaded by `import torch`

        program = move_to_device_pass(program, device)
    return program.module()
