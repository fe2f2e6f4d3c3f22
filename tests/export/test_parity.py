"""Parity helpers: metrics, named tolerances and the face-like test inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest

from stargan_export.errors import ParityError
from stargan_export.parity import (
    PSNR_CAP_DB,
    TOLERANCES,
    Tolerance,
    check,
    extreme_images,
    measure,
    psnr_db,
    sample_images,
)


def test_psnr_uses_the_signal_range_of_two():
    ref = np.zeros((1, 3, 4, 4), np.float32)
    assert psnr_db(ref, ref + 0.02) == pytest.approx(10 * math.log10(4 / 0.0004))  # 40 dB
    assert psnr_db(ref, ref) == PSNR_CAP_DB


def test_measure_and_check():
    ref = np.zeros((2, 3), np.float32)
    m = measure(ref, ref + np.array([[0, 0, 2e-4], [0, 0, 0]], np.float32))
    assert m["max_abs"] == pytest.approx(2e-4) and m["mean_abs"] == pytest.approx(2e-4 / 6)
    with pytest.raises(ParityError, match=r"x differs from torch by max abs 0.0002 > tolerance 0.0001"):
        check(m, TOLERANCES["fp32"], "x")
    assert check(m, Tolerance(max_abs=1e-3), "x") is m
    bad = measure(ref, np.full((2, 3), np.nan, np.float32))
    with pytest.raises(ParityError, match="NaN or Inf"):
        check(bad, Tolerance(), "x")
    with pytest.raises(ParityError, match="shape"):
        measure(ref, ref[:1])


def test_tolerances_are_named_per_precision():
    assert TOLERANCES["fp32"].max_abs == 1e-4 and TOLERANCES["fp16"].min_psnr_db == 40.0


def test_sample_images_are_seeded_faces_in_range():
    a, b = sample_images(3, 32, seed=1), sample_images(3, 32, seed=1)
    assert a.shape == (3, 3, 32, 32) and a.dtype == np.float32
    assert np.array_equal(a, b) and not np.array_equal(a, sample_images(3, 32, seed=2))
    assert -1.0 <= a.min() and a.max() <= 1.0 and a.std() > 0.1


def test_extreme_images():
    e = extreme_images(8)
    assert (e[0] == -1).all() and (e[1] == 1).all() and set(np.unique(e[2])) == {-1.0, 1.0}
