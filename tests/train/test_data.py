"""Data loaders on generated fixtures: attribute parsing, splits, transforms, loaders, RaFD, joint labels, errors."""

from __future__ import annotations

import dataclasses
import random
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from torch.utils.data import DistributedSampler

from stargan_train.config import RAFD_EXPRESSIONS, DataConfig
from stargan_train.data import DatasetError, build_dataset, build_loaders, infinite_batches, joint_labels
from stargan_train.data.celeba import read_attr_file, select_attrs, split_indices
from stargan_train.data.transforms import (
    ImageTransform,
    build_transform,
    center_crop_box,
    load_rgb,
    to_normalized_tensor,
)

ALL_ATTRS = ("5_o_Clock_Shadow", "Black_Hair", "Blond_Hair", "Brown_Hair", "Eyeglasses", "Male", "Young")
SELECTED = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")
N_IMAGES = 12


# ---------------------------------------------------------------- fixture writers


def grey_of(index: int) -> int:
    """Each fixture image is one flat grey level, so a batch tells which file each item came from."""
    return 20 * index + 5


def write_attr_file(path: Path, names: tuple[str, ...], filenames: list[str], values: np.ndarray) -> None:
    rows = [f"{f} " + " ".join("1" if v else "-1" for v in row) for f, row in zip(filenames, values)]
    path.write_text(f"{len(filenames)}\n{' '.join(names)}\n" + "\n".join(rows) + "\n")


def write_celeba(root: Path, n: int = N_IMAGES, size: tuple[int, int] = (40, 48), seed: int = 0) -> dict:
    """CelebA layout: root/images/NNNNNN.{png,jpg} flat-grey images + root/list_attr_celeba.txt."""
    image_dir = root / "images"
    image_dir.mkdir(parents=True)
    values = np.random.default_rng(seed).integers(0, 2, size=(n, len(ALL_ATTRS))).astype(bool)
    filenames = [f"{i:06d}.png" for i in range(n)]
    for i, name in enumerate(filenames):
        Image.new("RGB", size, (grey_of(i),) * 3).save(image_dir / name)
    write_attr_file(root / "list_attr_celeba.txt", ALL_ATTRS, filenames, values)
    return {"image_dir": image_dir, "attr_path": root / "list_attr_celeba.txt", "values": values, "files": filenames}


def write_rafd(root: Path, per_class: dict[str, int], size: tuple[int, int] = (36, 40)) -> Path:
    """RaFD layout: root/<expression>/*.jpg; the grey level encodes the expression index."""
    for name, count in per_class.items():
        (root / name).mkdir(parents=True)
        grey = 25 * RAFD_EXPRESSIONS.index(name.lower())
        for k in range(count):
            Image.new("RGB", size, (grey,) * 3).save(root / name / f"{k}.png")
    return root


def celeba_config(fx: dict, **overrides) -> DataConfig:
    base = dict(
        dataset="celeba",
        celeba_image_dir=str(fx["image_dir"]),
        attr_path=str(fx["attr_path"]),
        selected_attrs=SELECTED,
        celeba_crop_size=32,
        image_size=16,
        test_count=4,
        seed=7,
        num_workers=0,
    )
    return DataConfig(**{**base, **overrides})


def grey_index(images: torch.Tensor) -> list[int]:
    """Recover each item's file index from its flat grey level."""
    levels = ((images[:, 0, 0, 0] + 1) * 127.5).round().long().tolist()
    return [(v - 5) // 20 for v in levels]


@pytest.fixture
def celeba(tmp_path: Path) -> dict:
    return write_celeba(tmp_path / "celeba")


# ---------------------------------------------------------------- attribute file and split


def test_labels_follow_selected_order(celeba: dict) -> None:
    table = read_attr_file(celeba["attr_path"])
    assert table.attr_names == ALL_ATTRS
    assert list(table.filenames) == celeba["files"]
    picked = select_attrs(table, ("Young", "Black_Hair", "Male"))
    cols = [ALL_ATTRS.index(a) for a in ("Young", "Black_Hair", "Male")]
    assert picked.dtype == np.float32
    np.testing.assert_array_equal(picked, celeba["values"][:, cols].astype(np.float32))


@settings(max_examples=25, deadline=None)
@given(
    matrix=st.lists(st.lists(st.booleans(), min_size=4, max_size=4), min_size=1, max_size=8),
    order=st.permutations(range(4)),
    keep=st.integers(1, 4),
)
def test_label_parsing_property(matrix: list[list[bool]], order: list[int], keep: int) -> None:
    names = ("A", "B_b", "C", "D")
    values = np.array(matrix, dtype=bool)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "attrs.txt"
        write_attr_file(path, names, [f"{i}.jpg" for i in range(len(values))], values)
        selected = [names[i] for i in order[:keep]]
        got = select_attrs(read_attr_file(path), selected)
    np.testing.assert_array_equal(got, values[:, order[:keep]].astype(np.float32))


def test_split_is_seeded_disjoint_and_official(celeba: dict) -> None:
    cfg = celeba_config(celeba)
    train = build_dataset(cfg, "celeba", "train")
    test = build_dataset(cfg, "celeba", "test")
    assert len(test) == 4 and len(train) == N_IMAGES - 4
    assert set(train.filenames).isdisjoint(test.filenames)
    assert sorted(train.filenames + test.filenames) == celeba["files"]
    # Official semantics: shuffle the rows with the seed, the first test_count rows are the test split.
    rows = list(celeba["files"])
    random.Random(7).shuffle(rows)
    assert test.filenames == rows[:4] and train.filenames == rows[4:]
    assert build_dataset(cfg, "celeba", "test").filenames == test.filenames
    other = build_dataset(dataclasses.replace(cfg, seed=8), "celeba", "test")
    assert other.filenames != test.filenames
    # Labels travel with their files through the shuffle.
    cols = [ALL_ATTRS.index(a) for a in SELECTED]
    for name, label in zip(test.filenames, test.labels):
        expected = celeba["values"][celeba["files"].index(name), cols].astype(np.float32)
        np.testing.assert_array_equal(label.numpy(), expected)


def test_split_index_edge_cases() -> None:
    assert sorted(split_indices(5, 2, 0, "train") + split_indices(5, 2, 0, "test")) == list(range(5))
    assert sorted(split_indices(5, 0, 0, "train")) == list(range(5))  # no test split: everything trains
    with pytest.raises(DatasetError, match="leaves no training images"):
        split_indices(5, 5, 0, "train")
    with pytest.raises(DatasetError, match="test split is empty"):
        split_indices(5, 0, 0, "test")
    with pytest.raises(DatasetError, match="split must be one of"):
        split_indices(5, 1, 0, "val")


# ---------------------------------------------------------------- transforms


def test_center_crop_and_resize_geometry() -> None:
    # 50x40 green frame around a centred 24x24 square of four coloured quadrants.
    w, h, c = 50, 40, 24
    left, top = (w - c) // 2, (h - c) // 2
    arr = np.zeros((h, w, 3), np.uint8)
    arr[...] = (0, 255, 0)
    quads = {(0, 0): (255, 0, 0), (0, 1): (0, 0, 255), (1, 0): (255, 255, 255), (1, 1): (0, 0, 0)}
    for (qy, qx), colour in quads.items():
        arr[top + qy * 12 : top + qy * 12 + 12, left + qx * 12 : left + qx * 12 + 12] = colour
    x = ImageTransform(crop_size=c, image_size=12)(Image.fromarray(arr))
    assert x.shape == (3, 12, 12) and x.dtype == torch.float32
    green = (x[0] < -0.9) & (x[1] > 0.9) & (x[2] < -0.9)
    assert not green.any(), "the crop is off-centre: the green frame leaked in"
    for (qy, qx), colour in quads.items():
        corner = x[:, qy * 11, qx * 11]  # resize keeps the flat interior of each quadrant exact
        assert torch.equal(corner, torch.tensor(colour, dtype=torch.float32) / 127.5 - 1)


def test_crop_without_resize_matches_numpy_slice() -> None:
    rng = np.random.default_rng(3)
    # Half-pixel margins: (21-16)/2 = 2.5 -> 2 and (23-16)/2 = 3.5 -> 4 (round half to even, as
    # torchvision's CenterCrop rounds), so neither floor nor ceil passes.
    arr = rng.integers(0, 256, size=(23, 21, 3), dtype=np.uint8)
    x = ImageTransform(crop_size=16, image_size=16)(Image.fromarray(arr))
    left, top = 2, 4
    expected = torch.from_numpy(arr[top : top + 16, left : left + 16].astype(np.float32) / 127.5 - 1).permute(2, 0, 1)
    assert torch.equal(x, expected)


@settings(max_examples=60, deadline=None)
@given(w=st.integers(1, 300), h=st.integers(1, 300), c=st.integers(1, 300))
def test_center_crop_box_property(w: int, h: int, c: int) -> None:
    if c > min(w, h):
        with pytest.raises(ValueError, match=f"crop size {c} is larger than the image \\({w}x{h}"):
            center_crop_box(w, h, c)
        return
    left, top, right, bottom = center_crop_box(w, h, c)
    assert right - left == c and bottom - top == c
    assert 0 <= left and right <= w and 0 <= top and bottom <= h
    assert abs((left + right) / 2 - w / 2) <= 0.5 and abs((top + bottom) / 2 - h / 2) <= 0.5


def test_normalisation_is_exactly_minus_one_to_one() -> None:
    arr = np.zeros((4, 4, 3), np.uint8)
    arr[:2] = 255
    arr[3, 3] = 128
    x = to_normalized_tensor(Image.fromarray(arr))
    assert x.dtype == torch.float32 and x.shape == (3, 4, 4)
    assert x.min().item() == -1.0 and x.max().item() == 1.0
    assert x[0, 3, 3].item() == pytest.approx(128 / 127.5 - 1, abs=1e-7)


def test_random_flip_is_seeded_and_mirrors() -> None:
    arr = np.random.default_rng(0).integers(0, 256, size=(20, 20, 3), dtype=np.uint8)
    img = Image.fromarray(arr)
    plain = build_transform(20, 20, "test")(img)
    train = build_transform(20, 20, "train")
    torch.manual_seed(5)
    outs = [train(img) for _ in range(40)]
    flipped = [not torch.equal(o, plain) for o in outs]
    assert 5 < sum(flipped) < 35, "the flip probability should be about one half"
    for o, f in zip(outs, flipped):
        assert torch.equal(o, torch.flip(plain, dims=[2]) if f else plain)
    torch.manual_seed(5)
    assert all(torch.equal(train(img), o) for o in outs), "same seed, same flips"
    assert all(torch.equal(build_transform(20, 20, "test")(img), plain) for _ in range(10))


@pytest.mark.parametrize("mode", ["L", "RGBA", "P", "RGB"])
def test_any_image_mode_becomes_rgb(tmp_path: Path, mode: str) -> None:
    path = tmp_path / f"img_{mode}.png"
    Image.new("RGB", (8, 8), (255, 255, 255)).convert(mode).save(path)
    x = ImageTransform(crop_size=8, image_size=4)(load_rgb(path))
    assert x.shape == (3, 4, 4) and torch.equal(x, torch.ones(3, 4, 4))


# ---------------------------------------------------------------- loaders


def test_celeba_loader_batches(celeba: dict) -> None:
    cfg = dataclasses.replace(celeba_config(celeba), dataset="toyfaces")
    loaders = build_loaders(cfg, batch_size=3, split="train", seed=1)
    assert list(loaders) == ["celeba"]
    batches = list(loaders["celeba"])
    assert len(batches) == 2  # 8 training images, batch 3, drop_last for training
    cols = [ALL_ATTRS.index(a) for a in SELECTED]
    for images, labels in batches:
        assert images.shape == (3, 3, 16, 16) and images.dtype == torch.float32
        assert labels.shape == (3, 5) and labels.dtype == torch.float32
        assert images.min() >= -1 and images.max() <= 1
        for idx, label in zip(grey_index(images), labels):
            np.testing.assert_array_equal(label.numpy(), celeba["values"][idx, cols].astype(np.float32))
    # The test loader keeps order and every image: no shuffle, no drop_last.
    test_loader = build_loaders(cfg, batch_size=3, split="test")["celeba"]
    seen = [i for images, _ in test_loader for i in grey_index(images)]
    assert [celeba["files"][i] for i in seen] == test_loader.dataset.filenames


def test_loader_shuffle_is_seeded(celeba: dict) -> None:
    cfg = celeba_config(celeba)

    def order(seed: int) -> list[int]:
        torch.manual_seed(0)  # the flip RNG; the order comes from the loader's own generator
        return [i for x, _ in build_loaders(cfg, 2, seed=seed)["celeba"] for i in grey_index(x)]

    assert order(3) == order(3)
    assert sorted(order(3)) == sorted(order(4))
    assert order(3) != order(4)


def test_distributed_sampler_shards_disjointly(celeba: dict) -> None:
    cfg = celeba_config(celeba)
    shards = []
    for rank in (0, 1):
        loader = build_loaders(cfg, batch_size=2, rank=rank, world_size=2, seed=11)["celeba"]
        assert isinstance(loader.sampler, DistributedSampler) and loader.sampler.seed == 11
        shards.append([i for x, _ in loader for i in grey_index(x)])
    assert len(shards[0]) == len(shards[1]) == 4
    assert set(shards[0]).isdisjoint(shards[1])
    train_files = set(build_dataset(cfg, "celeba", "train").filenames)
    assert {celeba["files"][i] for i in shards[0] + shards[1]} == train_files


def test_infinite_batches_advances_the_sampler_epoch(celeba: dict) -> None:
    loader = build_loaders(celeba_config(celeba), batch_size=4, rank=0, world_size=2)["celeba"]
    stream = infinite_batches(loader)
    epochs = [[i for i in grey_index(next(stream)[0])] for _ in range(3)]  # one batch per epoch per rank
    assert loader.sampler.epoch == 2
    assert all(len(e) == 4 for e in epochs) and len({tuple(e) for e in epochs}) > 1


def test_worker_process_loader(celeba: dict) -> None:
    loader = build_loaders(celeba_config(celeba), batch_size=4, split="test", num_workers=1)["celeba"]
    assert loader.persistent_workers and loader.num_workers == 1
    ((images, labels),) = list(loader)
    assert images.shape == (4, 3, 16, 16) and labels.shape == (4, 5)


# ---------------------------------------------------------------- RaFD and joint mode


def test_rafd_one_hot_and_test_sibling(tmp_path: Path) -> None:
    write_rafd(tmp_path / "RaFD" / "train", {"happy": 3, "angry": 2, "sad": 1})
    write_rafd(tmp_path / "RaFD" / "test", {"surprised": 2})
    cfg = DataConfig(
        dataset="rafd", rafd_image_dir=str(tmp_path / "RaFD" / "train"), rafd_crop_size=32, image_size=16, num_workers=0
    )
    train = build_loaders(cfg, batch_size=6, shuffle=False)["rafd"]
    ((images, labels),) = list(train)
    assert images.shape == (6, 3, 16, 16) and labels.shape == (6, 8) and labels.dtype == torch.float32
    assert torch.equal(labels.sum(1), torch.ones(6))
    # Sorted folders: angry (0) x2, happy (4) x3, sad (6) x1; the grey level encodes the same index.
    assert labels.argmax(1).tolist() == [0, 0, 4, 4, 4, 6]
    assert ((images[:, 0, 0, 0] + 1) * 127.5 / 25).round().long().tolist() == [0, 0, 4, 4, 4, 6]
    test = build_dataset(cfg, "rafd", "test")
    assert len(test) == 2 and test[0][1].argmax().item() == RAFD_EXPRESSIONS.index("surprised")
    override = dataclasses.replace(cfg, rafd_test_dir=str(tmp_path / "RaFD" / "train"))
    assert len(build_dataset(override, "rafd", "test")) == 6


def test_joint_mode_loaders(tmp_path: Path, celeba: dict) -> None:
    write_rafd(tmp_path / "RaFD" / "train", {"neutral": 2, "fearful": 2})
    cfg = celeba_config(celeba, dataset="both", rafd_image_dir=str(tmp_path / "RaFD" / "train"), rafd_crop_size=30)
    loaders = build_loaders(cfg, batch_size=2)
    assert list(loaders) == ["celeba", "rafd"]
    (xc, yc), (xr, yr) = next(iter(loaders["celeba"])), next(iter(loaders["rafd"]))
    assert xc.shape == xr.shape == (2, 3, 16, 16) and yc.shape == (2, 5) and yr.shape == (2, 8)
    c = torch.cat([joint_labels("celeba", yc, 5), joint_labels("rafd", yr, 5)])
    assert c.shape == (4, 15)


def test_joint_labels_layout() -> None:
    celeba = torch.tensor([[1.0, 0, 0, 1, 1], [0, 1, 0, 0, 0]])
    rafd = torch.eye(8)[[2, 7]]
    jc = joint_labels("celeba", celeba, n_celeba=5)
    jr = joint_labels("rafd", rafd, n_celeba=5)
    assert jc.shape == jr.shape == (2, 15) and jc.dtype == torch.float32
    assert torch.equal(jc[:, :5], celeba) and not jc[:, 5:13].any()
    assert torch.equal(jc[:, 13:], torch.tensor([[1.0, 0], [1.0, 0]]))
    assert torch.equal(jr[:, 5:13], rafd) and not jr[:, :5].any()
    assert torch.equal(jr[:, 13:], torch.tensor([[0.0, 1], [0.0, 1]]))
    assert joint_labels("rafd", torch.eye(3), n_celeba=2, n_rafd=3).shape == (3, 7)
    with pytest.raises(ValueError, match=r"celeba labels must have shape \[B, 5\]"):
        joint_labels("celeba", rafd, n_celeba=5)
    with pytest.raises(ValueError, match="part must be one of"):
        joint_labels("afhq", celeba, n_celeba=5)


# ---------------------------------------------------------------- bad inputs


def test_missing_attr_file_and_image_folder(celeba: dict, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="attribute file not found: .*nope.txt"):
        build_dataset(celeba_config(celeba, attr_path=str(tmp_path / "nope.txt")), "celeba", "train")
    with pytest.raises(DatasetError, match="image folder not found: .*absent"):
        build_dataset(celeba_config(celeba, celeba_image_dir=str(tmp_path / "absent")), "celeba", "train")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match="image folder is empty: .*empty"):
        build_dataset(celeba_config(celeba, celeba_image_dir=str(tmp_path / "empty")), "celeba", "train")


def test_unknown_attributes_list_the_available_ones(celeba: dict) -> None:
    cfg = celeba_config(celeba, selected_attrs=("Male", "Bald", "Smiling"))
    with pytest.raises(DatasetError, match="unknown attribute\\(s\\) Bald, Smiling; available: 5_o_Clock_Shadow"):
        build_dataset(cfg, "celeba", "train")


def test_missing_images_are_named(celeba: dict) -> None:
    for name in celeba["files"][:7]:
        (celeba["image_dir"] / name).unlink()
    with pytest.raises(DatasetError, match="7 image\\(s\\) .* missing .*000000.png, 000001.png.* and 2 more"):
        build_dataset(celeba_config(celeba), "celeba", "test")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("2\nA B\nx.png 1 -1\ny.png 1\n", "row 2 \\(y.png\\) has 1 values, expected 2"),
        ("2\nA B\nx.png 1 -1\ny.png 1 yes\n", "value 'yes'"),
        ("two\nA B\nx.png 1 -1\n", "line 1 must be the number of images"),
        ("3\nA B\nx.png 1 -1\ny.png 1 1\n", "declares 3 images but 2 rows follow"),
        ("0\nA B\n", "lists no images"),
        ("", "expected an image count on line 1"),
    ],
)
def test_malformed_attr_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "attrs.txt"
    path.write_text(text)
    with pytest.raises(DatasetError, match=message):
        read_attr_file(path)


def test_split_larger_than_dataset(celeba: dict) -> None:
    with pytest.raises(DatasetError, match=f"test_count {N_IMAGES} leaves no training images"):
        build_dataset(celeba_config(celeba, test_count=N_IMAGES), "celeba", "train")


def test_crop_larger_than_image(celeba: dict, tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match=r"images/\d{6}\.png: crop size 41 is larger than the image \(40x48 px\)"):
        build_dataset(celeba_config(celeba, celeba_crop_size=41), "celeba", "train")
    # A smaller image hidden later in the folder is caught when read, still naming the file.
    cfg = celeba_config(celeba)
    ds = build_dataset(cfg, "celeba", "train")
    Image.new("RGB", (20, 20)).save(ds.image_dir / ds.filenames[3])
    with pytest.raises(DatasetError, match=f"{ds.filenames[3]}: crop size 32 is larger than the image \\(20x20"):
        ds[3]


def test_unreadable_image(celeba: dict) -> None:
    ds = build_dataset(celeba_config(celeba), "celeba", "train")
    (ds.image_dir / ds.filenames[1]).write_bytes(b"not an image")
    with pytest.raises(DatasetError, match=f"cannot read image .*{ds.filenames[1]}"):
        ds[1]


def test_bad_rafd_folders(tmp_path: Path) -> None:
    def cfg(root: Path) -> DataConfig:
        return DataConfig(dataset="rafd", rafd_image_dir=str(root), rafd_crop_size=16, image_size=16)

    with pytest.raises(DatasetError, match="RaFD image folder not found"):
        build_dataset(cfg(tmp_path / "none" / "train"), "rafd", "train")
    (tmp_path / "flat" / "train").mkdir(parents=True)
    Image.new("RGB", (20, 20)).save(tmp_path / "flat" / "train" / "a.png")
    with pytest.raises(DatasetError, match="has no expression sub-folders; expected some of: angry"):
        build_dataset(cfg(tmp_path / "flat" / "train"), "rafd", "train")
    root = write_rafd(tmp_path / "odd" / "train", {"happy": 1})
    (root / "smiling").mkdir()
    with pytest.raises(DatasetError, match="unknown expression folder\\(s\\) smiling"):
        build_dataset(cfg(root), "rafd", "train")
    root = write_rafd(tmp_path / "hollow" / "train", {"happy": 1})
    (root / "sad").mkdir()
    (root / "sad" / "notes.txt").write_text("no images here")
    with pytest.raises(DatasetError, match="expression folder .*sad holds no images"):
        build_dataset(cfg(root), "rafd", "train")
    with pytest.raises(DatasetError, match="does not end in 'train'; set rafd_test_dir"):
        build_dataset(cfg(tmp_path / "odd"), "rafd", "test")


def test_bad_mode_split_and_batch(celeba: dict) -> None:
    cfg = celeba_config(celeba)
    broken = celeba_config(celeba)
    object.__setattr__(broken, "dataset", "afhq")  # DataConfig validates too; the loader must not trust it
    with pytest.raises(DatasetError, match="unknown dataset mode 'afhq'"):
        build_loaders(broken, batch_size=2)
    with pytest.raises(DatasetError, match="split must be one of train, test"):
        build_loaders(cfg, batch_size=2, split="valid")
    with pytest.raises(DatasetError, match="only 8 image\\(s\\) per process for batch size 9"):
        build_loaders(cfg, batch_size=9)
    with pytest.raises(DatasetError, match="rank 2 is outside world_size 2"):
        build_loaders(cfg, batch_size=2, rank=2, world_size=2)
