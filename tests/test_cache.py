"""FileStore's read cache: the disk stays the truth (DESIGN.md section 5, "Caching").

A cached document is answered only while the file's inode, size, mtime and
ctime are as they were, and only if its timestamps were already older than
the file system's timestamp granularity when it was cached (git's racy-entry
rule). These tests change files behind the store's back in every way a
person or program does, and check that the very next read sees it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import strategystore._cache as cache_module
from strategystore import CorruptDocumentError, FileStore, InvalidBriefIdError, Status
from tests.conftest import make_doc

SETTLE = cache_module.FINE_RACY_WINDOW_NS / 1e9 + 0.05


class CountingStore(FileStore):
    """A FileStore that counts how often it reads a document file from disk."""

    reads = 0

    def _read_document(
        self, brief_id: str, version: int
    ) -> tuple[bytes, cache_module.Identity] | None:
        self.reads += 1
        return super()._read_document(brief_id, version)


@pytest.fixture
def cached(tmp_path: Path) -> CountingStore:
    """A store holding version 1 of acme-q3, settled and read once, so it is cached."""
    store = CountingStore(tmp_path / "data")
    store.save(make_doc(metadata={"rev": "a"}))
    time.sleep(SETTLE)
    store.get_strategy("acme-q3", 1)
    store.reads = 0
    return store


def _path(store: FileStore) -> Path:
    return store.data_dir / "acme-q3" / "1.json"


def test_an_unchanged_settled_file_is_answered_from_the_cache(cached: CountingStore) -> None:
    for _ in range(3):
        assert cached.get_strategy("acme-q3", 1) == make_doc(metadata={"rev": "a"})
    assert cached.reads == 0


def test_a_file_changed_within_the_racy_window_is_never_cached(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "data")
    store.save(make_doc())
    store.reads = 0
    store.get_strategy("acme-q3", 1)
    store.get_strategy("acme-q3", 1)
    assert store.reads == 2


def test_cached_documents_share_no_mutable_state(cached: CountingStore) -> None:
    first = cached.get_strategy("acme-q3", 1)
    assert first is not None
    first.metadata["rev"] = "mutated"
    first.sections.clear()
    second = cached.get_strategy("acme-q3", 1)
    assert second == make_doc(metadata={"rev": "a"})
    assert cached.reads == 0


def test_a_write_by_another_store_is_seen_by_the_next_read(cached: CountingStore) -> None:
    other = FileStore(cached.data_dir)
    other.save(make_doc(metadata={"rev": "b"}))
    got = cached.get_strategy("acme-q3", 1)
    assert got is not None
    assert got.metadata == {"rev": "b"}


def test_a_write_by_another_process_is_seen_by_the_next_read(cached: CountingStore) -> None:
    script = (
        "import sys; from strategystore import FileStore; "
        "s = FileStore(sys.argv[1]); s.approve('acme-q3', 1); s.create_next('acme-q3')"
    )
    subprocess.run([sys.executable, "-c", script, str(cached.data_dir)], check=True)
    got = cached.get_strategy("acme-q3", 1)
    assert got is not None
    assert got.status is Status.APPROVED
    assert cached.list_version_numbers("acme-q3") == [2, 1]


def test_a_file_replaced_like_git_checkout_does_is_seen(cached: CountingStore) -> None:
    path = _path(cached)
    replacement = path.with_name(".checkout")
    replacement.write_bytes(make_doc(metadata={"rev": "z"}).to_json_bytes())
    os.replace(replacement, path)
    got = cached.get_strategy("acme-q3", 1)
    assert got is not None
    assert got.metadata == {"rev": "z"}


def test_an_editor_writing_in_place_with_the_old_mtime_put_back_is_seen(
    cached: CountingStore,
) -> None:
    path = _path(cached)
    before = path.stat()
    data = path.read_bytes()
    edited = data.replace(b'"rev": "a"', b'"rev": "e"')
    assert len(edited) == len(data)
    with open(path, "r+b") as file:  # same inode, same size
        file.write(edited)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    )
    got = cached.get_strategy("acme-q3", 1)
    assert got is not None
    assert got.metadata == {"rev": "e"}


def test_a_deleted_file_is_seen_as_gone(cached: CountingStore) -> None:
    _path(cached).unlink()
    assert cached.get_strategy("acme-q3", 1) is None
    assert cached.list_version_numbers("acme-q3") == []


def test_a_file_broken_by_hand_is_reported_not_answered_from_the_cache(
    cached: CountingStore,
) -> None:
    _path(cached).write_bytes(b"<<<<<<< HEAD\n")
    with pytest.raises(CorruptDocumentError, match="line 1"):
        cached.get_strategy("acme-q3", 1)


def test_a_listing_changed_behind_the_stores_back_is_seen(cached: CountingStore) -> None:
    assert cached.list_version_numbers("acme-q3") == [1]
    time.sleep(SETTLE)
    assert cached.list_version_numbers("acme-q3") == [1]  # now cached
    (cached.data_dir / "acme-q3" / "7.json").write_bytes(make_doc(version=7).to_json_bytes())
    assert cached.list_version_numbers("acme-q3") == [7, 1]


# -- file systems with coarse timestamps


def _whole_seconds(info: os.stat_result) -> cache_module.Identity:
    second = 1_000_000_000
    return cache_module.Identity(
        info.st_dev,
        info.st_ino,
        info.st_size,
        info.st_mtime_ns // second * second,
        info.st_ctime_ns // second * second,
    )


@pytest.fixture
def coarse(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the store see whole-second timestamps, as on FAT or HFS+."""
    monkeypatch.setattr(cache_module, "identity", _whole_seconds)


def _edit_in_place_within_the_same_second(store: FileStore, rev: bytes) -> None:
    path = _path(store)
    data = path.read_bytes()
    edited = data.replace(b'"rev": "a"', b'"rev": "' + rev + b'"')
    with open(path, "r+b") as file:
        file.write(edited)


def _wait_for_a_fresh_second() -> None:
    # Start at the beginning of a second so the edits below share it.
    time.sleep(1 - time.time() % 1 + 0.01)


@pytest.mark.usefixtures("coarse")
def test_with_coarse_timestamps_an_edit_in_the_same_second_as_the_read_is_seen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = CountingStore(tmp_path / "data")
    store.cache.racy_ns = cache_module.COARSE_RACY_WINDOW_NS
    _wait_for_a_fresh_second()
    store.save(make_doc(metadata={"rev": "a"}))
    assert store.get_strategy("acme-q3", 1) == make_doc(metadata={"rev": "a"})
    _edit_in_place_within_the_same_second(store, b"b")
    got = store.get_strategy("acme-q3", 1)
    assert got is not None
    assert got.metadata == {"rev": "b"}


@pytest.mark.usefixtures("coarse")
def test_without_the_racy_rule_that_same_edit_would_be_missed(tmp_path: Path) -> None:
    # The counterfactual: it shows the test above can fail, and why the rule exists.
    store = CountingStore(tmp_path / "data")
    store.cache.racy_ns = -(10**18)
    _wait_for_a_fresh_second()
    second = int(time.time())
    store.save(make_doc(metadata={"rev": "a"}))
    assert store.get_strategy("acme-q3", 1) == make_doc(metadata={"rev": "a"})
    _edit_in_place_within_the_same_second(store, b"b")
    if int(time.time()) != second:
        pytest.skip("the second ended during the edit; the counterfactual needs one second")
    stale = store.get_strategy("acme-q3", 1)
    assert stale is not None
    assert stale.metadata == {"rev": "a"}


@pytest.mark.usefixtures("coarse")
def test_with_coarse_timestamps_a_settled_entry_still_sees_an_in_place_edit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = CountingStore(tmp_path / "data")
    store.cache.racy_ns = cache_module.COARSE_RACY_WINDOW_NS
    store.save(make_doc(metadata={"rev": "a"}))
    path = _path(store)
    old = path.stat()
    # Age the file past the window instead of waiting for it.
    os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns - 10 * 10**9))
    real_time_ns = time.time_ns
    monkeypatch.setattr(time, "time_ns", lambda: real_time_ns() + 10 * 10**9)
    store.get_strategy("acme-q3", 1)
    store.reads = 0
    store.get_strategy("acme-q3", 1)
    assert store.reads == 0  # cached
    monkeypatch.setattr(time, "time_ns", real_time_ns)
    aged = path.stat()
    time.sleep(1.01)  # the edit's ctime falls in a later second than the cached one
    _edit_in_place_within_the_same_second(store, b"c")
    os.utime(path, ns=(aged.st_atime_ns, aged.st_mtime_ns))
    got = store.get_strategy("acme-q3", 1)
    assert got is not None
    assert got.metadata == {"rev": "c"}


def test_a_cached_read_refuses_a_brief_directory_that_became_a_link(
    cached: CountingStore, tmp_path: Path
) -> None:
    brief = cached.data_dir / "acme-q3"
    moved = tmp_path / "moved"
    brief.rename(moved)  # the same inode now lives outside the data directory
    brief.symlink_to(moved)
    with pytest.raises(CorruptDocumentError, match="symbolic link"):
        cached.get_strategy("acme-q3", 1)


def test_a_case_variant_made_behind_the_stores_back_is_seen_by_the_next_write(
    cached: CountingStore,
) -> None:
    cached.create_next("zeta")  # a new brief: the settled names are indexed
    time.sleep(SETTLE)
    variant = cached.data_dir / "Globex"
    variant.mkdir()
    (variant / "1.json").write_bytes(make_doc(brief_id="Globex").to_json_bytes())
    with pytest.raises(InvalidBriefIdError, match="'Globex' already exists"):
        cached.create_next("globex")  # right after the change
    time.sleep(SETTLE)
    with pytest.raises(InvalidBriefIdError, match="'Globex' already exists"):
        cached.create_next("GLOBEX")  # once the change is settled


def test_the_cache_holds_a_bounded_number_of_bytes(tmp_path: Path) -> None:
    from strategystore import Section  # noqa: PLC0415

    store = FileStore(tmp_path / "data", durable=False)
    body = "x" * 100_000
    for version in range(1, 201):  # 20 MB of documents, more than the cache holds
        store.save(make_doc(version=version, sections=[Section(key="k", title="", body=body)]))
    time.sleep(SETTLE)
    for version in range(1, 201):
        assert store.get_strategy("acme-q3", version) is not None
    held = sum(len(entry.data) for entry in store.cache.documents())
    assert 0 < held <= cache_module.CACHE_BYTES
    assert store.cache.document_bytes == held
