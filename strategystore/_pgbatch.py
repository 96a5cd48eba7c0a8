"""An import into ``PostgresStore``: one transaction per batch, its results told after commit."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from typing import Any, Protocol

import psycopg
from psycopg.pq.abc import PGresult

from strategystore._pgcopy import CopyStream
from strategystore._pgsql import Results, Statements, batch_reads, row_of
from strategystore._primitives import BulkWriter, Primitives
from strategystore.models import StrategyDocument

__all__ = ["BatchHost", "BatchWriter", "Transaction"]


class Transaction:
    """A write transaction of one thread: its connection and the brief locks it holds.

    ``rows`` and ``ids_by_fold`` are what an import read ahead for its batch,
    under the batch's locks: stored bytes by key (``None`` for absent), and
    the stored ids of each case-folded brief; ``key_of`` is the lock key of
    each brief of the batch. ``highest`` is a brief's highest version, read
    with its lock when the transaction began, until it is used or the brief written.
    With ``commit_with_write`` the next exclusive write commits the
    transaction as it writes (``create_next``'s, its last statement).
    ``before_use`` ends what an import has under way on the connection (a
    ``COPY``) before anything else uses it. ``read_ahead`` holds the results
    of the statements run with the locks when the transaction began.
    """

    __slots__ = (
        "_conn",
        "before_use",
        "commit_with_write",
        "highest",
        "ids_by_fold",
        "key_of",
        "keys",
        "read_ahead",
        "rows",
    )

    def __init__(self, conn: psycopg.Connection[Any], keys: set[int] | None = None) -> None:
        self._conn = conn
        self.keys: set[int] = set() if keys is None else keys
        self.rows: dict[tuple[str, int], bytes | None] = {}
        self.ids_by_fold: dict[str, set[str]] | None = None
        self.key_of: dict[str, int] = {}
        self.highest: tuple[str, int] | None = None
        self.commit_with_write = False
        self.read_ahead: list[PGresult] = []
        self.before_use: Callable[[], None] | None = None

    @property
    def conn(self) -> psycopg.Connection[Any]:
        """The transaction's connection, free for a statement: a ``COPY`` under way is ended."""
        end = self.before_use
        if end is not None:
            self.before_use = None
            end()
        return self._conn


class BatchHost(Protocol):
    """What ``BatchWriter`` needs of its store: its statements, locks and transactions."""

    _local: threading.local
    _sql: Statements

    def _lock_key(self, brief_id: str) -> int: ...

    def _begin(
        self,
        keys: Sequence[int],
        timeout: float | None,
        brief_id: str,
        *,
        then: Callable[[psycopg.Connection[Any]], bytes] | None = None,
    ) -> Transaction: ...

    def _end(self, conn: psycopg.Connection[Any], *, commit: bool) -> None: ...

    def _errors(self) -> AbstractContextManager[None]: ...


class BatchWriter(BulkWriter):
    """One transaction per import batch: its briefs locked, its rows read and written at once.

    Rows new to the table go in by binary ``COPY``, the fastest way in,
    sent while the batch is still being worked through (``CopyStream``): the
    batch's locks and its read-ahead say no writer of this store has them. A
    row put there by hand, without the lock, makes the ``COPY`` fail and the
    batch roll back. Replaced rows, and a key written twice in one batch,
    are upserted at the end.
    """

    def __init__(self, store: Primitives, host: BatchHost, results: Results | None) -> None:
        """A writer for ``store``, whose transactions ``host`` (the same store) begins and ends."""
        super().__init__(store)
        self._owner = host
        self._results = results
        self._tx: Transaction | None = None
        self._stream: CopyStream | None = None
        self._pending: dict[tuple[str, int], tuple[StrategyDocument, bytes]] = {}
        self._stored: set[tuple[str, int]] = set()
        self._streamed: set[tuple[str, int]] = set()

    @property
    def validates_in_batch(self) -> bool:
        # The server inserts the rows streamed while the client validates the
        # next ones. Inside a caller's own write there is no transaction of
        # the batch's to roll back: each is validated first.
        return getattr(self._owner._local, "tx", None) is None

    def prepare(self, items: Sequence[tuple[StrategyDocument, bytes]]) -> None:
        self.prepare_keys([doc for doc, _ in items])

    def prepare_keys(self, docs: Sequence[StrategyDocument]) -> None:
        store = self._owner
        if not docs or getattr(store._local, "tx", None) is not None:
            return  # inside a caller's own write: its transaction serves
        first = docs[0].brief_id
        # A batch holds a few briefs, each many times: each is keyed once.
        key_of = {brief: store._lock_key(brief) for brief in {doc.brief_id for doc in docs}}
        folds = sorted({doc.brief_id.lower() for doc in docs})
        # What is stored at the batch's keys, and the ids of its briefs in
        # any case: read with the locks, in the same round trip.
        tx = store._begin(
            sorted(set(key_of.values())),
            None,
            first,
            then=lambda conn: batch_reads(conn, store._sql, docs, folds),
        )
        tx.key_of = key_of
        # Whatever arrives from here on (a Ctrl-C) ends the transaction and
        # gives its connection back.
        self._tx = tx
        store._local.tx = tx
        try:
            self._take_read_ahead(tx, docs, folds)
        except BaseException:
            self._abandon()
            raise
        self._streamed = set()
        self._stream = CopyStream(tx.conn, store._sql.copy_in)

    def _take_read_ahead(
        self, tx: Transaction, docs: Sequence[StrategyDocument], folds: Sequence[str]
    ) -> None:
        """Keep what the batch's transaction read as it began: rows at its keys, ids by fold."""
        found, ids = tx.read_ahead
        tx.read_ahead = []
        tx.rows = {doc.key: None for doc in docs}
        stored = self._stored = set()
        for i in range(found.ntuples):
            key = (_text(found, i, 0), int(found.get_value(i, 1) or 0))
            tx.rows[key] = found.get_value(i, 2)
            stored.add(key)
        tx.ids_by_fold = {fold: set() for fold in folds}
        for i in range(ids.ntuples):
            brief = _text(ids, i, 0)
            tx.ids_by_fold[brief.lower()].add(brief)

    def write(self, doc: StrategyDocument, data: bytes) -> None:
        tx = self._tx
        if tx is None:
            super().write(doc, data)
            return
        key = doc.key
        tx.rows[key] = data
        assert tx.ids_by_fold is not None and self._stream is not None
        tx.ids_by_fold.setdefault(doc.brief_id.lower(), set()).add(doc.brief_id)
        if key in self._stored or key in self._streamed:
            self._pending[key] = (doc, data)
            return
        self._streamed.add(key)
        stream = self._stream
        stream.add(doc, data)
        if stream.active:
            tx.before_use = stream.finish

    def abandon(self) -> None:
        if self._tx is None:
            return  # no batch of its own under way
        stream = self._stream
        if stream is not None:
            stream.abort(ValueError("the batch was given up: a document of it is invalid"))
        self._abandon()
        if self._results is not None:
            self._results.drop()

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
        stream, self._stream = self._stream, None
        store._local.tx = None
        tx.before_use = None
        commit = False
        try:
            with store._errors():
                if stream is not None:
                    stream.finish()
                if pending:
                    rows = [row_of(doc, data) for doc, data in pending]
                    columns = [list(column) for column in zip(*rows, strict=True)]
                    tx.conn.execute(store._sql.upsert_many, columns)
            commit = True
        except BaseException as exc:
            if stream is not None:
                stream.abort(exc)
            raise
        finally:
            store._end(tx.conn, commit=commit)

    def _abandon(self) -> None:
        tx, self._tx = self._tx, None
        self._pending = {}
        self._stream = None
        store = self._owner
        store._local.tx = None
        if tx is not None:
            tx.before_use = None
            store._end(tx.conn, commit=False)


def _text(result: PGresult, row: int, column: int) -> str:
    """A text value of ``result``, which the connection's encoding (UTF-8) sent."""
    value = result.get_value(row, column)
    return "" if value is None else value.decode()
