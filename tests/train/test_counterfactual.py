"""Counterfactual toy faces: the re-render matches the stored face, regions cover every changed pixel."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from stargan_train.config import DataConfig
from stargan_train.counterfactual import ToyfacesTruth, WithTruth, edit_region
from stargan_train.data.toyfaces import generate_toyfaces
from stargan_train.evaluate import _test_dataset

ATTRS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")
SIZE = 32


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> DataConfig:
    root = tmp_path_factory.mktemp("toy")
    generate_toyfaces(root, 40, seed=3, progress=False)
    return DataConfig(
        dataset="toyfaces",
        celeba_image_dir=str(root / "images"),
        attr_path=str(root / "list_attr_celeba.txt"),
        image_size=SIZE,
        test_count=8,
        num_workers=0,
    )


def _truth(data: DataConfig) -> ToyfacesTruth:
    truth, why_not = ToyfacesTruth.find(Path(data.celeba_image_dir), crop=178, size=SIZE, attrs=ATTRS)
    assert why_not is None and truth is not None
    return truth


def test_find_reads_the_folder_and_explains_why_not(toy: DataConfig, tmp_path: Path) -> None:
    truth = _truth(toy)
    assert (truth.seed, truth.width, truth.height) == (3, 178, 218)
    assert truth.face_index("000012.png") == 11
    assert truth.face_index("face.png") is None and truth.face_index("000000.png") is None
    assert ToyfacesTruth.find(tmp_path / "images", crop=178, size=SIZE, attrs=ATTRS)[1].startswith("no toyfaces.json")
    copy = tmp_path / "copy"
    shutil.copytree(Path(toy.celeba_image_dir).parent, copy)
    info = json.loads((copy / "toyfaces.json").read_text())
    (copy / "toyfaces.json").write_text(json.dumps({**info, "version": 999}))
    assert "version 999" in ToyfacesTruth.find(copy / "images", crop=178, size=SIZE, attrs=ATTRS)[1]
    assert (
        "not drawn by toyfaces"
        in ToyfacesTruth.find(Path(toy.celeba_image_dir), crop=178, size=SIZE, attrs=("Smiling",))[1]
    )


def test_regions_cover_every_changed_pixel_and_hair_edits_only_the_hair(toy: DataConfig) -> None:
    ds = _test_dataset(toy)
    items = WithTruth(ds, _truth(toy))
    for k in range(len(ds)):
        x, label, stored_hair, truth = items[k]
        assert bool(truth["exact"])
        assert torch.equal(truth["images"][0], x)  # the identity's truth is the input itself
        hair = stored_hair > 0.5
        for e, attr in enumerate(ATTRS, start=1):
            changed = bool(truth["changed"][e])
            assert changed == (attr not in ATTRS[:3] or label[e - 1] < 0.5)
            if not changed:
                continue
            region, cf = truth["regions"][e], truth["images"][e]
            assert torch.equal(cf[:, ~region], x[:, ~region])  # nothing outside the region may change
            assert (cf - x).abs()[:, region].max() > 0.1  # ...and something inside does
            if attr in ATTRS[:3]:
                assert bool(region[hair].all())  # the whole hair (the stored mask) is the hair edit's region
                assert region.float().mean() < hair.float().mean() + 0.12  # plus its boundary ring, no more
            else:
                assert region.float().mean() < 0.75  # the background and clothes are never in the region


def test_edit_region_is_the_union_of_semantic_masks_and_changed_pixels() -> None:
    rgb = np.zeros((4, 4, 3), np.uint8)
    cf = rgb.copy()
    cf[3, 3] = 9
    empty = np.zeros((4, 4), bool)
    hair, cf_hair, face = empty.copy(), empty.copy(), empty.copy()
    hair[0, 0], cf_hair[0, 1], face[1, 1] = True, True, True
    masks = {"hair": hair, "beard": empty, "face": face}
    cf_masks = {"hair": cf_hair, "beard": empty, "face": empty}
    assert sorted(zip(*np.nonzero(edit_region("Blond_Hair", rgb, masks, cf, cf_masks)))) == [(0, 0), (0, 1), (3, 3)]
    assert (1, 1) in set(zip(*np.nonzero(edit_region("Young", rgb, masks, cf, cf_masks))))
    assert (1, 1) not in set(zip(*np.nonzero(edit_region("Male", rgb, masks, cf, cf_masks))))
