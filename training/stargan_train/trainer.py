"""The StarGAN training loop: critic and generator steps, lr schedule, logs, samples, checkpoints, exact resume.

Usage: summary = run_training(RunConfig(...), "runs/toy")  # or Trainer(cfg, run_dir, ctx=ctx).fit()

One iteration = one critic step per dataset (CelebA then RaFD in joint mode, as the official `train_multi`),
plus a generator step every `n_critic` iterations. Resume is exact: the data order is a pure function of
(seed, iteration) (see `BatchStream`), and models, optimizers and RNG states come from the checkpoint.
"""

from __future__ import annotations

import contextlib
import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from stargan_train import checkpoint as ckpt
from stargan_train.augment import DiffAugment
from stargan_train.config import RAFD_EXPRESSIONS, RunConfig, classifier_dim, label_dim
from stargan_train.data import build_loaders, joint_labels
from stargan_train.distributed import (
    BatchStream,
    DistContext,
    barrier,
    init_distributed,
    shutdown_distributed,
    unwrap,
    wrap_ddp,
)
from stargan_train.losses import d_loss, g_loss
from stargan_train.model import Discriminator, Generator
from stargan_train.rundir import TrainLog, prepare_run_dir
from stargan_train.samples import fixed_batch, write_sample_grid
from stargan_train.schedule import lr_at
from stargan_train.weights import CheckpointError, Loaded, load_discriminator, load_generator

SAMPLE_COUNT = 8  # fixed test images in a sample grid (rows)


def seed_all(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed % 2**32)
    random.seed(seed)


def check_label_sizes(config: RunConfig) -> None:
    """G's label size, D's logit count and D's image size must agree with the data the run reads."""
    n, k = label_dim(config.data), classifier_dim(config.data)
    if config.generator.c_dim != n or config.discriminator.c_dim != k:
        joint = " (the joint D classifies no mask entries)" if n != k else ""
        raise ValueError(
            f"dataset {config.data.dataset!r} with {len(config.data.selected_attrs)} attribute(s) needs generator "
            f"c_dim {n} and discriminator c_dim {k}{joint}; got {config.generator.c_dim} and "
            f"{config.discriminator.c_dim}"
        )
    if config.discriminator.image_size != config.data.image_size:
        raise ValueError(
            f"discriminator image_size {config.discriminator.image_size} != data image_size {config.data.image_size}"
        )


@dataclass
class Batch:
    """One dataset's batch with the iteration's targets (shared by the D and G steps, as officially)."""

    x: Tensor  # [B, 3, H, W] in [-1, 1]
    label_org: Tensor  # this dataset's own labels (classification targets)
    label_trg: Tensor  # shuffled labels of the batch
    c_org: Tensor  # generator labels (joint mode: [celeba | rafd | mask])
    c_trg: Tensor
    part: str  # "celeba" | "rafd"


class Trainer:
    """StarGAN trainer for one process (single-device or one DDP rank).

    Args:
        config: the full run configuration (stored as `config.json` and inside each checkpoint).
        run_dir: output folder (checkpoints/, samples/, logs/, config.json).
        resume: continue from the newest checkpoint in `run_dir` (config must be compatible).
        overwrite: delete previous checkpoints, samples and logs in `run_dir` first.
        progress: show a rich progress bar (only on rank 0 and when stderr is a terminal).
        ctx: distributed context from `init_distributed`; single-process on `config.train.device` if None.
        on_log: called on rank 0 with (iteration, logs) every `log_step` iterations.
    """

    def __init__(
        self,
        config: RunConfig,
        run_dir: str | Path,
        *,
        resume: bool = False,
        overwrite: bool = False,
        progress: bool = True,
        ctx: DistContext | None = None,
        on_log: Callable[[int, dict[str, float]], None] | None = None,
    ) -> None:
        check_label_sizes(config)
        self.config, self.run_dir, self.on_log, self.progress = config, Path(run_dir), on_log, progress
        self.ctx = ctx or init_distributed(config.train.device)
        t, dev = config.train, self.ctx.device
        if dev.type == "cuda":
            torch.backends.cudnn.benchmark = True  # as the official main.py: fixed shapes, fastest kernels
        self.memory_format = torch.channels_last if t.channels_last else torch.contiguous_format
        # Data first: a bad data path fails before the run dir is touched (or wiped by --overwrite).
        loaders = build_loaders(
            config.data, t.batch_size, "train", rank=self.ctx.rank, world_size=self.ctx.world_size, seed=t.seed
        )
        self.fixed = fixed_batch(config.data, min(SAMPLE_COUNT, t.batch_size)) if self.ctx.is_main else None
        # Like the data, fine-tuning weights are checked before the run dir is touched; a resume ignores them.
        init = self._load_init_weights(t.init_weights) if t.init_weights and not resume else None
        state = prepare_run_dir(self.run_dir, config, self.ctx, resume=resume, overwrite=overwrite)
        self.start = state.iteration if state else 0
        self.streams = {
            part: BatchStream(loader, seed=t.seed, rank=self.ctx.rank, world_size=self.ctx.world_size, start=self.start)
            for part, loader in loaders.items()
        }
        self.joint = config.data.dataset == "both"
        self.n_celeba = len(config.data.selected_attrs)
        seed_all(t.seed)  # identical initial weights on every rank (DDP also broadcasts rank 0's)
        self.G = Generator.from_config(config.generator).to(dev, memory_format=self.memory_format)
        self.D = Discriminator.from_config(config.discriminator).to(dev, memory_format=self.memory_format)
        betas = (t.beta1, t.beta2)
        self.g_opt = torch.optim.Adam(self.G.parameters(), t.g_lr, betas)
        self.d_opt = torch.optim.Adam(self.D.parameters(), t.d_lr, betas)
        self.augment = DiffAugment(t.augment)
        # Set-up may draw random numbers (e.g. a DataLoader's base seed); training RNG starts only now.
        if state is not None:
            self._load_state(state)
        else:
            if init is not None:
                self.G.load_state_dict(init[0])
                if init[1] is not None:  # None: --fresh-critic keeps D's seeded initialisation
                    self.D.load_state_dict(init[1])
            seed_all(t.seed + self.ctx.rank)
        self.G_step, self.D_step = wrap_ddp(self.G, self.ctx), wrap_ddp(self.D, self.ctx)

    def _load_state(self, state: ckpt.TrainState) -> None:
        self.G.load_state_dict(state.G)
        self.D.load_state_dict(state.D)
        self.g_opt.load_state_dict(state.g_optim)
        self.d_opt.load_state_dict(state.d_optim)
        if self.ctx.is_main:
            ckpt.restore_rng(state.rng)
        else:  # only rank 0's RNG is stored; other ranks get a fresh stream that still differs per rank
            seed_all(self.config.train.seed + 7919 * self.ctx.rank + state.iteration)

    def _load_init_weights(self, source: str) -> tuple[dict[str, Tensor], dict[str, Tensor] | None]:
        """Fine-tuning: G and D state dicts from a checkpoint whose architecture matches this run's config
        (D is None with --fresh-critic: only the generator is taken)."""
        g = self._init_state("generator", load_generator(source), self.config.generator, source)
        if self.config.train.fresh_critic:
            return g, None
        try:
            loaded = load_discriminator(source)
        except CheckpointError as e:
            raise CheckpointError(f"{e}; give --fresh-critic to take only the generator and train a new critic") from e
        return g, self._init_state("discriminator", loaded, self.config.discriminator, source)

    @staticmethod
    def _init_state(what: str, loaded: Loaded, expected: object, source: str) -> dict[str, Tensor]:
        if loaded.config != expected:
            raise CheckpointError(
                f"--init-weights {source}: its {what} is {loaded.config}, this run builds {expected}; "
                f"give the matching --g-*/--d-* options"
            )
        return loaded.model.state_dict()

    # ---- one step each ---------------------------------------------------------------------------------

    def make_batch(self, x: Tensor, label: Tensor, part: str) -> Batch:
        """Move to the device and draw targets: the batch's own labels shuffled (official)."""
        dev = self.ctx.device
        perm = torch.randperm(label.size(0))  # CPU RNG: covered by the checkpoint's RNG state
        label_org, label_trg = label.to(dev), label[perm].to(dev)
        c_org, c_trg = label_org, label_trg
        if self.joint:
            c_org = joint_labels(part, label_org, self.n_celeba)
            c_trg = joint_labels(part, label_trg, self.n_celeba)
        return Batch(x.to(dev, memory_format=self.memory_format), label_org, label_trg, c_org, c_trg, part)

    def autocast(self) -> contextlib.AbstractContextManager:
        """The forward passes' precision: BF16 autocast with --amp bf16 (no loss scaling needed: BF16 has FP32's
        range), else nothing, so the default stays the exact official FP32 recipe."""
        if self.config.train.amp == "bf16":
            return torch.autocast(self.ctx.device.type, dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def _cls(self, part: str) -> tuple[str, slice | None]:
        """Loss kind and D's logit block for a batch: joint mode uses the official out_cls[:, :c_dim] (CelebA)
        or out_cls[:, c_dim:] (RaFD) of D's c_dim + c2_dim logits."""
        if not self.joint:
            return ("rafd" if part == "rafd" else "celeba"), None
        if part == "celeba":
            return "celeba", slice(0, self.n_celeba)
        return "rafd", slice(self.n_celeba, self.n_celeba + len(RAFD_EXPRESSIONS))

    def d_step(self, batch: Batch) -> dict[str, float]:
        """One critic update on real images and (detached) translations."""
        t = self.config.train
        with torch.no_grad(), self.autocast():  # the plain G: no DDP bookkeeping for a forward without backward
            x_fake = self.G(batch.x, batch.c_trg)
        kind, cls_slice = self._cls(batch.part)
        with self.autocast():
            loss, logs = d_loss(
                self.D_step, batch.x, x_fake, batch.label_org, t.lambda_cls, t.lambda_gp, kind, cls_slice, self.augment
            )
        self.d_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.d_opt.step()
        return logs

    def g_step(self, batch: Batch) -> dict[str, float]:
        """One generator update: fool the critic, hit the target domain, reconstruct the input."""
        t = self.config.train
        kind, cls_slice = self._cls(batch.part)
        # The plain D with frozen weights: gradients flow to G only, D's DDP reducer stays out of it.
        self.D.requires_grad_(False)
        try:
            with self.autocast():
                loss, logs = g_loss(
                    self.G_step,
                    self.D,
                    batch.x,
                    batch.c_org,
                    batch.c_trg,
                    batch.label_trg,
                    t.lambda_cls,
                    t.lambda_rec,
                    kind,
                    cls_slice,
                    self.augment,
                    t.lambda_id,
                )
            self.g_opt.zero_grad(set_to_none=True)
            loss.backward()
            self.g_opt.step()
        finally:
            self.D.requires_grad_(True)
        return logs

    # ---- the loop --------------------------------------------------------------------------------------

    def set_lr(self, iteration: int) -> tuple[float, float]:
        """Both optimizers' lr for `iteration` under the run's schedule (applied to every param group)."""
        t = self.config.train
        g_lr, d_lr = lr_at(t, t.g_lr, iteration), lr_at(t, t.d_lr, iteration)
        for opt, lr in ((self.g_opt, g_lr), (self.d_opt, d_lr)):
            for group in opt.param_groups:
                group["lr"] = lr
        return g_lr, d_lr

    def train_iteration(self, it: int) -> dict[str, float]:
        t = self.config.train
        g_lr, d_lr = self.set_lr(it)  # 1. learning rate of this iteration
        logs: dict[str, float] = {"lr/g": g_lr, "lr/d": d_lr}
        for part, stream in self.streams.items():
            prefix = f"{part}/" if self.joint else ""
            batch = self.make_batch(*stream.next(), part)  # 2. data and targets
            logs |= {prefix + k: v for k, v in self.d_step(batch).items()}  # 3. critic
            if it >= t.critic_warmup and (it + 1) % t.n_critic == 0:  # 4. generator, every n_critic critic steps
                logs |= {prefix + k: v for k, v in self.g_step(batch).items()}
        return logs

    def fit(self) -> dict[str, Any]:
        """Train from the current iteration to `num_iters`; returns a summary (rank 0 wrote the files)."""
        t = self.config.train
        log = TrainLog(self.run_dir, self.start, t.num_iters, enabled=self.ctx.is_main, progress=self.progress)
        last: dict[str, float] = {}  # newest value of every term (G terms come every n_critic iterations)
        started = time.perf_counter()
        with log:
            for it in range(self.start, t.num_iters):
                logs = self.train_iteration(it)
                last |= logs
                done = it + 1
                log.step(done, logs, every=t.log_step, on_log=self.on_log)  # 5. logs and progress
                if done % t.sample_step == 0 or done == t.num_iters:
                    self.write_samples(done)
                if done % t.model_save_step == 0 or done == t.num_iters:
                    self.save(done)
        seconds = time.perf_counter() - started
        iters = t.num_iters - self.start
        return {
            "run_dir": str(self.run_dir),
            "rank": self.ctx.rank,
            "world_size": self.ctx.world_size,
            "device": str(self.ctx.device),
            "start_iteration": self.start,
            "iterations": t.num_iters,
            "seconds": round(seconds, 3),
            "it_per_s": round(iters / seconds, 3) if seconds > 0 and iters else None,
            "last": last,
            "checkpoint": str(ckpt.latest_checkpoint(self.run_dir)) if self.ctx.is_main else None,
        }

    def write_samples(self, iteration: int) -> None:
        if self.ctx.is_main and self.fixed is not None:
            x, c_org = self.fixed
            write_sample_grid(self.G, x, c_org, self.config.data, self.run_dir / "samples" / f"{iteration:06d}.png")

    def save(self, iteration: int) -> None:
        """Rank 0 writes the plain modules' weights; the barriers keep ranks from racing past a write."""
        barrier(self.ctx)
        if self.ctx.is_main:
            state = ckpt.TrainState(
                iteration=iteration,
                config=self.config,
                G=unwrap(self.G).state_dict(),
                D=unwrap(self.D).state_dict(),
                g_optim=self.g_opt.state_dict(),
                d_optim=self.d_opt.state_dict(),
                rng=ckpt.capture_rng(),
            )
            ckpt.save_checkpoint(self.run_dir, state, keep=self.config.train.keep_checkpoints)
        barrier(self.ctx)


def run_training(config: RunConfig, run_dir: str | Path, **kwargs: Any) -> dict[str, Any]:
    """Join the process group if `torchrun` started us, train, and leave it again."""
    ctx = init_distributed(config.train.device)
    try:
        return Trainer(config, run_dir, ctx=ctx, **kwargs).fit()
    finally:
        shutdown_distributed(ctx)
