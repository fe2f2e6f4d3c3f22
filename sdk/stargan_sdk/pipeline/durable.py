"""The pipeline's last stage: outputs made durable in groups, one file-system sync per group, then renamed.

Usage: for result in commit_groups(encoded_results, group=64, workers=4): print(result.output)

Why groups: an fsync per file costs one journal commit each (~3.6 ms a file on this machine's disk), so four I/O
threads could commit ~1,100 files/s however fast the engine runs; one `syncfs` for a group of 64 files costs about
what one fsync does (`sync_files`). The order keeps `atomic_write`'s contract: a temp file's data is durable
before it is renamed, so a name that exists holds a whole file even after a power cut (`--skip-existing` trusts
it), and each folder is fsynced after its renames so the names survive too. Results come out in input order, a
group once it is synced; one group syncs while the next is written.
"""

from __future__ import annotations

import os
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from stargan_sdk.host.files import sync_files, sync_folders, write_temp
from stargan_sdk.pipeline.files import FileResult, one_line
from stargan_sdk.pipeline.ordered import ordered_map

GROUP = 64  # files per sync: ~0.05 ms of sync a file instead of ~3.6 ms, and at most 64 results held back


def commit_groups(
    results: Iterable[FileResult],
    *,
    group: int | None = None,
    workers: int = 4,
    fatal: tuple[type[BaseException], ...] = (),
    sync: Callable[[list[Path]], None] = sync_files,
) -> Iterator[FileResult]:
    """Write each result's `value` (bytes) to a temp file beside its `output` in `workers` threads; per `group`
    files, sync them once, rename them into place and fsync their folders. Results without a value to write
    (errors, skipped) pass through in order. A write, sync or rename error fails the files it concerns alone,
    as one line. Stopping early (or Ctrl-C) removes the temp files of groups not yet renamed. Held at once: at
    most 2 x `workers` writes and two groups (default `GROUP`)."""
    group = group or GROUP
    live: set[Path] = set()  # temp files written and not renamed (or removed) yet
    lock = threading.Lock()

    def write(result: FileResult) -> tuple[FileResult, Path | None]:
        if result.error is not None or result.skipped:
            return result, None
        try:
            tmp = write_temp(result.output, lambda path: path.write_bytes(result.value))
        except fatal:
            raise
        except Exception as exc:
            return FileResult(result.source, error=one_line(exc)), None
        with lock:
            live.add(tmp)
        return result, tmp

    def forget(tmps: Iterable[Path]) -> None:
        for tmp in tmps:
            tmp.unlink(missing_ok=True)
            with lock:
                live.discard(tmp)

    def seal(batch: list[tuple[FileResult, Path | None]]) -> list[FileResult]:
        tmps = [tmp for _, tmp in batch if tmp is not None]
        try:
            if tmps:
                sync(tmps)
        except OSError as exc:  # the disk said no: none of this group is known to be whole
            forget(tmps)
            return [r if tmp is None else FileResult(r.source, error=one_line(exc)) for r, tmp in batch]
        out: list[FileResult] = []
        for result, tmp in batch:
            if tmp is None:
                out.append(result)
                continue
            try:
                os.replace(tmp, result.output)
                out.append(FileResult(result.source, output=result.output))
            except OSError as exc:
                out.append(FileResult(result.source, error=one_line(exc)))
            forget([tmp])  # renamed (gone) or failed (removed)
        renamed = [r.output.parent for r in out if r.output is not None and not r.skipped and r.error is None]
        try:
            sync_folders(renamed)
        except OSError as exc:  # the files are whole; their names may not survive a power cut: say so
            line = f"written, but its folder could not be synced ({one_line(exc)})"
            return [r if r.output is None or r.skipped or r.error else FileResult(r.source, error=line) for r in out]
        return out

    pool = ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="stargan-pipeline-io")
    sealer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="stargan-pipeline-sync")
    written = ordered_map(write, results, workers=workers, depth=2 * workers, pool=pool)
    pending: deque[Future[list[FileResult]]] = deque()
    try:
        current: list[tuple[FileResult, Path | None]] = []
        for item in written:
            current.append(item)
            if len(current) >= group:
                pending.append(sealer.submit(seal, current))
                current = []
            # A synced group goes out at once; at most one more waits behind the one syncing (the bound).
            while pending and (len(pending) > 1 or pending[0].done()):
                yield from pending.popleft().result()
        if current:
            pending.append(sealer.submit(seal, current))
        while pending:
            yield from pending.popleft().result()
    finally:  # queued work is cancelled, running work ends, then every temp file not renamed is removed
        written.close()
        pool.shutdown(wait=True, cancel_futures=True)
        sealer.shutdown(wait=True, cancel_futures=True)
        forget(list(live))
