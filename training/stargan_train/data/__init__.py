"""Datasets and loaders for training and evaluation: CelebA (and toyfaces, same layout), RaFD, and both jointly.

Usage: loaders = build_loaders(cfg.data, batch_size=16); images, labels = next(iter(loaders["celeba"]))

Every loader yields (images float32 [B,3,H,W] in [-1,1], labels float32 [B,n]): n = len(selected_attrs)
0/1 values for CelebA, n = 8 one-hot for RaFD. Joint mode returns both loaders; `joint_labels` builds the
paper's [celeba | rafd | mask] vector from either one's labels.
"""

from __future__ import annotations

from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from stargan_train.config import DataConfig
from stargan_train.data.celeba import CelebADataset
from stargan_train.data.errors import DatasetError
from stargan_train.data.joint import infinite_batches, joint_labels
from stargan_train.data.rafd import RaFDDataset, rafd_split_dir
from stargan_train.data.transforms import SPLITS, build_transform

__all__ = [
    "DatasetError",
    "build_dataset",
    "build_loaders",
    "dataset_parts",
    "infinite_batches",
    "joint_labels",
    "make_loader",
]

_PARTS_BY_MODE: dict[str, tuple[str, ...]] = {
    "celeba": ("celeba",),
    "toyfaces": ("celeba",),
    "rafd": ("rafd",),
    "both": ("celeba", "rafd"),
}


def dataset_parts(mode: str) -> tuple[str, ...]:
    """The datasets a mode reads: ("celeba",), ("rafd",) or ("celeba", "rafd") for joint training."""
    if mode not in _PARTS_BY_MODE:
        raise DatasetError(f"unknown dataset mode {mode!r}; expected one of {', '.join(_PARTS_BY_MODE)}")
    return _PARTS_BY_MODE[mode]


def build_dataset(data: DataConfig, part: str, split: str) -> Dataset:
    """One split ("train" | "test") of one dataset ("celeba" | "rafd") with the official transform."""
    if split not in SPLITS:
        raise DatasetError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if part == "celeba":
        transform = build_transform(data.celeba_crop_size, data.image_size, split)
        ds = CelebADataset(
            data.celeba_image_dir,
            data.attr_path,
            data.selected_attrs,
            split,
            transform,
            test_count=data.test_count,
            seed=data.seed,
        )
        _check_crop_fits(ds.image_dir / ds.filenames[0], data.celeba_crop_size, "celeba_crop_size")
    elif part == "rafd":
        transform = build_transform(data.rafd_crop_size, data.image_size, split)
        ds = RaFDDataset(rafd_split_dir(data, split), transform)
        _check_crop_fits(ds.samples[0][0], data.rafd_crop_size, "rafd_crop_size")
    else:
        raise DatasetError(f"unknown dataset part {part!r}; expected 'celeba' or 'rafd'")
    return ds


def _check_crop_fits(path: Path, crop: int, option: str) -> None:
    """Fail at construction, not at the first batch: read the first image's header (cheap) and compare."""
    try:
        with Image.open(path) as img:
            width, height = img.size
    except OSError as e:
        raise DatasetError(f"cannot read image {path}: {e}") from None
    if crop > width or crop > height:
        raise DatasetError(f"{path}: crop size {crop} is larger than the image ({width}x{height} px); lower {option}")


def build_loaders(
    data: DataConfig,
    batch_size: int,
    split: str = "train",
    *,
    rank: int = 0,
    world_size: int = 1,
    seed: int = 0,
    num_workers: int | None = None,
    drop_last: bool | None = None,
    shuffle: bool | None = None,
) -> dict[str, DataLoader]:
    """One DataLoader per dataset the mode reads, keyed "celeba" / "rafd".

    shuffle and drop_last default to `split == "train"`; num_workers to `data.num_workers`. With
    world_size > 1 each rank reads a disjoint shard through a DistributedSampler seeded with `seed`
    (call `sampler.set_epoch`, or iterate with `infinite_batches`, to reshuffle every epoch).
    """
    train = split == "train"
    options = {
        "batch_size": batch_size,
        "shuffle": train if shuffle is None else shuffle,
        "drop_last": train if drop_last is None else drop_last,
        "num_workers": data.num_workers if num_workers is None else num_workers,
        "rank": rank,
        "world_size": world_size,
        "seed": seed,
    }
    parts = dataset_parts(data.dataset)
    return {part: make_loader(build_dataset(data, part, split), **options) for part in parts}


def make_loader(
    dataset: Dataset,
    batch_size: int,
    *,
    shuffle: bool,
    drop_last: bool,
    num_workers: int,
    rank: int = 0,
    world_size: int = 1,
    seed: int = 0,
) -> DataLoader:
    """A seeded DataLoader over `dataset`; sharded with a DistributedSampler when world_size > 1."""
    if batch_size <= 0:
        raise DatasetError(f"batch_size must be > 0, got {batch_size}")
    if num_workers < 0:
        raise DatasetError(f"num_workers must be >= 0, got {num_workers}")
    if world_size < 1 or not 0 <= rank < world_size:
        raise DatasetError(f"rank {rank} is outside world_size {world_size}")
    sampler = None
    if world_size > 1:
        sampler = DistributedSampler(
            dataset, num_replicas=world_size, rank=rank, shuffle=shuffle, seed=seed, drop_last=drop_last
        )
    per_rank = len(sampler) if sampler is not None else len(dataset)
    if drop_last and per_rank < batch_size:
        raise DatasetError(
            f"only {per_rank} image(s) per process for batch size {batch_size}: with drop_last no batch "
            f"would ever be produced; lower the batch size or add images"
        )
    generator = torch.Generator()
    generator.manual_seed(seed)
    return DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        drop_last=drop_last,
        num_workers=num_workers,
        persistent_workers=num_workers > 0,
        pin_memory=torch.cuda.is_available(),
        generator=generator,
    )
