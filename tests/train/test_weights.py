"""Loading official and own checkpoints: shapes inferred, running stats dropped, one-sentence errors."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest
import torch

from stargan_train.checkpoint import TrainState, capture_rng, save_checkpoint
from stargan_train.config import DataConfig, DiscriminatorConfig, GeneratorConfig, RunConfig, TrainConfig
from stargan_train.model import Discriminator, Generator
from stargan_train.weights import CheckpointError, load_discriminator, load_generator


def test_official_generator_loads_and_drops_running_stats(official_checkpoint: Path) -> None:
    raw = torch.load(official_checkpoint, weights_only=True)
    assert any(k.endswith("running_mean") for k in raw)
    loaded = load_generator(official_checkpoint)
    assert loaded.kind == "official" and loaded.run_config is None
    assert loaded.config == GeneratorConfig(conv_dim=8, c_dim=5, repeat_num=2)
    for key, value in loaded.model.state_dict().items():
        torch.testing.assert_close(value, raw[key])
    assert len(loaded.sha256) == 64


def test_official_discriminator_infers_its_image_size(official_checkpoint: Path) -> None:
    loaded = load_discriminator(official_checkpoint)  # the -D.ckpt beside the -G.ckpt
    assert loaded.source.name == "1000-D.ckpt"
    assert loaded.config == DiscriminatorConfig(image_size=32, conv_dim=8, c_dim=5, repeat_num=3)


def test_official_joint_discriminator_loads_with_13_logits(official_joint_checkpoint: Path) -> None:
    raw = torch.load(official_joint_checkpoint.with_name("1000-D.ckpt"), weights_only=True)
    loaded = load_discriminator(official_joint_checkpoint)
    assert loaded.kind == "official" and loaded.config == DiscriminatorConfig(
        image_size=32, conv_dim=8, c_dim=13, repeat_num=3
    )
    state = loaded.model.state_dict()
    assert list(state) == list(raw)  # the same keys in the same order: the official layout exactly
    for key, value in raw.items():
        assert torch.equal(state[key], value), key
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert loaded.model(x)[1].shape == (2, 13)
    assert load_generator(official_joint_checkpoint).config == GeneratorConfig(conv_dim=8, c_dim=15, repeat_num=1)


def test_size_mismatches_are_explained_in_one_sentence(official_checkpoint: Path) -> None:
    with pytest.raises(CheckpointError, match="trained with c_dim 5 .* but 15 attributes were requested"):
        load_generator(official_checkpoint, c_dim=15)
    with pytest.raises(CheckpointError, match="discriminator for 32px images .* not 128px"):
        load_discriminator(official_checkpoint, image_size=128)


def test_unexpected_or_missing_keys_are_refused(tmp_path: Path, official_checkpoint: Path) -> None:
    sd = torch.load(official_checkpoint, weights_only=True)
    sd["main.99.weight"] = torch.zeros(1)
    torch.save(sd, tmp_path / "extra-G.ckpt")
    with pytest.raises(CheckpointError, match="unexpected main.99.weight"):
        load_generator(tmp_path / "extra-G.ckpt")
    del sd["main.99.weight"], sd["main.1.bias"]
    torch.save(sd, tmp_path / "missing-G.ckpt")
    with pytest.raises(CheckpointError, match="missing main.1.bias"):
        load_generator(tmp_path / "missing-G.ckpt")


class Payload:
    """Stands for arbitrary pickled code: loading must refuse it rather than run it."""


class Reducer:
    """Unpickling it would call os.system: the classic payload."""

    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_bad_safetensors_metadata_is_one_line(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    sd = {k: v.contiguous() for k, v in Generator(conv_dim=8, c_dim=5, repeat_num=2).state_dict().items()}
    for meta in ({"config": "{not json"}, {"iteration": "many"}, {"config": "[1, 2]"}, {"config": "1" * 5000}):
        save_file(sd, str(tmp_path / "bad-G.safetensors"), metadata=meta)
        with pytest.raises(CheckpointError, match="has (malformed metadata|a malformed run config)") as info:
            load_generator(tmp_path / "bad-G.safetensors")
        assert "\n" not in str(info.value)


def test_bad_files_give_one_line_errors(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        load_generator(tmp_path / "nope.ckpt")
    (tmp_path / "garbage.ckpt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError) as info:
        load_generator(tmp_path / "garbage.ckpt")
    assert "\n" not in str(info.value)
    assert "not a readable PyTorch checkpoint" in str(info.value)
    with open(tmp_path / "evil.ckpt", "wb") as f:
        pickle.dump({"main.0.weight": Payload()}, f, protocol=2)  # torch.load warns on other protocols
    with pytest.raises(CheckpointError):
        load_generator(tmp_path / "evil.ckpt")
    torch.save({"main.0.weight": Payload()}, tmp_path / "objects.ckpt")
    with pytest.raises(CheckpointError, match="contains pickled Python objects.*unsupported global .*Payload"):
        load_generator(tmp_path / "objects.ckpt")
    torch.save({"main.0.weight": Reducer()}, tmp_path / "reduce.ckpt")  # torch 2.13: "unsupported GLOBAL posix.system"
    with pytest.raises(CheckpointError, match="contains pickled Python objects.*unsupported global (posix|nt).system"):
        load_generator(tmp_path / "reduce.ckpt")
    with open(tmp_path / "text.ckpt", "wb") as f:
        pickle.dump({"main.0.weight": Reducer()}, f, protocol=0)  # text opcodes: "Unsupported operand"
    with pytest.raises(CheckpointError, match="contains pickled Python objects"):
        load_generator(tmp_path / "text.ckpt")
    with pytest.raises(CheckpointError, match="without checkpoints"):
        load_generator(tmp_path)  # a folder that is not a run dir


def test_own_run_dir_and_safetensors_load_with_their_config(tmp_path: Path) -> None:
    torch.manual_seed(0)
    config = RunConfig(
        GeneratorConfig(8, 5, 1),
        DiscriminatorConfig(32, 8, 5, 3),
        DataConfig(dataset="toyfaces", image_size=32),
        TrainConfig(num_iters=10, num_iters_decay=5),
    )
    G, D = Generator.from_config(config.generator), Discriminator.from_config(config.discriminator)
    opt = torch.optim.Adam(G.parameters())
    state = TrainState(7, config, G.state_dict(), D.state_dict(), opt.state_dict(), opt.state_dict(), capture_rng())
    save_checkpoint(tmp_path, state)
    from_dir = load_generator(tmp_path)
    assert from_dir.kind == "stargan-checkpoint" and from_dir.iteration == 7 and from_dir.run_config == config
    from_st = load_generator(tmp_path / "checkpoints" / "000007-G.safetensors")
    assert from_st.kind == "safetensors" and from_st.run_config == config
    for a, b in zip(from_dir.model.state_dict().values(), G.state_dict().values()):
        torch.testing.assert_close(a, b)
    assert load_discriminator(tmp_path / "checkpoints" / "000007-G.safetensors").config.image_size == 32
