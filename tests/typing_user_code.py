"""Typical user code, type-checked by ``test_typing`` with mypy strict as a user runs it.

Every ``assert_type`` states a type a user relies on; the module is never run.
"""

from __future__ import annotations

from pathlib import Path
from typing import assert_type

from strategystore import (
    FileStore,
    ImportSummary,
    MemoryStore,
    PostgresStore,
    Status,
    Store,
    StrategyDocument,
    open_store,
)


def typical_use(where: Path) -> None:
    memory = open_store("memory")
    assert_type(memory, MemoryStore)
    files = open_store("file", where)
    assert_type(files, FileStore)
    draft = memory.create_next("acme", [{"key": "goal", "title": "Goal", "body": "Grow."}])
    assert_type(draft, StrategyDocument)
    approved = memory.approve("acme", draft.version)
    assert_type(approved.content_digest, str | None)
    assert_type(memory.get_latest("acme", status="approved"), StrategyDocument | None)
    assert_type(memory.get_latest("acme", status=Status.APPROVED), StrategyDocument | None)
    summary = files.import_documents(memory.iter_documents())
    assert_type(summary, ImportSummary)
    database = open_store("postgres", dsn="postgresql://db.example/strategies")
    assert_type(database, PostgresStore)
    configured = open_store()
    assert_type(configured, Store)
    assert_type(configured.import_documents(database.iter_documents()), ImportSummary)


def works_with_any_store(store: Store) -> list[int]:
    for doc in store.iter_documents(["acme"]):
        assert_type(doc, StrategyDocument)
    return store.list_version_numbers("acme")


def both_stores_are_stores() -> None:
    works_with_any_store(MemoryStore())
    with FileStore("strategy-data") as store:
        works_with_any_store(store)
    with PostgresStore("postgresql://db.example/strategies", table="strategies") as database:
        works_with_any_store(database)
