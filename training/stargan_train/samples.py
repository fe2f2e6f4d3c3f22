"""Sample grids like the official test output: per image a row [input | one output per target domain].

Usage: write_checkpoint_samples("runs/toy", Path("grid.png"))  # or write_sample_grid(G, x, c_org, data, path)

Targets follow the official `create_labels`: for each hair colour, that colour on and the others off; for
every other CelebA attribute, the attribute flipped; for RaFD, each expression one-hot. In joint mode the
CelebA columns come first, then the eight RaFD ones, each with zeros and mask as in `train_multi`.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor, nn

from stargan_train.config import RAFD_EXPRESSIONS, DataConfig, label_dim
from stargan_train.data.celeba import read_attr_file
from stargan_train.files import atomic_write
from stargan_train.weights import CheckpointError, Loaded, load_discriminator, load_generator

HAIR_COLOURS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Gray_Hair")


def celeba_targets(c_org: Tensor, selected_attrs: tuple[str, ...]) -> list[Tensor]:
    """One target label batch per single-attribute edit (hair colours exclusive, binary attrs flipped)."""
    hair = [i for i, name in enumerate(selected_attrs) if name in HAIR_COLOURS]
    targets = []
    for i in range(len(selected_attrs)):
        c = c_org.clone()
        if i in hair:
            c[:, hair] = 0
            c[:, i] = 1
        else:
            c[:, i] = (c[:, i] == 0).to(c.dtype)
        targets.append(c)
    return targets


def rafd_targets(batch: int, n: int = len(RAFD_EXPRESSIONS)) -> list[Tensor]:
    eye = torch.eye(n)
    return [eye[i].expand(batch, n).clone() for i in range(n)]


def target_labels(c_org: Tensor, data: DataConfig) -> list[Tensor]:
    """Generator label batches for every column of the grid; `c_org` are the fixed images' own labels.

    In joint mode `c_org` holds the CelebA labels of CelebA test images (the official sampling set).
    """
    if data.dataset in ("celeba", "toyfaces"):
        return celeba_targets(c_org, data.selected_attrs)
    if data.dataset == "rafd":
        return rafd_targets(c_org.size(0))
    n_cel, n_raf, batch = len(data.selected_attrs), len(RAFD_EXPRESSIONS), c_org.size(0)
    zeros_cel, zeros_raf = torch.zeros(batch, n_cel), torch.zeros(batch, n_raf)
    mask_cel, mask_raf = torch.tensor([[1.0, 0.0]]).expand(batch, 2), torch.tensor([[0.0, 1.0]]).expand(batch, 2)
    out = [torch.cat([c, zeros_raf, mask_cel], dim=1) for c in celeba_targets(c_org, data.selected_attrs)]
    out += [torch.cat([zeros_cel, c, mask_raf], dim=1) for c in rafd_targets(batch, n_raf)]
    return out


@torch.no_grad()
def sample_grid(G: nn.Module, x: Tensor, c_org: Tensor, data: DataConfig) -> Tensor:
    """[N, 3, H, W * (1 + domains)] in [-1, 1]: inputs followed by each translation, side by side."""
    device = next(G.parameters()).device
    x = x.to(device)
    columns = [x] + [G(x, c.to(device)) for c in target_labels(c_org, data)]
    return torch.cat(columns, dim=3).cpu()


def grid_to_image(grid: Tensor) -> Image.Image:
    """Stack the rows of a [N, 3, H, W'] batch vertically into one RGB image."""
    rows = grid.clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8)
    stacked = torch.cat(list(rows), dim=1)  # [3, N*H, W']
    return Image.fromarray(np.ascontiguousarray(stacked.permute(1, 2, 0).numpy()), mode="RGB")


def save_image(image: Image.Image, path: Path) -> Path:
    """Write a PNG atomically (temp + rename), so a killed run never leaves a torn sample."""
    path = Path(path)
    atomic_write(path, lambda p: image.save(p, format="PNG"))
    return path


def write_sample_grid(G: nn.Module, x: Tensor, c_org: Tensor, data: DataConfig, path: Path) -> Path:
    return save_image(grid_to_image(sample_grid(G, x, c_org, data)), path)


def fixed_batch(data: DataConfig, count: int) -> tuple[Tensor, Tensor]:
    """The first `count` held-out test images and their labels: the same faces in every run and after a resume.

    The official code samples its first training batch instead (shuffled and possibly flipped, so other faces
    each run); as there, joint mode samples CelebA images (and reads no RaFD folder). With `test_count` 0 there
    is no CelebA test split and the first training images (possibly flipped) stand in.
    """
    from stargan_train.data import build_dataset, make_loader

    part = "rafd" if data.dataset == "rafd" else "celeba"
    split = "train" if part == "celeba" and data.test_count == 0 else "test"
    loader = make_loader(build_dataset(data, part, split), count, shuffle=False, drop_last=False, num_workers=0)
    x, labels = next(iter(loader))
    return x, labels


def official_data_config(c_dim: int, image_size: int) -> DataConfig:
    """The official defaults for a checkpoint that records no config; its label length says the mode.

    yunjey/stargan trains CelebA on 5 attributes, RaFD on its 8 expressions, and both jointly on 5 + 8 + a
    2-wide dataset mask (15). Any other length has no official meaning: only a run's own config can name it.
    """
    modes = {label_dim(DataConfig(dataset=mode)): mode for mode in ("celeba", "rafd", "both")}
    if c_dim not in modes:
        known = ", ".join(f"{n} ({mode})" for n, mode in modes.items())
        raise CheckpointError(
            f"the generator takes {c_dim} labels and carries no run config; an official "
            f"checkpoint takes {known}: sample the run dir it came from instead"
        )
    return DataConfig(dataset=modes[c_dim], image_size=image_size)


def with_data_dir(data: DataConfig, data_dir: Path) -> DataConfig:
    """`data` reading its sample images from `data_dir`: for RaFD the test folder (one sub-folder per expression),
    else a CelebA-layout folder (images/, list_attr_celeba.txt) whose test split is cut to fit a smaller folder."""
    if data.dataset == "rafd":
        return replace(data, rafd_image_dir=str(data_dir), rafd_test_dir=str(data_dir))
    attr_path = data_dir / "list_attr_celeba.txt"
    rows = len(read_attr_file(attr_path).filenames)  # a missing or malformed file: its own one-line error
    return replace(
        data,
        celeba_image_dir=str(data_dir / "images"),
        attr_path=str(attr_path),
        test_count=min(data.test_count, rows - 1),
    )


def _official_image_size(loaded: Loaded) -> int:
    """The size the D beside an official G was trained at (its classifier kernel says it); 128 without one."""
    try:
        return load_discriminator(loaded.source).config.image_size
    except CheckpointError:
        return DataConfig().image_size


def write_checkpoint_samples(
    source: str | Path, out: Path, *, count: int = 8, data_dir: Path | None = None, device: str = "cpu"
) -> dict[str, object]:
    """Load a generator from a run dir or checkpoint and write the grid for its first `count` test images.

    The grid's columns follow the label space the run config records (CelebA attributes, RaFD expressions,
    or both with the mask); a checkpoint without one (official) is read as the official mode of its label
    length. `data_dir` replaces the image folder stored in the run config (see `with_data_dir`), e.g. when the
    data moved; it is required for checkpoints without a run config.
    """
    if count <= 0:
        raise ValueError(f"count must be > 0, got {count}")
    loaded = load_generator(source, map_location=device)
    if loaded.run_config is not None:
        data = loaded.run_config.data
    elif data_dir is not None:
        data = official_data_config(loaded.config.c_dim, _official_image_size(loaded))
    else:
        raise CheckpointError(f"{loaded.source} carries no run config (official checkpoint?); pass a data folder")
    if data_dir is not None:
        data = with_data_dir(data, Path(data_dir))
    x, c_org = fixed_batch(data, count)
    write_sample_grid(loaded.model, x, c_org, data, Path(out))
    columns = 1 + len(target_labels(c_org, data))
    return {
        "out": str(out),
        "checkpoint": str(loaded.source),
        "iteration": loaded.iteration,
        "dataset": data.dataset,
        "rows": int(x.size(0)),
        "columns": columns,
    }
