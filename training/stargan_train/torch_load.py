"""`torch.load` that never unpickles objects, with one-line errors: the one reader of checkpoint files.

Usage: raw = safe_torch_load(Path("runs/toy/checkpoints/000100.ckpt"))  # CheckpointError on a bad file

Below both `checkpoint` (our training checkpoints) and `weights` (any checkpoint a user holds), so neither
imports the other to read a file.
"""

from __future__ import annotations

import pickle
import pickletools
import re
import zipfile
from pathlib import Path

import torch


class CheckpointError(ValueError):
    """A checkpoint that cannot be used, with a one-sentence reason."""


def safe_torch_load(path: Path, map_location: str | torch.device = "cpu") -> object:
    """`torch.load(weights_only=True)` with one-line errors for missing, corrupt or pickled-object files."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        names = _pickle_globals(path) if _refused_by_weights_only(str(e)) else None
        if names is not None:  # a well-formed pickle holding objects: loading it would run arbitrary code
            found = _PICKLED_GLOBAL.search(str(e))
            shown = found.group(1) if found else ", ".join(names[:3]) or "opcodes weights-only loading refuses"
            raise CheckpointError(
                f"{path} contains pickled Python objects, not plain tensors; refusing to unpickle it "
                f"(unsupported global {shown})"
            ) from None
        raise CheckpointError(
            f"{path} is not a readable PyTorch checkpoint (corrupt, truncated, or not written by torch.save)"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError, ValueError) as e:
        raise CheckpointError(f"{path} is not a readable PyTorch checkpoint (corrupt or truncated): {e}") from None


# torch's wording has changed between releases ("Unsupported global: GLOBAL x.y" in 2.6, "Trying to load
# unsupported GLOBAL x.y" in 2.13, "Unsupported operand" for other opcodes): match it loosely, ignoring case.
_PICKLED_GLOBAL = re.compile(r"unsupported global:?\s+(?:GLOBAL\s+)?([\w.]+)", re.IGNORECASE)
_WEIGHTS_ONLY_REFUSAL = re.compile(
    r"weights.only load failed|weightsunpickler|unsupported (global|operand)", re.IGNORECASE
)


def _refused_by_weights_only(message: str) -> bool:
    return bool(_WEIGHTS_ONLY_REFUSAL.search(message))


def _pickle_globals(path: Path) -> list[str] | None:
    """The non-torch globals a file's pickle names, or None when it is no well-formed pickle (a damaged file:
    torch says "Unsupported operand" for text garbage too). pickletools only parses: nothing is executed."""
    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as z:
                name = next((n for n in z.namelist() if n.endswith("data.pkl")), None)
                data = z.read(name) if name else b""
        else:
            data = path.read_bytes()
        names, strings = [], []
        for op, arg, _ in pickletools.genops(data):
            if isinstance(arg, str):
                strings.append(arg)
            if op.name in ("GLOBAL", "INST"):
                names.append(str(arg).replace(" ", "."))
            elif op.name == "STACK_GLOBAL" and len(strings) >= 2:
                names.append(f"{strings[-2]}.{strings[-1]}")
    except Exception:  # noqa: BLE001  any parse failure means "not a well-formed pickle"
        return None
    return [n for n in names if not n.startswith(("torch.", "collections.OrderedDict"))]
