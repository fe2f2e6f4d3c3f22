"""Tests for the toyfaces generator: determinism, CelebA layout, balance, visible attributes, bad input.

Usage: .venv/bin/pytest -q tests/train/test_toyfaces.py
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from stargan_train.config import RAFD_EXPRESSIONS
from stargan_train.data import toyfaces
from stargan_train.data.toyfaces import (
    TOY_ATTRS,
    FaceParams,
    generate_toyfaces,
    render_face,
    sample_params,
)

HAIRS = ("Black_Hair", "Blond_Hair", "Brown_Hair")


def luminance(pixels: np.ndarray) -> np.ndarray:
    return pixels.astype(np.float64) @ np.array([0.299, 0.587, 0.114])


def saturation(pixels: np.ndarray) -> np.ndarray:
    p = pixels.astype(np.float64)
    hi, lo = p.max(axis=-1), p.min(axis=-1)
    return (hi - lo) / np.maximum(hi, 1.0)


def pair(seed: int, base: dict[str, int], changed: dict[str, int]) -> tuple[FaceParams, FaceParams]:
    """The same person (one seed) drawn with `base` attributes and with `base` updated by `changed`."""
    first = sample_params(np.random.default_rng(seed), base)
    second = sample_params(np.random.default_rng(seed), {**base, **changed})
    return first, second


def read_listing(folder: Path) -> tuple[int, list[str], list[list[str]]]:
    lines = (folder / "list_attr_celeba.txt").read_text().splitlines()
    return int(lines[0]), lines[1].split(" "), [line.split(" ") for line in lines[2:]]


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def small_set(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_toyfaces(tmp_path_factory.mktemp("toy") / "set", 12, seed=3, progress=False)


def test_same_seed_gives_identical_bytes_and_other_seed_differs(tmp_path: Path) -> None:
    a = folder_bytes(generate_toyfaces(tmp_path / "a", 4, seed=7, progress=False))
    b = folder_bytes(generate_toyfaces(tmp_path / "b", 4, seed=7, progress=False))
    c = folder_bytes(generate_toyfaces(tmp_path / "c", 4, seed=8, progress=False))
    assert a == b
    assert len(a) == 2 * 4 + 2  # images, masks, the attribute list and toyfaces.json
    assert all(a[f"images/00000{i}.png"] != c[f"images/00000{i}.png"] for i in range(1, 5))


def test_face_i_depends_only_on_seed_and_index(tmp_path: Path) -> None:
    short = generate_toyfaces(tmp_path / "short", 2, seed=5, progress=False)
    long = generate_toyfaces(tmp_path / "long", 3, seed=5, progress=False)
    assert (short / "images/000002.png").read_bytes() == (long / "images/000002.png").read_bytes()


def test_attribute_list_is_celeba_format(small_set: Path) -> None:
    count, names, rows = read_listing(small_set)
    assert count == 12 == len(rows)
    assert tuple(names) == TOY_ATTRS
    for i, row in enumerate(rows, start=1):
        assert row[0] == f"{i:06d}.png"
        assert set(row[1:]) <= {"1", "-1"} and len(row) == 1 + len(TOY_ATTRS)
        assert [row[1 + TOY_ATTRS.index(h)] for h in HAIRS].count("1") == 1
        with Image.open(small_set / "images" / row[0]) as img:
            assert (img.format, img.mode, img.size) == ("PNG", "RGB", (178, 218))
        with Image.open(small_set / "masks" / row[0]) as mask:
            assert mask.mode == "L" and mask.size == (178, 218)
            assert set(np.unique(np.asarray(mask))) == {0, 255}
    info = json.loads((small_set / "toyfaces.json").read_text())
    assert (info["seed"], info["count"], info["width"], info["height"]) == (3, 12, 178, 218)
    for j, name in enumerate(TOY_ATTRS):
        assert info["frequencies"][name] == pytest.approx(sum(r[1 + j] == "1" for r in rows) / 12)


def test_celeba_loader_reads_the_attribute_list(small_set: Path) -> None:
    from stargan_train.data.celeba import read_attr_file

    table = read_attr_file(small_set / "list_attr_celeba.txt")
    assert table.attr_names == TOY_ATTRS and len(table.filenames) == 12
    assert np.all(table.values[:, :3].sum(axis=1) == 1)


def test_hair_mask_in_files_matches_rendered_mask(small_set: Path) -> None:
    params = sample_params(np.random.default_rng([3, 0, 4]))  # the generator's stream for face 5
    image, masks = render_face(params)
    with Image.open(small_set / "images/000005.png") as img, Image.open(small_set / "masks/000005.png") as m:
        assert np.array_equal(np.asarray(img), image)
        assert np.array_equal(np.asarray(m) == 255, masks["hair"])


def test_attributes_are_balanced_and_independent() -> None:
    params = [sample_params(np.random.default_rng([11, i])) for i in range(600)]
    labels = np.array([[p.labels[a] for a in TOY_ATTRS] for p in params], dtype=float)
    freq = labels.mean(axis=0)
    assert np.all(np.abs(freq[:3] - 1 / 3) < 0.06), freq
    assert np.all(np.abs(freq[3:] - 0.5) < 0.07), freq
    assert np.all(labels[:, :3].sum(axis=1) == 1)
    corr = np.corrcoef(labels[:, 2:].T)  # Brown_Hair, Male, Young: independent draws
    assert np.all(np.abs(corr[np.triu_indices(3, 1)]) < 0.12), corr


def test_forced_attributes_are_honoured() -> None:
    rng = np.random.default_rng(0)
    for hair in HAIRS:
        for male in (0, 1):
            for young in (-1, 1):
                p = sample_params(rng, {hair: 1, "Male": male, "Young": young})
                assert p.labels == {**{h: int(h == hair) for h in HAIRS}, "Male": male, "Young": int(young == 1)}
    for _ in range(20):  # two colours ruled out leave the third
        assert sample_params(rng, {"Black_Hair": -1, "Brown_Hair": 0}).hair == "Blond_Hair"


@pytest.mark.parametrize(
    "attrs", [{"Black_Hair": 1, "Blond_Hair": 1}, {h: 0 for h in HAIRS}, {"Bald": 1}, {"Male": 2}, {"Young": True}]
)
def test_impossible_or_unknown_attributes_raise(attrs: dict[str, int]) -> None:
    with pytest.raises(ValueError):
        sample_params(np.random.default_rng(0), attrs)


def test_hair_mask_carries_the_hair_colour_black_brown_blond() -> None:
    means: dict[str, list[float]] = {h: [] for h in HAIRS}
    for seed in range(8):
        for hair in HAIRS:
            p = sample_params(np.random.default_rng(seed), {hair: 1, "Young": 1})
            image, masks = render_face(p)
            hair_pixels = image[masks["hair"]]
            means[hair].append(float(luminance(hair_pixels).mean()))
            # The mask covers what was painted in the hair colour, texture and noise aside.
            assert np.abs(np.median(hair_pixels, axis=0) - np.array(p.hair_rgb)).max() < 20
    assert max(means["Black_Hair"]) < min(means["Brown_Hair"])
    assert max(means["Brown_Hair"]) < min(means["Blond_Hair"])


def test_hair_colour_edit_changes_only_hair_pixels() -> None:
    for seed in range(4):
        black, blond = pair(seed, {"Black_Hair": 1}, {"Black_Hair": 0, "Blond_Hair": 1})
        (img_a, masks_a), (img_b, masks_b) = render_face(black), render_face(blond)
        assert np.array_equal(masks_a["hair"], masks_b["hair"])
        changed = np.any(img_a != img_b, axis=-1)
        assert changed[masks_a["hair"]].mean() > 0.9
        assert not changed[~masks_a["hair"]].any()


def test_male_adds_a_darker_beard_and_short_hair() -> None:
    for seed in range(6):
        female, male = pair(seed, {"Male": 0, "Young": 1}, {"Male": 1})
        (img_f, masks_f), (img_m, masks_m) = render_face(female), render_face(male)
        assert not masks_f["beard"].any() and masks_m["beard"].sum() > 500
        region = masks_m["beard"]
        assert luminance(img_m[region]).mean() < luminance(img_f[region]).mean() - 20
        chin_y = toyfaces.Frame.of(male, 178, 218).chin_y
        rows = np.arange(218)[:, None] > chin_y
        assert not (masks_m["hair"] & rows).any()  # short hair ends above the chin
        assert (masks_f["hair"] & rows).sum() > 200  # long hair falls past it


def test_old_adds_grey_streaks_and_face_lines() -> None:
    for seed in range(6):
        young, old = pair(seed, {"Young": 1}, {"Young": 0})
        (img_y, masks_y), (img_o, masks_o) = render_face(young), render_face(old)
        assert np.array_equal(masks_y["hair"], masks_o["hair"])

        def grey_fraction(img: np.ndarray, hair_mask: np.ndarray = masks_y["hair"]) -> float:
            hair = img[hair_mask]
            return float(((saturation(hair) < 0.15) & (luminance(hair) > 130)).mean())

        assert grey_fraction(img_y) < 0.03 and grey_fraction(img_o) > 0.15
        face = masks_o["face"] & masks_y["face"]
        lines = np.abs(luminance(img_o) - luminance(img_y))[face] > 25
        assert lines.mean() > 0.02  # creases on the skin
        changed = np.any(img_y != img_o, axis=-1)
        assert changed[~(masks_y["hair"] | face | masks_o["beard"])].mean() < 0.01


def test_expressions_write_rafd_layout(tmp_path: Path) -> None:
    out = generate_toyfaces(tmp_path / "expr", 8, seed=1, expressions=True, progress=False)
    info = json.loads((out / "toyfaces.json").read_text())
    for split in ("train", "test"):
        folders = sorted(p.name for p in (out / "rafd" / split).iterdir())
        assert folders == sorted(RAFD_EXPRESSIONS)
        files = sorted((out / "rafd" / split).rglob("*.png"))
        assert len(files) == info["rafd"][split] and all(
            len(list((out / "rafd" / split / e).iterdir())) >= 1 for e in folders
        )
        with Image.open(files[0]) as img:
            assert (img.mode, img.size) == ("RGB", (256, 256))
    assert info["rafd"] == {"train": 8, "test": 8}
    again = generate_toyfaces(out, 24, seed=1, expressions=True, progress=False)
    generate_toyfaces(again, 8, seed=1, expressions=True, progress=False)  # smaller: old images must go
    assert len(list((out / "rafd").rglob("*.png"))) == 16


@pytest.mark.parametrize("shape", [(7, 5, 3), (33, 64, 3), (9, 13)])
def test_png_encoder_round_trips_through_pillow(shape: tuple[int, ...]) -> None:
    pixels = np.random.default_rng(len(shape)).integers(0, 256, shape, dtype=np.uint8)
    with Image.open(io.BytesIO(toyfaces.png_bytes(pixels))) as img:
        img.load()
        assert img.format == "PNG" and img.mode == ("RGB" if len(shape) == 3 else "L")
        assert np.array_equal(np.asarray(img), pixels)


def test_expressions_change_the_face_not_the_person() -> None:
    happy = sample_params(np.random.default_rng(2), expression="happy")
    sad = sample_params(np.random.default_rng(2), expression="sad")
    assert (happy.skin_rgb, happy.hair, happy.bg_top) == (sad.skin_rgb, sad.hair, sad.bg_top)
    assert happy.mouth_curve > 0.8 and sad.mouth_curve < -0.6 and sad.brow_tilt > happy.brow_tilt
    (img_h, _), (img_s, _) = render_face(happy, 256, 256), render_face(sad, 256, 256)
    ys, xs = np.nonzero(np.any(img_h != img_s, axis=-1))
    f = toyfaces.Frame.of(happy, 256, 256)
    assert ys.size > 100
    assert ys.min() > f.cy - f.b and ys.max() < f.chin_y and np.all(np.abs(xs - f.cx) < f.a)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"count": 0}, "count"),
        ({"count": -3}, "count"),
        ({"count": 2.5}, "count"),
        ({"count": True}, "count"),
        ({"count": 2, "width": 16}, "at least 32"),
        ({"count": 2, "height": 20}, "at least 32"),
        ({"count": 2, "width": 178, "height": 500}, "elongated"),
    ],
)
def test_bad_arguments_raise(tmp_path: Path, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        generate_toyfaces(tmp_path / "bad", progress=False, **kwargs)
    assert not (tmp_path / "bad").exists()


def test_bad_params_raise(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="hair"):
        FaceParams(hair="Green_Hair", male=True, young=True)
    with pytest.raises(ValueError, match="expression"):
        sample_params(np.random.default_rng(0), expression="bored")
    with pytest.raises(ValueError, match="at least 32"):
        render_face(sample_params(np.random.default_rng(0)), 31, 64)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="not a folder"):
        generate_toyfaces(tmp_path / "file", 1, progress=False)


def test_crash_leaves_no_attribute_list_and_no_temp_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = generate_toyfaces(tmp_path / "set", 2, seed=0, progress=False)  # an earlier complete set
    calls = {"n": 0}
    real = toyfaces.render_face

    def failing(params: FaceParams, width: int = 178, height: int = 218):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("simulated crash")
        return real(params, width, height)

    monkeypatch.setattr(toyfaces, "render_face", failing)
    with pytest.raises(RuntimeError, match="simulated crash"):
        generate_toyfaces(out, 5, seed=1, progress=False)
    assert not (out / "list_attr_celeba.txt").exists()  # the old list no longer describes the images
    assert not [p for p in out.rglob("*") if p.name.endswith(".tmp")]


def test_worker_processes_write_the_same_files(tmp_path: Path) -> None:
    one = folder_bytes(generate_toyfaces(tmp_path / "one", 9, seed=3, progress=False, width=40, height=48))
    three = folder_bytes(
        generate_toyfaces(tmp_path / "three", 9, seed=3, progress=False, width=40, height=48, workers=3)
    )
    assert one == three
    with pytest.raises(ValueError, match="workers must be a positive integer"):
        generate_toyfaces(tmp_path / "bad", 2, workers=0, progress=False)
    assert not (tmp_path / "bad").exists()


def test_progress_bar_run_writes_the_same_files(tmp_path: Path) -> None:
    quiet = folder_bytes(generate_toyfaces(tmp_path / "quiet", 2, seed=4, progress=False))
    shown = folder_bytes(generate_toyfaces(tmp_path / "shown", 2, seed=4, progress=True))
    assert quiet == shown


sizes = st.integers(32, 160).flatmap(
    lambda w: st.tuples(st.just(w), st.integers(max(32, (w + 1) // 2), min(160, 2 * w)))
)
forced = st.dictionaries(st.sampled_from(("Male", "Young", *HAIRS)), st.sampled_from((0, 1)), max_size=2).filter(
    lambda d: sum(d.get(h, 0) for h in HAIRS) <= 1
)


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), size=sizes, attrs=forced)
def test_any_sampled_face_renders_with_sane_masks(seed: int, size: tuple[int, int], attrs: dict[str, int]) -> None:
    width, height = size
    params = sample_params(np.random.default_rng(seed), attrs)
    image, masks = render_face(params, width, height)
    assert image.shape == (height, width, 3) and image.dtype == np.uint8
    assert set(masks) >= {"hair", "face", "beard"}
    for mask in masks.values():
        assert mask.shape == (height, width) and mask.dtype == bool
    assert masks["hair"].any() and masks["face"].any()
    assert masks["beard"].any() == params.male
    assert not (masks["hair"] & masks["face"]).any() and not (masks["hair"] & masks["beard"]).any()
    assert all(params.labels[k] == v % 2 for k, v in attrs.items())
