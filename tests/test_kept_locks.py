"""The descriptors a writing thread keeps between writes never weaken a brief's lock."""

from __future__ import annotations

import fcntl
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import types
from contextlib import ExitStack
from multiprocessing.synchronize import Event
from pathlib import Path

import pytest

import strategystore._locks as locks_module
from strategystore import FileStore, LockTimeoutError
from strategystore._kept import KEPT_LOCK_FILES
from tests.reliability._support import lock_files_open

pytestmark = pytest.mark.skipif(
    not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd to count descriptors"
)


def _lock_files_open(data: Path) -> int:
    return lock_files_open(str(data / ".locks"))


def _no_lock_files_open_within(data: Path, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while _lock_files_open(data):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _excluded(path: Path) -> bool:
    """Whether someone holds the flock of the lock file at ``path`` now."""
    fd = os.open(path, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_a_kept_lock_file_replaced_at_its_path_is_not_trusted(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = FileStore(data, durable=False, lock_timeout=0.2)
    store.create_next("acme")
    store.create_next("acme")  # keeps acme's lock file open
    (data / ".locks" / "acme.lock").unlink()
    other = FileStore(data, durable=False)
    other.create_next("acme")  # makes a new lock file at the path
    # Locking the kept, unlinked file would let both write at once.
    with other.locks.hold("acme"), pytest.raises(LockTimeoutError):
        store.create_next("acme")
    assert store.create_next("acme").version == 4
    assert store.list_version_numbers("acme") == [4, 3, 2, 1]


def test_a_kept_lock_file_is_released_at_the_end_of_each_write(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = FileStore(data, durable=False)
    store.create_next("acme")
    store.create_next("acme")
    assert _lock_files_open(data) == 1  # kept open,
    assert not _excluded(data / ".locks" / "acme.lock")  # but not locked
    with store.locks.hold("acme"):
        assert _excluded(data / ".locks" / "acme.lock")
    assert not _excluded(data / ".locks" / "acme.lock")


def test_a_thread_keeps_only_the_lock_files_it_wrote_last(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = FileStore(data, durable=False)
    for _ in range(2):
        for n in range(3 * KEPT_LOCK_FILES):
            store.create_next(f"b{n}")
    assert _lock_files_open(data) == KEPT_LOCK_FILES
    store.close()
    assert _lock_files_open(data) == 0


def test_closing_the_store_while_another_thread_holds_a_lock_keeps_it_held(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    store = FileStore(data, durable=False)
    store.create_next("acme")
    held, leave = threading.Event(), threading.Event()

    def hold() -> None:
        store.create_next("acme")  # this thread keeps its descriptors now
        with store.locks.hold("acme"):
            held.set()
            leave.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert held.wait(30)
        store.close()
        # The close left the held lock alone: closing its descriptor would release it.
        assert _excluded(data / ".locks" / "acme.lock")
        with pytest.raises(LockTimeoutError):
            FileStore(data, lock_timeout=0.2).create_next("acme")
    finally:
        leave.set()
        holder.join(30)
    # Closed at the release; the timed-out waiter's thread closes its own
    # descriptor once its blocked flock returns, just after.
    assert _no_lock_files_open_within(data, 5.0)
    assert FileStore(data).create_next("acme").version == 3


def test_nested_locks_of_two_briefs_in_one_thread_release_in_any_order(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = FileStore(data, durable=False)
    for brief in ("a", "b", "a", "b"):
        store.create_next(brief)
    first, second = store.locks.hold("a"), store.locks.hold("b")
    first.__enter__()
    second.__enter__()
    first.__exit__(None, None, None)
    assert not _excluded(data / ".locks" / "a.lock")
    assert _excluded(data / ".locks" / "b.lock")
    # b still holds the data directory's shared lock, which a lock file's maker waits for.
    root = os.open(data, os.O_RDONLY | os.O_DIRECTORY)
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(root, fcntl.LOCK_EX | fcntl.LOCK_NB)
        second.__exit__(None, None, None)
        fcntl.flock(root, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(root)
    assert store.create_next("a").version == 3


def _other_process_create_next(data: Path, brief: str) -> str:
    """What another process's ``create_next(brief)`` gives: its version or its error."""
    code = (
        "import sys; from strategystore import FileStore; "
        "print(FileStore(sys.argv[1], lock_timeout=0.5).create_next(sys.argv[2]).version)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(data), brief], capture_output=True, text=True, check=False
    )
    return done.stdout.strip() or done.stderr.strip().splitlines()[-1]


def test_holding_more_briefs_than_are_kept_keeps_every_one_locked(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = FileStore(data, durable=False)
    briefs = [f"b{i}" for i in range(KEPT_LOCK_FILES + 2)]
    for brief in briefs * 2:
        store.create_next(brief)
    with ExitStack() as stack:
        for brief in briefs:
            stack.enter_context(store.locks.hold(brief))
        assert [b for b in briefs if _excluded(data / ".locks" / f"{b}.lock")] == briefs
        # The first held, the least recently kept, excludes other processes too.
        assert "LockTimeoutError" in _other_process_create_next(data, briefs[0])


def test_releasing_one_of_many_held_briefs_releases_only_it(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = FileStore(data, durable=False)
    briefs = [f"b{i}" for i in range(KEPT_LOCK_FILES + 2)]
    for brief in briefs:
        store.create_next(brief)
    held = [store.locks.hold(brief) for brief in briefs]
    for lock in held:
        lock.__enter__()
    try:
        held[0].__exit__(None, None, None)
        assert not _excluded(data / ".locks" / "b0.lock")
        assert [b for b in briefs[1:] if not _excluded(data / ".locks" / f"{b}.lock")] == []
    finally:
        for lock in held[1:]:
            lock.__exit__(None, None, None)
    assert _lock_files_open(data) <= KEPT_LOCK_FILES


def test_a_data_directory_put_in_the_kept_one_s_place_is_locked_there(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = FileStore(data, durable=False)
    store.create_next("acme")
    store.create_next("acme")
    # The same entries, .locks/ and its files with their inodes, in a new directory.
    os.rename(data, tmp_path / "old")
    data.mkdir()
    for name in os.listdir(tmp_path / "old"):
        os.rename(tmp_path / "old" / name, data / name)
    with store.locks.hold("acme"):
        shutil.rmtree(data / ".locks")  # git clean -X while a writer holds a lock
        assert "LockTimeoutError" in _other_process_create_next(data, "acme")


def _busy_writer(data: str, brief: str, go: Event, stop: Event) -> None:
    store = FileStore(data, durable=False)
    store.create_next(brief)
    store.create_next(brief)
    go.wait()
    while not stop.is_set():
        store.create_next(brief)


def test_a_rewritten_marker_still_closes_the_gate_for_busy_writers(tmp_path: Path) -> None:
    data = tmp_path / "data"
    FileStore(data, durable=False).create_next("x")
    context = multiprocessing.get_context("fork")
    go, stop = context.Event(), context.Event()
    writers = [
        context.Process(target=_busy_writer, args=(str(data), f"w{i}", go, stop)) for i in range(4)
    ]
    for writer in writers:
        writer.start()
    try:
        time.sleep(1.0)  # each has kept the marker it opened
        marker = data / "strategystore.json"
        (data / "marker.new").write_bytes(marker.read_bytes())
        os.replace(data / "marker.new", marker)  # migrate, git checkout, an editor
        go.set()
        time.sleep(0.2)
        store = FileStore(data, durable=False, lock_timeout=2.0)
        for i in range(3):  # each makes a lock file, closing the gate
            store.create_next(f"new{i}")
    finally:
        stop.set()
        go.set()
        for writer in writers:
            writer.join()


@pytest.mark.parametrize("which", ["gate", "lock file", "data dir"])
def test_an_interrupt_just_after_a_flock_leaves_nothing_locked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, which: str
) -> None:
    data = tmp_path / "data"
    store = FileStore(data, durable=False, lock_timeout=0.5)
    store.create_next("acme")
    store.create_next("acme")
    kept = store.locks._held.kept
    fd, operation = {
        "gate": (kept.gate, fcntl.LOCK_SH),
        "lock file": (kept.files["acme.lock"][0], fcntl.LOCK_EX),
        "data dir": (kept.root, fcntl.LOCK_SH),
    }[which]

    def flock(target: int, op: int) -> None:
        fcntl.flock(target, op)
        if target == fd and op & operation:
            raise KeyboardInterrupt  # what a signal handler raises at the next bytecode

    shim = types.SimpleNamespace(**{n: getattr(fcntl, n) for n in dir(fcntl) if n.isupper()})
    shim.flock = flock
    monkeypatch.setattr(locks_module, "fcntl", shim)
    with pytest.raises(KeyboardInterrupt):
        store.create_next("acme")
    monkeypatch.undo()
    held = [
        name
        for name, path in (
            ("gate", data / "strategystore.json"),
            ("lock file", data / ".locks" / "acme.lock"),
        )
        if _excluded(path)
    ]
    root = os.open(data, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(root, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        held.append("data dir")
    finally:
        os.close(root)
    assert held == []
    assert store.create_next("acme").version == 3


def test_a_child_forked_while_a_thread_opens_its_kept_descriptors_can_write(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    store = FileStore(data, durable=False)
    store.create_next("acme")
    stop = threading.Event()

    def churn() -> None:
        # New threads keep opening their kept descriptors, under the store's guard.
        while not stop.is_set():
            thread = threading.Thread(target=lambda: store.create_next("other"))
            thread.start()
            thread.join()

    churners = [threading.Thread(target=churn) for _ in range(2)]
    for churner in churners:
        churner.start()
    hung = 0
    try:
        for _ in range(100):
            pid = os.fork()
            if pid == 0:
                signal.alarm(5)
                store.create_next("child")
                os._exit(0)
            _, status = os.waitpid(pid, 0)
            hung += os.WIFSIGNALED(status)
    finally:
        stop.set()
        for churner in churners:
            churner.join()
    assert hung == 0
