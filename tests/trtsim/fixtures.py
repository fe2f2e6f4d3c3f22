"""Fixtures of the `trt_api` tests: each pinned TensorRT version's real surface, and a simulation installed on it.

Usage: from trtsim.fixtures import sim, trt_surface  # noqa: F401   (then: def test_x(sim): ...)
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from trtsim.bindings import VERSIONS, Unreachable, surface
from trtsim.simulate import Simulation


def load_surface(version: str) -> dict[str, Any]:
    try:
        return surface(version)
    except Unreachable as e:  # no pip index or no gcc/binutils here: say so rather than pass
        pytest.skip(f"TensorRT {version} bindings unreachable: {e}")


@pytest.fixture(scope="session", params=list(VERSIONS))
def trt_surface(request: pytest.FixtureRequest) -> dict[str, Any]:
    """The surface of one pinned TensorRT release (every test using it runs once per release)."""
    return load_surface(request.param)


@pytest.fixture
def sim(trt_surface: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> Iterator[Simulation]:
    """`import tensorrt` is the checked fake of this release and `stargan_sdk.cuda` a simulated device; the test
    fails afterwards if the code used a name or a call this release does not have, even if it caught the error."""
    simulation = Simulation(trt_surface).install(monkeypatch)
    yield simulation
    simulation.assert_clean()
