"""Process-group set-up for DDP training launched by `torchrun` (RANK, WORLD_SIZE, LOCAL_RANK in the env).

Usage: ctx = init_distributed("auto"); G_ddp = wrap_ddp(G, ctx); ...; shutdown_distributed(ctx)

Without those variables everything degrades to one process and no process group. Only rank 0 writes
files; `unwrap` always gives back the plain module so checkpoints never carry a `module.` prefix.
`BatchStream` shards the data with a DistributedSampler and makes the batch order a pure function of
(seed, iteration), and each image's random flip one of (seed, epoch, image), whatever worker process loads it:
that is what lets a resumed run see exactly the batches an uninterrupted one would, with any `--num-workers`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler, Sampler

from stargan_train.data.seeded import SeededItems, draw_seed


@dataclass(frozen=True)
class DistContext:
    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = torch.device("cpu")

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """'auto' means CUDA when available, else CPU; under DDP each process takes cuda:LOCAL_RANK."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device("cuda", local_rank) if name == "cuda" else torch.device(name)
    except RuntimeError:
        raise ValueError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device {name!r} requested but no CUDA GPU is available (use --device cpu or auto)")
    return dev


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value else default
    except ValueError:
        raise ValueError(f"environment variable {name}={value!r} is not an integer") from None


def init_distributed(device: str = "auto") -> DistContext:
    """Join the process group `torchrun` describes (nccl on CUDA, gloo on CPU), or run single-process."""
    world_size = _env_int("WORLD_SIZE", 1)
    rank = _env_int("RANK", 0)
    local_rank = _env_int("LOCAL_RANK", 0)
    dev = resolve_device(device, local_rank)
    if world_size <= 1:
        return DistContext(device=dev)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if not dist.is_initialized():
        dist.init_process_group(backend="nccl" if dev.type == "cuda" else "gloo", rank=rank, world_size=world_size)
    return DistContext(rank=rank, world_size=world_size, local_rank=local_rank, device=dev)


def shutdown_distributed(ctx: DistContext) -> None:
    if ctx.enabled and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: DistContext) -> None:
    if ctx.enabled:
        dist.barrier()


def wrap_ddp(module: nn.Module, ctx: DistContext) -> nn.Module:
    """DDP wrapper for the training steps (broadcasts rank 0's weights); the plain module when single-process."""
    if not ctx.enabled:
        return module
    device_ids = [ctx.device.index] if ctx.device.type == "cuda" else None
    return DistributedDataParallel(module, device_ids=device_ids)


def unwrap(module: nn.Module) -> nn.Module:
    return module.module if isinstance(module, DistributedDataParallel) else module


def broadcast_object(ctx: DistContext, value: object) -> object:
    """Rank 0's `value` on every rank (e.g. an error message, so that all ranks fail the same way)."""
    if not ctx.enabled:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


class _IndexSampler(Sampler[tuple[int, int]]):
    """Yields (index, draw seed) items for `SeededItems`."""

    def __init__(self, indices: list[tuple[int, int]]) -> None:
        self.indices = indices

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.indices)

    def __len__(self) -> int:
        return len(self.indices)


class BatchStream:
    """Endless, resumable batches for one rank: epoch e is DistributedSampler(seed, epoch=e)'s shard.

    Args:
        loader: a loader from `build_loaders`; its dataset, batch size, workers and collate are reused.
        seed: shuffling seed (every rank must pass the same one).
        rank: this process's rank; world_size: number of processes.
        start: number of batches already consumed (the iteration to resume at).
    """

    def __init__(self, loader: DataLoader, *, seed: int, rank: int = 0, world_size: int = 1, start: int = 0) -> None:
        self.loader, self.seed, self.rank, self.world_size = loader, seed, rank, world_size
        self.batch_size = int(loader.batch_size or 1)
        self.per_epoch = len(self._sampler(0)) // self.batch_size
        if self.per_epoch == 0:
            raise ValueError(
                f"{len(loader.dataset)} training image(s) over {world_size} process(es) cannot fill one "  # type: ignore[arg-type]
                f"batch of {self.batch_size}; lower the batch size or add images"
            )
        self.position = start
        self._iter = None

    def _sampler(self, epoch: int) -> DistributedSampler:
        sampler = DistributedSampler(
            self.loader.dataset,
            num_replicas=self.world_size,
            rank=self.rank,
            shuffle=True,
            seed=self.seed,
            drop_last=True,
        )
        sampler.set_epoch(epoch)
        return sampler

    def _epoch_loader(self, epoch: int, offset: int) -> DataLoader:
        indices = [(i, draw_seed(self.seed, epoch, i)) for i in self._sampler(epoch)][offset * self.batch_size :]
        # Its own generator: starting an iterator then draws no number from the global RNG.
        generator = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch * 1009 + offset)
        return DataLoader(
            SeededItems(self.loader.dataset),
            batch_size=self.batch_size,
            sampler=_IndexSampler(indices),
            drop_last=True,
            num_workers=self.loader.num_workers,
            collate_fn=self.loader.collate_fn,
            pin_memory=self.loader.pin_memory,
            generator=generator,
        )

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._iter is None:
            epoch, offset = divmod(self.position, self.per_epoch)
            self._iter = iter(self._epoch_loader(epoch, offset))
        try:
            batch = next(self._iter)
        except StopIteration:  # end of the epoch: the next one starts at offset 0
            self._iter = None
            return self.next()
        self.position += 1
        return batch
