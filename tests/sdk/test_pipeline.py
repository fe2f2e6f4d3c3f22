"""The streaming pipeline: files in, files out, equal to Translator.translate image by image, in order.

Usage: pytest -q tests/sdk/test_pipeline.py
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stargan_sdk.pipeline.ordered import ordered_map

CHANGES = {"Blond_Hair": 1}


def _images() -> dict[str, Image.Image]:
    rng = np.random.default_rng(3)
    rgb = lambda h, w: rng.integers(0, 256, (h, w, 3), dtype=np.uint8)  # noqa: E731
    return {
        "aligned.png": Image.fromarray(rgb(40, 33)),
        "wide.png": Image.fromarray(rgb(20, 57)),
        "grey.png": Image.fromarray(rgb(36, 36)[..., 0], "L"),
        "alpha.png": Image.fromarray(np.dstack([rgb(30, 30), rng.integers(0, 256, (30, 30), dtype=np.uint8)]), "RGBA"),
        "square.png": Image.fromarray(rgb(32, 32)),
    }


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    src = tmp_path / "in"
    src.mkdir()
    for name, im in _images().items():
        im.save(src / name)
    return src


def test_outputs_equal_translate_in_order(translator, folder: Path, tmp_path: Path) -> None:
    paths = sorted(folder.iterdir())
    results = list(translator.translate_files(paths, tmp_path / "out", CHANGES, workers=2, batch_size=3))
    assert [r.source for r in results] == paths
    for r in results:
        assert r.error is None, r.error
        with Image.open(r.source) as im:
            want = np.asarray(translator.translate(im, CHANGES))
        with Image.open(r.output) as got:
            assert got.mode == Image.open(r.source).mode
            assert np.abs(np.asarray(got).astype(int) - want).max() <= 1, r.source.name


def test_bad_file_among_good_ones(translator, folder: Path, tmp_path: Path) -> None:
    (folder / "broken.png").write_bytes(b"not an image")
    results = list(translator.translate_files(sorted(folder.iterdir()), tmp_path / "out", CHANGES, batch_size=2))
    bad = [r for r in results if r.error]
    assert [r.source.name for r in bad] == ["broken.png"] and "\n" not in bad[0].error
    assert all(r.output.is_file() for r in results if not r.error)
    assert not (tmp_path / "out" / "broken.png").exists()


def test_never_overwrites_an_input(translator, folder: Path) -> None:
    before = (folder / "wide.png").read_bytes()
    [r] = translator.translate_files([folder / "wide.png"], folder, CHANGES)
    assert r.error and "input" in r.error
    assert (folder / "wide.png").read_bytes() == before


def test_skip_existing(translator, folder: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    paths = sorted(folder.iterdir())
    list(translator.translate_files(paths[:2], out, CHANGES))
    results = list(translator.translate_files(paths, out, CHANGES, skip_existing=True))
    assert [r.skipped for r in results] == [True, True] + [False] * (len(paths) - 2)
    assert all((out / p.name).is_file() for p in paths)


def test_stream_in_memory(translator) -> None:
    ims = [np.asarray(im.convert("RGB")) for im in _images().values()]
    got = list(translator.translate_stream(iter(ims), CHANGES, batch_size=2))
    for im, out in zip(ims, got):
        assert np.abs(out.astype(int) - translator.translate(im, CHANGES)).max() <= 1


def test_queue_bound_is_a_count() -> None:
    """Memory stays flat: an endless input is read at most `depth` items ahead of the consumer."""
    pulled = itertools.count()
    source = (next(pulled) for _ in itertools.count())
    stream = ordered_map(lambda x: x, source, workers=2, depth=5)
    assert [next(stream) for _ in range(3)] == [0, 1, 2]
    assert next(pulled) <= 3 + 5
    stream.close()
