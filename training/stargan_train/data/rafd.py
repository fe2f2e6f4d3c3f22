"""RaFD expression dataset: an ImageFolder of expression sub-folders, labels one-hot over the 8 expressions.

Usage: ds = RaFDDataset(rafd_split_dir(data_cfg, "train"), transform)  # data/RaFD/train/{angry,...,surprised}/*.jpg

The class index is the expression's position in `RAFD_EXPRESSIONS` (alphabetical, so with all eight
folders present it is exactly torchvision ImageFolder's sorted-folder index). A dataset with only some
expressions keeps the same 8-wide label layout, so labels always match a c_dim 8 model.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import torch
from PIL import Image
from torch.utils.data import Dataset

from stargan_train.config import RAFD_EXPRESSIONS, DataConfig
from stargan_train.data.celeba import read_image
from stargan_train.data.errors import DatasetError
from stargan_train.data.transforms import IMAGE_EXTENSIONS, SPLITS


def rafd_split_dir(data: DataConfig, split: str) -> Path:
    """Folder of a split: `rafd_image_dir` for train; for test `rafd_test_dir`, else the sibling `.../test`."""
    if split not in SPLITS:
        raise DatasetError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    train_dir = Path(data.rafd_image_dir)
    if split == "train":
        return train_dir
    if data.rafd_test_dir:
        return Path(data.rafd_test_dir)
    if train_dir.name != "train":
        raise DatasetError(
            f"cannot locate the RaFD test folder: rafd_image_dir {train_dir} does not end in 'train'; set rafd_test_dir"
        )
    return train_dir.with_name("test")


def scan_expression_folders(root: Path) -> list[tuple[Path, int]]:
    """(image path, expression index) for every image file, folders and files in sorted order."""
    if not root.is_dir():
        raise DatasetError(f"RaFD image folder not found: {root}")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))
    if not folders:
        raise DatasetError(
            f"RaFD folder {root} has no expression sub-folders; expected some of: {', '.join(RAFD_EXPRESSIONS)}"
        )
    unknown = [p.name for p in folders if p.name.lower() not in RAFD_EXPRESSIONS]
    if unknown:
        raise DatasetError(
            f"RaFD folder {root} has unknown expression folder(s) {', '.join(unknown)}; "
            f"expected names from: {', '.join(RAFD_EXPRESSIONS)}"
        )
    samples: list[tuple[Path, int]] = []
    for folder in folders:
        files = sorted(
            p
            for p in folder.iterdir()
            if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
        )
        if not files:
            raise DatasetError(f"RaFD expression folder {folder} holds no images ({', '.join(IMAGE_EXTENSIONS)})")
        index = RAFD_EXPRESSIONS.index(folder.name.lower())
        samples.extend((f, index) for f in files)
    return samples


class RaFDDataset(Dataset):
    """Items are (image [3,H,W] in [-1,1], one-hot expression label [8] float32).

    Args:
        root: folder whose sub-folders are named after RaFD expressions and hold the images.
        transform: PIL image -> tensor (see `transforms.build_transform`).
    """

    def __init__(self, root: str | Path, transform: Callable[[Image.Image], torch.Tensor]) -> None:
        self.root = Path(root)
        self.samples = scan_expression_folders(self.root)
        self.targets = [index for _, index in self.samples]
        self.transform = transform

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        path, target = self.samples[index]
        label = torch.zeros(len(RAFD_EXPRESSIONS), dtype=torch.float32)
        label[target] = 1.0
        return read_image(path, self.transform), label
