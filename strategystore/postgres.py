"""``PostgresStore``: the same documents, contract and errors, in one table of a PostgreSQL server.

Each row holds a document's canonical bytes as ``text`` (the truth, stored as
they are: ``jsonb`` would reorder keys and rewrite numbers) and, beside them,
typed columns for listing and querying. A write runs in one transaction that
first takes a transaction-scoped advisory lock keyed on the case-folded
brief id, so "check, then write" is atomic across machines as the file lock
makes it across processes; the lock ends with the transaction, so nothing
leaks through a pooled connection. Reads take no lock: one statement sees
one instant.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import Any, TypeVar

# First, so that without the extra the error says how to install it.
try:
    import psycopg
    from psycopg import sql
    from psycopg.pq.abc import PGresult
    from psycopg_pool import ConnectionPool
except ImportError as exc:  # pragma: no cover - the extra is installed for the tests
    raise ImportError(
        "PostgresStore needs psycopg 3 and psycopg_pool: pip install 'strategystore[postgres]'"
    ) from exc

from strategystore._dsn import DEFAULT_TABLE
from strategystore._pgbatch import BatchWriter, Transaction
from strategystore._pgerrors import (
    libpq_connect_timeout,
    pool_timeout,
    translate,
)
from strategystore._pgsettings import checked_settings
from strategystore._pgsql import Decoded, Results, Statements, take_locks
from strategystore._pgtable import FORMAT, prepare_table, table_oid
from strategystore._pgwire import (
    PIPELINE,
    Wire,
    WireStatement,
    connection_kwargs,
    open_pool,
    wire_row,
)
from strategystore._primitives import BulkWriter, Loader
from strategystore._protocol import ImportSummary, OnResult
from strategystore.errors import (
    CorruptDocumentError,
    LockTimeoutError,
)
from strategystore.models import StrategyDocument, brief_id_problem
from strategystore.store import BaseStore

__all__ = ["DEFAULT_TABLE", "FORMAT", "PostgresStore"]

_S = TypeVar("_S")
_P = TypeVar("_P")
_T = TypeVar("_T")

#: The connections a store keeps, at most, in each process.
DEFAULT_POOL_SIZE = 4
#: Seconds to wait for a connection before the server counts as unavailable.
DEFAULT_CONNECT_TIMEOUT = 10.0
#: The context of a lock the thread's transaction already holds: nothing to do.
_HELD: AbstractContextManager[None] = contextlib.nullcontext()
_IDLE = psycopg.pq.TransactionStatus.IDLE


class PostgresStore(BaseStore):
    """Strategy documents in one table of a PostgreSQL server, for workers on several machines.

    It behaves exactly like ``FileStore``: same results, same errors. A write
    returns after its commit; durability is the server's.

    Args:
        dsn: a ``postgresql://`` URL or a libpq connection string. A URL may
            name the table in its query (``?table=NAME``); that parameter is
            removed before connecting. Passwords come from the DSN,
            ``PGPASSWORD`` or ``~/.pgpass`` and never appear in a message.
        table: the table (``NAME`` or ``SCHEMA.NAME``); default ``strategy_document``.
        create: create the table, and record its format, if it is missing.
        lock_timeout: seconds a write waits for its brief's lock, enforced by
            the server (``0`` tries once). A wait longer than the server
            holds (2**31 - 1 ms, some 24.8 days), or ``math.inf``, waits for
            as long as the lock is held.
        pool_size: connections this store keeps open at most, per process. A
            call that finds every one in use for ``connect_timeout`` seconds
            (at least 2) raises ``StoreUnavailableError`` saying the pool
            was exhausted.
        connect_timeout: seconds to wait for a connection before raising
            ``StoreUnavailableError`` (libpq counts whole seconds, at least
            2; ``math.inf`` waits without a limit).

    In a child process after ``os.fork()`` the store opens a pool of its own
    on first use and leaves the parent's connections alone.

    Raises:
        StoreUnavailableError: the server cannot be reached, or refused the
            settings (an unknown database or user, a wrong password, an
            invalid ``sslmode``), saying which.
        StoreFormatError: the table is missing (with ``create=False``), is not
            a strategystore table, or is of a newer format.
        ConfigurationError: a bad setting, or psycopg is not installed.
    """

    def __init__(
        self,
        dsn: str,
        *,
        table: str | None = None,
        create: bool = True,
        lock_timeout: float = 10.0,
        pool_size: int = DEFAULT_POOL_SIZE,
        connect_timeout: float = DEFAULT_CONNECT_TIMEOUT,
    ) -> None:
        super().__init__()
        chosen = checked_settings(
            dsn,
            table=table,
            lock_timeout=lock_timeout,
            connect_timeout=connect_timeout,
            pool_size=pool_size,
        )
        conninfo, self._place = chosen.conninfo, chosen.place
        self.table, self.host, self.database = (
            chosen.place.table,
            chosen.place.host,
            chosen.place.database,
        )
        self.lock_timeout, self.connect_timeout = chosen.lock_timeout, chosen.connect_timeout
        self._sql = Statements(sql.Identifier(*self.table.split(".")))
        self._local = threading.local()
        self._decoded = Decoded()
        self._wire = Wire()
        self._pool_size = pool_size
        self._conninfo = conninfo
        self._kwargs = connection_kwargs(libpq_connect_timeout(self.connect_timeout))
        self._opened: ConnectionPool[psycopg.Connection[Any]] | None = None
        self._pool_pid = os.getpid()
        self._fork_lock = threading.Lock()
        # A child's store keeps its parent's pool referenced, never closed (see _pool).
        self._inherited: list[ConnectionPool[psycopg.Connection[Any]]] = []
        with self._errors():
            with psycopg.connect(conninfo, **self._kwargs) as conn:
                prepare_table(conn, self._sql, self._place, create=create)
                # Locks are keyed on the table itself, however its name is spelled.
                self._lock_scope = table_oid(conn, self._sql) or self.table
            self._opened = self._new_pool()

    def _new_pool(self) -> ConnectionPool[psycopg.Connection[Any]]:
        timeout = pool_timeout(self.connect_timeout)
        size, name = self._pool_size, self._place.pool_name
        return open_pool(self._conninfo, self._kwargs, size, timeout=timeout, name=name)

    @property
    def _pool(self) -> ConnectionPool[psycopg.Connection[Any]]:
        """This process's pool: after ``os.fork()``, the child opens its own on first use.

        The parent's connections stay open and untouched in the child: a
        child that used one would interleave its messages with the parent's
        on one socket, and one that closed it would end the parent's session.
        libpq closes a connection only in the process that opened it.
        """
        if self._pool_pid != os.getpid():
            with self._fork_lock:
                if self._pool_pid != os.getpid():
                    if self._opened is not None:
                        self._inherited.append(self._opened)
                    # A transaction the forking thread had open is the parent's,
                    # and a lock another thread held stays held in the child.
                    self._local = threading.local()
                    self._decoded = Decoded()
                    self._opened = self._new_pool()
                    self._pool_pid = os.getpid()
        assert self._opened is not None
        return self._opened

    def __repr__(self) -> str:
        return (
            f"PostgresStore(host={self.host!r}, database={self.database!r}, "
            f"table={self.table!r}, lock_timeout={self.lock_timeout!r})"
        )

    # -- connections and errors -----------------------------------------------

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Turn what the server, the connection or the pool raised into the store's errors."""
        try:
            yield
        except psycopg.Error as exc:
            raise translate(exc, self._place, pool_full=self._pool_full()) from None

    def _pool_full(self) -> bool:
        """Whether this process's pool has all its connections open and none free."""
        pool = self._opened if self._pool_pid == os.getpid() else None
        if pool is None:
            return False
        stats = pool.get_stats()
        return bool(stats["pool_size"] >= stats["pool_max"] and stats["pool_available"] == 0)

    def _execute(self, statement: bytes, params: Sequence[object]) -> int:
        """Run a write statement in the thread's write transaction, else in autocommit; rowcount."""
        return self._on_connection(_rowcount, statement, params, again=False)

    def _fetch(self, statement: bytes, params: Sequence[object]) -> list[Any]:
        """The rows a read returns: in the thread's write transaction, else in autocommit."""
        return self._on_connection(_rows, statement, params, again=True)

    def _wired(
        self, statement: WireStatement, params: Sequence[bytes | None], *, again: bool = True
    ) -> PGresult:
        """The result of one of the statements sent through libpq (``_pgwire``).

        ``again`` as for ``_on_connection``: false for a write.
        """
        return self._on_connection(self._wire.run, statement, params, again=again)

    def _on_connection(
        self,
        work: Callable[[psycopg.Connection[Any], _S, _P], _T],
        statement: _S,
        params: _P,
        *,
        again: bool,
    ) -> _T:
        """``work(conn, statement, params)`` in the thread's write transaction, else in autocommit.

        A pooled connection that the server dropped while it sat idle (the
        server restarted) fails its first use. With ``again`` (a read, which
        changed nothing) the work runs once more, on a connection the pool
        has checked.
        """
        self._check_open()
        tx: Transaction | None = getattr(self._local, "tx", None)
        # Plain try blocks rather than context managers: a read is a few
        # tens of microseconds, and each context manager costs one or two.
        try:
            if tx is not None:
                return work(tx.conn, statement, params)
            pool = self._pool
            for attempt in (1, 2):
                conn = pool.getconn()
                try:
                    return work(conn, statement, params)
                except psycopg.OperationalError:
                    if not again or attempt == 2 or not (conn.broken or conn.closed):
                        raise
                finally:
                    pool.putconn(conn)
                pool.check()
        except psycopg.Error as exc:
            raise translate(exc, self._place, pool_full=self._pool_full()) from None
        raise AssertionError("unreachable")  # pragma: no cover

    def _begin(
        self,
        keys: Sequence[int],
        timeout: float | None,
        brief_id: str,
        *,
        highest: bool = False,
        then: Callable[[psycopg.Connection[Any]], bytes] | None = None,
    ) -> Transaction:
        """A pooled connection in a new transaction holding the advisory locks ``keys``.

        With ``highest``, the brief's highest version is read with the locks.
        ``then(conn)``, statements without parameters, runs after the locks in
        the same round trip; its results are the transaction's ``read_ahead``.

        A connection that the server dropped while it waited in the pool is
        replaced once, since nothing has been sent on it that matters.
        """
        for attempt in (1, 2):
            with self._errors():
                conn = self._pool.getconn()
            # Everything after getconn is inside the try, so that whatever
            # arrives (an error, KeyboardInterrupt) gives the connection back.
            try:
                after = self._take_locks(conn, keys, timeout, brief_id, highest=highest, then=then)
                tx = Transaction(conn, set(keys))
                if highest and after and after[0].ntuples:
                    tx.highest = brief_id, int(after[0].get_value(0, 0) or 0)
                if then is not None:
                    tx.read_ahead = after
                return tx
            except psycopg.OperationalError as exc:
                broken = conn.broken or conn.closed
                self._end(conn, commit=False)
                if broken and attempt == 1 and not isinstance(exc, psycopg.errors.LockNotAvailable):
                    with self._errors():
                        self._pool.check()
                    continue
                with self._errors():
                    raise
            except BaseException as exc:
                self._end(conn, commit=False)
                if isinstance(exc, psycopg.Error):
                    with self._errors():
                        raise  # the table gone, a permission refused: as any statement's
                raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _take_locks(
        self,
        conn: psycopg.Connection[Any],
        keys: Sequence[int],
        timeout: float | None,
        brief_id: str,
        *,
        highest: bool | None = None,
        then: Callable[[psycopg.Connection[Any]], bytes] | None = None,
    ) -> list[PGresult]:
        """``take_locks`` with the store's wait, unless ``timeout`` overrides it."""
        wait = self.lock_timeout if timeout is None else timeout
        after = take_locks(
            conn,
            self._wire,
            self._sql,
            keys,
            wait=wait,
            brief_id=brief_id,
            highest=highest,
            then=then,
        )
        if after is False:
            name = f"brief {brief_id!r} (advisory lock on table {self.table})"
            raise LockTimeoutError(name, wait) from None
        return after

    def _end(self, conn: psycopg.Connection[Any], *, commit: bool) -> None:
        """Commit (raising if that fails) or roll back, and give the connection back."""
        try:
            if commit:
                # An idle connection has no transaction left: it was
                # committed with its write. A closed one raises here.
                if conn.closed or conn.pgconn.transaction_status != _IDLE:
                    with self._errors():
                        self._wire.commit(conn)
            elif not conn.closed and conn.pgconn.transaction_status != _IDLE:
                # A connection that is gone took its transaction with it.
                with contextlib.suppress(psycopg.OperationalError, psycopg.InterfaceError):
                    conn.execute("ROLLBACK")
        finally:
            self._pool.putconn(conn)

    def _lock_key(self, brief_id: str) -> int:
        digest = hashlib.blake2b(
            f"{self._lock_scope}\0{brief_id.lower()}".encode(), digest_size=8
        ).digest()
        return int.from_bytes(digest, "big", signed=True)

    # -- the primitives -------------------------------------------------------

    @contextmanager
    def _locked_highest(self, brief_id: str) -> Iterator[int]:
        with self._locked(brief_id, highest=True):
            tx: Transaction = self._local.tx
            found, tx.highest = tx.highest, None
            # A transaction begun here ends with the block's write: the
            # commit goes with it, in the same round trip.
            tx.commit_with_write = found is not None
            yield found[1] if found and found[0] == brief_id else self._highest_version(brief_id)

    def _locked(
        self, brief_id: str, timeout: float | None = None, *, highest: bool = False
    ) -> AbstractContextManager[None]:
        tx: Transaction | None = getattr(self._local, "tx", None)
        if tx is not None and tx.key_of.get(brief_id) in tx.keys:
            return _HELD  # an import's batch holds it: once per document, kept cheap
        return self._locking(brief_id, timeout, highest=highest)

    @contextmanager
    def _locking(self, brief_id: str, timeout: float | None, *, highest: bool) -> Iterator[None]:
        tx: Transaction | None = getattr(self._local, "tx", None)
        key = tx.key_of.get(brief_id) if tx is not None else None
        if key is None:
            key = self._lock_key(brief_id)
        if tx is not None:
            if key not in tx.keys:
                with self._errors():
                    self._take_locks(tx.conn, [key], timeout, brief_id)
                tx.keys.add(key)
            yield
            return
        tx = self._begin([key], timeout, brief_id, highest=highest)
        commit = False
        try:
            self._local.tx = tx
            yield
            commit = True
        finally:
            self._local.tx = None
            self._end(tx.conn, commit=commit)

    def _load(self, brief_id: str, version: int) -> tuple[StrategyDocument, bytes] | None:
        tx: Transaction | None = getattr(self._local, "tx", None)
        if tx is not None and (brief_id, version) in tx.rows:
            data = tx.rows[(brief_id, version)]
        else:
            found = self._wired(self._sql.wire_load, (brief_id.encode(), b"%d" % version))
            data = found.get_value(0, 0) if found.ntuples else None
        if data is None:
            return None
        return self._decode(brief_id, version, data), data

    def _decode(self, brief_id: str, version: int, data: bytes) -> StrategyDocument:
        return self._decoded.decode(self.table, brief_id, version, data)

    def _snapshot(self, brief_id: str) -> tuple[list[int], Loader]:
        rows = self._fetch(self._sql.snapshot, (brief_id,))
        stored = {version: data.encode() for version, data in rows}

        def load(version: int) -> StrategyDocument | None:
            data = stored.get(version)
            return None if data is None else self._decode(brief_id, version, data)

        return [version for version, _ in rows], load

    def _versions(self, brief_id: str) -> list[int]:
        return [row[0] for row in self._fetch(self._sql.versions, (brief_id,))]

    def _highest_version(self, brief_id: str) -> int:
        found = self._wired(self._sql.wire_highest, (brief_id.encode(),))
        return int(found.get_value(0, 0) or 0)

    def _briefs(self) -> list[str]:
        briefs = [str(row[0]) for row in self._fetch(self._sql.briefs, ())]
        for brief in briefs:
            # Only a row written by hand, past the store, holds such an id.
            problem = brief_id_problem(brief)
            if problem is not None:
                version = min(self._versions(brief), default=0)
                raise CorruptDocumentError(
                    f"table {self.table}, row (brief_id={brief!r}, version={version})",
                    f"its brief id is invalid ({problem}); fix or delete the row",
                )
        return briefs

    def _stamp(self, brief_id: str, version: int) -> tuple[str, str] | None:
        rows = self._fetch(self._sql.stamp, (brief_id, version))
        return (rows[0][0], rows[0][1]) if rows else None

    def _write(self, doc: StrategyDocument, data: bytes, *, exclusive: bool) -> bool:
        statement = self._sql.wire_insert if exclusive else self._sql.wire_upsert
        tx: Transaction | None = getattr(self._local, "tx", None)
        if tx is not None and tx.commit_with_write and exclusive and PIPELINE:
            tx.commit_with_write = False
            result = self._on_connection(
                self._wire.run_and_commit, statement, wire_row(doc, data), again=False
            )
            return result.command_tuples == 1
        written = self._wired(statement, wire_row(doc, data), again=False).command_tuples == 1
        if written and tx is not None:
            tx.rows.pop(doc.key, None)
        return written

    def _remove(self, brief_id: str, version: int) -> None:
        self._execute(self._sql.remove, (brief_id, version))
        tx: Transaction | None = getattr(self._local, "tx", None)
        if tx is not None:
            tx.rows.pop((brief_id, version), None)

    def _case_variant(self, brief_id: str) -> str | None:
        folded = brief_id.lower()
        tx: Transaction | None = getattr(self._local, "tx", None)
        if tx is not None and tx.ids_by_fold is not None and folded in tx.ids_by_fold:
            return next((b for b in sorted(tx.ids_by_fold[folded]) if b != brief_id), None)
        rows = self._fetch(self._sql.case_variant, (folded, brief_id))
        return str(rows[0][0]) if rows else None

    def import_documents(
        self,
        docs: Iterable[StrategyDocument],
        *,
        upsert: bool = False,
        on_result: OnResult | None = None,
    ) -> ImportSummary:
        """Store many documents as ``BaseStore.import_documents`` does, a batch per transaction.

        ``on_result`` hears of a batch's documents once the batch has
        committed, so a callback that writes to the store writes in a
        transaction of its own, after the batch, and a result is never
        reported for a write that did not commit.

        Args:
            docs: the documents, consumed one at a time.
            upsert: replace differing drafts instead of refusing them.
            on_result: called with each document's outcome, after its batch commits.

        Returns:
            How many documents were written, skipped and refused.
        """
        if on_result is None:
            return super().import_documents(docs, upsert=upsert)
        results = Results(on_result)
        self._local.results = results
        try:
            return super().import_documents(docs, upsert=upsert, on_result=results.hold)
        finally:
            self._local.results = None

    def _bulk_writer(self) -> BulkWriter:
        results: Results | None = getattr(self._local, "results", None)
        self._local.results = None
        return BatchWriter(self, self, results)

    def _close(self) -> None:
        # A child's store closes only the pool it opened itself.
        if self._opened is not None and self._pool_pid == os.getpid():
            self._opened.close()


def _rows(conn: psycopg.Connection[Any], statement: bytes, params: Sequence[object]) -> list[Any]:
    return conn.execute(statement, params).fetchall()


def _rowcount(conn: psycopg.Connection[Any], statement: bytes, params: Sequence[object]) -> int:
    return conn.execute(statement, params).rowcount
