"""The primitive contract of ``Primitives``, the same in every store, and closing a store."""

from __future__ import annotations

import threading

import pytest

from strategystore import DuplicateVersionError
from strategystore.store import BaseStore
from tests.conftest import Reopen, make_doc


def test_an_exclusive_write_of_a_present_key_writes_nothing_and_says_so(store: BaseStore) -> None:
    first = make_doc(metadata={"round": 1})
    store.save(first)
    second = make_doc(metadata={"round": 2})
    with store._locked("acme-q3"):
        assert store._write(second, second.to_json_bytes(), exclusive=True) is False
    assert store.get_strategy("acme-q3", 1) == first


def test_a_write_that_finds_its_key_taken_under_the_lock_is_a_duplicate(
    store: BaseStore, monkeypatch: pytest.MonkeyPatch, another_handle: Reopen
) -> None:
    # As if a writer that bypasses the lock stored the version between the
    # check and the write: create must refuse, never overwrite. The intruder
    # is another handle, so its write is not part of this one's transaction.
    real_write, intrude = store._write, another_handle(store)._write
    intruder = make_doc(metadata={"by": "intruder"})

    def write_after_an_intruder(doc: object, data: bytes, *, exclusive: bool) -> bool:
        intrude(intruder, intruder.to_json_bytes(), exclusive=False)
        return real_write(doc, data, exclusive=exclusive)  # type: ignore[arg-type]

    monkeypatch.setattr(store, "_write", write_after_an_intruder)
    with pytest.raises(DuplicateVersionError) as caught:
        store.create(make_doc())
    assert caught.value.existing == intruder
    assert store.get_strategy("acme-q3", 1) == intruder


def test_a_stamp_changes_with_every_write_and_removal_and_only_then(store: BaseStore) -> None:
    assert store._stamp("acme-q3", 1) is None
    doc = make_doc(metadata={"round": 1})
    store.save(doc)
    stamps = [store._stamp("acme-q3", 1)]
    store.save(doc)  # equal to the stored one: no rewrite
    assert store._stamp("acme-q3", 1) == stamps[-1] is not None
    store.save(make_doc(metadata={"round": 2}))
    stamps.append(store._stamp("acme-q3", 1))
    with store._locked("acme-q3"):  # the same bytes written again are a write too
        store._write(doc, doc.to_json_bytes(), exclusive=False)
    stamps.append(store._stamp("acme-q3", 1))
    assert None not in stamps
    assert stamps[0] != stamps[1] != stamps[2]
    store.delete("acme-q3", 1)
    assert store._stamp("acme-q3", 1) is None


def test_the_brief_lock_nests_in_one_thread_under_any_case_of_the_id(store: BaseStore) -> None:
    with store._locked("acme-q3"), store._locked("ACME-Q3", timeout=0):
        store.save(make_doc())  # save takes the lock a third time
    assert store.get_strategy("acme-q3", 1) == make_doc()


def _held_elsewhere(store: BaseStore, brief_id: str) -> tuple[threading.Thread, threading.Event]:
    """A thread holding the brief's lock until the returned event is set."""
    held, release = threading.Event(), threading.Event()

    def hold() -> None:
        with store._locked(brief_id):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    held.wait(10)
    return thread, release


def test_the_brief_lock_still_excludes_another_thread(store: BaseStore) -> None:
    thread, release = _held_elsewhere(store, "ACME-Q3")
    try:
        done = threading.Event()

        def save() -> None:
            store.save(make_doc())
            done.set()

        saver = threading.Thread(target=save)
        saver.start()
        assert not done.wait(0.3), "a save went ahead while another thread held the lock"
        release.set()
        assert done.wait(10)
        saver.join()
    finally:
        release.set()
        thread.join()
    assert store.get_strategy("acme-q3", 1) == make_doc()


def test_a_store_is_a_context_manager_and_refuses_use_once_closed(store: BaseStore) -> None:
    with store as opened:
        assert opened is store
        store.save(make_doc())
    assert store.closed
    for use in (
        lambda: store.get_strategy("acme-q3", 1),
        store.list_briefs,
        lambda: store.list_version_numbers("acme-q3"),
        lambda: store.get_latest("acme-q3"),
        lambda: store.save(make_doc()),
        lambda: store.import_documents([make_doc()]),
    ):
        with pytest.raises(ValueError, match="is closed"):
            use()
    store.close()  # closing again does nothing


@pytest.mark.parametrize("kind", ["file", "postgres"])
def test_a_closed_store_leaves_its_documents_for_the_next_handle(
    kind: str, request: pytest.FixtureRequest, another_handle: Reopen
) -> None:
    store: BaseStore = request.getfixturevalue("file_store" if kind == "file" else "pg_store")
    with store:
        store.save(make_doc())
    assert another_handle(store).get_strategy("acme-q3", 1) == make_doc()
