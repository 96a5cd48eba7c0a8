"""FileStore only: what a save may skip, and what it must still do when it skips it."""

from __future__ import annotations

import contextlib
import errno
import os
import resource
import threading
from pathlib import Path

import pytest

import strategystore._durable_dirs
import strategystore._fsio
from strategystore import FileStore, InvalidBriefIdError
from tests.conftest import make_doc


def _count_links(monkeypatch: pytest.MonkeyPatch) -> list[tuple[object, object]]:
    calls: list[tuple[object, object]] = []
    real = os.link

    def link(src: object, dst: object, *args: object, **kwargs: object) -> None:
        calls.append((src, dst))
        real(src, dst, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "link", link)
    return calls


def _fail_dir_fsync(store: FileStore) -> None:
    def hook(step: str, path: Path) -> None:
        if step == "dir-fsync":
            raise OSError(5, "injected EIO")

    store.on_step = hook


def test_a_durable_save_of_a_new_version_tries_no_backup_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStore(tmp_path / "data")
    store.save(make_doc("acme", 1))
    calls = _count_links(monkeypatch)
    store.save(make_doc("acme", 2))
    assert calls == []
    assert store.get_strategy("acme", 2) == make_doc("acme", 2)


def test_a_durable_save_replacing_a_draft_still_keeps_a_backup(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStore(tmp_path / "data")
    store.save(make_doc("acme", 1, metadata={"n": 1}))
    calls = _count_links(monkeypatch)
    store.save(make_doc("acme", 1, metadata={"n": 2}))
    assert len(calls) == 1


def test_a_new_version_whose_directory_fsync_fails_is_removed_again(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "data")
    store.save(make_doc("acme", 1))
    _fail_dir_fsync(store)
    with pytest.raises(OSError, match="injected"):
        store.save(make_doc("acme", 2))
    store.on_step = None
    assert store.list_version_numbers("acme") == [1]


def test_a_version_found_absent_earlier_and_written_since_is_put_back_on_failure(
    tmp_path: Path,
) -> None:
    # This store saw version 2 absent (an unlocked read), then another store
    # wrote it: the save that replaces it must still keep what was there.
    store = FileStore(tmp_path / "data")
    store.save(make_doc("acme", 1))
    assert store.get_strategy("acme", 2) is None
    other = FileStore(tmp_path / "data")
    other.save(make_doc("acme", 2, metadata={"by": "other"}))
    before = (tmp_path / "data" / "acme" / "2.json").read_bytes()
    _fail_dir_fsync(store)
    with pytest.raises(OSError, match="injected"):
        store.save(make_doc("acme", 2, metadata={"by": "this"}))
    store.on_step = None
    assert (tmp_path / "data" / "acme" / "2.json").read_bytes() == before


def test_an_absence_seen_by_another_thread_keeps_no_backup_from_being_made(
    tmp_path: Path,
) -> None:
    store = FileStore(tmp_path / "data")
    store.save(make_doc("acme", 1, metadata={"n": 1}))
    # Another thread's _load found version 2 absent; this thread replaces version 1.
    seen = threading.Thread(target=store.get_strategy, args=("acme", 2))
    seen.start()
    seen.join()
    before = (tmp_path / "data" / "acme" / "1.json").read_bytes()
    _fail_dir_fsync(store)
    with pytest.raises(OSError, match="injected"):
        store.save(make_doc("acme", 1, metadata={"n": 2}))
    store.on_step = None
    assert (tmp_path / "data" / "acme" / "1.json").read_bytes() == before


def test_a_case_variant_is_refused_right_after_its_brief_was_written(tmp_path: Path) -> None:
    # Within the racy window the data directory's listing is not trusted, and
    # the brief's own last document answers whether it holds any.
    store = FileStore(tmp_path / "data")
    store.save(make_doc("acme", 1))
    store.save(make_doc("acme", 2))
    with pytest.raises(InvalidBriefIdError):
        store.save(make_doc("Acme", 1))


def test_a_brief_whose_remembered_document_is_gone_is_listed_again(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "data")
    store.save(make_doc("acme", 1))
    store.save(make_doc("acme", 2))
    # Removed behind the store's back: only version 1 is left, and still counts.
    (tmp_path / "data" / "acme" / "2.json").unlink()
    store.save(make_doc("acme", 3))
    with pytest.raises(InvalidBriefIdError):
        store.save(make_doc("ACME", 1))
    assert store.list_version_numbers("acme") == [3, 1]


def _data_dir_syncs(monkeypatch: pytest.MonkeyPatch, data: Path) -> list[Path]:
    synced: list[Path] = []
    real = strategystore._fsio.fsync_dir

    def record(path: Path, *, if_readable: bool = False) -> None:
        if Path(path) == data:
            synced.append(Path(path))
        real(path, if_readable=if_readable)

    monkeypatch.setattr(strategystore._fsio, "fsync_dir", record)
    return synced


def test_a_brief_directory_another_writer_touched_after_a_replace_is_synced_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStore(tmp_path / "data")
    store.save(make_doc("acme", 1, metadata={"n": 0}))
    store.save(make_doc("acme", 1, metadata={"n": 1}))
    FileStore(store.data_dir).save(make_doc("acme", 2))
    synced = _data_dir_syncs(monkeypatch, store.data_dir)
    store.save(make_doc("acme", 1, metadata={"n": 2}))
    assert synced == [store.data_dir]


def _descriptors_under(data: Path) -> int:
    """How many of this process's descriptors are open on a brief directory of ``data``."""
    found = 0
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = Path(os.readlink(f"/proc/self/fd/{name}"))
            found += target.parent == data and target.is_dir() and target.name[0] != "."
    return found


def test_a_second_durable_save_into_a_brief_needs_no_data_directory_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStore(tmp_path / "data")
    store.save(make_doc("acme", 1))
    synced = _data_dir_syncs(monkeypatch, store.data_dir)
    store.save(make_doc("acme", 2))
    assert synced == []


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_a_writer_keeps_a_bounded_number_of_brief_directories_open_until_closed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(strategystore._fsio, "_DURABLE_DIRS_KEPT", 3)
    store = FileStore(tmp_path / "data")
    for n in range(5):
        store.save(make_doc(f"b{n}", 1))
    assert _descriptors_under(store.data_dir) == 3
    # The first brief is no longer kept open: its next save syncs the data directory.
    synced = _data_dir_syncs(monkeypatch, store.data_dir)
    store.save(make_doc("b0", 2))
    store.save(make_doc("b4", 2))
    assert synced == [store.data_dir]
    assert _descriptors_under(store.data_dir) == 3
    store.close()
    assert _descriptors_under(store.data_dir) == 0


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_a_store_with_durable_false_keeps_no_brief_directory_open(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "data", durable=False)
    store.save(make_doc("acme", 1))
    store.save(make_doc("acme", 2))
    assert _descriptors_under(store.data_dir) == 0


def test_a_writer_out_of_descriptors_still_saves_and_syncs_the_data_directory_next_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = os.open

    def open_(path: str | Path, flags: int, *args: object, **kwargs: object) -> int:
        if path == ".":  # the directory kept open, and only that
            raise OSError(errno.EMFILE, os.strerror(errno.EMFILE))
        return real(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", open_)
    store = FileStore(tmp_path / "data")
    store.save(make_doc("acme", 1))
    synced = _data_dir_syncs(monkeypatch, store.data_dir)
    store.save(make_doc("acme", 2))
    assert synced == [store.data_dir]
    assert store.list_version_numbers("acme") == [2, 1]


def test_the_brief_directories_kept_open_in_one_process_are_bounded_over_all_its_stores(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Stores of earlier tests the collector has not yet freed may hold some.
    held = strategystore._durable_dirs._BUDGET.used
    monkeypatch.setattr(strategystore._durable_dirs, "PROCESS_LIMIT", held + 4)
    stores = [FileStore(tmp_path / f"data-{n}") for n in range(3)]
    for n in range(3):
        for store in stores:
            store.save(make_doc(f"b{n}", 1))
    assert sum(_descriptors_under(store.data_dir) for store in stores) == 4
    for store in stores:
        store.close()
    # What was handed back is there for the next store.
    again = FileStore(tmp_path / "data-again")
    for n in range(5):
        again.save(make_doc(f"b{n}", 1))
    assert _descriptors_under(again.data_dir) == 4


def test_a_low_descriptor_limit_keeps_fewer_brief_directories_open(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(resource, "getrlimit", lambda which: (200, 4096))
    assert strategystore._durable_dirs._process_limit() == 12


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_a_kept_directory_closed_behind_the_store_is_neither_trusted_nor_closed_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStore(tmp_path / "data")
    store.save(make_doc("acme", 1))
    (kept,) = [
        int(fd)
        for fd in os.listdir("/proc/self/fd")
        if os.path.realpath(f"/proc/self/fd/{fd}") == str(store.data_dir / "acme")
    ]
    os.close(kept)  # as os.closerange does when a process daemonizes
    # The number is given to another descriptor on that very directory, as
    # the next write's own open would get it, being the lowest one free.
    plain = os.open(store.data_dir / "acme", os.O_RDONLY | os.O_DIRECTORY)
    other = os.dup2(plain, kept)
    os.close(plain)
    try:
        synced = _data_dir_syncs(monkeypatch, store.data_dir)
        store.save(make_doc("acme", 2))
        assert synced == [store.data_dir]
        store.close()
        os.fstat(other)  # still open
    finally:
        os.close(other)


def test_a_brief_directory_is_kept_open_only_while_half_the_descriptors_are_free(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStore(tmp_path / "data")
    store.save(make_doc("acme", 1))
    free = os.open(os.devnull, os.O_RDONLY)  # the lowest number free, as the next open gets
    os.close(free)
    monkeypatch.setattr(resource, "getrlimit", lambda which: (2 * free, 4096))
    monkeypatch.setattr(strategystore._durable_dirs, "_process_limit", lambda: 64)
    store.save(make_doc("beta", 1))
    assert _descriptors_under(store.data_dir) == 1  # acme's, from before


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_a_forked_child_closes_the_brief_directories_its_parent_kept(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "data")
    store.save(make_doc("acme", 1))
    assert _descriptors_under(store.data_dir) == 1
    pid = os.fork()
    if pid == 0:
        os._exit(min(_descriptors_under(store.data_dir), 100))
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert _descriptors_under(store.data_dir) == 1
