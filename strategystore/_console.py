"""What every command of the command line shares.

The program's name, its one-line messages on standard error, JSON on standard
output, and the store its arguments name. The front end (``cli``) and the
command modules import this one; it imports none of them.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit, urlunsplit

from pydantic import ValidationError

from strategystore import _backends
from strategystore._dsn import is_postgres_dsn, is_postgres_url
from strategystore.errors import ConfigurationError, DuplicateVersionError, LockTimeoutError
from strategystore.files import FileStore
from strategystore.models import describe_validation_error
from strategystore.store import BaseStore

__all__ = [
    "PROG",
    "close_stores",
    "data_dir",
    "describe",
    "error",
    "exit_status",
    "is_postgres_url",
    "location",
    "open_location",
    "open_store",
    "place",
    "print_json",
    "without_password",
]


PROG = "strategystore"


def location(args: argparse.Namespace) -> Path | str:
    """The store the arguments name: a data directory, or a PostgreSQL DSN.

    A DSN is a ``postgresql://`` URL or libpq ``key=value`` pairs; a directory
    whose name would read as one is given as ``./NAME``.

    ``--store DIR|URL``, else ``--dir DIR``, else ``$STRATEGYSTORE_DSN`` when
    ``$STRATEGYSTORE_MODE`` is ``postgres``, else ``$STRATEGYSTORE_DIR``, else
    the default directory.

    Raises:
        ConfigurationError: both ``--store`` and ``--dir``, or the postgres
            mode without a DSN.
    """
    store = getattr(args, "store", None)
    if store and args.dir:
        raise ConfigurationError("give --store or --dir, not both")
    if store:
        return store if is_postgres_dsn(store) else Path(store)
    if args.dir:
        return Path(args.dir)
    if os.environ.get(_backends.MODE_VARIABLE) == "postgres":
        dsn = os.environ.get(_backends.DSN_VARIABLE)
        if not dsn:
            raise ConfigurationError(
                f"${_backends.MODE_VARIABLE} is postgres but ${_backends.DSN_VARIABLE} is not set"
            )
        return dsn
    return _backends.data_dir(None)


def place(args: argparse.Namespace) -> str:
    """The store the arguments name, for a message: the directory, or the URL without password."""
    where = location(args)
    return str(where) if isinstance(where, Path) else without_password(where)


#: The connection parameters that hold a secret: the password, and the SSL key's.
_SECRETS = frozenset({"password", "sslpassword"})


def without_password(dsn: str) -> str:
    """``dsn``, a URL or libpq ``key=value`` pairs, with any password in it replaced by ``***``."""
    if "://" in dsn:
        return _url_without_password(dsn)
    try:
        from psycopg import Error  # noqa: PLC0415
        from psycopg.conninfo import conninfo_to_dict, make_conninfo  # noqa: PLC0415
    except ImportError:
        # Without libpq's parser, everything from the first "password" on is hidden.
        head, found, _ = dsn.partition("password")
        return f"{head}password=*** (and the rest)" if found else dsn
    try:
        params = conninfo_to_dict(dsn)
    except Error:
        # libpq's reason would quote the text it stumbled on: nothing of it is shown.
        return "(a connection string libpq cannot parse)"
    for name in _SECRETS & params.keys():
        params[name] = "***"
    return " ".join(make_conninfo("", **{name: value}) for name, value in params.items())


def _url_without_password(url: str) -> str:
    try:
        parts = urlsplit(url)
    except ValueError:
        return f"{url.partition('://')[0]}://(a malformed URL)"
    netloc = parts.netloc
    if parts.password is not None:
        user, _, host = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}:***@{host}"
    query = "&".join(
        f"{name}=***" if name in _SECRETS else f"{name}={quote(value, safe='/')}"
        for name, value in parse_qsl(parts.query, keep_blank_values=True)
    )
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def data_dir(args: argparse.Namespace) -> Path:
    """The data directory the arguments name, for a command that works on files only.

    Raises:
        ConfigurationError: the arguments name a PostgreSQL store.
    """
    where = location(args)
    if isinstance(where, str):
        raise ConfigurationError(
            f"{args.command} works on a data directory, and {without_password(where)} is a "
            "PostgreSQL store; the database keeps its own rules (copy the table to a "
            f"directory with `{PROG} copy URL DIR` to use {args.command} there)"
        )
    return where


#: The stores a command opened, closed by ``close_stores`` when it ends.
_OPENED: list[BaseStore] = []


def open_store(args: argparse.Namespace, *, create: bool = False) -> BaseStore:
    """The store the arguments name, which must exist unless ``create``; closed with the command."""
    store = open_location(location(args), create=create, lock_timeout=args.lock_timeout)
    _OPENED.append(store)
    return store


def close_stores() -> None:
    """Close every store ``open_store`` opened (a database store's connections with it)."""
    while _OPENED:
        _OPENED.pop().close()


def open_location(where: Path | str, *, create: bool, lock_timeout: float) -> BaseStore:
    """A ``FileStore`` of a directory, or a ``PostgresStore`` of a URL."""
    if isinstance(where, Path):
        return FileStore(where, create=create, lock_timeout=lock_timeout)
    try:
        from strategystore.postgres import PostgresStore  # noqa: PLC0415
    except ImportError as exc:
        raise ConfigurationError(str(exc)) from exc
    # psycopg and its pool log each failed connection and each broken
    # pipeline; with no handler configured, logging's last resort would print
    # them beside the command's own message, which already says what failed.
    psycopg_log = logging.getLogger("psycopg")
    if not any(isinstance(handler, logging.NullHandler) for handler in psycopg_log.handlers):
        psycopg_log.addHandler(logging.NullHandler())
    return PostgresStore(where, create=create, lock_timeout=lock_timeout)


def describe(exc: BaseException) -> str:
    """One line naming what is wrong, for stderr."""
    if isinstance(exc, ValidationError):
        message = describe_validation_error(exc)
    elif isinstance(exc, LockTimeoutError):
        # The error's own hint names the Python argument; say what to type instead.
        message = (
            f"could not lock {exc.lock_path} within {exc.timeout:g} s: another writer holds it; "
            "retry, or wait longer with --lock-timeout SECONDS"
        )
    elif isinstance(exc, DuplicateVersionError):
        message = (
            f"version {exc.version} of brief {exc.brief_id!r} already exists "
            f"(status {exc.existing.status.value})"
        )
    elif isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        message = f"{exc.filename}: {exc.strerror}"
    else:
        message = str(exc) or type(exc).__name__
    return " ".join(message.split("\n"))


def error(message: str, *, prefix: str = f"{PROG}: ") -> None:
    """Write ``message`` on standard error as one line, after ``prefix``."""
    # With standard error closed there is nowhere to say it; print() would
    # fall back to standard output.
    if sys.stderr is None:
        return
    print(f"{prefix}{' '.join(message.splitlines())}", file=sys.stderr)


def print_json(value: object) -> None:
    """Print ``value`` as indented JSON, non-ASCII as is."""
    print(json.dumps(value, ensure_ascii=False, indent=2))


def exit_status(exc: SystemExit) -> int:
    """The exit status an argument parser's ``SystemExit`` stands for."""
    if exc.code is None:
        return 0
    return exc.code if isinstance(exc.code, int) else 2
