"""Learning-rate schedules: the paper's linear decay to 0, and the step decay of today's official code.

Usage: g_lr = lr_at(config.train, config.train.g_lr, iteration)  # the lr that 0-based `iteration` trains with

Both are pure functions of the iteration, so a resumed run continues its schedule exactly.
"""

from __future__ import annotations

from stargan_train.config import TrainConfig

# (base, num_iters_decay) -> lr after 0, 1, 2, ... official subtractions, extended on demand (see official_lr).
_OFFICIAL_STEPS: dict[tuple[float, int], list[float]] = {}


def paper_lr(base: float, iteration: int, num_iters: int, num_iters_decay: int) -> float:
    """Linear decay to 0 over the last `num_iters_decay` iterations: base * min(1, (num_iters - it) / decay).

    The paper ("linearly decay the learning rate to 0 over the next 100K iterations"), and the official code
    before its "Clean the code" commit (c53e598).
    """
    if num_iters_decay <= 0:
        return base
    return base * max(0.0, min(1.0, (num_iters - iteration) / num_iters_decay))


def official_lr(base: float, iteration: int, num_iters: int, num_iters_decay: int, lr_update_step: int) -> float:
    """The lr today's official solver trains 0-based `iteration` with (`train` and `train_multi` alike).

    After iteration i the official code subtracts base / num_iters_decay from both optimizers' lr when
    (i + 1) % lr_update_step == 0 and (i + 1) > num_iters - num_iters_decay. Iteration `iteration` therefore
    sees one subtraction per multiple m of lr_update_step with num_iters - num_iters_decay < m <= iteration.
    The subtractions are repeated, not multiplied out, so the value is bit-identical to the official float
    arithmetic. With the defaults (1000, 100000 of 200000) the last iteration trains with 1e-4 - 99 * 1e-9,
    about 9.99e-5: a 0.1% decay, where the paper's schedule reaches 0.
    """
    if num_iters_decay <= 0:
        return base
    first = num_iters - num_iters_decay
    steps = max(0, iteration // lr_update_step - first // lr_update_step)
    values = _OFFICIAL_STEPS.setdefault((base, num_iters_decay), [base])
    while len(values) <= steps:  # one pass over the run in total, however often it is asked
        values.append(values[-1] - base / float(num_iters_decay))
    return values[steps]


def lr_at(train: TrainConfig, base: float, iteration: int) -> float:
    """The lr of `iteration` under the run's `lr_schedule`, starting from `base` (g_lr or d_lr)."""
    if train.lr_schedule == "official":
        return official_lr(base, iteration, train.num_iters, train.num_iters_decay, train.lr_update_step)
    return paper_lr(base, iteration, train.num_iters, train.num_iters_decay)
