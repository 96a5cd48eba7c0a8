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
import math
import os
import re
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from strategystore._dsn import split_table
from strategystore._layout import DocumentFileError, decode_document_file, misplacement
from strategystore._locks import check_timeout
from strategystore._pgsql import Decoded, Statements, row_of
from strategystore._primitives import BulkWriter, Loader
from strategystore.errors import (
    ConfigurationError,
    CorruptDocumentError,
    LockTimeoutError,
    StoreFormatError,
    StoreUnavailableError,
)
from strategystore.models import StrategyDocument
from strategystore.store import BaseStore

try:
    import psycopg
    from psycopg import sql
    from psycopg_pool import ConnectionPool
except ImportError as exc:  # pragma: no cover - the extra is installed for the tests
    raise ImportError(
        "PostgresStore needs psycopg 3 and psycopg_pool: pip install 'strategystore[postgres]'"
    ) from exc

__all__ = ["DEFAULT_TABLE", "FORMAT", "PostgresStore"]

#: The table a store uses when told no other.
DEFAULT_TABLE = "strategy_document"
#: The table's layout, recorded in its comment; a newer one is refused.
FORMAT = 1
#: The table comment that records the format.
_COMMENT = "strategystore format {}"
_COMMENT_PATTERN = re.compile(r"strategystore format (\d+)")
#: A table name: an identifier, optionally qualified by a schema.
_TABLE_NAME = re.compile(r"(?:[A-Za-z_][A-Za-z0-9_]{0,62}\.)?[A-Za-z_][A-Za-z0-9_]{0,62}")
#: The connections a store keeps, at most, in each process.
DEFAULT_POOL_SIZE = 4
#: Seconds to wait for a connection before the server counts as unavailable.
DEFAULT_CONNECT_TIMEOUT = 10.0
#: The lock that serialises creating the table, whichever store gets there first.
_CREATE_LOCK = 0x5354524154454759  # "STRATEGY"


@dataclass
class _Transaction:
    """A write transaction of one thread: its connection and the brief locks it holds.

    ``rows`` and ``ids_by_fold`` are what an import read ahead for its batch,
    under the batch's locks: stored bytes by key (``None`` for absent), and
    the stored ids of each case-folded brief.
    """

    conn: psycopg.Connection[Any]
    keys: set[int] = field(default_factory=set)
    rows: dict[tuple[str, int], bytes | None] = field(default_factory=dict)
    ids_by_fold: dict[str, set[str]] | None = None


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
            the server (``0`` tries once).
        pool_size: connections this store keeps open at most, per process.
        connect_timeout: seconds to wait for a connection before raising
            ``StoreUnavailableError``.

    Raises:
        StoreUnavailableError: the server cannot be reached.
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
        conninfo, named = split_table(dsn)
        if table is not None and named is not None and table != named:
            raise ConfigurationError(f"the URL names table {named!r} but table={table!r}")
        # An empty name is a bad name, not a request for the default.
        self.table = table if table is not None else named if named is not None else DEFAULT_TABLE
        if not isinstance(self.table, str) or not _TABLE_NAME.fullmatch(self.table):
            raise ConfigurationError(
                f"table must be an identifier, optionally SCHEMA.NAME, not {self.table!r}"
            )
        try:
            self.lock_timeout = check_timeout(lock_timeout)
            self.connect_timeout = check_timeout(connect_timeout)
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from exc
        if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
            raise ConfigurationError(f"pool_size must be a whole number >= 1, not {pool_size!r}")
        try:
            params = psycopg.conninfo.conninfo_to_dict(conninfo)
        except psycopg.ProgrammingError as exc:
            raise ConfigurationError(f"not a PostgreSQL DSN: {exc}") from None
        self.host = _host_of(params)
        self.database = str(
            params.get("dbname") or os.environ.get("PGDATABASE") or params.get("user") or "default"
        )
        self._password = str(params.get("password") or os.environ.get("PGPASSWORD") or "")
        self._sql = Statements(sql.Identifier(*self.table.split(".")))
        self._local = threading.local()
        self._decoded = Decoded()
        self._pool_size = pool_size
        kwargs: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": max(2, math.ceil(self.connect_timeout)),
            "application_name": "strategystore",
        }
        with self._errors():
            with psycopg.connect(conninfo, **kwargs) as conn:
                self._prepare_table(conn, create=create)
                # Locks are keyed on the table itself, however its name is spelled.
                row = conn.execute(
                    "SELECT to_regclass(%s)::oid::text", (self._sql.table.as_string(conn),)
                ).fetchone()
                self._lock_scope = str(row[0]) if row else self.table
            self._pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
                conninfo,
                min_size=1,
                max_size=pool_size,
                kwargs=kwargs,
                timeout=self.connect_timeout,
                # The pool retries a failed connection in the background with a
                # backoff that doubles up to this many seconds: after an outage
                # of a minute, a server that came back would be out of reach
                # for another. Giving up at once lets the next call that needs
                # a connection try again, then and there.
                reconnect_timeout=0,
                name=f"strategystore {self.table}",
                open=False,
            )
            self._pool.open(wait=False)

    def __repr__(self) -> str:
        return (
            f"PostgresStore(host={self.host!r}, database={self.database!r}, "
            f"table={self.table!r}, lock_timeout={self.lock_timeout!r})"
        )

    # -- the table -----------------------------------------------------------

    def _prepare_table(self, conn: psycopg.Connection[Any], *, create: bool) -> None:
        found = self._table_format(conn)
        if found is None and create:
            try:
                with conn.transaction():
                    conn.execute("SELECT pg_advisory_xact_lock(%s)", (_CREATE_LOCK,))
                    if self._table_format(conn) is None:
                        for statement in self._sql.create(_COMMENT.format(FORMAT)):
                            conn.execute(statement)
            except psycopg.errors.InvalidSchemaName:
                schema = self.table.partition(".")[0]
                raise StoreFormatError(
                    f"cannot create table {self.table!r}: schema {schema!r} does not exist in "
                    f"database {self.database!r} on {self.host}; create the schema first, "
                    "or name another table"
                ) from None
            found = self._table_format(conn)
        if found is None:
            raise StoreFormatError(
                f"table {self.table!r} does not exist in database {self.database!r} on "
                f"{self.host}; create it with create=True (on the command line: init)"
            )
        match = _COMMENT_PATTERN.fullmatch(found)
        if match is None:
            raise StoreFormatError(
                f"table {self.table!r} in database {self.database!r} is not a strategystore "
                "table (its comment records no strategystore format); name another table"
            )
        version = int(match.group(1))
        if version > FORMAT:
            raise StoreFormatError(
                f"table {self.table!r} in database {self.database!r} is of format {version}, "
                f"newer than this strategystore reads ({FORMAT}); upgrade strategystore"
            )

    def _table_format(self, conn: psycopg.Connection[Any]) -> str | None:
        """The table's comment (``""`` if none), or ``None`` when the table does not exist."""
        row = conn.execute(
            "SELECT coalesce(obj_description(c.oid, 'pg_class'), '') FROM pg_class c "
            "WHERE c.oid = to_regclass(%s)",
            # Quoted as the statements quote it, so that a name with capitals
            # is looked up as the table of that name, not folded to lower case.
            (self._sql.table.as_string(conn),),
        ).fetchone()
        return None if row is None else str(row[0])

    # -- connections and errors -----------------------------------------------

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """Turn what the server or the connection raised into the store's errors."""
        try:
            yield
        except psycopg.errors.UndefinedTable as exc:
            raise StoreFormatError(
                f"table {self.table!r} is gone from database {self.database!r} on {self.host}: "
                f"{_first_line(exc)}"
            ) from None
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            raise self._unavailable(exc) from None

    def _unavailable(self, exc: BaseException) -> StoreUnavailableError:
        reason = _first_line(exc) or type(exc).__name__
        if self._password_of_dsn():
            reason = reason.replace(self._password_of_dsn(), "***")
        return StoreUnavailableError(self.host, self.database, reason)

    def _password_of_dsn(self) -> str:
        return getattr(self, "_password", "")

    @contextmanager
    def _connection(self) -> Iterator[psycopg.Connection[Any]]:
        """The thread's write transaction's connection, else a pooled one in autocommit."""
        self._check_open()
        tx: _Transaction | None = getattr(self._local, "tx", None)
        with self._errors():
            if tx is not None:
                yield tx.conn
            else:
                with self._pool.connection() as conn:
                    yield conn

    def _fetch(self, statement: bytes, params: Sequence[object]) -> list[Any]:
        """The rows a read returns: in the thread's write transaction, else in autocommit.

        A pooled connection that the server dropped while it sat idle (the
        server restarted) fails its first use. A read changed nothing, so it
        runs once more, on a connection the pool has checked.
        """
        self._check_open()
        tx: _Transaction | None = getattr(self._local, "tx", None)
        with self._errors():
            if tx is not None:
                return list(tx.conn.execute(statement, params).fetchall())
            for attempt in (1, 2):
                with self._pool.connection() as conn:
                    try:
                        return list(conn.execute(statement, params).fetchall())
                    except psycopg.OperationalError:
                        if attempt == 2 or not conn.broken:
                            raise
                self._pool.check()
        raise AssertionError("unreachable")  # pragma: no cover

    def _begin(self, keys: Sequence[int], timeout: float | None, brief_id: str) -> _Transaction:
        """A pooled connection in a new transaction holding the advisory locks ``keys``.

        A connection that the server dropped while it waited in the pool is
        replaced once, since nothing has been sent on it that matters.
        """
        for attempt in (1, 2):
            with self._errors():
                conn = self._pool.getconn()
            try:
                self._take_locks(conn, keys, timeout, brief_id, begin=True)
            except psycopg.OperationalError as exc:
                broken = conn.broken or conn.closed
                self._end(conn, commit=False)
                if broken and attempt == 1 and not isinstance(exc, psycopg.errors.LockNotAvailable):
                    with self._errors():
                        self._pool.check()
                    continue
                with self._errors():
                    raise
            except BaseException:
                self._end(conn, commit=False)
                raise
            return _Transaction(conn, set(keys))
        raise AssertionError("unreachable")  # pragma: no cover

    def _take_locks(
        self,
        conn: psycopg.Connection[Any],
        keys: Sequence[int],
        timeout: float | None,
        brief_id: str,
        *,
        begin: bool = False,
    ) -> None:
        """Take the advisory locks ``keys`` (in ascending order) within the transaction.

        With ``begin``, the transaction is begun first, in the same round trip.
        """
        wait = self.lock_timeout if timeout is None else timeout
        ordered = sorted(keys)
        try:
            # A pipeline sends BEGIN and the lock together; its end waits for
            # both and raises what either raised.
            with conn.pipeline() if begin else contextlib.nullcontext():
                if begin:
                    conn.execute("BEGIN")
                if wait == 0:
                    found = conn.execute(self._sql.try_lock, (ordered,))
                elif len(ordered) == 1:
                    conn.execute(self._sql.lock_one, (f"{max(1, round(wait * 1000))}ms", *ordered))
                else:
                    conn.execute(self._sql.lock, (f"{max(1, round(wait * 1000))}ms", ordered))
            if wait == 0:
                row = found.fetchone()
                if row is None or not row[0]:
                    raise LockTimeoutError(self._lock_name(brief_id), wait)
        except psycopg.errors.LockNotAvailable:
            raise LockTimeoutError(self._lock_name(brief_id), wait) from None

    def _lock_name(self, brief_id: str) -> str:
        return f"brief {brief_id!r} (advisory lock on table {self.table})"

    def _end(self, conn: psycopg.Connection[Any], *, commit: bool) -> None:
        """Commit (raising if that fails) or roll back, and give the connection back."""
        try:
            if commit:
                with self._errors():
                    conn.execute("COMMIT")
            elif not conn.closed:
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
    def _locked(self, brief_id: str, timeout: float | None = None) -> Iterator[None]:
        key = self._lock_key(brief_id)
        tx: _Transaction | None = getattr(self._local, "tx", None)
        if tx is not None:
            if key not in tx.keys:
                with self._errors():
                    self._take_locks(tx.conn, [key], timeout, brief_id)
                tx.keys.add(key)
            yield
            return
        tx = self._begin([key], timeout, brief_id)
        self._local.tx = tx
        try:
            yield
        except BaseException:
            self._local.tx = None
            self._end(tx.conn, commit=False)
            raise
        self._local.tx = None
        self._end(tx.conn, commit=True)

    def _load(self, brief_id: str, version: int) -> tuple[StrategyDocument, bytes] | None:
        tx: _Transaction | None = getattr(self._local, "tx", None)
        if tx is not None and (brief_id, version) in tx.rows:
            data = tx.rows[(brief_id, version)]
        else:
            rows = self._fetch(self._sql.load, (brief_id, version))
            data = rows[0][0].encode() if rows else None
        if data is None:
            return None
        return self._decode(brief_id, version, data), data

    def _decode(self, brief_id: str, version: int, data: bytes) -> StrategyDocument:
        known = self._decoded.get(brief_id, version, data)
        if known is not None:
            return known
        where = f"table {self.table}, row (brief_id={brief_id!r}, version={version})"
        try:
            doc = decode_document_file(data)
        except DocumentFileError as exc:
            raise CorruptDocumentError(where, exc.reason) from exc
        misplaced = misplacement(doc, brief_id, version)
        if misplaced is not None:
            raise CorruptDocumentError(where, misplaced)
        self._decoded.remember(brief_id, version, data, doc)
        return doc

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
        return int(self._fetch(self._sql.highest, (brief_id,))[0][0])

    def _briefs(self) -> list[str]:
        return [row[0] for row in self._fetch(self._sql.briefs, ())]

    def _stamp(self, brief_id: str, version: int) -> tuple[str, str] | None:
        rows = self._fetch(self._sql.stamp, (brief_id, version))
        return (rows[0][0], rows[0][1]) if rows else None

    def _write(self, doc: StrategyDocument, data: bytes, *, exclusive: bool) -> bool:
        statement = self._sql.insert if exclusive else self._sql.upsert
        with self._connection() as conn:
            written = conn.execute(statement, row_of(doc, data)).rowcount == 1
        tx: _Transaction | None = getattr(self._local, "tx", None)
        if written and tx is not None:
            tx.rows.pop(doc.key, None)
        return written

    def _remove(self, brief_id: str, version: int) -> None:
        with self._connection() as conn:
            conn.execute(self._sql.remove, (brief_id, version))
        tx: _Transaction | None = getattr(self._local, "tx", None)
        if tx is not None:
            tx.rows.pop((brief_id, version), None)

    def _case_variant(self, brief_id: str) -> str | None:
        folded = brief_id.lower()
        tx: _Transaction | None = getattr(self._local, "tx", None)
        if tx is not None and tx.ids_by_fold is not None and folded in tx.ids_by_fold:
            return next((b for b in sorted(tx.ids_by_fold[folded]) if b != brief_id), None)
        rows = self._fetch(self._sql.case_variant, (folded, brief_id))
        return str(rows[0][0]) if rows else None

    def _bulk_writer(self) -> BulkWriter:
        return _BatchWriter(self)

    def _close(self) -> None:
        self._pool.close()


class _BatchWriter(BulkWriter):
    """One transaction per import batch: its briefs locked, its rows read and written at once."""

    def __init__(self, store: PostgresStore) -> None:
        super().__init__(store)
        self._owner = store
        self._tx: _Transaction | None = None
        self._pending: dict[tuple[str, int], tuple[StrategyDocument, bytes]] = {}

    def prepare(self, items: Sequence[tuple[StrategyDocument, bytes]]) -> None:
        store = self._owner
        if not items or getattr(store._local, "tx", None) is not None:
            return  # inside a caller's own write: its transaction serves
        first = items[0][0].brief_id
        keys = sorted({store._lock_key(doc.brief_id) for doc, _ in items})
        tx = store._begin(keys, None, first)
        store._local.tx = tx
        self._tx = tx
        try:
            with store._errors():
                found = tx.conn.execute(
                    store._sql.batch_rows,
                    ([doc.brief_id for doc, _ in items], [doc.version for doc, _ in items]),
                ).fetchall()
                folds = sorted({doc.brief_id.lower() for doc, _ in items})
                ids = tx.conn.execute(store._sql.batch_ids, (folds,)).fetchall()
        except BaseException:
            self._abandon()
            raise
        tx.rows = {doc.key: None for doc, _ in items}
        tx.rows.update({(brief, version): data.encode() for brief, version, data in found})
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
        if tx is None:
            return
        store = self._owner
        pending, self._pending = list(self._pending.values()), {}
        store._local.tx = None
        try:
            if pending:
                with store._errors():
                    rows = [row_of(doc, data) for doc, data in pending]
                    columns = [list(column) for column in zip(*rows, strict=True)]
                    tx.conn.execute(store._sql.upsert_many, columns)
        except BaseException:
            store._end(tx.conn, commit=False)
            raise
        store._end(tx.conn, commit=True)

    def _abandon(self) -> None:
        tx, self._tx = self._tx, None
        self._pending = {}
        store = self._owner
        store._local.tx = None
        if tx is not None:
            store._end(tx.conn, commit=False)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def _host_of(params: Mapping[str, Any]) -> str:
    host = str(params.get("host") or os.environ.get("PGHOST") or "")
    port = str(params.get("port") or os.environ.get("PGPORT") or "")
    if not host:
        host = "the local socket"
    elif host.startswith("/"):
        host = f"socket directory {host}"
    return f"{host} port {port}" if port else host
