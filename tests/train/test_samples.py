"""`stargan-train sample` on every label space: official CelebA / RaFD / joint checkpoints and RaFD runs of ours.

Each grid column is checked against the generator run on a label vector written out here by hand in the official
layout ([CelebA attrs | 8 expressions | mask]), not built by the code under test.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from stargan_train.checkpoint import TrainState, capture_rng, save_checkpoint
from stargan_train.cli import app
from stargan_train.config import DataConfig, DiscriminatorConfig, GeneratorConfig, RunConfig
from stargan_train.data.toyfaces import generate_toyfaces
from stargan_train.model import Generator
from stargan_train.samples import fixed_batch
from stargan_train.weights import load_generator

runner = CliRunner()
SIZE = 32  # the official fixtures' D is a 32 px one: the sampler reads the size from it


@pytest.fixture(scope="module")
def faces(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """12 CelebA-layout toy faces at CelebA's 178x218 (official crop 178) and a RaFD split at 256x256."""
    return generate_toyfaces(tmp_path_factory.mktemp("faces"), 12, seed=4, expressions=True, progress=False)


def _sample(source: Path, out: Path, data_dir: Path, count: int = 3) -> dict:
    result = runner.invoke(
        app, ["sample", str(source), "--data-dir", str(data_dir), "--out", str(out), "--count", str(count), "--json"]
    )
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _columns(path: Path, rows: int, size: int) -> np.ndarray:
    """The grid as [rows, columns, size, size, 3] uint8."""
    grid = np.asarray(Image.open(path).convert("RGB"))
    assert grid.shape[0] == rows * size and grid.shape[1] % size == 0
    return grid.reshape(rows, size, grid.shape[1] // size, size, 3).transpose(0, 2, 1, 3, 4)


def _to_uint8(y: torch.Tensor) -> np.ndarray:
    return y.clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()


def _assert_columns(grid: np.ndarray, G: torch.nn.Module, x: torch.Tensor, labels: list[torch.Tensor]) -> None:
    assert grid.shape[1] == 1 + len(labels)
    assert np.array_equal(grid[:, 0], _to_uint8(x))
    with torch.no_grad():
        for k, c in enumerate(labels):
            expected = _to_uint8(G(x, c)).astype(int)
            assert np.abs(grid[:, k + 1].astype(int) - expected).max() <= 1, f"column {k + 1}"


def test_official_rafd_checkpoint_gets_one_column_per_expression(
    official_rafd_checkpoint: Path, faces: Path, tmp_path: Path
) -> None:
    info = _sample(official_rafd_checkpoint, tmp_path / "rafd.png", faces / "rafd" / "test")
    assert (info["dataset"], info["rows"], info["columns"]) == ("rafd", 3, 9)
    data = DataConfig(
        dataset="rafd",
        rafd_image_dir=str(faces / "rafd" / "test"),
        rafd_test_dir=str(faces / "rafd" / "test"),
        image_size=SIZE,
    )
    x, c_org = fixed_batch(data, 3)
    assert c_org.argmax(dim=1).tolist() == [0, 1, 2]  # angry, contemptuous, disgusted: one test face each, sorted
    onehots = [torch.eye(8)[j].expand(3, 8) for j in range(8)]
    _assert_columns(
        _columns(tmp_path / "rafd.png", 3, SIZE), load_generator(official_rafd_checkpoint).model, x, onehots
    )


def test_official_joint_checkpoint_gets_celeba_then_rafd_columns_with_the_mask(
    official_joint_checkpoint: Path, faces: Path, tmp_path: Path
) -> None:
    info = _sample(official_joint_checkpoint, tmp_path / "joint.png", faces)
    assert (info["dataset"], info["rows"], info["columns"]) == ("both", 3, 1 + 5 + 8)
    data = DataConfig(
        celeba_image_dir=str(faces / "images"),
        attr_path=str(faces / "list_attr_celeba.txt"),
        image_size=SIZE,
        test_count=11,
    )  # 12 faces: the official 2000 cut to leave one to train on
    x, c_org = fixed_batch(data, 3)
    labels = []
    for i in range(5):  # official create_labels: hair colours one-hot, Male / Young flipped; then zeros, mask [1, 0]
        c = c_org.clone()
        if i < 3:
            c[:, :3] = 0
            c[:, i] = 1
        else:
            c[:, i] = 1 - c[:, i]
        labels.append(torch.cat([c, torch.zeros(3, 8), torch.tensor([[1.0, 0.0]] * 3)], dim=1))
    for j in range(8):  # expressions: zeros for CelebA, one-hot expression, mask [0, 1]
        labels.append(
            torch.cat([torch.zeros(3, 5), torch.eye(8)[j].expand(3, 8), torch.tensor([[0.0, 1.0]] * 3)], dim=1)
        )
    _assert_columns(
        _columns(tmp_path / "joint.png", 3, SIZE), load_generator(official_joint_checkpoint).model, x, labels
    )


def test_official_celeba_checkpoint_still_samples(official_checkpoint: Path, faces: Path, tmp_path: Path) -> None:
    info = _sample(official_checkpoint, tmp_path / "celeba.png", faces, count=2)
    assert (info["dataset"], info["rows"], info["columns"]) == ("celeba", 2, 6)


def test_a_rafd_run_of_ours_samples_a_moved_rafd_folder(faces: Path, tmp_path: Path) -> None:
    """A run dir's config records dataset rafd and c_dim 8; --data-dir names the RaFD test folder it moved to."""
    torch.manual_seed(3)
    G = Generator(conv_dim=8, c_dim=8, repeat_num=1)
    data = DataConfig(dataset="rafd", rafd_image_dir="/moved/away/train", image_size=SIZE, num_workers=0)
    config = RunConfig(GeneratorConfig(8, 8, 1), DiscriminatorConfig(SIZE, 8, 8, 3), data)
    from stargan_train.model import Discriminator

    D = Discriminator.from_config(config.discriminator)
    save_checkpoint(tmp_path / "run", TrainState(4, config, G.state_dict(), D.state_dict(), {}, {}, capture_rng()))
    info = _sample(tmp_path / "run", tmp_path / "run.png", faces / "rafd" / "test", count=2)
    assert (info["dataset"], info["rows"], info["columns"], info["iteration"]) == ("rafd", 2, 9, 4)
    x, _ = fixed_batch(dataclasses.replace(data, rafd_test_dir=str(faces / "rafd" / "test")), 2)
    _assert_columns(_columns(tmp_path / "run.png", 2, SIZE), G, x, [torch.eye(8)[j].expand(2, 8) for j in range(8)])


def test_a_label_length_with_no_official_meaning_is_a_one_line_error(faces: Path, tmp_path: Path) -> None:
    torch.manual_seed(0)
    torch.save(Generator(conv_dim=8, c_dim=7, repeat_num=1).state_dict(), tmp_path / "1000-G.ckpt")
    result = runner.invoke(
        app, ["sample", str(tmp_path / "1000-G.ckpt"), "--data-dir", str(faces), "--out", str(tmp_path / "x.png")]
    )
    assert result.exit_code == 2 and not (tmp_path / "x.png").exists()
    assert result.stderr.splitlines() == [
        "error: the generator takes 7 labels and carries no run config; an official checkpoint takes 5 (celeba), "
        "8 (rafd), 15 (both): sample the run dir it came from instead"
    ]
