"""Load a generator or discriminator from any checkpoint a user holds: ours or the official StarGAN ones.

Usage: loaded = load_generator("runs/toy"); loaded.model(x, c); loaded.config.c_dim

Accepted sources:
  * a run dir (its newest `checkpoints/NNNNNN.ckpt`),
  * one of our `NNNNNN.ckpt` training checkpoints or `NNNNNN-G.safetensors` / `-D.safetensors` files,
  * an official `200000-G.ckpt` / `-D.ckpt` (a plain state_dict; InstanceNorm running-stat keys dropped).
Architecture sizes are inferred from tensor shapes; everything else is strict. Never unpickles objects.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open

from stargan_train.checkpoint import latest_checkpoint
from stargan_train.checkpoint_format import (
    CHECKPOINT_FORMAT,
    check_iteration,
    check_payload,
    parse_run_config,
    tensor_digest,
)
from stargan_train.config import DiscriminatorConfig, GeneratorConfig, RunConfig
from stargan_train.model import Discriminator, Generator
from stargan_train.torch_load import CheckpointError, safe_torch_load
from stargan_train.upgrade import upgrade_discriminator, upgrade_run_config

_RUNNING_STAT_SUFFIXES = (".running_mean", ".running_var", ".num_batches_tracked")
_RES_KEY = re.compile(r"^main\.(\d+)\.main\.0\.weight$")
_D_CONV_KEY = re.compile(r"^main\.(\d+)\.weight$")


@dataclass
class Loaded:
    model: torch.nn.Module
    config: GeneratorConfig | DiscriminatorConfig
    source: Path  # the file actually read
    sha256: str
    kind: str  # "official" | "stargan-checkpoint" | "safetensors"
    run_config: RunConfig | None  # present for our own checkpoints
    iteration: int | None


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def resolve_source(source: str | Path) -> Path:
    """Map a run dir to its newest checkpoint; check that a file exists."""
    path = Path(source)
    if path.is_dir():
        latest = latest_checkpoint(path)
        if latest is None:
            raise CheckpointError(f"{path} is a folder without checkpoints/NNNNNN.ckpt; is it a run dir?")
        return latest
    if not path.exists():
        raise CheckpointError(f"checkpoint not found: {path}")
    return path


def _strip_running_stats(sd: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v for k, v in sd.items() if not k.endswith(_RUNNING_STAT_SUFFIXES)}


def infer_generator_config(sd: dict[str, torch.Tensor]) -> GeneratorConfig:
    w0 = sd.get("main.0.weight")
    if w0 is None or w0.ndim != 4:
        raise CheckpointError("not a StarGAN generator state_dict: 'main.0.weight' (the 7x7 input conv) is missing")
    repeat = sum(1 for k in sd if _RES_KEY.match(k))
    if w0.shape[1] < 4:
        raise CheckpointError(f"generator input conv takes {w0.shape[1]} channels; expected 3 + c_dim")
    return GeneratorConfig(conv_dim=int(w0.shape[0]), c_dim=int(w0.shape[1]) - 3, repeat_num=repeat)


def infer_discriminator_config(sd: dict[str, torch.Tensor]) -> DiscriminatorConfig:
    if "conv2.weight" not in sd or "main.0.weight" not in sd:
        raise CheckpointError("not a StarGAN discriminator state_dict: 'main.0.weight' or 'conv2.weight' is missing")
    repeat = sum(1 for k in sd if _D_CONV_KEY.match(k))
    kernel = int(sd["conv2.weight"].shape[-1])
    return DiscriminatorConfig(
        image_size=kernel * 2**repeat,
        conv_dim=int(sd["main.0.weight"].shape[0]),
        c_dim=int(sd["conv2.weight"].shape[0]),
        repeat_num=repeat,
    )


def _safetensors_metadata(path: Path, meta: dict[str, str]) -> tuple[RunConfig | None, int | None]:
    """The run config and iteration our checkpoints store in the safetensors header, checked."""
    try:
        config = json.loads(meta["config"]) if "config" in meta else None
        iteration = int(meta["iteration"]) if "iteration" in meta else None
    except (ValueError, TypeError, RecursionError) as e:
        raise CheckpointError(
            f"{path} has malformed metadata (config/iteration): {type(e).__name__}: "
            f"{str(e).splitlines()[0] if str(e) else ''}"
        ) from None
    run_config = None if config is None else parse_run_config(config, path)
    return run_config, None if iteration is None else check_iteration(iteration, path)


def _check_safetensors_checksum(path: Path, sd: dict[str, torch.Tensor], meta: dict[str, str]) -> None:
    """Our own files record the digest of their tensors (older ones and other writers' files do not)."""
    if "checksum" in meta and meta["checksum"] != tensor_digest(sd):
        raise CheckpointError(
            f"{path}: the tensors do not match their checksum; the file is damaged (use an earlier checkpoint)"
        )


def _read_state_dicts(path: Path, part: str) -> tuple[dict[str, torch.Tensor], str, RunConfig | None, int | None]:
    """(state_dict, kind, run_config, iteration) for part 'G' or 'D' from any supported file.

    Our own joint checkpoints from before the 13-logit discriminator come back upgraded (see `upgrade`).
    """
    sd, kind, run_config, iteration = _read_raw(path, part)
    if part == "D":
        sd, run_config = upgrade_discriminator(sd, run_config)
    return sd, kind, upgrade_run_config(run_config), iteration


def _read_raw(path: Path, part: str) -> tuple[dict[str, torch.Tensor], str, RunConfig | None, int | None]:
    if path.suffix == ".safetensors":
        try:
            with safe_open(str(path), framework="pt") as f:
                meta = f.metadata() or {}
            sd = load_file(str(path))
        except (SafetensorError, OSError) as e:
            raise CheckpointError(f"{path} is not a readable safetensors file: {e}") from None
        run_config, iteration = _safetensors_metadata(path, meta)
        _check_safetensors_checksum(path, sd, meta)
        return sd, "safetensors", run_config, iteration
    raw = safe_torch_load(path)
    if isinstance(raw, dict) and "format" in raw:  # ours (any malformed field is a one-line CheckpointError)
        check_payload(raw, path, parts=(part,))
        return raw[part], CHECKPOINT_FORMAT, parse_run_config(raw["config"], path), raw["iteration"]
    if isinstance(raw, dict) and raw and all(isinstance(v, torch.Tensor) for v in raw.values()):
        return raw, "official", None, None
    raise CheckpointError(f"{path} is neither a StarGAN state_dict nor a stargan training checkpoint")


def _load_strict(model: torch.nn.Module, sd: dict[str, torch.Tensor], path: Path, what: str) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(sd))
    unexpected = sorted(set(sd) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {', '.join(missing[:4])}{' ...' if len(missing) > 4 else ''}")
        if unexpected:
            parts.append(f"unexpected {', '.join(unexpected[:4])}{' ...' if len(unexpected) > 4 else ''}")
        raise CheckpointError(f"{path} does not match the StarGAN {what} layout: {'; '.join(parts)}")
    for key, tensor in sd.items():
        if tuple(tensor.shape) != tuple(expected[key].shape):
            raise CheckpointError(
                f"{path}: tensor {key} has shape {tuple(tensor.shape)}, the {what} expects {tuple(expected[key].shape)}"
            )
    model.load_state_dict(sd, strict=True)


def load_generator(source: str | Path, c_dim: int | None = None, map_location: str = "cpu") -> Loaded:
    """Build a Generator from a checkpoint; `c_dim`, when given, must match the checkpoint's label size."""
    path = resolve_source(source)
    sd, kind, run_config, iteration = _read_state_dicts(path, "G")
    sd = _strip_running_stats(sd)
    config = infer_generator_config(sd)
    if c_dim is not None and c_dim != config.c_dim:
        raise CheckpointError(
            f"{path} was trained with c_dim {config.c_dim} (labels of length {config.c_dim}), "
            f"but {c_dim} attributes were requested"
        )
    model = Generator.from_config(config)
    _load_strict(model, sd, path, "generator")
    model.to(map_location)
    return Loaded(model, config, path, sha256_file(path), kind, run_config, iteration)


def load_discriminator(source: str | Path, image_size: int | None = None, map_location: str = "cpu") -> Loaded:
    """Build a Discriminator; `image_size`, when given, must match the size its classifier kernel implies."""
    path = resolve_source(source)
    if sibling := _official_d_path(path):  # given the G file of a pair, read the D beside it
        path = sibling
    sd, kind, run_config, iteration = _read_state_dicts(path, "D")
    config = infer_discriminator_config(sd)
    if image_size is not None and image_size != config.image_size:
        raise CheckpointError(
            f"{path} is a discriminator for {config.image_size}px images (classifier kernel "
            f"{config.cls_kernel_size}), not {image_size}px"
        )
    model = Discriminator.from_config(config)
    _load_strict(model, sd, path, "discriminator")
    model.to(map_location)
    return Loaded(model, config, path, sha256_file(path), kind, run_config, iteration)


def _official_d_path(path: Path) -> Path | None:
    """For an official `NNN-G.ckpt` or our `NNN-G.safetensors`, the sibling D file (if it exists)."""
    for g_suffix, d_suffix in (("-G.ckpt", "-D.ckpt"), ("-G.safetensors", "-D.safetensors")):
        if path.name.endswith(g_suffix):
            sibling = path.with_name(path.name[: -len(g_suffix)] + d_suffix)
            if not sibling.exists():
                raise CheckpointError(f"no discriminator next to {path}: expected {sibling.name}")
            return sibling
    return None
