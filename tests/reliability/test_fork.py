"""A child forked while another thread writes never inherits a brief's lock."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from strategystore import FileStore
from tests.reliability._support import count, scaled


def _lock_files_open(locks: str) -> int:
    """How many of this process's descriptors are open on a lock file."""
    found = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{name}")
        except OSError:
            continue
        if target.startswith(locks + "/"):
            found += 1
    return found


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
                os._exit(min(_lock_files_open(locks), 100))
            _, status = os.waitpid(pid, 0)
            leaked += os.waitstatus_to_exitcode(status)
            forks += 1
    finally:
        stop.set()
        writer.join(timeout=30)
    count("fork: children forked during writes", forks)
    assert store.list_version_numbers("acme"), "the writer wrote nothing while forks ran"
    assert leaked == 0
