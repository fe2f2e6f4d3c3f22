"""Random data augmentation that is a function of (seed, epoch, image), whichever process draws it.

Usage: ds = SeededItems(dataset); ds[(index, draw_seed(seed, epoch, index))]  # the same tensor every time

The official transform flips with torch's global RNG. In DataLoader workers that RNG is seeded per worker and
per loader, so which flips an image gets depended on where a run (re)started and on the worker count: a run
resumed mid-epoch drew other flips than the uninterrupted one. Seeding the draws of each item from its own key
makes `--resume` exact with any `--num-workers` and leaves the caller's RNG untouched.
"""

from __future__ import annotations

import hashlib

import torch
from torch.utils.data import Dataset


def draw_seed(seed: int, epoch: int, index: int) -> int:
    """A 63-bit seed for one image in one epoch; a hash, so nearby keys give unrelated streams."""
    digest = hashlib.blake2b(f"{seed}/{epoch}/{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") >> 1


class SeededItems(Dataset):
    """`dataset[index]` computed under `torch.manual_seed(key)` for items `(index, key)`; the global RNG state
    is restored afterwards (in the main process it drives training, with `--num-workers 0`)."""

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    def __len__(self) -> int:
        return len(self.dataset)  # type: ignore[arg-type]

    def __getitem__(self, item: tuple[int, int]):  # type: ignore[no-untyped-def]
        index, key = item
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(key)
            return self.dataset[index]
