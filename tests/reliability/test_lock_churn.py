"""Writers keep excluding each other while ``.locks/`` is removed under them."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from strategystore import FileStore
from tests.reliability._support import count, make_doc, scaled
from tests.reliability._workers import (
    cas_increments,
    context,
    create_next_many,
    remove_locks_until,
)

WRITERS = 4


def _with_lock_removal(
    data: Path, task: object, args: list[tuple[object, ...]], how: str = "remove"
) -> list[object]:
    ctx = context()
    stop = ctx.Event()
    receiver, sender = ctx.Pipe(duplex=False)
    remover = ctx.Process(target=remove_locks_until, args=(str(data), stop, sender, how))
    remover.start()
    sender.close()
    try:
        with ctx.Pool(WRITERS) as pool:
            results: list[object] = pool.starmap_async(
                task,  # type: ignore[arg-type]
                args,
                chunksize=1,
            ).get(timeout=600)
    finally:
        stop.set()
        removals = receiver.recv() if receiver.poll(60) else 0
        remover.join(60)
    assert removals > 0
    count(f"locks: .locks/ changes under load ({how})", removals)
    return results


@pytest.mark.parametrize("how", ["remove", "touch", "copy", "swap"])
def test_compare_and_swap_loses_no_update_while_the_locks_directory_is_removed(
    tmp_path: Path, how: str
) -> None:
    data = tmp_path / "data"
    FileStore(data).create(make_doc("acme", 1, metadata={"count": 0}))
    per_writer = scaled(150)
    acknowledged = _with_lock_removal(
        data, cas_increments, [(str(data), "acme", per_writer)] * WRITERS, how
    )
    stored = FileStore(data).get_strategy("acme", 1)
    assert stored is not None
    assert sum(acknowledged) == WRITERS * per_writer  # type: ignore[arg-type]
    assert stored.metadata["count"] == WRITERS * per_writer
    count("locks: updates acknowledged and kept while .locks/ was removed", WRITERS * per_writer)


def test_create_next_stays_contiguous_while_the_locks_directory_is_removed(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    FileStore(data)
    per_writer = scaled(50)
    numbered = _with_lock_removal(
        data, create_next_many, [(str(data), "acme", per_writer)] * WRITERS
    )
    versions = sorted(v for batch in numbered for v in batch)  # type: ignore[attr-defined]
    assert versions == list(range(1, WRITERS * per_writer + 1))
    assert FileStore(data).list_version_numbers("acme") == versions[::-1]
    count("locks: create_next calls while .locks/ was removed", len(versions))


def test_recreating_the_locks_directory_leaks_no_descriptor(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "data", durable=False)
    store.create_next("acme")
    before = len(os.listdir("/proc/self/fd")) if os.path.isdir("/proc/self/fd") else None
    for _ in range(50):
        shutil.rmtree(store.data_dir / ".locks")
        store.create_next("acme")
    if before is not None:
        assert len(os.listdir("/proc/self/fd")) == before
    assert store.list_version_numbers("acme")[0] == 51
