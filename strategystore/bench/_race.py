"""Processes racing ``create_next`` on one brief, against one process alone."""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path
from typing import Any

from strategystore.bench._context import Context
from strategystore.bench._document import METADATA, TEMPLATE
from strategystore.files import FileStore

__all__ = ["WorkerPool", "measure_create_next_race"]


def measure_create_next_race(ctx: Context) -> None:
    """``create_next`` from every process at once against one process, in both modes."""
    processes = ctx.settings.processes
    data_dir = ctx.root / "race"
    FileStore(data_dir)
    counts = {True: ctx.settings.ops(400, 40), False: ctx.settings.ops(1_000, 100)}
    with WorkerPool(data_dir, processes) as pool:
        for durable in (True, False):
            total = counts[durable]
            mode = "durable" if durable else "durable=False"

            def alone(r: int, durable: bool = durable, total: int = total) -> float:
                return pool.race(f"solo-{durable}-{r}", total, durable, workers=1)

            def together(r: int, durable: bool = durable, total: int = total) -> float:
                return pool.race(f"race-{durable}-{r}", total, durable, workers=processes)

            many, one = ctx.interleave(f"create_next race, {mode}", [together, alone])
            ctx.compare(
                f"create_next_race_{'durable' if durable else 'nondurable'}",
                f"create_next, {processes} processes on one brief / 1 process, {mode}",
                many,
                one,
                target=(">=", 0.70),
            )


class WorkerPool:
    """Processes started once, each running ``create_next`` batches on command.

    Starting interpreters costs far more than the operations measured, so the
    processes outlive the rounds; a barrier starts a race's workers together.
    """

    def __init__(self, data_dir: Path, processes: int) -> None:
        # spawn, not fork: a fork would copy this process's threads and locks.
        context = multiprocessing.get_context("spawn")
        self._results: Any = context.Queue()
        self._barrier: Any = context.Barrier(processes)
        self._tasks: list[Any] = [context.Queue() for _ in range(processes)]
        self._processes = [
            context.Process(
                target=_race_worker,
                args=(str(data_dir), tasks, self._results, self._barrier),
                daemon=True,
            )
            for tasks in self._tasks
        ]

    def __enter__(self) -> WorkerPool:
        for process in self._processes:
            process.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for tasks in self._tasks:
            tasks.put(None)
        for process in self._processes:
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
                process.join()

    def race(self, brief_id: str, total: int, durable: bool, *, workers: int) -> float:
        """``total`` create_next calls on one brief split over ``workers`` processes.

        Returns:
            Wall-clock seconds per operation, from the first start to the last end.
        """
        share, extra = divmod(total, workers)
        together = workers == len(self._processes)
        for i in range(workers):
            self._tasks[i].put((brief_id, share + (i < extra), durable, together))
        spans = []
        for _ in range(workers):
            found = self._results.get(timeout=300)
            if isinstance(found, str):
                raise RuntimeError(f"a create_next worker failed: {found}")
            spans.append(found)
        wall: float = max(end for _, end in spans) - min(start for start, _ in spans)
        return wall / total


def _race_worker(data_dir: str, tasks: Any, results: Any, barrier: Any) -> None:
    stores = {
        durable: FileStore(data_dir, create=False, durable=durable) for durable in (True, False)
    }
    sections = [s.model_dump() for s in TEMPLATE.sections]
    while (task := tasks.get()) is not None:
        brief_id, count, durable, together = task
        try:
            if together:
                barrier.wait(timeout=120)
            store = stores[durable]
            # time.monotonic is one system-wide clock, comparable between processes.
            start = time.monotonic()
            for _ in range(count):
                store.create_next(brief_id, sections, METADATA)
            results.put((start, time.monotonic()))
        except Exception as exc:  # reported to the parent, which raises it
            results.put(f"{type(exc).__name__}: {exc}")
