"""Step-by-step progress for long exports: a rich progress bar when enabled, silent otherwise.

Usage: with Steps(3, enabled=True) as steps: model = steps.run("ONNX FP32", lambda: export())
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from rich.console import Console
from rich.progress import BarColumn, Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

T = TypeVar("T")


class Steps:
    """Runs named steps, advancing one bar; records each step's seconds in `timings`.

    Args:
        total: number of steps that will run.
        enabled: draw the bar (on stderr, so `--json` output on stdout stays clean).
    """

    def __init__(self, total: int, enabled: bool = False) -> None:
        self.timings: dict[str, float] = {}
        self._progress = (
            Progress(
                SpinnerColumn(),
                TextColumn("{task.description}"),
                BarColumn(),
                TimeElapsedColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            if enabled
            else None
        )
        self._task = self._progress.add_task("export", total=total) if self._progress else None

    def __enter__(self) -> Steps:
        if self._progress:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress:
            self._progress.stop()

    def run(self, name: str, step: Callable[[], T]) -> T:
        if self._progress is not None and self._task is not None:
            self._progress.update(self._task, description=name)
        start = time.perf_counter()
        result = step()
        self.timings[name] = time.perf_counter() - start
        if self._progress is not None and self._task is not None:
            self._progress.advance(self._task)
        return result
