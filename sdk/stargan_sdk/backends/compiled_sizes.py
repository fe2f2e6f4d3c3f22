"""Batches of any size over a few compiled static sizes: which sizes to run, the padding, and the rows to keep.

Usage: chunks, takes = cover(images, labels, (1, 8, 64)); out = joined([run(x, c) for x, c in chunks], takes)

The inductor backend compiles one graph per static batch size (and captures each as a CUDA graph); these pure
functions decide how a batch maps onto those sizes, so they are tested without torch.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def plan_chunks(n: int, sizes: Sequence[int]) -> list[tuple[int, int]]:
    """Cover a batch of `n` with compiled sizes: a list of (images taken, compiled size run).

    The rest of a batch is padded up to the smallest compiled size that holds it when that wastes at most
    half the launch; otherwise the largest compiled size that fits is taken and the rest planned again.
    """
    ordered = sorted(set(sizes))
    plan, rest = [], n
    while rest > 0:
        fits = [s for s in ordered if s >= rest]
        if fits and fits[0] <= 2 * rest:
            plan.append((rest, fits[0]))
            break
        below = [s for s in ordered if s <= rest]
        step = below[-1] if below else fits[0]
        plan.append((min(step, rest), step))
        rest -= min(step, rest)
    return plan


def pipelined_plan(n: int, sizes: Sequence[int], chunk: int) -> list[tuple[int, int]]:
    """`plan_chunks`, except that a batch of at least two `chunk`s (a compiled size) is cut into such chunks
    first, so copies and compute overlap; the rest is planned as usual."""
    if not chunk or n < 2 * chunk:
        return plan_chunks(n, sizes)
    return [(chunk, chunk)] * (n // chunk) + (plan_chunks(n % chunk, sizes) if n % chunk else [])


def cover(
    image: np.ndarray, label: np.ndarray, sizes: Sequence[int], chunk: int = 0
) -> tuple[list[tuple[np.ndarray, np.ndarray]], list[int]]:
    """The batch as chunks of compiled sizes (the last one padded) and how many rows of each are real."""
    chunks, takes, start = [], [], 0
    for take, run in pipelined_plan(len(image), sizes, chunk):
        x, c = image[start : start + take], label[start : start + take]
        if run > take:  # pad with copies of the first row; per-instance norms keep rows independent
            x = np.concatenate([x, np.repeat(x[:1], run - take, axis=0)])
            c = np.concatenate([c, np.repeat(c[:1], run - take, axis=0)])
        chunks.append((np.ascontiguousarray(x), np.ascontiguousarray(c, dtype=np.float32)))
        takes.append(take)
        start += take
    return chunks, takes


def joined(outs: list[np.ndarray], takes: list[int]) -> np.ndarray:
    """The real rows of each chunk's output, in order, as one array."""
    parts = [out[:take] for out, take in zip(outs, takes)]
    return parts[0] if len(parts) == 1 else np.concatenate(parts)
