"""The table of ``PostgresStore``: created when missing, its format checked, its identity."""

from __future__ import annotations

import re
from typing import Any

import psycopg

from strategystore._pgerrors import Place
from strategystore._pgsql import Statements
from strategystore.errors import StoreFormatError

__all__ = ["FORMAT", "prepare_table", "table_oid"]

#: The table's layout, recorded in its comment; a newer one is refused.
FORMAT = 1
#: The table comment that records the format.
_COMMENT = "strategystore format {}"
_COMMENT_PATTERN = re.compile(r"strategystore format (\d+)")
#: The lock that serialises creating the table, whichever store gets there first.
_CREATE_LOCK = 0x5354524154454759  # "STRATEGY"


def prepare_table(
    conn: psycopg.Connection[Any], statements: Statements, place: Place, *, create: bool
) -> None:
    """Check the table is a strategystore table this version reads; with ``create``, make it.

    Raises:
        StoreFormatError: the table is missing (and not ``create``), or its
            schema is, or it is not a strategystore table, or of a newer format.
    """
    found = _table_format(conn, statements)
    if found is None and create:
        try:
            with conn.transaction():
                conn.execute("SELECT pg_advisory_xact_lock(%s)", (_CREATE_LOCK,))
                if _table_format(conn, statements) is None:
                    for statement in statements.create(_COMMENT.format(FORMAT)):
                        conn.execute(statement)
        except psycopg.errors.InvalidSchemaName:
            schema = place.table.partition(".")[0]
            raise StoreFormatError(
                f"cannot create table {place.table!r}: schema {schema!r} does not exist in "
                f"database {place.database!r} on {place.host}; create the schema first, "
                "or name another table"
            ) from None
        found = _table_format(conn, statements)
    if found is None:
        raise StoreFormatError(
            f"table {place.table!r} does not exist in database {place.database!r} on "
            f"{place.host}; create it with create=True (on the command line: init)"
        )
    match = _COMMENT_PATTERN.fullmatch(found)
    if match is None:
        raise StoreFormatError(
            f"table {place.table!r} in database {place.database!r} is not a strategystore "
            "table (its comment records no strategystore format); name another table"
        )
    version = int(match.group(1))
    if version > FORMAT:
        raise StoreFormatError(
            f"table {place.table!r} in database {place.database!r} is of format {version}, "
            f"newer than this strategystore reads ({FORMAT}); upgrade strategystore"
        )


def table_oid(conn: psycopg.Connection[Any], statements: Statements) -> str | None:
    """The table's oid, however its name is spelled (``None`` if it does not exist)."""
    row = conn.execute(
        "SELECT to_regclass(%s)::oid::text", (statements.table.as_string(conn),)
    ).fetchone()
    return None if row is None or row[0] is None else str(row[0])


def _table_format(conn: psycopg.Connection[Any], statements: Statements) -> str | None:
    """The table's comment (``""`` if none), or ``None`` when the table does not exist."""
    row = conn.execute(
        "SELECT coalesce(obj_description(c.oid, 'pg_class'), '') FROM pg_class c "
        "WHERE c.oid = to_regclass(%s)",
        # Quoted as the statements quote it, so that a name with capitals
        # is looked up as the table of that name, not folded to lower case.
        (statements.table.as_string(conn),),
    ).fetchone()
    return None if row is None else str(row[0])
