"""What a ``PostgresStore`` is opened with, checked before anything connects."""

from __future__ import annotations

import getpass
import os
import re
from dataclasses import dataclass

import psycopg

from strategystore._dsn import DEFAULT_TABLE, split_table
from strategystore._locks import check_timeout
from strategystore._pgerrors import Place, host_of
from strategystore.errors import ConfigurationError

__all__ = ["Settings", "checked_settings"]

#: A table name: an identifier, optionally qualified by a schema.
_TABLE_NAME = re.compile(r"(?:[A-Za-z_][A-Za-z0-9_]{0,62}\.)?[A-Za-z_][A-Za-z0-9_]{0,62}")


@dataclass(frozen=True)
class Settings:
    """A store's connection string without its ``table`` parameter, its waits, and its place."""

    conninfo: str
    lock_timeout: float
    connect_timeout: float
    place: Place


def checked_settings(
    dsn: str,
    *,
    table: str | None,
    lock_timeout: float,
    connect_timeout: float,
    pool_size: int,
) -> Settings:
    """The settings of ``PostgresStore(dsn, …)``, each checked (see its arguments).

    Raises:
        ConfigurationError: a bad setting; a DSN libpq cannot parse is never
            quoted, since it may hold the password.
    """
    conninfo, named = split_table(dsn)
    if table is not None and named is not None and table != named:
        raise ConfigurationError(f"the URL names table {named!r} but table={table!r}")
    # An empty name is a bad name, not a request for the default.
    chosen = table if table is not None else named if named is not None else DEFAULT_TABLE
    if not isinstance(chosen, str) or not _TABLE_NAME.fullmatch(chosen):
        raise ConfigurationError(
            f"table must be an identifier, optionally SCHEMA.NAME, not {chosen!r}"
        )
    try:
        waits = check_timeout(lock_timeout), check_timeout(connect_timeout)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from exc
    if isinstance(pool_size, bool) or not isinstance(pool_size, int) or pool_size < 1:
        raise ConfigurationError(f"pool_size must be a whole number >= 1, not {pool_size!r}")
    try:
        params = psycopg.conninfo.conninfo_to_dict(conninfo)
    except psycopg.ProgrammingError:
        # libpq's reason quotes the text it stumbled on, which may be the password.
        raise ConfigurationError(
            "not a PostgreSQL DSN: libpq cannot parse it; give a postgresql:// URL, or "
            "key=value pairs separated by spaces with a value holding spaces in 'quotes'"
        ) from None
    place = Place(
        host_of(params),
        str(
            params.get("dbname") or os.environ.get("PGDATABASE") or params.get("user") or "default"
        ),
        str(params.get("user") or os.environ.get("PGUSER") or _os_user()),
        chosen,
        f"strategystore {chosen}",
        pool_size,
    )
    return Settings(conninfo, *waits, place)


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no name for this uid (a container's)
        return "the current user"
