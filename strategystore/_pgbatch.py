"""An import into ``PostgresStore``: one transaction per batch, its results told after commit."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

import psycopg

from strategystore._pgsql import Results, Statements, row_of
from strategystore._primitives import BulkWriter, Primitives
from strategystore.models import StrategyDocument

__all__ = ["BatchHost", "BatchWriter", "Transaction"]


@dataclass
class Transaction:
    """A write transaction of one thread: its connection and the brief locks it holds.

    ``rows`` and ``ids_by_fold`` are what an import read ahead for its batch,
    under the batch's locks: stored bytes by key (``None`` for absent), and
    the stored ids of each case-folded brief; ``key_of`` is the lock key of
    each brief of the batch. ``highest`` is a brief's highest version, read
    with its lock when the transaction began, until it is used or the brief written.
    """

    conn: psycopg.Connection[Any]
    keys: set[int] = field(default_factory=set)
    rows: dict[tuple[str, int], bytes | None] = field(default_factory=dict)
    ids_by_fold: dict[str, set[str]] | None = None
    key_of: dict[str, int] = field(default_factory=dict)
    highest: tuple[str, int] | None = None


class BatchHost(Protocol):
    """What ``BatchWriter`` needs of its store: its statements, locks and transactions."""

    _local: threading.local
    _sql: Statements

    def _lock_key(self, brief_id: str) -> int: ...

    def _begin(self, keys: Sequence[int], timeout: float | None, brief_id: str) -> Transaction: ...

    def _end(self, conn: psycopg.Connection[Any], *, commit: bool) -> None: ...

    def _errors(self) -> AbstractContextManager[None]: ...


class BatchWriter(BulkWriter):
    """One transaction per import batch: its briefs locked, its rows read and written at once."""

    def __init__(self, store: Primitives, host: BatchHost, results: Results | None) -> None:
        """A writer for ``store``, whose transactions ``host`` (the same store) begins and ends."""
        super().__init__(store)
        self._owner = host
        self._results = results
        self._tx: Transaction | None = None
        self._pending: dict[tuple[str, int], tuple[StrategyDocument, bytes]] = {}
        self._stored: set[tuple[str, int]] = set()

    def prepare(self, items: Sequence[tuple[StrategyDocument, bytes]]) -> None:
        store = self._owner
        if not items or getattr(store._local, "tx", None) is not None:
            return  # inside a caller's own write: its transaction serves
        first = items[0][0].brief_id
        key_of = {doc.brief_id: store._lock_key(doc.brief_id) for doc, _ in items}
        tx = store._begin(sorted(set(key_of.values())), None, first)
        tx.key_of = key_of
        try:
            self._tx = tx
            store._local.tx = tx
            with store._errors():
                found = tx.conn.execute(
                    store._sql.batch_rows,
                    ([doc.brief_id for doc, _ in items], [doc.version for doc, _ in items]),
                ).fetchall()
                folds = sorted({doc.brief_id.lower() for doc, _ in items})
                ids = tx.conn.execute(store._sql.batch_ids, (folds,)).fetchall()
        except BaseException:
            self._tx = tx
            self._abandon()
            raise
        tx.rows = {doc.key: None for doc, _ in items}
        tx.rows.update({(brief, version): data.encode() for brief, version, data in found})
        self._stored = {(brief, version) for brief, version, _ in found}
        tx.ids_by_fold = {fold: set() for fold in folds}
        for (brief,) in ids:
            tx.ids_by_fold[brief.lower()].add(brief)

    def write(self, doc: StrategyDocument, data: bytes) -> None:
        tx = self._tx
        if tx is None:
            super().write(doc, data)
            return
        self._pending[doc.key] = (doc, data)
        tx.rows[doc.key] = data
        assert tx.ids_by_fold is not None
        tx.ids_by_fold.setdefault(doc.brief_id.lower(), set()).add(doc.brief_id)

    def end_batch(self) -> None:
        tx, self._tx = self._tx, None
        try:
            if tx is not None:
                self._commit(tx)
        except BaseException:
            if self._results is not None:
                self._results.drop()
            raise
        # Only now, with the batch committed and its connection back in the
        # pool, may a callback see its results (and write on its own).
        if self._results is not None:
            self._results.report()

    def _commit(self, tx: Transaction) -> None:
        store = self._owner
        pending, self._pending = list(self._pending.values()), {}
        store._local.tx = None
        commit = False
        try:
            # Rows new to the table go in by COPY, the fastest way in: the
            # batch's locks and its read-ahead say no writer of this store
            # has them. A row put there by hand, without the lock, makes the
            # COPY fail and the batch roll back. Replaced rows are upserted.
            fresh = [row_of(d, data) for d, data in pending if d.key not in self._stored]
            replaced = [row_of(d, data) for d, data in pending if d.key in self._stored]
            with store._errors():
                if fresh:
                    with tx.conn.cursor() as cursor, cursor.copy(store._sql.copy_in) as copy:
                        for values in fresh:
                            copy.write_row(values)
                if replaced:
                    columns = [list(column) for column in zip(*replaced, strict=True)]
                    tx.conn.execute(store._sql.upsert_many, columns)
            commit = True
        finally:
            store._end(tx.conn, commit=commit)

    def _abandon(self) -> None:
        tx, self._tx = self._tx, None
        self._pending = {}
        store = self._owner
        store._local.tx = None
        if tx is not None:
            store._end(tx.conn, commit=False)
