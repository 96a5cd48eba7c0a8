"""The SQL of ``PostgresStore``: its statements, the row a document becomes, decoded rows kept.

And an import's results, held until their batch commits.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Sequence
from typing import Any, Literal

import psycopg
from psycopg import sql
from psycopg.pq import Escaping
from psycopg.pq.abc import PGresult

from strategystore._cache import CACHE_BYTES, CACHE_SIZE, copy_document
from strategystore._layout import DocumentFileError, decode_document_file, misplacement
from strategystore._pgerrors import lock_setting
from strategystore._pgwire import PIPELINE, Step, Wire, run_simple, wire_statement
from strategystore._protocol import ImportOutcome, OnResult
from strategystore.errors import CorruptDocumentError, StrategyStoreError
from strategystore.models import StrategyDocument

__all__ = [
    "COLUMNS",
    "Decoded",
    "Results",
    "Statements",
    "batch_reads",
    "row_of",
    "take_locks",
]

COLUMNS = (
    "brief_id",
    "version",
    "status",
    "status_reason",
    "created_at",
    "updated_at",
    "content_digest",
    "data",
)


def row_of(doc: StrategyDocument, data: bytes) -> tuple[object, ...]:
    """The column values of ``doc``, stored as ``data``."""
    # PostgreSQL text holds no NUL character. The data column keeps one as
    # JSON's \u0000; the reason column is a copy for queries and shows U+FFFD.
    reason = None if doc.status_reason is None else doc.status_reason.replace("\0", "\ufffd")
    return (
        doc.brief_id,
        doc.version,
        doc.status.value,
        reason,
        doc.created_at,
        doc.updated_at,
        doc.content_digest,
        data.decode(),
    )


class Decoded:
    """Documents decoded from rows, by key, each with the exact bytes it was decoded from.

    The row is always read; only decoding is saved, and only when the bytes
    read are the very bytes remembered, so removing this changes no answer.
    A hit returns a copy that shares no mutable state with the one kept.
    """

    def __init__(self) -> None:
        self._entries: dict[tuple[str, int], tuple[bytes, StrategyDocument]] = {}
        self._bytes = 0
        self._lock = threading.Lock()

    def get(self, brief_id: str, version: int, data: bytes) -> StrategyDocument | None:
        """A copy of the document decoded from ``data`` at this key, if it is kept."""
        entry = self._entries.get((brief_id, version))
        if entry is None or entry[0] != data:
            return None
        return copy_document(entry[1])

    def decode(self, table: str, brief_id: str, version: int, data: bytes) -> StrategyDocument:
        """The document of ``data``, stored in ``table`` at this key: kept, or decoded and checked.

        Raises:
            CorruptDocumentError: ``data`` is no valid document of this key.
        """
        known = self.get(brief_id, version, data)
        if known is not None:
            return known
        where = f"table {table}, row (brief_id={brief_id!r}, version={version})"
        try:
            doc = decode_document_file(data)
        except DocumentFileError as exc:
            raise CorruptDocumentError(where, exc.reason) from exc
        misplaced = misplacement(doc, brief_id, version)
        if misplaced is not None:
            raise CorruptDocumentError(where, misplaced)
        self.remember(brief_id, version, data, doc)
        return doc

    def remember(self, brief_id: str, version: int, data: bytes, doc: StrategyDocument) -> None:
        """Keep ``doc``, decoded from ``data``, pushing out the oldest entries beyond the bounds."""
        if len(data) > CACHE_BYTES // 8:
            return
        key = (brief_id, version)
        with self._lock:
            entries = self._entries
            old = entries.pop(key, None)
            self._bytes += len(data) - (0 if old is None else len(old[0]))
            while entries and (self._bytes > CACHE_BYTES or len(entries) >= CACHE_SIZE):
                self._bytes -= len(entries.pop(next(iter(entries)))[0])
            entries[key] = (data, copy_document(doc))


class Results:
    """An import's results, held until their batch commits, then told to ``on_result``.

    A callback that runs while its batch's transaction is open would write
    inside it (and a batch that failed to commit would have reported writes
    that never happened); told afterwards, it writes on its own.
    """

    def __init__(self, on_result: OnResult) -> None:
        self._on_result = on_result
        self._held: list[tuple[StrategyDocument, ImportOutcome, StrategyStoreError | None]] = []

    def hold(
        self, doc: StrategyDocument, outcome: ImportOutcome, problem: StrategyStoreError | None
    ) -> None:
        """Keep one document's result until ``report``."""
        self._held.append((doc, outcome, problem))

    def report(self) -> None:
        """Tell ``on_result`` every result held, in order, and forget them."""
        held, self._held = self._held, []
        for doc, outcome, problem in held:
            self._on_result(doc, outcome, problem)

    def drop(self) -> None:
        """Forget the results held: their batch did not commit."""
        self._held = []


def take_locks(
    conn: psycopg.Connection[Any],
    wire: Wire,
    statements: Statements,
    keys: Sequence[int],
    *,
    wait: float,
    brief_id: str,
    highest: bool | None,
    then: Callable[[psycopg.Connection[Any]], bytes] | None = None,
) -> list[PGresult] | Literal[False]:
    """Take the advisory locks ``keys`` (ascending) in ``conn``'s transaction, waiting ``wait`` s.

    Unless ``highest`` is ``None``, the transaction is begun first, in the
    same round trip. If it is true, ``brief_id``'s highest version is read
    after the locks, and ``then(conn)`` (statements without parameters) is
    run after them, in the same round trip too: each a statement of its own,
    so that its snapshot is taken once the locks are held. The result is
    what those statements returned; ``False`` when a lock was not had within
    ``wait`` (at once, when it is 0).
    """
    setting = lock_setting(wait) if wait else None
    try:
        if PIPELINE and len(keys) == 1 and highest is not None and then is None:
            # The common case, one brief: prepared statements, one round trip.
            results = wire.pipeline(
                conn,
                _lock_steps(statements, keys[0], setting, brief_id, highest=highest),
                restartable=True,
            )
        else:
            text = _lock_text(conn, statements, keys, setting, brief_id=brief_id, highest=highest)
            if then is not None:
                text += b"; " + then(conn)
            results = run_simple(conn, text)
    except psycopg.errors.LockNotAvailable:
        return False
    taken = results[0 if highest is None else 1]
    if wait == 0 and (taken.ntuples != 1 or taken.get_value(0, 0) != b"t"):
        return False
    return results[1 if highest is None else 2 :]


def _lock_steps(
    statements: Statements, key: int, setting: str | None, brief_id: str, *, highest: bool
) -> list[Step]:
    """BEGIN, the lock of ``key`` and, with ``highest``, the brief's highest version."""
    lock: Step = (
        (statements.wire_try_lock, [b"%d" % key])
        if setting is None
        else (statements.wire_lock, [setting.encode(), b"%d" % key])
    )
    steps: list[Step] = [b"BEGIN", lock]
    if highest:
        steps.append((statements.wire_highest, [brief_id.encode()]))
    return steps


def _lock_text(
    conn: psycopg.Connection[Any],
    statements: Statements,
    keys: Sequence[int],
    setting: str | None,
    *,
    brief_id: str,
    highest: bool | None,
) -> bytes:
    """The locks as one text of statements without parameters (``lock_statement``)."""
    # libpq quotes the id as the connection's server expects.
    then = highest and statements.highest_of + Escaping(conn.pgconn).escape_literal(
        brief_id.encode()
    )
    return lock_statement(keys, setting, begin=highest is not None, then=then or None)


def batch_reads(
    conn: psycopg.Connection[Any],
    statements: Statements,
    docs: Sequence[StrategyDocument],
    folds: Sequence[str],
) -> bytes:
    """Two queries in one statement: the rows stored at the keys of ``docs``, then the ids
    stored under each of ``folds`` (case-folded ids), in any case.

    The keys go as array literals, quoted by libpq, rather than parameters:
    without parameters, libpq sends both queries in one message and one round
    trip, and the server plans each without a generic plan's guesses.
    """
    escape = Escaping(conn.pgconn).escape_literal
    briefs = _text_array([doc.brief_id for doc in docs])
    versions = ("{" + ",".join(str(int(doc.version)) for doc in docs) + "}").encode()
    return b"".join(
        [
            b"SELECT k.b, k.v, t.data FROM unnest(",
            escape(briefs),
            b"::text[], ",
            escape(versions),
            statements.batch_rows_tail,
            escape(_text_array(folds)),
            b"::text[])",
        ]
    )


def _text_array(values: Sequence[str]) -> bytes:
    """The text of an array literal of ``values``, each quoted (so that ``null`` is no NULL)."""
    quoted = ('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    return ("{" + ",".join(quoted) + "}").encode()


def lock_statement(
    keys: Sequence[int], setting: str | None, *, begin: bool, then: bytes | None = None
) -> bytes:
    """One statement that takes the advisory locks ``keys`` (ascending), optionally after BEGIN.

    ``setting`` is the transaction's ``lock_timeout`` (see ``lock_setting``),
    or ``None`` to try each lock once: the statement then returns one row,
    true when every lock was had. The keys are the store's own integers and
    the setting its own digits, so the text is built here, without
    parameters: libpq then sends BEGIN and the lock in one message and one
    round trip. ``then``, a statement without parameters, runs after the
    locks are held, in the same round trip.
    """
    ordered = ",".join(str(int(key)) for key in sorted(keys))
    if setting is None:
        take = (
            "SELECT bool_and(pg_try_advisory_xact_lock(k)) "
            f"FROM unnest('{{{ordered}}}'::bigint[]) k"
        )
    else:
        if not _SETTING.fullmatch(setting):
            raise ValueError(f"not a lock_timeout setting: {setting!r}")
        take = (
            f"SELECT set_config('lock_timeout', '{setting}', true), pg_advisory_xact_lock(k) "
            f"FROM unnest('{{{ordered}}}'::bigint[]) k"
        )
    statement = f"{'BEGIN; ' if begin else ''}{take}".encode()
    return statement if then is None else statement + b"; " + then


_SETTING = re.compile(r"0|[1-9][0-9]*ms")


class Statements:
    """The store's SQL, composed once for its table."""

    def __init__(self, table: sql.Identifier) -> None:
        def q(text: str) -> bytes:
            # Composed to bytes once: composing quotes the table on every execution.
            return sql.SQL(text).format(t=table).as_bytes(None)

        columns = ", ".join(COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in COLUMNS[2:])
        self.table = table
        self.snapshot = q("SELECT version, data FROM {t} WHERE brief_id = %s ORDER BY version DESC")
        self.versions = q("SELECT version FROM {t} WHERE brief_id = %s")
        self.briefs = q("SELECT DISTINCT brief_id FROM {t}")
        self.stamp = q(
            "SELECT xmin::text, ctid::text FROM {t} WHERE brief_id = %s AND version = %s"
        )
        self.case_variant = q(
            "SELECT brief_id FROM {t} WHERE lower(brief_id) = %s AND brief_id <> %s "
            "ORDER BY brief_id LIMIT 1"
        )
        # The arrays go in binary (%b): as text, every quote of every
        # document would be escaped for the array literal, most of an import's time.
        self.upsert_many = q(
            f"INSERT INTO {{t}} ({columns}) SELECT * FROM unnest("
            "%b::text[], %b::int[], %b::text[], %b::text[], %b::timestamptz[], "
            "%b::timestamptz[], %b::text[], %b::text[]) "
            f"ON CONFLICT (brief_id, version) DO UPDATE SET {updates}"
        )
        self.remove = q("DELETE FROM {t} WHERE brief_id = %s AND version = %s")
        # The statements of every read by key and every write, sent through libpq.
        dollars = ", ".join(f"${i}" for i in range(1, len(COLUMNS) + 1))
        self.wire_load = wire_statement(
            "load", "SELECT data FROM {t} WHERE brief_id = $1 AND version = $2", table
        )
        # Followed by the brief's id as a literal, after the lock (``lock_statement``).
        self.highest_of = q("SELECT coalesce(max(version), 0) FROM {t} WHERE brief_id = ")
        self.wire_highest = wire_statement(
            "highest", "SELECT coalesce(max(version), 0) FROM {t} WHERE brief_id = $1", table
        )
        self.wire_lock = wire_statement(
            "lock",
            "SELECT set_config('lock_timeout', $1, true), pg_advisory_xact_lock($2::bigint)",
            table,
        )
        self.wire_try_lock = wire_statement(
            "try_lock", "SELECT pg_try_advisory_xact_lock($1::bigint)", table
        )
        self.wire_insert = wire_statement(
            "insert",
            f"INSERT INTO {{t}} ({columns}) VALUES ({dollars}) ON CONFLICT DO NOTHING",
            table,
        )
        self.wire_upsert = wire_statement(
            "upsert",
            f"INSERT INTO {{t}} ({columns}) VALUES ({dollars}) "
            f"ON CONFLICT (brief_id, version) DO UPDATE SET {updates}",
            table,
        )
        self.copy_in = q(f"COPY {{t}} ({columns}) FROM STDIN")
        # Completed by ``batch_reads`` with the batch's keys and folded ids, as literals.
        self.batch_rows_tail = q(
            # OFFSET 0 keeps the subquery a lookup by primary key for each key: as a
            # join, a table too new for statistics was hashed whole, row by row.
            "::int[]) AS k(b, v) CROSS JOIN LATERAL (SELECT data FROM {t} "
            "WHERE brief_id = k.b AND version = k.v OFFSET 0) AS t; "
            "SELECT DISTINCT brief_id FROM {t} WHERE lower(brief_id) = ANY("
        )

    def create(self, comment: str) -> list[sql.Composed]:
        """The statements that create the table, its index and its format comment."""

        def q(text: str) -> sql.Composed:
            return sql.SQL(text).format(t=self.table)

        return [
            q(
                "CREATE TABLE {t} ("
                "brief_id text NOT NULL, "
                "version integer NOT NULL CHECK (version >= 1), "
                "status text NOT NULL, "
                "status_reason text, "
                "created_at timestamptz NOT NULL, "
                "updated_at timestamptz, "
                "content_digest text, "
                "data text NOT NULL, "
                "PRIMARY KEY (brief_id, version))"
            ),
            q("CREATE INDEX ON {t} (lower(brief_id))"),
            sql.SQL("COMMENT ON TABLE {t} IS {c}").format(t=self.table, c=sql.Literal(comment)),
        ]
