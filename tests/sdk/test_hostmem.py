"""hostmem: threaded copies and min/max equal numpy's single-threaded results, NaN included."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from stargan_sdk.host import hostmem


@pytest.fixture(autouse=True)
def always_parallel(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hostmem, "PARALLEL_BYTES", 0)  # exercise the threaded path on tiny arrays
    monkeypatch.setattr(hostmem, "_workers", lambda: 3)


@settings(max_examples=60, deadline=None)
@given(n=st.integers(1, 9), seed=st.integers(0, 2**16), nan_at=st.one_of(st.none(), st.integers(0, 10**6)))
def test_parallel_paths_equal_numpy(n: int, seed: int, nan_at: int | None) -> None:
    a = np.random.default_rng(seed).uniform(-3, 3, (n, 3, 4, 5)).astype(np.float32)
    if nan_at is not None:
        a.flat[nan_at % a.size] = np.nan
    dst = np.full_like(a, 7.0)
    hostmem.copy_into(dst, a)
    np.testing.assert_array_equal(dst, a)
    lo, hi = hostmem.value_range(a)
    if nan_at is None:
        assert (lo, hi) == (float(a.min()), float(a.max()))
    else:
        assert math.isnan(lo) and math.isnan(hi)


def test_small_arrays_take_the_plain_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(hostmem, "PARALLEL_BYTES", 1 << 20)
    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    assert hostmem._parts(a) is None and hostmem.value_range(a) == (0.0, 11.0)
    assert [s.stop - s.start for s in hostmem._parts(np.zeros((7, 1 << 18), np.float32))] == [2, 2, 3]
