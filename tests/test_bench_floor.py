"""The benchmark's locked floor writes what the store writes, and keeps its guarantees."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from strategystore import FileStore
from strategystore.bench._contenders import LockedFloor
from strategystore.bench._document import document


@pytest.fixture(params=[True, False], ids=["durable", "durable=False"])
def floor(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LockedFloor]:
    made = LockedFloor(tmp_path / "floor", "b", durable=request.param)
    yield made
    made.close()


def test_it_writes_the_bytes_the_store_writes(floor: LockedFloor, tmp_path: Path) -> None:
    doc = document("b", 1)
    floor.save(doc)
    store = FileStore(tmp_path / "store")
    store.save(doc)
    written = (tmp_path / "floor" / "b" / "1.json").read_bytes()
    assert written == (tmp_path / "store" / "b" / "1.json").read_bytes()
    assert os.listdir(tmp_path / "floor" / "b") == ["1.json"]  # no temporary file left


def test_it_never_replaces_a_version(floor: LockedFloor, tmp_path: Path) -> None:
    floor.save(document("b", 1))
    before = (tmp_path / "floor" / "b" / "1.json").read_bytes()
    with pytest.raises(FileExistsError):
        floor.save(document("b", 1).model_copy(update={"title": "another"}))
    assert (tmp_path / "floor" / "b" / "1.json").read_bytes() == before


def test_it_refuses_a_replaced_lock_file(floor: LockedFloor, tmp_path: Path) -> None:
    lock = tmp_path / "floor" / ".locks" / "b.lock"
    lock.unlink()
    lock.write_bytes(b"")
    with pytest.raises(RuntimeError, match="replaced"):
        floor.save(document("b", 1))
    assert not (tmp_path / "floor" / "b" / "1.json").exists()


def test_it_releases_the_lock_after_each_write(floor: LockedFloor, tmp_path: Path) -> None:
    floor.save(document("b", 1))
    other = os.open(tmp_path / "floor" / ".locks" / "b.lock", os.O_RDWR)
    try:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)  # would raise if still held
    finally:
        os.close(other)


def test_it_fails_fast_on_a_held_lock(floor: LockedFloor, tmp_path: Path) -> None:
    other = os.open(tmp_path / "floor" / ".locks" / "b.lock", os.O_RDWR)
    try:
        fcntl.flock(other, fcntl.LOCK_EX | fcntl.LOCK_NB)
        with pytest.raises(BlockingIOError):
            floor.save(document("b", 1))
    finally:
        os.close(other)
    assert not (tmp_path / "floor" / "b" / "1.json").exists()
