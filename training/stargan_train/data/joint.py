"""Joint CelebA+RaFD training helpers: the paper's mask-vector label layout and endless batch iteration.

Usage: c = joint_labels("rafd", labels, n_celeba=5)  # [B, 5 + 8 + 2]; for x, y in infinite_batches(loader): ...

Joint label layout (StarGAN paper, section 3.2): [celeba (n_celeba) | rafd (n_rafd) | mask (2)]. The block
of the dataset a batch does not come from is zero (its labels are unknown) and the mask is one-hot:
[1, 0] for CelebA, [0, 1] for RaFD, telling the generator which block to read.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

import torch

PARTS: tuple[str, ...] = ("celeba", "rafd")


def joint_labels(part: str, labels: torch.Tensor, n_celeba: int, n_rafd: int = 8) -> torch.Tensor:
    """Embed one dataset's labels [B, n_part] in the joint vector [B, n_celeba + n_rafd + 2]."""
    if part not in PARTS:
        raise ValueError(f"part must be one of {', '.join(PARTS)}, got {part!r}")
    width = n_celeba if part == "celeba" else n_rafd
    if labels.dim() != 2 or labels.shape[1] != width:
        raise ValueError(f"{part} labels must have shape [B, {width}], got {list(labels.shape)}")
    batch = labels.shape[0]
    out = labels.new_zeros((batch, n_celeba + n_rafd + 2), dtype=torch.float32)
    if part == "celeba":
        out[:, :n_celeba] = labels
        out[:, -2] = 1.0
    else:
        out[:, n_celeba : n_celeba + n_rafd] = labels
        out[:, -1] = 1.0
    return out


def infinite_batches(loader: Iterable[Any], start_epoch: int = 0) -> Iterator[Any]:
    """Yield batches forever, one pass after another; each pass tells a DistributedSampler its epoch.

    Without `set_epoch`, a DistributedSampler shuffles every epoch in the same order.
    """
    epoch = start_epoch
    while True:
        sampler = getattr(loader, "sampler", None)
        if hasattr(sampler, "set_epoch"):
            sampler.set_epoch(epoch)
        produced = False
        for batch in loader:
            produced = True
            yield batch
        if not produced:
            raise ValueError("the data loader yields no batches (dataset smaller than one batch with drop_last?)")
        epoch += 1
