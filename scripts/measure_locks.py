"""Measure filelock beside this store's brief lock: hand-off between processes, and cost.

The README's paragraph on why the store takes ``flock`` directly quotes what
this prints. It needs strategystore and filelock importable in one
environment; filelock is no dependency of strategystore, so install it beside
the package for this script only, from a checkout::

    python3 -m venv /tmp/locks && . /tmp/locks/bin/activate
    pip install . filelock
    python scripts/measure_locks.py            # about a minute
    python scripts/measure_locks.py --rounds 50 --ops 2000   # a quick look

It measures, in a temporary directory on the file system of ``--dir``
(default: the system's temporary directory):

* the hand-off: one process holds the lock while another is blocked waiting
  for it; the holder releases it after a random pause and the waiter notes
  when it has the lock. Both read ``CLOCK_MONOTONIC``, which all processes of
  the machine share. Median and 10th/90th percentiles over ``--rounds``,
  for filelock at its default ``poll_interval``, for filelock at 1 ms, and
  for ``FileStore``'s brief lock (``store.locks.hold(brief_id)``, what every
  write of the store takes);
* the uncontended cost of one acquire and release, the median of 7 batches
  of ``--ops``, for filelock and for the brief lock;
* two facts: whether filelock leaves its lock file in place on release, and
  whether each lock refuses a lock directory that is a symbolic link.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from pathlib import Path

import filelock

from strategystore import FileStore

BRIEF = "handoff"


class Lock:
    """One lock of the comparison, opened anew in each process that uses it."""

    def __init__(self, kind: str, where: Path, poll_interval: float | None = None) -> None:
        self.kind = kind
        self.where = where
        self.poll_interval = poll_interval
        self._filelock: filelock.FileLock | None = None
        self._store: FileStore | None = None
        self._held: object = None

    def name(self) -> str:
        """Which lock this is."""
        if self.kind == "store":
            return "FileStore brief lock"
        return f"filelock {filelock.__version__}"

    def describe(self) -> str:
        """Which lock this is and how it waits, for the report."""
        if self.kind == "store":
            return "FileStore brief lock (flock, blocking waiter thread)"
        if self.poll_interval is None:
            return f"filelock {filelock.__version__}, default poll_interval"
        return f"filelock {filelock.__version__}, poll_interval={_ms(self.poll_interval)}"

    def acquire(self) -> None:
        """Take the lock, waiting for as long as it takes."""
        if self.kind == "store":
            if self._store is None:
                self._store = FileStore(self.where / "data", lock_timeout=float("inf"))
            held = self._store.locks.hold(BRIEF)
            held.__enter__()
            self._held = held
            return
        if self._filelock is None:
            self._filelock = filelock.FileLock(self.where / "filelock.lock")
        self._filelock.acquire(poll_interval=self.poll_interval)

    def release(self) -> None:
        """Release the lock."""
        if self.kind == "store":
            self._held.__exit__(None, None, None)  # type: ignore[attr-defined]
            return
        assert self._filelock is not None
        self._filelock.release()


def _now() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC)


def _waiter(lock: Lock, conn: Connection) -> None:
    """The other process: wait for the lock each round, say when it was granted."""
    while conn.recv():
        lock.acquire()
        granted = _now()
        lock.release()
        conn.send(granted)


def measure_handoff(lock: Lock, rounds: int) -> list[float]:
    """Seconds from one process's release to the blocked waiter's acquire, per round."""
    context = multiprocessing.get_context("spawn")
    mine, theirs = context.Pipe()
    child = context.Process(target=_waiter, args=(lock, theirs))
    child.start()
    pause = random.Random(14)
    latencies = []
    try:
        for _ in range(rounds):
            lock.acquire()
            mine.send(True)
            # Long enough for the waiter to be blocked, and random, so that a
            # polling waiter's next attempt falls anywhere in its interval.
            time.sleep(0.02 + pause.uniform(0, 0.05))
            released = _now()
            lock.release()
            latencies.append((mine.recv() - released) / 1e9)
        mine.send(False)
    finally:
        child.join(10)
        if child.is_alive():
            child.kill()
    return latencies


def measure_cost(lock: Lock, ops: int) -> float:
    """Seconds per uncontended acquire and release: the median of 7 batches of ``ops``."""
    batches = []
    for _ in range(7):
        started = time.perf_counter()
        for _ in range(ops):
            lock.acquire()
            lock.release()
        batches.append((time.perf_counter() - started) / ops)
    return statistics.median(batches)


def lock_file_kept(where: Path) -> bool:
    """Whether filelock's lock file is still at its path after a release."""
    lock = filelock.FileLock(where / "kept.lock")
    with lock:
        pass
    return (where / "kept.lock").exists()


def refuses_linked_dir(where: Path, take: Callable[[Path], None]) -> str:
    """Try ``take`` on a lock directory that is a symbolic link; what happened."""
    real = where / "elsewhere"
    real.mkdir()
    try:
        take(where)
    except Exception as exc:
        return f"refused ({type(exc).__name__}: {exc})"
    return "followed the link and locked"


def _filelock_through_link(where: Path) -> None:
    (where / "locks").symlink_to(where / "elsewhere")
    with filelock.FileLock(where / "locks" / "a.lock"):
        pass


def _store_through_link(where: Path) -> None:
    store = FileStore(where / "data")
    (where / "data" / ".locks").rmdir()
    (where / "data" / ".locks").symlink_to(where / "elsewhere")
    with store.locks.hold(BRIEF):
        pass


def _ms(seconds: float) -> str:
    return f"{seconds * 1e3:.2f} ms" if seconds >= 1e-3 else f"{seconds * 1e6:.1f} µs"


def main() -> None:
    """Parse the options, measure, print one line per figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=200, help="hand-offs per lock")
    parser.add_argument("--ops", type=int, default=20_000, help="acquires per cost batch")
    parser.add_argument("--dir", type=Path, default=None, help="where to make the lock files")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="measure-locks-", dir=args.dir) as scratch:
        root = Path(scratch)
        print(f"filelock {filelock.__version__}, {os.cpu_count()} CPUs, in {root}")
        print(f"hand-off between two processes, {args.rounds} rounds (median, p10-p90):")
        for n, (kind, interval) in enumerate(
            [("filelock", None), ("filelock", 0.001), ("store", None)]
        ):
            where = root / f"handoff-{n}"
            where.mkdir()
            lock = Lock(kind, where, interval)
            got = sorted(measure_handoff(lock, args.rounds))
            p10, p90 = got[len(got) // 10], got[len(got) * 9 // 10]
            print(f"  {lock.describe()}: {_ms(statistics.median(got))} ({_ms(p10)} - {_ms(p90)})")
        print(f"uncontended acquire + release (median of 7 batches of {args.ops:,}):")
        for n, kind in enumerate(["filelock", "store"]):
            where = root / f"cost-{n}"
            where.mkdir()
            lock = Lock(kind, where)
            print(f"  {lock.name()}: {_ms(measure_cost(lock, args.ops))}")
        for name in ("kept", "linked-filelock", "linked-store"):
            (root / name).mkdir()
        print(f"filelock keeps its lock file on release: {lock_file_kept(root / 'kept')}")
        print(
            "filelock, lock directory a symbolic link: "
            + refuses_linked_dir(root / "linked-filelock", _filelock_through_link)
        )
        print(
            "FileStore, .locks/ a symbolic link: "
            + refuses_linked_dir(root / "linked-store", _store_through_link)
        )


if __name__ == "__main__":
    main()
