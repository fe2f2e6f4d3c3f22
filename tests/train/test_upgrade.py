"""Joint runs written with the old 15-logit discriminator load as 13-logit ones and train on exactly as before."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from stargan_train import trainer as trainer_mod
from stargan_train import upgrade
from stargan_train.checkpoint import latest_checkpoint, load_checkpoint
from stargan_train.cli import app
from stargan_train.config import DataConfig, DiscriminatorConfig, GeneratorConfig, RunConfig, TrainConfig, label_dim
from stargan_train.data.toyfaces import generate_toyfaces
from stargan_train.trainer import Trainer
from stargan_train.weights import load_discriminator, load_generator

CONV2 = "conv2.weight"


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_toyfaces(
        tmp_path_factory.mktemp("toy"), 16, seed=0, width=36, height=44, expressions=True, progress=False
    )


def joint_config(toy: Path, d_c_dim: int, num_iters: int) -> RunConfig:
    data = DataConfig(
        dataset="both",
        celeba_image_dir=str(toy / "images"),
        attr_path=str(toy / "list_attr_celeba.txt"),
        rafd_image_dir=str(toy / "rafd" / "train"),
        celeba_crop_size=36,
        image_size=32,
        test_count=4,
        num_workers=0,
    )
    train = TrainConfig(
        batch_size=2,
        num_iters=num_iters,
        num_iters_decay=0,
        n_critic=2,
        log_step=100,
        sample_step=100,
        model_save_step=4,
        device="cpu",
    )
    return RunConfig(GeneratorConfig(4, 15, 0), DiscriminatorConfig(32, 4, d_c_dim, 3), data, train)


def as_before_issue_19(monkeypatch: pytest.MonkeyPatch) -> None:
    """The old code: D got one logit per label entry (the mask included) and nothing was upgraded on load."""
    monkeypatch.setattr(trainer_mod, "classifier_dim", label_dim)
    monkeypatch.setattr(upgrade, "is_legacy_joint", lambda run: False)


@pytest.fixture(scope="module")
def old_run(toy: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    run_dir = tmp_path_factory.mktemp("old") / "run"
    with pytest.MonkeyPatch.context() as mp:
        as_before_issue_19(mp)
        Trainer(joint_config(toy, 15, 4), run_dir, progress=False).fit()
    return run_dir


def test_the_mask_rows_of_an_old_joint_d_never_trained(old_run: Path) -> None:
    raw = torch.load(latest_checkpoint(old_run), weights_only=True)
    assert raw["config"]["discriminator"]["c_dim"] == 15 and raw["D"][CONV2].shape[0] == 15
    moments = raw["d_optim"]["state"][list(raw["D"]).index(CONV2)]
    assert moments["exp_avg"][:13].abs().sum() > 0  # the classified rows learned ...
    assert not moments["exp_avg"][13:].any() and not moments["exp_avg_sq"][13:].any()  # ... the mask rows never did


def test_every_loader_upgrades_an_old_joint_run(old_run: Path) -> None:
    raw = torch.load(latest_checkpoint(old_run), weights_only=True)
    state = load_checkpoint(latest_checkpoint(old_run))
    assert state.config.discriminator.c_dim == 13 and torch.equal(state.D[CONV2], raw["D"][CONV2][:13])
    index = list(raw["D"]).index(CONV2)
    for moment in ("exp_avg", "exp_avg_sq"):
        assert torch.equal(state.d_optim["state"][index][moment], raw["d_optim"]["state"][index][moment][:13])
    for source in (old_run, old_run / "checkpoints" / "000004-D.safetensors"):
        loaded = load_discriminator(source)
        assert loaded.config.c_dim == 13 and loaded.run_config.discriminator.c_dim == 13
        assert torch.equal(loaded.model.conv2.weight, raw["D"][CONV2][:13])
    assert load_generator(old_run).run_config.discriminator.c_dim == 13
    assert json.loads((old_run / "config.json").read_text())["discriminator"]["c_dim"] == 15  # untouched on disk


def test_an_old_joint_run_resumes_exactly_as_the_old_code_would(
    old_run: Path, toy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference, upgraded = tmp_path / "reference", tmp_path / "upgraded"
    shutil.copytree(old_run, reference)
    shutil.copytree(old_run, upgraded)
    with monkeypatch.context() as mp:
        as_before_issue_19(mp)
        Trainer(joint_config(toy, 15, 6), reference, progress=False, resume=True).fit()
    result = CliRunner().invoke(
        app, ["train", "--run-dir", str(upgraded), "--resume", "--num-iters", "6", "--no-progress", "--json"]
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["start_iteration"] == 4
    old = torch.load(latest_checkpoint(reference), weights_only=True)
    new = torch.load(latest_checkpoint(upgraded), weights_only=True)
    assert new["iteration"] == old["iteration"] == 6 and new["config"]["discriminator"]["c_dim"] == 13
    assert all(torch.equal(v, old["G"][k]) for k, v in new["G"].items())  # bit for bit: dropping the rows is exact
    assert all(torch.equal(v, old["D"][k][:13] if k == CONV2 else old["D"][k]) for k, v in new["D"].items())
    assert not torch.equal(new["D"][CONV2], torch.load(latest_checkpoint(old_run), weights_only=True)["D"][CONV2][:13])
