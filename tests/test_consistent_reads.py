"""Reads that list a brief and then read its documents answer as of one instant.

A writer that acts between the listing and the reads is made to act at
exactly that moment, so the race the linearizability test found by chance
happens on every run here.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from strategystore import CorruptDocumentError, FileStore, LockTimeoutError, Status
from strategystore._primitives import Primitives
from strategystore.store import BaseStore
from tests.conftest import T0, Reopen, make_doc


def _one_statement(store: BaseStore) -> bool:
    """Whether the store reads a brief's listing and documents in one step (a database statement).

    Such a store answers as of that statement, so a writer acting after it
    is not seen; the others notice the writer and answer as of after it.
    Either answer is one instant of the brief; a mix of two never is.
    """
    return type(store)._snapshot is not Primitives._snapshot


def _hook_reads(
    store: BaseStore,
    monkeypatch: pytest.MonkeyPatch,
    *,
    listing: Callable[[], object] | None = None,
    before: Callable[[int], object] | None = None,
    after: Callable[[int], object] | None = None,
) -> None:
    """Hook the listing reads: ``listing()`` before a brief is listed, the others around each read.

    ``before(version)`` and ``after(version)`` run around each read of one of
    the brief's documents. A store that reads in one statement is hooked
    around its ``_snapshot``: ``listing`` before the statement, the others
    around each document it then takes from what the statement fetched.
    """

    def read(load: Callable[[int], object], version: int) -> object:
        if before is not None:
            before(version)
        found = load(version)
        if after is not None:
            after(version)
        return found

    if _one_statement(store):
        real_snapshot = store._snapshot

        def snapshot(brief_id: str) -> object:
            if listing is not None:
                listing()
            found = real_snapshot(brief_id)
            assert found is not None
            versions, load = found
            return versions, lambda version: read(load, version)

        monkeypatch.setattr(store, "_snapshot", snapshot)
        return
    real_versions, real_load = store._versions, store._load

    def versions(brief_id: str) -> list[int]:
        if listing is not None:
            listing()
        return real_versions(brief_id)

    monkeypatch.setattr(store, "_versions", versions)
    monkeypatch.setattr(
        store, "_load", lambda brief_id, version: read(lambda v: real_load(brief_id, v), version)
    )


def _before_read(
    store: BaseStore,
    act: Callable[[], object],
    monkeypatch: pytest.MonkeyPatch,
    version: int | None = None,
) -> None:
    """Run ``act`` once, just before the store's first read (of ``version``, if given)."""
    pending = [act]

    def before(read: int) -> None:
        if pending and version in (None, read):
            pending.pop()()

    _hook_reads(store, monkeypatch, before=before)


def test_get_latest_never_returns_a_version_after_a_newer_one_was_created(
    store: BaseStore, monkeypatch: pytest.MonkeyPatch, another_handle: Reopen
) -> None:
    for version in (1, 2, 3):
        store.create(make_doc("acme", version))
    other = another_handle(store)

    def race() -> None:  # version 4 appears, then version 3 is rejected
        other.create_next("acme", now=T0)
        other.reject("acme", 3, now=T0)

    _before_read(store, race, monkeypatch)
    latest = store.get_latest("acme")
    assert latest is not None
    # Version 3 rejected was never the latest: by then version 4 existed.
    before, after = (3, Status.DRAFT), (4, Status.DRAFT)
    assert (latest.version, latest.status) == (before if _one_statement(store) else after)
    assert other.list_version_numbers("acme") == [4, 3, 2, 1], "the writer never acted"


def test_list_versions_by_brief_shows_one_moment_of_the_brief(
    store: BaseStore, monkeypatch: pytest.MonkeyPatch, another_handle: Reopen
) -> None:
    for version in (1, 2, 3):
        store.create(make_doc("acme", version))
    other = another_handle(store)

    def race() -> None:  # version 3 has been read as a draft
        other.approve("acme", 3, now=T0)
        other.approve("acme", 2, now=T0)

    _before_read(store, race, monkeypatch, version=2)
    statuses = [doc.status for doc in store.list_versions_by_brief("acme")]
    # 3 draft with 2 approved never existed: 3 was approved first.
    before = [Status.DRAFT, Status.DRAFT, Status.DRAFT]
    after = [Status.APPROVED, Status.APPROVED, Status.DRAFT]
    assert statuses == (before if _one_statement(store) else after)
    assert [doc.status for doc in other.list_versions_by_brief("acme")] == after


def test_get_latest_with_a_status_sees_one_moment_of_the_brief(
    store: BaseStore, monkeypatch: pytest.MonkeyPatch, another_handle: Reopen
) -> None:
    store.create(make_doc("acme", 1, status=Status.APPROVED))
    store.create(make_doc("acme", 2))
    other = another_handle(store)

    def race() -> None:
        other.approve("acme", 2, now=T0)

    _before_read(store, race, monkeypatch)
    approved = store.get_latest("acme", status=Status.APPROVED)
    assert approved is not None
    assert approved.version == (1 if _one_statement(store) else 2)
    again = store.get_latest("acme", status=Status.APPROVED)
    assert again is not None and again.version == 2, "the writer never acted"


def test_a_cached_read_racing_the_delete_of_the_last_version_finds_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStore(tmp_path / "data", durable=False)
    store.create(make_doc("acme", 1))
    document = store.data_dir / "acme" / "1.json"
    brief = store.data_dir / "acme"
    old = document.stat().st_mtime_ns - 10**10
    os.utime(document, ns=(old, old))
    # The racy rule trusts only a ctime older than its window: wait it out.
    time.sleep(store.cache.racy_ns / 1e9 + 0.05)
    assert store.get_strategy("acme", 1) == make_doc("acme", 1)
    assert store.cache.document_count, "the document was not cached"
    real_lstat = os.lstat
    other = FileStore(store.data_dir, durable=False)

    def lstat(path: str, *args: object, **kwargs: object) -> os.stat_result:
        if str(path) == str(brief) and brief.exists():
            other.delete("acme", 1)  # the last version goes between the two looks
        return real_lstat(path, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr("strategystore.files.os.lstat", lstat)
    assert store.get_strategy("acme", 1) is None


def test_a_brief_made_and_removed_while_it_is_read_is_never_half_seen(
    store: BaseStore, monkeypatch: pytest.MonkeyPatch, another_handle: Reopen
) -> None:
    other = another_handle(store)
    acting = [False]
    steps: list[str] = []
    edited = make_doc("acme", 1, metadata={"edited": True})

    def act(step: str, action: Callable[[], object]) -> None:
        acting[0] = True
        try:
            steps.append(step)
            action()
        finally:
            acting[0] = False

    def listing() -> None:
        if not acting[0] and not steps:
            act(
                "made",
                lambda: (other.create_next("acme", now=T0), other.create_next("acme", now=T0)),
            )

    def edit() -> None:
        other.delete("acme", 2)
        other.save(edited)

    def after(version: int) -> None:
        if acting[0]:
            return
        if version == 2 and steps == ["made"]:
            act("edited", edit)
        elif version == 1 and steps == ["made", "edited"]:
            act("removed", lambda: other.delete("acme", 1))

    _hook_reads(store, monkeypatch, listing=listing, after=after)
    seen = [(doc.version, doc.metadata) for doc in store.list_versions_by_brief("acme")]
    # Versions 2 and an edited 1 never existed together; the brief is gone at the end.
    assert seen == ([(2, {}), (1, {})] if _one_statement(store) else [])
    assert steps == ["made", "edited", "removed"]
    assert other.list_briefs() == []


def test_listing_reads_answer_while_writers_never_stop(
    store: BaseStore, another_handle: Reopen
) -> None:
    for version in range(1, 41):
        store.create(make_doc("acme", version))
    writer_store = another_handle(store)
    stop = threading.Event()

    def rewrite() -> None:
        flip = 0
        while not stop.is_set():
            flip ^= 1
            writer_store.save(make_doc("acme", 1 + flip, metadata={"flip": flip}))

    writer = threading.Thread(target=rewrite)
    answers: list[int] = []

    def read() -> None:
        for _ in range(20):
            answers.append(len(store.list_versions_by_brief("acme")))
            assert store.get_latest("acme", status=Status.APPROVED) is None

    reader = threading.Thread(target=read)
    writer.start()
    reader.start()
    reader.join(timeout=120)
    stop.set()
    writer.join(timeout=30)
    assert not reader.is_alive(), "the reader never got an answer"
    assert answers == [40] * 20


def test_a_listing_read_spoilt_by_every_write_is_made_under_the_lock_in_the_end(
    store: BaseStore, monkeypatch: pytest.MonkeyPatch, another_handle: Reopen
) -> None:
    for version in range(1, 4):
        store.create(make_doc("acme", version))
    other = another_handle(store, lock_timeout=0)
    writes = [0]
    acting = [False]

    def after(version: int) -> None:
        if acting[0]:
            return
        writes[0] += 1
        # Every read is followed by a write, so no answer made without the
        # lock survives its check; the lock keeps this writer out of files.
        acting[0] = True
        try:
            with contextlib.suppress(LockTimeoutError):
                other.save(make_doc("acme", 1, metadata={"write": writes[0]}))
        finally:
            acting[0] = False

    _hook_reads(store, monkeypatch, after=after)
    answers: list[list[int]] = []
    reader = threading.Thread(
        target=lambda: answers.append([d.version for d in store.list_versions_by_brief("acme")])
    )
    reader.start()
    reader.join(timeout=30)
    assert not reader.is_alive(), "the reader never got an answer"
    assert answers == [[3, 2, 1]]
    assert writes[0] >= 3


def test_a_listing_read_answers_when_the_lock_cannot_be_taken(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStore(tmp_path / "data", durable=False)
    for version in (1, 2):
        store.create(make_doc("acme", version))
    other = FileStore(store.data_dir, durable=False)
    real_load = store._load
    spoilt = [0]

    def load(brief_id: str, version: int) -> object:
        found = real_load(brief_id, version)
        if spoilt[0] < 20:  # spoil more tries than are made before the lock
            spoilt[0] += 1
            other.save(make_doc("acme", 1, metadata={"write": spoilt[0]}))
        return found

    def no_lock(brief_id: str, timeout: float | None = None) -> object:
        raise CorruptDocumentError(store.data_dir / ".locks", "is a symbolic link")

    monkeypatch.setattr(store, "_load", load)
    monkeypatch.setattr(store, "_locked", no_lock)
    assert [doc.version for doc in store.list_versions_by_brief("acme")] == [2, 1]
    assert spoilt[0] == 20
