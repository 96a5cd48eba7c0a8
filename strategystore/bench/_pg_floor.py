"""The floor ``PostgresStore`` is measured against: the same SQL, written by hand with psycopg.

One psycopg connection (autocommit, transactions begun and ended by
explicit statements), no pool, no checks, rows built before the clock starts:

* a read is one ``SELECT data … WHERE brief_id = %s AND version = %s`` and
  ``json.loads`` of the text (no validation, no document object);
* a ``create_next`` is ``BEGIN``, ``pg_advisory_xact_lock``,
  ``SELECT max(version)``, ``INSERT`` of the row, ``COMMIT``: five round trips;
* a bulk load is one transaction of ``executemany`` (psycopg pipelines it),
  or of ``COPY … FROM STDIN``.

psycopg prepares a statement on the server after its fifth execution on a
connection, for the floor as for the store.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import psycopg
from psycopg import sql

from strategystore._pgsql import COLUMNS
from strategystore.models import StrategyDocument

__all__ = ["COLUMNS", "RawPostgres", "lock_key", "row"]

Row = tuple[object, ...]


def row(doc: StrategyDocument) -> Row:
    """The row of ``doc`` as the store's table holds it: typed columns, then the canonical text."""
    return (
        doc.brief_id,
        doc.version,
        doc.status.value,
        doc.status_reason,
        doc.created_at,
        doc.updated_at,
        doc.content_digest,
        doc.to_json_bytes().decode(),
    )


def lock_key(table: str, brief_id: str) -> int:
    """A signed 64-bit advisory lock key for a brief of a table."""
    digest = hashlib.blake2b(f"{table}\0{brief_id.lower()}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class RawPostgres:
    """Hand-written SQL on one connection, over tables shaped like the store's."""

    def __init__(self, conninfo: str) -> None:
        self.conn: psycopg.Connection[Any] = psycopg.connect(
            conninfo, autocommit=True, application_name="strategystore bench floor"
        )

    def close(self) -> None:
        """Close the connection."""
        self.conn.close()

    def get(self, table: str, brief_id: str, version: int) -> object:
        """The stored text of a key parsed with ``json.loads``; ``None`` when absent."""
        found = self.conn.execute(
            _statement(table, "SELECT data FROM {t} WHERE brief_id = %s AND version = %s"),
            (brief_id, version),
        ).fetchone()
        return None if found is None else json.loads(found[0])

    def get_validated(self, table: str, brief_id: str, version: int) -> StrategyDocument | None:
        """The stored text of a key validated as a document; ``None`` when absent."""
        found = self.conn.execute(
            _statement(table, "SELECT data FROM {t} WHERE brief_id = %s AND version = %s"),
            (brief_id, version),
        ).fetchone()
        return None if found is None else StrategyDocument.model_validate_json(found[0])

    def create_next(self, table: str, key: int, brief_id: str, rows: Sequence[Row]) -> int:
        """Insert the next version of ``brief_id`` under its advisory lock; the version.

        ``rows[v - 1]`` is the row of version ``v``, built before the clock started.
        """
        conn = self.conn
        conn.execute("BEGIN")
        try:
            conn.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
            found = conn.execute(
                _statement(table, "SELECT max(version) FROM {t} WHERE brief_id = %s"), (brief_id,)
            ).fetchone()
            version = (found[0] if found and found[0] is not None else 0) + 1
            conn.execute(_insert(table), rows[version - 1])
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return version

    def executemany(self, table: str, rows: Sequence[Row]) -> None:
        """Insert ``rows`` with one ``executemany`` in one transaction."""
        with self.conn.transaction(), self.conn.cursor() as cursor:
            cursor.executemany(_insert(table), rows)

    def copy(self, table: str, rows: Sequence[Row]) -> None:
        """Load ``rows`` with ``COPY … FROM STDIN`` in one transaction."""
        statement = sql.SQL("COPY {t} ({c}) FROM STDIN").format(
            t=_identifier(table), c=sql.SQL(", ").join(map(sql.Identifier, COLUMNS))
        )
        with (
            self.conn.transaction(),
            self.conn.cursor() as cursor,
            cursor.copy(statement) as copying,
        ):
            for values in rows:
                copying.write_row(values)


_STATEMENTS: dict[tuple[str, str], bytes] = {}


def _statement(table: str, text: str) -> bytes:
    """``text`` with ``{t}`` the quoted table, composed once: the floor pays no composing."""
    key = (table, text)
    found = _STATEMENTS.get(key)
    if found is None:
        found = _STATEMENTS[key] = sql.SQL(text).format(t=_identifier(table)).as_bytes(None)
    return found


def _insert(table: str) -> bytes:
    values = ", ".join(["%s"] * len(COLUMNS))
    return _statement(table, f"INSERT INTO {{t}} ({', '.join(COLUMNS)}) VALUES ({values})")


def _identifier(table: str) -> sql.Identifier:
    return sql.Identifier(*table.split("."))
