"""Image preprocessing with PIL + numpy (no torchvision): flip, center crop, resize, [-1, 1] CHW tensor.

Usage: x = build_transform(crop_size=178, image_size=128, split="train")(load_rgb(path))  # [3,128,128]

The steps and their order follow the official StarGAN pipeline (torchvision's RandomHorizontalFlip ->
CenterCrop -> Resize -> ToTensor -> Normalize(0.5, 0.5)). The flip draws from torch's global RNG, as
torchvision does; training reads images through `seeded.SeededItems`, which seeds that RNG per image from
(seed, epoch, image), so the flips do not depend on the worker process or on where a run resumed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

IMAGE_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
SPLITS: tuple[str, ...] = ("train", "test")


def load_rgb(path: str | Path) -> Image.Image:
    """Open an image file and return it as RGB (greyscale, RGBA and palette files are converted)."""
    with Image.open(path) as img:
        return img.convert("RGB")


def center_crop_box(width: int, height: int, crop: int) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of the centred `crop`x`crop` square, rounded as torchvision rounds."""
    if crop > width or crop > height:
        raise ValueError(f"crop size {crop} is larger than the image ({width}x{height} px)")
    left = int(round((width - crop) / 2.0))
    top = int(round((height - crop) / 2.0))
    return left, top, left + crop, top + crop


def center_crop(img: Image.Image, crop: int) -> Image.Image:
    return img.crop(center_crop_box(img.width, img.height, crop))


def resize(img: Image.Image, size: int) -> Image.Image:
    """Square bilinear resize; PIL widens the filter when shrinking, so downscaling is antialiased."""
    if img.size == (size, size):
        return img
    return img.resize((size, size), Image.Resampling.BILINEAR)


def hflip(img: Image.Image) -> Image.Image:
    return img.transpose(Image.Transpose.FLIP_LEFT_RIGHT)


def to_normalized_tensor(img: Image.Image) -> torch.Tensor:
    """HWC uint8 RGB -> CHW float32 in [-1, 1] (mean 0.5, std 0.5): 0 -> -1.0 and 255 -> 1.0 exactly."""
    arr = np.asarray(img.convert("RGB"), dtype=np.float32)
    arr = arr / np.float32(127.5) - np.float32(1.0)
    return torch.from_numpy(np.ascontiguousarray(arr.transpose(2, 0, 1)))


@dataclass(frozen=True)
class ImageTransform:
    """Callable preprocessing of one PIL image.

    Args:
        crop_size: side of the centred square cut out of the image (must fit inside it).
        image_size: side of the output after the bilinear resize.
        flip: mirror the image horizontally with probability 0.5 (training only).
    """

    crop_size: int
    image_size: int
    flip: bool = False

    def __post_init__(self) -> None:
        if self.crop_size <= 0 or self.image_size <= 0:
            raise ValueError(f"crop_size and image_size must be > 0, got {self.crop_size}, {self.image_size}")

    def __call__(self, img: Image.Image) -> torch.Tensor:
        if img.mode != "RGB":
            img = img.convert("RGB")
        if self.flip and torch.rand(1).item() < 0.5:
            img = hflip(img)
        img = resize(center_crop(img, self.crop_size), self.image_size)
        return to_normalized_tensor(img)


def build_transform(crop_size: int, image_size: int, split: str) -> ImageTransform:
    """The official train transform (with random flip) or test transform (without)."""
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    return ImageTransform(crop_size=crop_size, image_size=image_size, flip=split == "train")
