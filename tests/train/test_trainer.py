"""A short training run on tiny toyfaces: finite losses, lr schedule, checkpoints that reload, samples, logs, run-dir
rules."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from stargan_train.checkpoint import latest_checkpoint, load_checkpoint
from stargan_train.config import DataConfig, DiscriminatorConfig, GeneratorConfig, RunConfig, TrainConfig
from stargan_train.data.toyfaces import generate_toyfaces
from stargan_train.model import Generator
from stargan_train.rundir import RunDirError
from stargan_train.samples import celeba_targets, target_labels
from stargan_train.trainer import Trainer
from stargan_train.weights import CheckpointError, load_generator

ATTRS = ("Black_Hair", "Blond_Hair", "Brown_Hair", "Male", "Young")


def tiny_config(data_dir: Path, dataset: str = "toyfaces", **train: object) -> RunConfig:
    """32 px, conv_dim 8, one residual block, batch 4: a few iterations take about a second."""
    n, k = (15, 13) if dataset == "both" else (5, 5)  # joint: the label has the mask, D's logits do not
    data = DataConfig(
        dataset=dataset,
        celeba_image_dir=str(data_dir / "images"),
        attr_path=str(data_dir / "list_attr_celeba.txt"),
        rafd_image_dir=str(data_dir / "rafd" / "train"),
        celeba_crop_size=36,
        image_size=32,
        test_count=4,
        num_workers=0,
    )
    options = dict(
        batch_size=4, num_iters=10, num_iters_decay=5, log_step=5, sample_step=5, model_save_step=5, device="cpu"
    )
    options.update(train)
    return RunConfig(GeneratorConfig(8, n, 1), DiscriminatorConfig(32, 8, k, 3), data, TrainConfig(**options))  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return generate_toyfaces(
        tmp_path_factory.mktemp("toy"), 16, seed=0, width=36, height=44, expressions=True, progress=False
    )


@pytest.fixture(scope="module")
def short_run(toy: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Trainer, list[tuple[int, dict]]]:
    run_dir = tmp_path_factory.mktemp("run")
    logs: list[tuple[int, dict]] = []
    trainer = Trainer(tiny_config(toy), run_dir, progress=False, on_log=lambda i, losses: logs.append((i, losses)))
    trainer.fit()
    return run_dir, trainer, logs


def test_short_run_has_finite_losses_and_decaying_lr(short_run: tuple[Path, Trainer, list]) -> None:
    _, _, logs = short_run
    assert [i for i, _ in logs] == [5, 10]
    for _, values in logs:
        assert {"D/loss_real", "D/loss_fake", "D/loss_cls", "D/loss_gp", "G/loss_rec", "G/loss_cls"} <= set(values)
        assert all(torch.isfinite(torch.tensor(v)) for v in values.values())
    # lr at iteration index 4 (logged at 5) is still the base; at index 9 it is base * (10 - 9) / 5.
    assert logs[0][1]["lr/g"] == pytest.approx(1e-4) and logs[0][1]["lr/d"] == pytest.approx(1e-4)
    assert logs[1][1]["lr/g"] == pytest.approx(2e-5) and logs[1][1]["lr/d"] == pytest.approx(2e-5)


def test_checkpoints_reload_with_the_trained_weights(short_run: tuple[Path, Trainer, list]) -> None:
    run_dir, trainer, _ = short_run
    names = sorted(p.name for p in (run_dir / "checkpoints").iterdir())
    assert names == [f"0000{i:02d}{s}" for i in (5, 10) for s in ("-D.safetensors", "-G.safetensors", ".ckpt")]
    loaded = load_generator(run_dir)
    assert loaded.iteration == 10 and loaded.config == trainer.config.generator
    for key, value in trainer.G.state_dict().items():
        assert torch.equal(loaded.model.state_dict()[key], value), key
    torch.manual_seed(trainer.config.train.seed)
    untrained = Generator.from_config(trainer.config.generator)
    assert not torch.equal(untrained.main[0].weight, loaded.model.main[0].weight)  # training moved the weights
    safetensors = load_generator(run_dir / "checkpoints" / "000010-G.safetensors")
    assert torch.equal(safetensors.model.main[0].weight, loaded.model.main[0].weight)


def test_samples_and_tensorboard_logs_are_written(short_run: tuple[Path, Trainer, list]) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir, _, _ = short_run
    for it in (5, 10):
        with Image.open(run_dir / "samples" / f"{it:06d}.png") as img:
            assert img.size == (32 * 6, 32 * 4)  # [input | 5 domains] x 4 fixed test images
    events = EventAccumulator(str(run_dir / "logs"))
    events.Reload()
    tags = set(events.Tags()["scalars"])
    assert {"D/loss_gp", "D/loss_cls", "G/loss_rec", "G/loss_fake", "lr/g", "lr/d", "speed/it_per_s"} <= tags
    assert [e.step for e in events.Scalars("lr/g")] == [5, 10]


def test_d_step_leaves_g_alone_and_g_step_leaves_d_alone(toy: Path, tmp_path: Path) -> None:
    trainer = Trainer(tiny_config(toy), tmp_path, progress=False)
    x, label = trainer.streams["celeba"].next()
    batch = trainer.make_batch(x, label, "celeba")
    g0 = {k: v.clone() for k, v in trainer.G.state_dict().items()}
    d0 = {k: v.clone() for k, v in trainer.D.state_dict().items()}
    trainer.d_step(batch)
    assert all(torch.equal(g0[k], v) for k, v in trainer.G.state_dict().items())
    assert not torch.equal(d0["conv1.weight"], trainer.D.conv1.weight)
    d1 = {k: v.clone() for k, v in trainer.D.state_dict().items()}
    trainer.g_step(batch)
    assert all(torch.equal(d1[k], v) for k, v in trainer.D.state_dict().items())
    assert not torch.equal(g0["main.0.weight"], trainer.G.main[0].weight)
    assert all(p.requires_grad for p in trainer.D.parameters())


@pytest.mark.parametrize("augment", [(), ("cutout",)])
def test_the_critic_sees_augmented_images_only_when_asked(toy: Path, tmp_path: Path, augment: tuple[str, ...]) -> None:
    trainer = Trainer(tiny_config(toy, augment=augment), tmp_path, progress=False)
    batch = trainer.make_batch(*trainer.streams["celeba"].next(), "celeba")
    seen: list[torch.Tensor] = []
    forward = trainer.D.forward
    trainer.D.forward = lambda img: (seen.append(img.detach().clone()), forward(img))[1]  # type: ignore[method-assign]
    trainer.d_step(batch)
    trainer.g_step(batch)
    real, from_g_step = seen[0], seen[-1]
    holes = [int((img == 0).all(dim=0).sum()) for img in (*real, *from_g_step)]  # cutout: a 16x16 square, maybe clipped
    if augment:
        assert not torch.equal(real, batch.x) and all(h >= 8 * 8 for h in holes)
    else:
        assert torch.equal(real, batch.x) and all(h < 8 * 8 for h in holes)


def test_targets_are_the_batch_labels_shuffled(toy: Path, tmp_path: Path) -> None:
    trainer = Trainer(tiny_config(toy), tmp_path, progress=False)
    label = torch.eye(4, 5)  # four distinct rows
    batch = trainer.make_batch(torch.zeros(4, 3, 32, 32), label, "celeba")
    assert sorted(map(tuple, batch.label_trg.tolist())) == sorted(map(tuple, label.tolist()))
    assert torch.equal(batch.c_trg, batch.label_trg) and torch.equal(batch.c_org, label)


def test_joint_mode_runs_with_mask_vector_labels(toy: Path, tmp_path: Path) -> None:
    logs: list[dict] = []
    trainer = Trainer(
        tiny_config(toy, "both", num_iters=5, log_step=5),
        tmp_path,
        progress=False,
        on_log=lambda i, losses: logs.append(losses),
    )
    x, label = trainer.streams["rafd"].next()
    batch = trainer.make_batch(x, label, "rafd")
    assert batch.c_org.shape == (4, 15) and torch.equal(batch.c_org[:, 13:], torch.tensor([[0.0, 1.0]] * 4))
    assert torch.equal(batch.c_org[:, 5:13], label) and not batch.c_org[:, :5].any()
    trainer.fit()
    assert {"celeba/D/loss_cls", "rafd/D/loss_cls", "celeba/G/loss_rec", "rafd/G/loss_rec"} <= set(logs[-1])
    with Image.open(tmp_path / "samples" / "000005.png") as img:
        assert img.size == (32 * (1 + 5 + 8), 32 * 4)


def test_celeba_targets_follow_the_official_create_labels() -> None:
    c_org = torch.tensor([[1.0, 0, 0, 1, 0]])  # black hair, male, not young
    targets = [t[0].tolist() for t in celeba_targets(c_org, ATTRS)]
    assert targets == [
        [1, 0, 0, 1, 0],  # black hair (already)
        [0, 1, 0, 1, 0],  # blond: exclusive hair colour
        [0, 0, 1, 1, 0],  # brown
        [1, 0, 0, 0, 0],  # male flipped
        [1, 0, 0, 1, 1],  # young flipped
    ]
    rafd = target_labels(torch.zeros(2, 8), dataclasses.replace(DataConfig(), dataset="rafd"))
    assert len(rafd) == 8 and torch.equal(rafd[3], torch.eye(8)[3].expand(2, 8))


def test_fresh_run_refuses_a_run_dir_with_checkpoints(short_run: tuple[Path, Trainer, list], toy: Path) -> None:
    run_dir = short_run[0]
    with pytest.raises(RunDirError, match="--resume.*--overwrite"):
        Trainer(tiny_config(toy), run_dir, progress=False)
    with pytest.raises(RunDirError, match="exclude"):
        Trainer(tiny_config(toy), run_dir, resume=True, overwrite=True, progress=False)


def test_resume_refuses_an_incompatible_config_and_names_the_field(
    short_run: tuple[Path, Trainer, list], toy: Path
) -> None:
    with pytest.raises(RunDirError, match=r"train\.batch_size \(checkpoint 4, now 8\)"):
        Trainer(tiny_config(toy, batch_size=8), short_run[0], resume=True, progress=False)


def test_resume_without_checkpoints_is_refused(toy: Path, tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="nothing to resume"):
        Trainer(tiny_config(toy), tmp_path, resume=True, progress=False)


def test_overwrite_starts_over(toy: Path, tmp_path: Path) -> None:
    Trainer(
        tiny_config(toy, num_iters=2, num_iters_decay=0, model_save_step=1, sample_step=1), tmp_path, progress=False
    ).fit()
    Trainer(tiny_config(toy, num_iters=1, num_iters_decay=0), tmp_path, overwrite=True, progress=False).fit()
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("*.ckpt")) == ["000001.ckpt"]
    assert sorted(p.name for p in (tmp_path / "samples").iterdir()) == ["000001.png"]


def test_inconsistent_label_size_is_rejected(toy: Path, tmp_path: Path) -> None:
    cfg = tiny_config(toy)
    bad = dataclasses.replace(cfg, generator=GeneratorConfig(8, 7, 1))
    with pytest.raises(ValueError, match="needs generator c_dim 5 and discriminator c_dim 5; got 7 and 5"):
        Trainer(bad, tmp_path, progress=False)
    joint = tiny_config(toy, "both")
    old_layout = dataclasses.replace(joint, discriminator=DiscriminatorConfig(32, 8, 15, 3))
    with pytest.raises(
        ValueError, match="discriminator c_dim 13 \\(the joint D classifies no mask entries\\); got 15 and 15"
    ):
        Trainer(old_layout, tmp_path, progress=False)


def test_without_a_test_split_samples_come_from_training_images(toy: Path, tmp_path: Path) -> None:
    cfg = tiny_config(toy, num_iters=1, num_iters_decay=0)
    cfg = dataclasses.replace(cfg, data=dataclasses.replace(cfg.data, test_count=0))
    Trainer(cfg, tmp_path, progress=False).fit()
    with Image.open(tmp_path / "samples" / "000001.png") as img:
        assert img.size == (32 * 6, 32 * 4)


def test_init_weights_starts_from_a_checkpoint_with_fresh_optimisers(
    short_run: tuple[Path, Trainer, list], toy: Path, tmp_path: Path
) -> None:
    source_dir, _, _ = short_run
    source = load_checkpoint(latest_checkpoint(source_dir))
    cfg = tiny_config(
        toy, num_iters=2, num_iters_decay=1, model_save_step=2, sample_step=2, init_weights=str(source_dir)
    )
    tuned = Trainer(cfg, tmp_path / "tuned", progress=False)
    assert tuned.start == 0 and not tuned.g_opt.state and not tuned.d_opt.state
    for part in ("G", "D"):
        for key, value in getattr(tuned, part).state_dict().items():
            assert torch.equal(value, getattr(source, part)[key]), f"{part} {key}"
    # Not the weights a fresh run with the same seed would start from (the test has teeth).
    fresh = Trainer(tiny_config(toy), tmp_path / "fresh", progress=False)
    assert not torch.equal(fresh.G.state_dict()["main.0.weight"], tuned.G.state_dict()["main.0.weight"])
    tuned.fit()
    stored = load_checkpoint(tmp_path / "tuned/checkpoints/000002.ckpt")
    assert stored.config.train.init_weights == str(source_dir) and stored.iteration == 2


def test_init_weights_from_an_official_joint_pair(official_joint_checkpoint: Path, toy: Path, tmp_path: Path) -> None:
    raw_g = torch.load(official_joint_checkpoint, weights_only=True)
    raw_d = torch.load(official_joint_checkpoint.with_name("1000-D.ckpt"), weights_only=True)
    cfg = tiny_config(toy, "both", init_weights=str(official_joint_checkpoint), num_iters=1, num_iters_decay=0)
    trainer = Trainer(cfg, tmp_path, progress=False)
    assert all(torch.equal(v, raw_d[k]) for k, v in trainer.D.state_dict().items())
    assert all(torch.equal(v, raw_g[k]) for k, v in trainer.G.state_dict().items())
    assert trainer.fit()["last"]["rafd/D/loss_cls"] > 0  # and trains on from them


def test_init_weights_of_another_architecture_is_refused_before_the_run_dir_is_touched(
    short_run: tuple[Path, Trainer, list], toy: Path, tmp_path: Path
) -> None:
    source_dir, _, _ = short_run
    cfg = tiny_config(toy, init_weights=str(source_dir))
    cfg = dataclasses.replace(cfg, generator=dataclasses.replace(cfg.generator, conv_dim=16))
    with pytest.raises(CheckpointError, match="--init-weights .*generator.*conv_dim=8.*conv_dim=16"):
        Trainer(cfg, tmp_path / "wide", progress=False)
    assert not (tmp_path / "wide").exists()
    with pytest.raises(CheckpointError, match="checkpoint not found"):
        Trainer(tiny_config(toy, init_weights=str(tmp_path / "none.ckpt")), tmp_path / "none", progress=False)
    assert not (tmp_path / "none").exists()


def test_fresh_critic_takes_only_the_generator_and_a_missing_critic_says_how(
    short_run: tuple[Path, Trainer, list], toy: Path, tmp_path: Path
) -> None:
    source_dir, _, _ = short_run
    g_only = tmp_path / "g-only" / "generator.safetensors"  # like a bundle's weights: no discriminator beside them
    g_only.parent.mkdir()
    save_file(load_generator(source_dir).model.state_dict(), str(g_only))
    with pytest.raises(CheckpointError, match="give --fresh-critic"):
        Trainer(tiny_config(toy, init_weights=str(g_only)), tmp_path / "x", progress=False)
    assert not (tmp_path / "x").exists()
    cfg = tiny_config(toy, num_iters=2, num_iters_decay=1, init_weights=str(g_only), fresh_critic=True)
    tuned = Trainer(cfg, tmp_path / "tuned", progress=False)
    source = load_checkpoint(latest_checkpoint(source_dir))
    assert all(torch.equal(v, source.G[k]) for k, v in tuned.G.state_dict().items())
    # D is the seeded fresh initialisation: what a run from scratch with the same seed starts from, not the source's.
    fresh = Trainer(tiny_config(toy), tmp_path / "fresh", progress=False)
    for key, value in tuned.D.state_dict().items():
        assert torch.equal(value, fresh.D.state_dict()[key]), key
    assert not torch.equal(tuned.D.state_dict()["main.0.weight"], source.D["main.0.weight"])
    with pytest.raises(ValueError, match="fresh_critic needs init_weights"):
        tiny_config(toy, fresh_critic=True)


def test_critic_warmup_leaves_the_generator_untouched(toy: Path, tmp_path: Path) -> None:
    cfg = tiny_config(toy, num_iters=6, num_iters_decay=0, n_critic=1, critic_warmup=5)
    trainer = Trainer(cfg, tmp_path, progress=False)
    g0 = {k: v.clone() for k, v in trainer.G.state_dict().items()}
    d0 = trainer.D.state_dict()["main.0.weight"].clone()
    trainer.train_iteration(0)
    assert all(torch.equal(v, g0[k]) for k, v in trainer.G.state_dict().items())  # the critic trained alone
    assert not torch.equal(trainer.D.state_dict()["main.0.weight"], d0)
    trainer.train_iteration(5)  # the first iteration after the warm-up updates G too
    assert not torch.equal(trainer.G.state_dict()["main.0.weight"], g0["main.0.weight"])
    with pytest.raises(ValueError, match="critic_warmup"):
        tiny_config(toy, num_iters=6, critic_warmup=6)
