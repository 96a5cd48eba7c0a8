"""The store's most frequent statements, sent through libpq directly (``psycopg.pq``).

A read by key, or one step of a write, costs a few tens of microseconds of
Python in psycopg's cursor (adapting each parameter, a generator per round
trip, a row object per row) on top of what libpq does. These statements
have fixed shapes and only text parameters, so each is prepared once per
connection and run with ``PQexecPrepared``; parameters go as the bytes
they already are, and results are read as bytes. The text is UTF-8: the
store's connections set ``client_encoding``.

Nothing here can wait long. ``PQexecPrepared`` blocks until the server
answers (without holding the GIL), and a Ctrl-C is handled when it
returns; statements that can wait for a lock (the advisory locks) go
through psycopg, whose wait loop a Ctrl-C interrupts.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import pq, sql
from psycopg.abc import PQGen
from psycopg.generators import execute, fetch, send
from psycopg_pool import ConnectionPool

from strategystore.models import StrategyDocument

__all__ = [
    "CLIENT_ENCODING",
    "PIPELINE",
    "Step",
    "Wire",
    "WireStatement",
    "connection_kwargs",
    "open_pool",
    "run_simple",
    "wire_row",
    "wire_statement",
]

#: The encoding of every parameter and result: the store's connections ask for it.
CLIENT_ENCODING = "utf8"

_OK = (pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK)

Param = bytes | None
#: One statement of a pipeline: a prepared one with its parameters, or text without any.
Step = tuple["WireStatement", Sequence[Param]] | bytes

#: Whether libpq can send several statements before their answers (libpq 14 and later).
PIPELINE = psycopg.Pipeline.is_supported()


def connection_kwargs(connect_timeout: int) -> dict[str, Any]:
    """What the store's connections are opened with (``connect_timeout`` as libpq reads it)."""
    return {
        "autocommit": True,
        "connect_timeout": connect_timeout,
        "application_name": "strategystore",
        "client_encoding": CLIENT_ENCODING,
        # psycopg's own prepared statements stay off: on a ROLLBACK or a DROP
        # it deallocates every statement of the connection, the store's own
        # (``Wire``) with them.
        "prepare_threshold": None,
    }


def open_pool(
    conninfo: str, kwargs: dict[str, Any], size: int, *, timeout: float, name: str
) -> ConnectionPool[psycopg.Connection[Any]]:
    """A pool of at most ``size`` connections opened with ``kwargs``, opening in the background."""
    pool: ConnectionPool[psycopg.Connection[Any]] = ConnectionPool(
        conninfo,
        min_size=1,
        max_size=size,
        kwargs=kwargs,
        timeout=timeout,
        # The pool retries a failed connection in the background with a
        # backoff that doubles up to this many seconds: after an outage
        # of a minute, a server that came back would be out of reach
        # for another. Giving up at once lets the next call that needs
        # a connection try again, then and there.
        reconnect_timeout=0,
        name=name,
        open=False,
    )
    pool.open(wait=False)
    return pool


class WireStatement:
    """One statement, its text with ``$1``, ``$2``… placeholders, and its prepared name."""

    __slots__ = ("name", "text")

    def __init__(self, name: bytes, text: bytes) -> None:
        self.name = name
        self.text = text

    def __repr__(self) -> str:
        return f"WireStatement({self.name.decode()!r}, {self.text.decode()!r})"


class Wire:
    """Runs ``WireStatement`` objects on connections, preparing each once per connection."""

    def __init__(self) -> None:
        # The names prepared on each connection, forgotten with the connection.
        self._prepared: weakref.WeakKeyDictionary[psycopg.Connection[Any], set[bytes]] = (
            weakref.WeakKeyDictionary()
        )

    def run(
        self, conn: psycopg.Connection[Any], statement: WireStatement, params: Sequence[Param]
    ) -> pq.abc.PGresult:
        """The result of ``statement`` with ``params`` on ``conn``.

        Raises:
            psycopg.OperationalError: the connection is lost.
            psycopg.Error: the server refused the statement (the class its SQLSTATE names).
        """
        pgconn = conn.pgconn
        names = self._prepared.get(conn)
        if names is None:
            names = self._prepared.setdefault(conn, set())
        if statement.name not in names:
            _prepare(conn, statement, names)
        try:
            # None is SQL NULL, as psycopg itself passes it (its annotation omits it).
            result = pgconn.exec_prepared(statement.name, params)  # type: ignore[arg-type]
            return _checked(conn, result)
        except psycopg.errors.InvalidSqlStatementName:
            # Something deallocated it (DISCARD ALL, a pooler's reset): every
            # name is prepared again. Outside a transaction nothing was done,
            # so the statement runs again at once; inside one, the failure
            # ended the transaction, and the caller hears of it.
            names.clear()
            if pgconn.transaction_status != pq.TransactionStatus.IDLE:
                raise
        _prepare(conn, statement, names)
        result = pgconn.exec_prepared(statement.name, params)  # type: ignore[arg-type]
        return _checked(conn, result)

    def pipeline(
        self, conn: psycopg.Connection[Any], steps: Sequence[Step], *, restartable: bool = False
    ) -> list[pq.abc.PGresult]:
        """The result of each of ``steps``, sent together and answered in one round trip.

        The steps run in order, each with a snapshot of its own; after one
        that fails the server skips the rest, and the first failure raises.
        It waits in psycopg's loop, as ``run_simple`` does, so a Ctrl-C while
        the server waits (for a lock) cancels the statement. ``restartable``
        steps begin a transaction on an idle connection: when a prepared
        statement turns out to be gone (a pooler's ``DEALLOCATE ALL``),
        nothing was done, and they are rolled back and sent again at once.

        Raises:
            psycopg.OperationalError: the connection is lost.
            psycopg.Error: the server refused a step (the class its SQLSTATE names).
        """
        names = self._prepared.get(conn)
        if names is None:
            names = self._prepared.setdefault(conn, set())
        for attempt in (1, 2):
            for step in steps:
                if not isinstance(step, bytes) and step[0].name not in names:
                    _prepare(conn, step[0], names)
            results = _pipelined(conn, steps)
            try:
                for result in results:
                    _checked(conn, result)
                return results
            except psycopg.errors.InvalidSqlStatementName:
                names.clear()
                if not restartable or attempt == 2:
                    raise
                _checked(conn, conn.pgconn.exec_(b"ROLLBACK"))
        raise AssertionError("unreachable")  # pragma: no cover

    def run_and_commit(
        self, conn: psycopg.Connection[Any], statement: WireStatement, params: Sequence[Param]
    ) -> pq.abc.PGresult:
        """The result of ``statement`` run with ``params`` as the last of ``conn``'s transaction,
        committed with it in the same round trip.

        Raises:
            psycopg.Error: as ``run`` and ``commit``; a statement that failed
                leaves the transaction open and failed, to be rolled back.
        """
        result, committed = self.pipeline(conn, [(statement, params), b"COMMIT"])
        _committed(committed)
        return result

    def commit(self, conn: psycopg.Connection[Any]) -> None:
        """Commit ``conn``'s transaction.

        Raises:
            psycopg.errors.InFailedSqlTransaction: the server rolled it back
                instead, as it does when a statement in it failed, even one
                whose error was handled; its ``COMMIT`` answers ``ROLLBACK``.
        """
        _committed(_checked(conn, conn.pgconn.exec_(b"COMMIT")))


def _committed(result: pq.abc.PGresult) -> None:
    """Raise unless ``result``, a ``COMMIT``'s, says it committed."""
    if result.command_status != b"COMMIT":
        raise psycopg.errors.InFailedSqlTransaction(
            "the server rolled the transaction back instead of committing it: "
            "a statement in it had failed"
        )


def run_simple(conn: psycopg.Connection[Any], text: bytes) -> list[pq.abc.PGresult]:
    """The results of ``text``, statements without parameters, sent in one message.

    It waits in psycopg's loop, as ``conn.execute`` does, so a Ctrl-C while the
    server waits (for a lock) cancels the statement; but it makes no cursor
    and no rows. The first result that failed raises, as psycopg would.
    """
    conn.pgconn.send_query(text)
    results: list[pq.abc.PGresult] = conn.wait(execute(conn.pgconn))
    for result in results:
        _checked(conn, result)
    return results


def _pipelined(conn: psycopg.Connection[Any], steps: Sequence[Step]) -> list[pq.abc.PGresult]:
    """The results of ``steps`` sent in pipeline mode, one per step, checked by the caller.

    A connection that fails on the way is closed, so that the pool never
    hands it out again.
    """
    pgconn = conn.pgconn
    pgconn.enter_pipeline_mode()
    try:
        for step in steps:
            if isinstance(step, bytes):
                pgconn.send_query_params(step, None)
            else:
                pgconn.send_query_prepared(step[0].name, step[1])
        pgconn.pipeline_sync()
        results = conn.wait(_until_sync(pgconn, len(steps)))
    except BaseException:
        # A Ctrl-C cancels the statement and waits for every answer before
        # it raises: the connection can go on. Cut short otherwise (the
        # connection lost, a second Ctrl-C), the answers still to come would
        # be taken for those of later statements.
        try:
            pgconn.exit_pipeline_mode()
        except psycopg.Error:
            conn.close()
        raise
    pgconn.exit_pipeline_mode()
    return results


def _until_sync(pgconn: pq.abc.PGconn, count: int) -> PQGen[list[pq.abc.PGresult]]:
    """Wait for the answers to ``count`` statements and the pipeline's end; the first of each."""
    yield from send(pgconn)
    results: list[pq.abc.PGresult] = []
    ends = 0
    while True:
        result = yield from fetch(pgconn)
        if result is None:
            # The end of one statement's answers; each has one result and one end.
            ends += 1
            if ends > count or pgconn.status != pq.ConnStatus.OK:
                raise psycopg.OperationalError(
                    pgconn.error_message.decode("utf-8", "replace").strip()
                    or "the connection was lost"
                )
            continue
        if result.status == pq.ExecStatus.PIPELINE_SYNC:
            if len(results) != count:
                raise psycopg.OperationalError("the server's answers did not match the statements")
            return results
        results.append(result)


def _prepare(conn: psycopg.Connection[Any], statement: WireStatement, names: set[bytes]) -> None:
    """Prepare ``statement`` on ``conn``, whose prepared names are ``names``.

    The name is counted before the server answers: a prepare cut short (a
    Ctrl-C) then fails its first run with "does not exist" and is prepared
    again, where counting it after would make every later prepare a
    duplicate. A duplicate outside a transaction is a statement the server
    kept: it is there to run.
    """
    names.add(statement.name)
    try:
        _checked(conn, conn.pgconn.prepare(statement.name, statement.text))
    except psycopg.errors.DuplicatePreparedStatement:
        if conn.pgconn.transaction_status != pq.TransactionStatus.IDLE:
            raise


def wire_statement(name: str, text: str, table: sql.Identifier) -> WireStatement:
    """``text`` with ``{t}`` the quoted table, as a statement prepared under ``name``."""
    composed = sql.SQL(text).format(t=table).as_bytes(None)
    return WireStatement(f"strategystore_{name}".encode(), composed)


def _checked(conn: psycopg.Connection[Any], result: pq.abc.PGresult) -> pq.abc.PGresult:
    """``result`` if it succeeded; otherwise the error psycopg would have raised for it.

    An error the server sent carries an SQLSTATE. One without is libpq's
    own: the connection failed (the server went away, a send or a read
    failed), and libpq may not have marked it bad yet. It is closed here,
    so that the pool never hands it out again.
    """
    if result.status in _OK:
        return result
    if result.error_field(pq.DiagnosticField.SQLSTATE) is None:
        message = (result.error_message or conn.pgconn.error_message).decode("utf-8", "replace")
        conn.close()
        raise psycopg.OperationalError(message.strip() or "the connection was lost")
    raise psycopg.errors.error_from_result(result, encoding="utf-8")


def wire_row(doc: StrategyDocument, data: bytes) -> list[Param]:
    """The parameters of the store's row for ``doc`` stored as ``data``, in ``COLUMNS`` order."""
    reason = doc.status_reason
    updated = doc.updated_at
    digest = doc.content_digest
    # PostgreSQL text holds no NUL character: libpq would cut the value at
    # one. The data keeps NUL as JSON's \u0000; the reason column is a copy
    # for queries and shows U+FFFD.
    if b"\0" in data:
        raise psycopg.DataError("a document's bytes hold a NUL character")
    return [
        doc.brief_id.encode(),
        str(doc.version).encode(),
        doc.status.value.encode(),
        None if reason is None else reason.replace("\0", "\ufffd").encode(),
        doc.created_at.isoformat().encode(),
        None if updated is None else updated.isoformat().encode(),
        None if digest is None else digest.encode(),
        data,
    ]
