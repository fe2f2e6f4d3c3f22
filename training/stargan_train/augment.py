"""Differentiable augmentation of everything the critic sees (DiffAugment, Zhao et al. 2020).

Usage: aug = DiffAugment(("translation", "cutout")); out_src, out_cls = D(aug(x))

The same random transform family is applied to real images, translations and the generator's step, so the
critic never learns that augmented images are real or fake, and the generator still gets gradients through
it. Why StarGAN needs it: a critic whose classifier only ever saw exact real pixels can be satisfied by
small, position-precise patterns that no other classifier reads as the attribute (on toyfaces the critic
accepted 100% of the Young edits, an independent classifier 81.8%; see models/toyfaces-64/MODEL_CARD.md).
Shifted, partly hidden inputs take those shortcuts away, so the generator has to draw the attribute itself.
Colour transforms are deliberately not offered: hair colour is one of the attributes.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from stargan_train.config import parse_augment

TRANSLATION_RATIO = 0.125  # largest shift, as a fraction of the side (DiffAugment's default)
CUTOUT_RATIO = 0.5  # side of the erased square, as a fraction of the image side (DiffAugment's default)


def translate(x: Tensor, ratio: float = TRANSLATION_RATIO) -> Tensor:
    """Shift each image by its own random (dy, dx) in [-ratio*side, ratio*side] pixels, filling with 0 (mid-grey)."""
    n, _, h, w = x.shape
    sy, sx = int(h * ratio + 0.5), int(w * ratio + 0.5)
    # Offsets come from the CPU generator so a checkpoint's RNG state covers them on any device.
    dy = torch.randint(-sy, sy + 1, (n,)).tolist()
    dx = torch.randint(-sx, sx + 1, (n,)).tolist()
    padded = F.pad(x, (sx, sx, sy, sy))
    return torch.stack([padded[i, :, sy - dy[i] : sy - dy[i] + h, sx - dx[i] : sx - dx[i] + w] for i in range(n)])


def cutout(x: Tensor, ratio: float = CUTOUT_RATIO) -> Tensor:
    """Set one random square per image (side ratio*side, centre anywhere, clipped at the border) to 0."""
    n, _, h, w = x.shape
    ch, cw = int(h * ratio + 0.5), int(w * ratio + 0.5)
    y0 = torch.randint(0, h, (n, 1, 1)) - ch // 2  # top-left corner of a square centred anywhere
    x0 = torch.randint(0, w, (n, 1, 1)) - cw // 2
    ys, xs = torch.arange(h).view(1, h, 1), torch.arange(w).view(1, 1, w)
    hole = (ys >= y0) & (ys < y0 + ch) & (xs >= x0) & (xs < x0 + cw)
    return x * (~hole).unsqueeze(1).to(x)


class DiffAugment:
    """Callable applying the policy's transforms in order; the identity for an empty policy."""

    def __init__(self, policy: str | tuple[str, ...] | list[str] = ()) -> None:
        self.policy = parse_augment(policy)

    def __bool__(self) -> bool:
        return bool(self.policy)

    def __call__(self, x: Tensor) -> Tensor:
        for name in self.policy:
            x = translate(x) if name == "translation" else cutout(x)
        return x
