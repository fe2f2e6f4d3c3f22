"""The training checkpoint's format: what a well-formed one holds, its tensor checksums, one-line errors.

Usage: payload["checksums"] = checksums(payload); check_payload(torch_load(path), path)  # CheckpointError

Below both `checkpoint` (which writes and resumes) and `weights` (which exports and evaluates), so every command
accepts exactly the same files. A checksum of the tensors is recorded at save and checked at load: zip and
safetensors keep no checksum of their own, so one flipped bit in a weight would otherwise load silently and a
`--resume` would continue from damaged weights. Version 1 files (before checksums) still load.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from stargan_train.config import RunConfig
from stargan_train.torch_load import CheckpointError

CHECKPOINT_FORMAT = "stargan-checkpoint"
CHECKPOINT_VERSION = 2  # 2: tensor checksums; 1: none
READABLE_VERSIONS = (1, 2)
MAX_ITERATION = 10**9  # 5,000x the official 200,000: anything beyond is a damaged or forged value
CHECKED_PARTS = ("G", "D", "g_optim", "d_optim", "rng")
_PARTS = {"G": "tensors", "D": "tensors", "g_optim": "optimizer", "d_optim": "optimizer", "rng": "rng"}


def tensor_digest(tree: Any) -> str:
    """sha256 of a nest of dicts, lists and tensors: keys, dtypes, shapes and raw bytes, in a fixed order."""
    h = hashlib.sha256()
    _feed(h, tree)
    return h.hexdigest()


def _feed(h: Any, value: Any) -> None:
    if isinstance(value, torch.Tensor):
        t = value.detach().to("cpu").contiguous()
        h.update(f"T{t.dtype}{tuple(t.shape)}:".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(value, Mapping):
        h.update(f"M{len(value)}:".encode())
        for key in sorted(value, key=repr):  # optimizer state is keyed by int, the rest by str
            h.update(f"K{key!r}:".encode())
            _feed(h, value[key])
    elif isinstance(value, (list, tuple)):  # a tuple may come back a list: same digest either way
        h.update(f"L{len(value)}:".encode())
        for item in value:
            _feed(h, item)
    else:
        h.update(f"V{value!r};".encode())


def checksums(payload: Mapping[str, Any]) -> dict[str, str]:
    """One digest per part (G, D, both optimizers, RNG state), so loading G alone checks only G."""
    return {part: tensor_digest(payload[part]) for part in CHECKED_PARTS}


def check_iteration(value: Any, path: Path) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_ITERATION:
        raise CheckpointError(
            f"{path} has iteration {repr(value)[:40]}: expected a whole number from 0 to "
            f"{MAX_ITERATION:,} (a damaged checkpoint?)"
        )
    return value


def parse_run_config(value: Any, path: Path) -> RunConfig:
    try:
        if not isinstance(value, Mapping):
            raise TypeError(f"a {type(value).__name__}, not an object")
        return RunConfig.from_dict(dict(value))
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError) as e:
        reason = str(e).splitlines()[0][:200] if str(e) else type(e).__name__
        raise CheckpointError(f"{path} has a malformed run config: {reason}") from None


def check_payload(raw: Any, path: Path, parts: tuple[str, ...] = CHECKED_PARTS) -> None:
    """Raise CheckpointError (one line) unless `raw` is a well-formed training checkpoint whose `parts` match
    their recorded checksums (version 2) or at least have the right types (version 1)."""
    if not isinstance(raw, dict) or raw.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path} is not a stargan training checkpoint (no '{CHECKPOINT_FORMAT}' marker)")
    version = raw.get("version")
    if isinstance(version, bool) or version not in READABLE_VERSIONS:
        raise CheckpointError(
            f"{path} has checkpoint version {str(version)[:40]}; this stargan-train reads "
            f"versions {', '.join(map(str, READABLE_VERSIONS))} (written by a newer release?)"
        )
    check_iteration(raw.get("iteration"), path)
    parse_run_config(raw.get("config"), path)
    for part in CHECKED_PARTS:
        _check_part(raw, part, path)
    if version >= 2:
        recorded = raw.get("checksums")
        if not isinstance(recorded, dict):
            raise CheckpointError(f"{path} has no tensor checksums although its version ({version}) records them")
        for part in parts:
            if recorded.get(part) != tensor_digest(raw[part]):
                raise CheckpointError(
                    f"{path}: the {part} tensors do not match their checksum; the file is damaged "
                    f"(use an earlier checkpoint)"
                )


def _check_part(raw: dict[str, Any], part: str, path: Path) -> None:
    value = raw.get(part)
    kind = _PARTS[part]
    if kind == "tensors":
        ok = (
            isinstance(value, dict)
            and bool(value)
            and all(isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in value.items())
        )
    elif kind == "optimizer":
        ok = isinstance(value, dict) and (not value or {"state", "param_groups"} <= set(value))
    else:
        ok = isinstance(value, dict) and {"torch", "numpy", "python"} <= set(value)
    if not ok:
        what = {"tensors": "a state_dict of tensors", "optimizer": "an optimizer state_dict", "rng": "the RNG states"}[
            kind
        ]
        found = "missing" if value is None else f"a {type(value).__name__}"
        raise CheckpointError(f"{path}: '{part}' should be {what}, found {found} (a damaged checkpoint?)")
