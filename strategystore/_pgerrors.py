"""What psycopg, libpq and the pool raise, as the store's errors; and the timeouts libpq takes.

No message is built from the DSN: each names the host, the database, the
user or the table, which are known apart from it, and quotes only what
libpq or the server said, which never holds the password.
"""

from __future__ import annotations

import math
import os
import re
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg_pool import PoolTimeout

from strategystore.errors import StoreFormatError, StoreUnavailableError, StrategyStoreError

__all__ = [
    "Place",
    "first_line",
    "host_of",
    "libpq_connect_timeout",
    "lock_setting",
    "pool_timeout",
    "translate",
]

#: The largest value the server takes for a setting in milliseconds (lock_timeout).
_INT_MAX = 2**31 - 1

#: The fewest seconds libpq waits for a connection: it takes no shorter timeout.
_LEAST_CONNECT = 2

#: Said of a setting that is wrong: retrying the call does not help.
_FIX_SETTINGS = "fix the connection settings; retrying will not help"

#: What libpq says of a connection the server refused for its settings, and what to tell.
_REFUSED: list[tuple[re.Pattern[str], str]] = [
    (
        re.compile(r'database "(?P<name>[^"]*)" does not exist'),
        "database {name!r} does not exist on {host}",
    ),
    (
        re.compile(r'password authentication failed for user "(?P<name>[^"]*)"'),
        "password authentication failed for user {name!r} (the password comes from the DSN, "
        "$PGPASSWORD or ~/.pgpass)",
    ),
    (
        re.compile(r'role "(?P<name>[^"]*)" does not exist'),
        "user {name!r} does not exist on {host}",
    ),
    (
        re.compile(r'invalid (?P<name>\w+) value: "(?P<value>[^"]*)"'),
        "invalid {name} {value!r} in the DSN",
    ),
    (
        re.compile(
            r'invalid integer value "(?P<value>[^"]*)" for connection option "(?P<name>\w+)"'
        ),
        "invalid {name} {value!r} in the DSN",
    ),
    (
        re.compile(r"no pg_hba\.conf entry for (?P<name>[^,]*)"),
        "the server's pg_hba.conf admits no connection for {name}",
    ),
]


@dataclass(frozen=True)
class Place:
    """What a message names: where the store is, and its pool."""

    host: str
    database: str
    user: str
    table: str
    pool_name: str
    pool_size: int


def first_line(exc: BaseException) -> str:
    """The first line of what ``exc`` says (``""`` if nothing)."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else ""


def host_of(params: Mapping[str, Any]) -> str:
    """The server, as a message names it: host (or socket directory) and port."""
    host = str(params.get("host") or os.environ.get("PGHOST") or "")
    port = str(params.get("port") or os.environ.get("PGPORT") or "")
    if not host:
        host = "the local socket"
    elif host.startswith("/"):
        host = f"socket directory {host}"
    return f"{host} port {port}" if port else host


def lock_setting(wait: float) -> str:
    """The server's ``lock_timeout`` for a wait of ``wait`` seconds (more than 0).

    A wait beyond the server's limit (2**31 - 1 ms, some 24.8 days), or an
    infinite one, is ``0``: the server then waits for as long as it takes.
    """
    millis = wait * 1000
    if not math.isfinite(millis) or millis > _INT_MAX:
        return "0"
    return f"{max(1, round(millis))}ms"


def libpq_connect_timeout(seconds: float) -> int:
    """libpq's ``connect_timeout`` for ``seconds``: whole seconds, at least 2 (libpq's least).

    A timeout beyond what libpq holds, or an infinite one, is ``0``: no limit.
    """
    if not math.isfinite(seconds) or seconds > _INT_MAX:
        return 0
    return max(_LEAST_CONNECT, math.ceil(seconds))


def pool_timeout(seconds: float) -> float:
    """``seconds`` as the pool's wait for a connection, within what a thread can wait.

    It is no shorter than libpq's own wait: the pool opens its connections
    in the background, and a shorter wait gives up on one still opening.
    """
    return min(max(seconds, _LEAST_CONNECT), threading.TIMEOUT_MAX)


def translate(exc: psycopg.Error, place: Place, *, pool_full: bool) -> StrategyStoreError:
    """The store's error for what psycopg raised; ``pool_full`` if no pooled connection was free.

    A vanished table is a ``StoreFormatError``; everything else is a
    ``StoreUnavailableError`` whose reason says what is wrong: a server out
    of reach or gone mid-call (retry), a setting it refused or a privilege
    it lacks (fix it), a pool whose every connection stayed in use.
    """
    reason = first_line(exc) or type(exc).__name__
    if isinstance(exc, psycopg.errors.UndefinedTable):
        return StoreFormatError(
            f"table {place.table!r} is gone from database {place.database!r} on "
            f"{place.host}: {reason}"
        )
    if isinstance(exc, PoolTimeout) and pool_full:
        return StoreUnavailableError(
            place.host,
            place.database,
            f"the pool {place.pool_name!r} of {place.pool_size} connections was exhausted: "
            f"every one stayed in use by other calls ({reason})",
            "make fewer calls at once from this process, or give the store a larger pool_size",
        )
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        return StoreUnavailableError(
            place.host,
            place.database,
            f"user {place.user!r} lacks a privilege on table {place.table!r}: {reason}",
            "grant the user SELECT, INSERT, UPDATE and DELETE on the table (and CREATE on "
            "its schema to create it); retrying will not help",
        )
    if isinstance(exc, psycopg.OperationalError | psycopg.InterfaceError):
        for pattern, text in _REFUSED:
            found = pattern.search(reason)
            if found is not None:
                said = text.format(host=place.host, **found.groupdict())
                return StoreUnavailableError(place.host, place.database, said, _FIX_SETTINGS)
        return StoreUnavailableError(place.host, place.database, reason)
    state = f"SQLSTATE {exc.sqlstate}: " if exc.sqlstate else ""
    return StoreUnavailableError(
        place.host,
        place.database,
        f"the server refused a statement on table {place.table!r}: {state}{reason}",
        "the call changed nothing; the server's log says more",
    )
