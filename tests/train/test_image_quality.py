"""PSNR / SSIM against closed-form cases: known offsets, masked regions, the cap, blur."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from stargan_train.image_quality import PSNR_CAP_DB, FidelityMeter, psnr, ssim


def _images(seed: int = 0, n: int = 2, size: int = 16) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 3, size, size, generator=g) * 1.6 - 0.8  # inside [-1, 1] with room for offsets


def test_psnr_of_a_known_offset_and_the_cap() -> None:
    x = _images()
    # +0.2 in [-1, 1] is +0.1 in [0, 1]: MSE 0.01, PSNR 20 dB.
    assert psnr(x + 0.2, x).tolist() == pytest.approx([20.0, 20.0], abs=1e-4)
    assert psnr(x, x).tolist() == [PSNR_CAP_DB, PSNR_CAP_DB]
    # Out-of-range outputs are clamped like a saved image would be.
    assert psnr(torch.full_like(x, 5.0), torch.ones_like(x)).tolist() == [PSNR_CAP_DB, PSNR_CAP_DB]


def test_psnr_outside_a_region_ignores_changes_inside_it() -> None:
    x = _images()
    region = torch.zeros(2, 16, 16, dtype=torch.bool)
    region[:, :8] = True
    y = x.clone()
    y[:, :, :8] += 0.5  # changed only inside the region
    assert psnr(y, x, keep=~region).tolist() == [PSNR_CAP_DB, PSNR_CAP_DB]
    assert psnr(y, x, keep=region).max() < 15
    everything = torch.ones(2, 16, 16, dtype=torch.bool)
    assert all(math.isnan(v) for v in psnr(y, x, keep=~everything).tolist())


def test_ssim_is_one_for_identical_images_and_drops_with_blur() -> None:
    x = _images(size=32)
    blurred = F.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    assert ssim(x, x).tolist() == pytest.approx([1.0, 1.0])
    assert (ssim(blurred, x) < 0.9).all()
    assert ssim(x[:, :, :5, :5], x[:, :, :5, :5]).tolist() == pytest.approx([1.0, 1.0])  # small window
    with pytest.raises(ValueError, match="too small"):
        ssim(x[:, :, :2, :2], x[:, :, :2, :2])


def test_meter_means_per_key_and_skips_empty_regions() -> None:
    x = _images(n=4)
    meter = FidelityMeter()
    region = torch.zeros(4, 16, 16, dtype=torch.bool)
    region[0] = True  # the first image has nothing outside its region
    meter.add("Blond_Hair", x[:2] + 0.2, x[:2], region[:2])
    meter.add("Blond_Hair", x[2:], x[2:], region[2:])
    meter.add("identity", x[:0], x[:0])
    d = meter.to_dict()
    assert d["Blond_Hair"]["images"] == 4 and d["Blond_Hair"]["images_outside"] == 3
    assert d["Blond_Hair"]["psnr"] == pytest.approx((20 + 20 + PSNR_CAP_DB * 2) / 4, abs=1e-3)
    assert d["Blond_Hair"]["psnr_outside"] == pytest.approx((20 + PSNR_CAP_DB * 2) / 3, abs=1e-3)
    assert d["identity"] == {"psnr": None, "ssim": None, "psnr_outside": None, "images": 0, "images_outside": 0}
