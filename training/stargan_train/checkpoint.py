"""Training checkpoints: G, D, both optimizers, iteration, config and RNG state, written atomically.

Usage: save_checkpoint(run_dir, state); state = load_checkpoint(latest_checkpoint(run_dir))

Layout in a run dir:
    config.json                          the RunConfig (JSON)
    checkpoints/000500.ckpt              full training state (torch.save of tensors and plain types only)
    checkpoints/000500-G.safetensors     generator weights, config in the safetensors metadata
    checkpoints/000500-D.safetensors     discriminator weights

Every file is written to a temporary name in the same folder and renamed into place, so a run killed at
any moment leaves either the previous complete checkpoint or the new complete one, never a torn file.
Checkpoints hold only tensors and plain Python values, so they load with `weights_only=True`.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import save_file

from stargan_train.checkpoint_format import (
    CHECKPOINT_FORMAT,
    CHECKPOINT_VERSION,
    check_payload,
    checksums,
    parse_run_config,
    tensor_digest,
)
from stargan_train.config import RunConfig
from stargan_train.files import atomic_write, atomic_write_text
from stargan_train.torch_load import CheckpointError, safe_torch_load
from stargan_train.upgrade import upgrade_train_state

__all__ = [
    "CHECKPOINT_FORMAT",
    "CHECKPOINT_VERSION",
    "CheckpointError",
    "TrainState",
    "load_checkpoint",
    "save_checkpoint",
]
_CKPT_RE = re.compile(r"^(\d+)\.ckpt$")


@dataclass
class TrainState:
    iteration: int
    config: RunConfig
    G: dict[str, torch.Tensor]
    D: dict[str, torch.Tensor]
    g_optim: dict[str, Any]
    d_optim: dict[str, Any]
    rng: dict[str, Any]


def capture_rng() -> dict[str, Any]:
    """RNG state of torch, numpy and random as tensors and plain values (weights_only-loadable)."""
    np_name, np_keys, np_pos, np_has_gauss, np_gauss = np.random.get_state()
    py_version, py_state, py_gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "numpy": {
            "name": np_name,
            "keys": torch.from_numpy(np_keys.astype(np.int64)),
            "pos": int(np_pos),
            "has_gauss": int(np_has_gauss),
            "gauss": float(np_gauss),
        },
        "python": {"version": py_version, "state": list(py_state), "gauss": py_gauss},
    }


def restore_rng(rng: dict[str, Any]) -> None:
    torch.set_rng_state(rng["torch"])
    n = rng["numpy"]
    np.random.set_state((n["name"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = rng["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))


def checkpoint_dir(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints"


def list_checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    """(iteration, path) of every complete checkpoint in a run dir, oldest first."""
    folder = checkpoint_dir(run_dir)
    if not folder.is_dir():
        return []
    found = []
    for p in folder.iterdir():
        m = _CKPT_RE.match(p.name)
        if m:
            found.append((int(m.group(1)), p))
    return sorted(found)


def latest_checkpoint(run_dir: Path) -> Path | None:
    found = list_checkpoints(run_dir)
    return found[-1][1] if found else None


def save_checkpoint(run_dir: Path, state: TrainState, keep: int = 0) -> Path:
    """Write the full state plus safetensors weights; keep only the newest `keep` (0 = all)."""
    folder = checkpoint_dir(run_dir)
    stem = f"{state.iteration:06d}"
    config_json = json.dumps(state.config.to_dict(), sort_keys=True)
    meta = {"format": CHECKPOINT_FORMAT, "iteration": str(state.iteration), "config": config_json}
    # Weights first, the full checkpoint last: a `.ckpt` that exists implies its weights exist too.
    for name, sd in (("G", state.G), ("D", state.D)):
        tensors = {k: v.detach().contiguous().cpu() for k, v in sd.items()}
        part_meta = {**meta, "checksum": tensor_digest(tensors)}  # the same digest as the .ckpt's for this part
        atomic_write(
            folder / f"{stem}-{name}.safetensors", lambda p, t=tensors, m=part_meta: save_file(t, str(p), metadata=m)
        )
    payload = {
        "format": CHECKPOINT_FORMAT,
        "version": CHECKPOINT_VERSION,
        "iteration": state.iteration,
        "config": state.config.to_dict(),
        "G": state.G,
        "D": state.D,
        "g_optim": state.g_optim,
        "d_optim": state.d_optim,
        "rng": state.rng,
    }
    payload["checksums"] = checksums(payload)
    path = folder / f"{stem}.ckpt"
    atomic_write(path, lambda p: torch.save(payload, p))
    atomic_write_text(Path(run_dir) / "config.json", json.dumps(state.config.to_dict(), indent=2) + "\n")
    if keep > 0:
        for _, old in list_checkpoints(run_dir)[:-keep]:
            _remove_checkpoint(old)
    return path


def _remove_checkpoint(ckpt: Path) -> None:
    stem = ckpt.stem
    ckpt.unlink(missing_ok=True)  # the .ckpt first, so a half-removed checkpoint is never listed
    for suffix in ("-G.safetensors", "-D.safetensors"):
        (ckpt.parent / f"{stem}{suffix}").unlink(missing_ok=True)


def load_checkpoint(path: Path, map_location: str | torch.device = "cpu") -> TrainState:
    """Load a full training checkpoint written by `save_checkpoint` (CheckpointError, one line, for a
    malformed or damaged one: a resume never continues from weights that fail their checksum)."""
    raw = safe_torch_load(Path(path), map_location)
    check_payload(raw, Path(path))
    assert isinstance(raw, dict)
    state = TrainState(
        iteration=raw["iteration"],
        config=parse_run_config(raw["config"], Path(path)),
        G=raw["G"],
        D=raw["D"],
        g_optim=raw["g_optim"],
        d_optim=raw["d_optim"],
        rng=raw["rng"],
    )
    return upgrade_train_state(state)  # joint runs written before the 13-logit D (see upgrade.py)
