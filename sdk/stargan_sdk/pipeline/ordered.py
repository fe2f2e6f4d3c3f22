"""An ordered, bounded map over a thread pool: the building block of every pipeline stage.

Usage: for y in ordered_map(decode, paths, workers=2, depth=8): ...
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Executor, Future, ThreadPoolExecutor
from itertools import islice
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def ordered_map(
    fn: Callable[[T], R], items: Iterable[T], *, workers: int, depth: int, pool: Executor | None = None
) -> Iterator[R]:
    """`fn` over `items` in `workers` threads, results in input order. At most `depth` calls are in flight or
    waiting to be read, so memory does not grow with the number of items (the queue bound is the count, not
    a timing). Threads, not processes: PIL's decode/encode/resize and numpy release the GIL, and results
    (whole images) need no pickling between processes (benchmarks/pipeline.py --pools measures both).
    `pool`: an executor shared with other stages (left running at the end); else one of our own."""
    pending: deque[Future[R]] = deque()
    own = pool is None
    pool = pool or ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="stargan-pipeline")
    try:
        for item in items:
            pending.append(pool.submit(fn, item))
            if len(pending) >= depth:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()
    finally:
        for f in pending:  # a consumer that stops early (or Ctrl-C) cancels what has not started
            f.cancel()
        if own:
            pool.shutdown(wait=True, cancel_futures=True)


def batched(items: Iterable[T], n: int) -> Iterator[list[T]]:
    """Lists of up to `n` consecutive items (itertools.batched is Python 3.12+)."""
    it = iter(items)
    while batch := list(islice(it, n)):
        yield batch
