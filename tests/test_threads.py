"""Threads sharing one store: create_next hands out distinct, contiguous versions."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from strategystore import DuplicateVersionError, FileStore, MemoryStore
from strategystore.store import BaseStore
from tests.conftest import make_doc

THREADS = 8
PER_THREAD = 15


def _shared(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> BaseStore:
    """The one store every thread uses."""
    if kind == "memory":
        return MemoryStore()
    if kind == "file":
        return FileStore(tmp_path / "data", durable=False)
    store: BaseStore = request.getfixturevalue("pg_store")
    return store


KINDS = ["memory", "file", "postgres"]


@pytest.mark.parametrize("kind", KINDS)
def test_threads_racing_create_next_on_one_brief_get_distinct_contiguous_versions(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    store = _shared(kind, request, tmp_path)
    got: list[int] = []
    errors: list[BaseException] = []
    start = threading.Barrier(THREADS)

    def work() -> None:
        try:
            start.wait()
            for _ in range(PER_THREAD):
                doc = store.create_next("acme-q3", metadata={"by": threading.get_ident()})
                got.append(doc.version)
        except BaseException as exc:
            errors.append(exc)

    workers = [threading.Thread(target=work) for _ in range(THREADS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert errors == []
    total = THREADS * PER_THREAD
    assert sorted(got) == list(range(1, total + 1))
    assert store.list_version_numbers("acme-q3") == list(range(total, 0, -1))


@pytest.mark.parametrize("kind", KINDS)
def test_threads_racing_create_on_one_key_have_exactly_one_winner(
    kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    store = _shared(kind, request, tmp_path)
    for version in range(1, 11):
        outcomes = _race_create(store, version)
        assert sorted(outcomes) == ["duplicate"] * (THREADS - 1) + ["won"]


def _race_create(store: BaseStore, version: int) -> list[str]:
    outcomes: list[str] = []
    start = threading.Barrier(THREADS)

    def create(n: int) -> None:
        start.wait()
        try:
            store.create(make_doc(version=version, metadata={"thread": n}))
            outcomes.append("won")
        except DuplicateVersionError:
            outcomes.append("duplicate")

    workers = [threading.Thread(target=create, args=(n,)) for n in range(THREADS)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=60)
    return outcomes
