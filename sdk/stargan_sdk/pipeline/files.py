"""Files to files: decode and prepare in a pool, batch into the engine, restore, encode and write in a pool.

Usage: results = list(run_stages(items, prepare, engine, finish, workers=2, batch_size=16))
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from stargan_sdk.pipeline.ordered import batched, ordered_map


@dataclass(frozen=True)
class FileResult:
    """One input's outcome: `output` written, `skipped` (already there), or a one-line `error`."""

    source: Any
    output: Path | None = None
    error: str | None = None
    skipped: bool = False
    value: Any = None  # the edited image, for the in-memory form


@dataclass
class StageTimes:
    """Seconds spent in each stage, summed over workers (prepare and finish run in parallel)."""

    prepare: float = 0.0
    engine: float = 0.0
    finish: float = 0.0
    counts: dict[str, int] = field(default_factory=lambda: {"ok": 0, "failed": 0, "skipped": 0})


def one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def run_stages(
    items: Iterable[Any],
    prepare: Callable[[Any], Any],
    engine: Callable[[list[Any]], list[Any]],
    finish: Callable[[Any, Any], FileResult],
    *,
    workers: int,
    batch_size: int,
    times: StageTimes | None = None,
    source: Callable[[Any], Any] = lambda item: item,
    error_line: Callable[[Any, BaseException], str] = lambda item, exc: one_line(exc),
    fatal: tuple[type[BaseException], ...] = (),
    commit: Callable[[Iterator[FileResult]], Iterator[FileResult]] | None = None,
) -> Iterator[FileResult]:
    """Results in input order. `prepare(item)` runs in the pool (an exception there fails that item only);
    `engine(prepared)` runs batches in the calling thread, so the engine is never called from two threads;
    `finish(item, output)` runs in the pool; `source(item)` names an item in error results, `error_line(item,
    exc)` says its error in one line; `fatal` exceptions stop the run. The engine may return an exception in
    place of one item's output: that item fails alone. `commit(results)`, when given, is the last stage: it takes
    the finished results in order and yields them written (`stargan_sdk.pipeline.durable.commit_groups`: its own
    threads wait on the disk, so no pool thread does).
    Every queue is bounded by a count (depth), never by timing. Both pool stages share one pool of `workers`
    threads: on a small CPU the engine's own threads need the cores, so the stages take turns on `workers`
    threads instead of adding 2 x `workers` (benchmarks/pipeline.py measures 1 and 2 workers)."""
    times = times or StageTimes()
    depth = max(2 * workers, 2 * batch_size)

    def safe_prepare(item: Any) -> tuple[Any, Any, str | None]:
        t0 = time.perf_counter()
        try:
            return item, prepare(item), None
        except fatal:
            raise
        except Exception as exc:  # per-file error: the run goes on
            return item, None, error_line(item, exc)
        finally:
            times.prepare += time.perf_counter() - t0

    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="stargan-pipeline")

    def engine_batches() -> Iterator[tuple[Any, Any, str | None]]:
        for batch in batched(ordered_map(safe_prepare, items, workers=workers, depth=depth, pool=pool), batch_size):
            ok = [p for p in batch if p[2] is None and not isinstance(p[1], FileResult)]
            outs: list[Any] = []
            error = None
            if ok:
                t0 = time.perf_counter()
                try:
                    outs = engine([p[1] for p in ok])
                except fatal:
                    raise
                except Exception as exc:  # the whole batch fails, the run goes on
                    error = one_line(exc)
                times.engine += time.perf_counter() - t0
            by_id = {id(p): o for p, o in zip(ok, outs)}
            for p in batch:
                if isinstance(p[1], FileResult):
                    yield p[0], p[1], None  # decided in prepare (skipped)
                elif p[2] is None and error is None:
                    yield p[0], by_id[id(p)], None
                else:
                    yield p[0], None, p[2] or error

    def safe_finish(job: tuple[Any, Any, str | None]) -> FileResult:
        item, out, error = job
        if isinstance(out, FileResult):
            return out
        if error is not None:
            return FileResult(source(item), error=error)
        if isinstance(out, BaseException):
            return FileResult(source(item), error=error_line(item, out))
        t0 = time.perf_counter()
        try:
            return finish(item, out)
        except fatal:
            raise
        except Exception as exc:
            return FileResult(source(item), error=error_line(item, exc))
        finally:
            times.finish += time.perf_counter() - t0

    batches = engine_batches()
    finished = ordered_map(safe_finish, batches, workers=workers, depth=depth, pool=pool)
    committed = finished if commit is None else commit(finished)
    try:
        for result in committed:
            times.counts["skipped" if result.skipped else "failed" if result.error else "ok"] += 1
            yield result
    finally:  # a consumer that stops early (or Ctrl-C): queued work is cancelled, running work ends, no thread stays
        committed.close()
        finished.close()
        batches.close()
        pool.shutdown(wait=True, cancel_futures=True)
