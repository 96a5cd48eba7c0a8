"""The descriptors a writing thread keeps between writes never weaken a brief's lock."""

from __future__ import annotations

import fcntl
import os
import threading
from pathlib import Path

import pytest

from strategystore import FileStore, LockTimeoutError
from strategystore._kept import KEPT_LOCK_FILES
from tests.reliability._support import lock_files_open

pytestmark = pytest.mark.skipif(
    not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd to count descriptors"
)


def _lock_files_open(data: Path) -> int:
    return lock_files_open(str(data / ".locks"))


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
    # Closed at the release.
    assert _lock_files_open(data) == 0
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
