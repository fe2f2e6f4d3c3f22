"""Fidelity of outputs to a ground-truth image: PSNR (whole image, or outside a region) and SSIM, per image.

Usage: meter = FidelityMeter(); meter.add("Blond_Hair", y, truth, region); meter.to_dict()["Blond_Hair"]["psnr"]

Images are [N, 3, H, W] in [-1, 1] and are scored in [0, 1] (data range 1). PSNR is capped at PSNR_CAP_DB, so a
perfect output scores the cap rather than infinity; means are over images (the mean of per-image dB).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

PSNR_CAP_DB = 100.0
SSIM_WINDOW = 7  # scikit-image's default uniform 7x7 window; smaller images use the largest odd size that fits


def _unit(x: torch.Tensor) -> torch.Tensor:
    return (x.detach().float().cpu().clamp(-1.0, 1.0) + 1.0) / 2.0


def psnr(y: torch.Tensor, truth: torch.Tensor, keep: torch.Tensor | None = None) -> torch.Tensor:
    """[N] PSNR in dB; with `keep` ([N, H, W] bool) only over those pixels (NaN for an image with none)."""
    err = (_unit(y) - _unit(truth)).pow(2).mean(dim=1).double()  # [N, H, W], mean over channels
    if keep is None:
        mse = err.flatten(1).mean(dim=1)
    else:
        w = keep.cpu().to(err.dtype)
        mse = (err * w).flatten(1).sum(dim=1) / w.flatten(1).sum(dim=1)
    floor = 10.0 ** (-PSNR_CAP_DB / 10.0)
    return -10.0 * torch.log10(mse.clamp_min(floor))


def ssim(y: torch.Tensor, truth: torch.Tensor) -> torch.Tensor:
    """[N] structural similarity (scikit-image, per image over all channels); 1.0 means identical."""
    from skimage.metrics import structural_similarity

    a = _unit(y).permute(0, 2, 3, 1).double().numpy()
    b = _unit(truth).permute(0, 2, 3, 1).double().numpy()
    side = min(a.shape[1], a.shape[2])
    win = min(SSIM_WINDOW, side if side % 2 else side - 1)
    if win < 3:
        raise ValueError(f"images of {a.shape[1]}x{a.shape[2]} px are too small for SSIM (3x3 at least)")
    values = [structural_similarity(p, q, data_range=1.0, channel_axis=-1, win_size=win) for p, q in zip(a, b)]
    return torch.tensor(np.asarray(values, dtype=np.float64))


@dataclass
class _Sums:
    psnr: float = 0.0
    ssim: float = 0.0
    images: int = 0
    psnr_outside: float = 0.0
    images_outside: int = 0


@dataclass
class FidelityMeter:
    """Running per-key sums; `to_dict()` gives mean PSNR / SSIM / PSNR outside the region, and image counts."""

    sums: dict[str, _Sums] = field(default_factory=dict)

    def add(self, key: str, y: torch.Tensor, truth: torch.Tensor, region: torch.Tensor | None = None) -> None:
        s = self.sums.setdefault(key, _Sums())
        if y.shape[0] == 0:
            return
        s.psnr += float(psnr(y, truth).sum())
        s.ssim += float(ssim(y, truth).sum())
        s.images += y.shape[0]
        if region is not None:
            outside = psnr(y, truth, keep=~region.bool())
            valid = ~torch.isnan(outside)  # a region covering the whole frame leaves nothing to score
            s.psnr_outside += float(outside[valid].sum())
            s.images_outside += int(valid.sum())

    def to_dict(self) -> dict[str, dict[str, float | int | None]]:
        def mean(total: float, n: int) -> float | None:
            return total / n if n else None

        return {
            k: {
                "psnr": mean(s.psnr, s.images),
                "ssim": mean(s.ssim, s.images),
                "psnr_outside": mean(s.psnr_outside, s.images_outside),
                "images": s.images,
                "images_outside": s.images_outside,
            }
            for k, s in self.sums.items()
        }
