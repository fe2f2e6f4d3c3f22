"""CelebA attribute dataset with the official semantics: seeded shuffle, the first `test_count` rows are the test split.

Usage: ds = CelebADataset("img_align_celeba", "list_attr_celeba.txt", ("Male", "Young"), "train", transform)

`list_attr_celeba.txt`: line 1 is the number of images, line 2 the attribute names, then one row per image:
a filename followed by one value per attribute, 1 (present) or -1 (absent). Labels come out as 0/1 floats
in the order of `selected_attrs`. The split shuffles the rows with `random.Random(seed)` exactly as the
official `random.seed(1234); random.shuffle(lines)` does (the official code keeps 1999 rows for testing,
an off-by-one; here it is exactly `test_count`).
"""

from __future__ import annotations

import os
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from stargan_train.data.errors import DatasetError
from stargan_train.data.transforms import SPLITS, load_rgb

_POSITIVE = "1"
_NEGATIVE = ("-1", "0")  # some re-distributions of the file use 0 for "absent"
_SHOW = 5  # how many offending names an error message lists


@dataclass(frozen=True)
class AttrTable:
    """The parsed attribute file: every attribute, every row, values as 0/1 float32 [rows, attrs]."""

    attr_names: tuple[str, ...]
    filenames: tuple[str, ...]
    values: np.ndarray


def read_attr_file(path: str | Path) -> AttrTable:
    """Parse a CelebA-format attribute file; raise DatasetError naming the first malformed line."""
    path = Path(path)
    if not path.is_file():
        raise DatasetError(f"attribute file not found: {path}")
    lines = [line.strip() for line in path.read_text(encoding="utf-8", errors="replace").splitlines()]
    lines = [line for line in lines if line]
    if len(lines) < 2:
        raise DatasetError(f"{path}: expected an image count on line 1 and attribute names on line 2")
    names = tuple(lines[1].split())
    rows = lines[2:]
    _check_count(path, lines[0], len(rows))
    split_rows = [row.split() for row in rows]
    for i, fields in enumerate(split_rows):
        if len(fields) != len(names) + 1:
            raise DatasetError(f"{path}: row {i + 1} ({fields[0]}) has {len(fields) - 1} values, expected {len(names)}")
    if not split_rows:
        raise DatasetError(f"{path}: lists no images")
    # One vectorised pass over all values: the full CelebA file has 200k rows x 40 attributes.
    raw = np.array([fields[1:] for fields in split_rows], dtype=str).reshape(len(split_rows), len(names))
    valid = (raw == _POSITIVE) | np.isin(raw, _NEGATIVE)
    if not valid.all():
        i, j = (int(k) for k in np.argwhere(~valid)[0])
        raise DatasetError(
            f"{path}: row {i + 1} ({split_rows[i][0]}) has value {str(raw[i, j])!r}; values must be 1 or -1"
        )
    filenames = tuple(fields[0] for fields in split_rows)
    return AttrTable(attr_names=names, filenames=filenames, values=(raw == _POSITIVE).astype(np.float32))


def _check_count(path: Path, first_line: str, n_rows: int) -> None:
    try:
        declared = int(first_line.split()[0])
    except ValueError:
        raise DatasetError(f"{path}: line 1 must be the number of images, got {first_line!r}") from None
    if declared != n_rows:
        raise DatasetError(f"{path}: line 1 declares {declared} images but {n_rows} rows follow (truncated file?)")


def select_attrs(table: AttrTable, selected: Sequence[str]) -> np.ndarray:
    """Columns of `selected`, in that order, as a [rows, len(selected)] 0/1 float32 array."""
    if not selected:
        raise DatasetError("selected_attrs is empty; name at least one attribute")
    unknown = [a for a in selected if a not in table.attr_names]
    if unknown:
        raise DatasetError(f"unknown attribute(s) {', '.join(unknown)}; available: {', '.join(table.attr_names)}")
    columns = [table.attr_names.index(a) for a in selected]
    return np.ascontiguousarray(table.values[:, columns])


def split_indices(n_rows: int, test_count: int, seed: int, split: str) -> list[int]:
    """Row indices of one split: shuffle 0..n-1 with Random(seed); the first test_count are the test split."""
    if split not in SPLITS:
        raise DatasetError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    if test_count < 0:
        raise DatasetError(f"test_count must be >= 0, got {test_count}")
    if test_count >= n_rows:
        raise DatasetError(f"test_count {test_count} leaves no training images: the attribute file lists only {n_rows}")
    if split == "test" and test_count == 0:
        raise DatasetError("the test split is empty: test_count is 0")
    order = list(range(n_rows))
    random.Random(seed).shuffle(order)
    return order[:test_count] if split == "test" else order[test_count:]


def check_image_dir(image_dir: Path, filenames: Sequence[str]) -> None:
    """The folder exists, is not empty, and holds every listed file (one directory listing, not N stats)."""
    if not image_dir.is_dir():
        raise DatasetError(f"image folder not found: {image_dir}")
    present = set(os.listdir(image_dir))
    if not present:
        raise DatasetError(f"image folder is empty: {image_dir}")
    missing = [f for f in filenames if f not in present and not (image_dir / f).is_file()]
    if missing:
        more = f" and {len(missing) - _SHOW} more" if len(missing) > _SHOW else ""
        raise DatasetError(
            f"{len(missing)} image(s) listed in the attribute file are missing from {image_dir}: "
            f"{', '.join(missing[:_SHOW])}{more}"
        )


class CelebADataset(Dataset):
    """One split of a CelebA-layout folder; items are (image [3,H,W] in [-1,1], labels [n_attrs] 0/1).

    Args:
        image_dir: folder holding the image files named in the attribute file.
        attr_path: the `list_attr_celeba.txt`-format attribute file.
        selected_attrs: attribute names to keep, in label order.
        split: "train" or "test".
        transform: PIL image -> tensor (see `transforms.build_transform`).
        test_count: rows held out for the test split after the seeded shuffle.
        seed: seed of the shuffle that decides the split.
    """

    def __init__(
        self,
        image_dir: str | Path,
        attr_path: str | Path,
        selected_attrs: Sequence[str],
        split: str,
        transform: Callable[[Image.Image], torch.Tensor],
        test_count: int = 2000,
        seed: int = 1234,
    ) -> None:
        self.image_dir = Path(image_dir)
        table = read_attr_file(attr_path)
        check_image_dir(self.image_dir, table.filenames)
        labels = select_attrs(table, selected_attrs)
        rows = split_indices(len(table.filenames), test_count, seed, split)
        self.selected_attrs = tuple(selected_attrs)
        self.split = split
        self.transform = transform
        self.filenames = [table.filenames[i] for i in rows]
        self.labels = torch.from_numpy(labels[rows])

    def __len__(self) -> int:
        return len(self.filenames)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        path = self.image_dir / self.filenames[index]
        return read_image(path, self.transform), self.labels[index].clone()


def read_image(path: Path, transform: Callable[[Image.Image], torch.Tensor]) -> torch.Tensor:
    """Load and transform one file; unreadable files and too-small images name the file."""
    try:
        img = load_rgb(path)
    except OSError as e:  # includes PIL.UnidentifiedImageError and a file deleted since the scan
        raise DatasetError(f"cannot read image {path}: {e}") from None
    try:
        return transform(img)
    except ValueError as e:
        raise DatasetError(f"{path}: {e}") from None
