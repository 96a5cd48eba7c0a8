"""A child forked while another thread writes never inherits a brief's lock."""

from __future__ import annotations

import fcntl
import gc
import os
import threading
from pathlib import Path

import pytest

from strategystore import FileStore
from tests.reliability._support import count, lock_files_open, scaled


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_no_fork_during_writes_leaves_a_lock_descriptor_in_the_child(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "data", durable=False)
    locks = str(store.data_dir / ".locks")
    stop = threading.Event()

    def write() -> None:
        while not stop.is_set():
            store.create_next("acme")

    writer = threading.Thread(target=write)
    writer.start()
    leaked = forks = 0
    try:
        for _ in range(scaled(800)):
            pid = os.fork()
            if pid == 0:
                os._exit(min(lock_files_open(locks), 100))
            _, status = os.waitpid(pid, 0)
            leaked += os.waitstatus_to_exitcode(status)
            forks += 1
    finally:
        stop.set()
        writer.join(timeout=30)
    count("fork: children forked during writes", forks)
    assert store.list_version_numbers("acme"), "the writer wrote nothing while forks ran"
    assert leaked == 0


def test_a_forked_child_never_closes_a_descriptor_for_its_parents_kept_directory(
    tmp_path: Path,
) -> None:
    store = FileStore(tmp_path / "data", durable=False)
    store.create_next("acme")  # makes the lock file
    store.create_next("acme")  # this thread now keeps .locks/ open between writes
    kept = store.locks._held.kept
    number = kept.locks_dir
    pid = os.fork()
    if pid == 0:
        status = 1
        try:
            # The fork closed the child's copy; the child gives the number to
            # a file of its own, then drops the parent's kept descriptor: its
            # file must stay open.
            with pytest.raises(OSError, match="Bad file descriptor"):
                os.fstat(number)
            own = os.open(os.devnull, os.O_RDONLY)
            reused = own == number or os.dup2(own, number) == number
            store.locks._held.kept = None
            del kept
            gc.collect()
            os.fstat(number)
            status = 0 if reused else 2
        finally:
            os._exit(status)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    os.fstat(number)  # and the parent's own is still open
    assert store.create_next("acme").version == 3


def test_a_with_block_entered_before_a_fork_and_left_in_the_child_never_releases_the_childs_locks(
    tmp_path: Path,
) -> None:
    store = FileStore(tmp_path / "data", durable=False)
    store.create_next("a")
    store.create_next("b")
    with store.locks.hold("a"):
        pid = os.fork()
        if pid == 0:
            # The fork closed the child's copies of "a"'s descriptors, so a
            # thread of the child taking "b" may be given the same numbers.
            held, leave, excluded = threading.Event(), threading.Event(), []

            def hold_b() -> None:
                with store.locks.hold("b"):
                    held.set()
                    leave.wait()
                    other = os.open(tmp_path / "data" / ".locks" / "b.lock", os.O_RDONLY)
                    try:
                        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    except BlockingIOError:
                        excluded.append(True)
                    finally:
                        os.close(other)

            holder = threading.Thread(target=hold_b)
            holder.start()
            held.wait()
    if pid == 0:
        # The child has left the block it entered as its parent.
        leave.set()
        holder.join()
        os._exit(0 if excluded else 1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "leaving the block released the child's lock"
    assert store.create_next("a").version == 2


def _open_locks_dirs(data: Path) -> int:
    return sum(
        os.path.realpath(f"/proc/self/fd/{fd}") == str(data / ".locks")
        for fd in os.listdir("/proc/self/fd")
    )


def test_a_forked_child_closes_the_lock_directory_its_parent_kept(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = FileStore(data, durable=False)
    store.create_next("acme")
    store.create_next("acme")  # this thread now keeps .locks/ open between writes
    assert _open_locks_dirs(data) == 1
    pid = os.fork()
    if pid == 0:
        os._exit(_open_locks_dirs(data))
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child still holds its parent's"
    assert _open_locks_dirs(data) == 1
