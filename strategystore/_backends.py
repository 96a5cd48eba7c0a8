"""``open_store`` and the table of backends it chooses from.

Adding a backend is one entry in ``_BACKENDS``: a function that takes the
data directory and the options and returns a store. No store module imports
another, and none imports this one.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

from strategystore._dsn import is_postgres_url
from strategystore._locks import check_timeout
from strategystore.errors import ConfigurationError
from strategystore.files import FileStore
from strategystore.memory import MemoryStore
from strategystore.store import BaseStore, Store

if TYPE_CHECKING:
    from strategystore.postgres import PostgresStore

__all__ = [
    "DATA_DIR_VARIABLE",
    "DEFAULT_DATA_DIR",
    "DSN_VARIABLE",
    "MODE_VARIABLE",
    "data_dir",
    "is_postgres_url",
    "open_store",
]

#: Where ``open_store`` and the command line keep data when told nothing else.
DEFAULT_DATA_DIR = "strategy-data"
#: The environment variable naming the data directory.
DATA_DIR_VARIABLE = "STRATEGYSTORE_DIR"
#: The environment variable naming the mode.
MODE_VARIABLE = "STRATEGYSTORE_MODE"
#: The environment variable naming the PostgreSQL server (a DSN) for ``mode="postgres"``.
DSN_VARIABLE = "STRATEGYSTORE_DSN"


def data_dir(given: str | os.PathLike[str] | None = None) -> Path:
    """The data directory to use: ``given``, else ``$STRATEGYSTORE_DIR``, else the default."""
    return Path(given or os.environ.get(DATA_DIR_VARIABLE) or DEFAULT_DATA_DIR)


def _open_memory(directory: str | os.PathLike[str] | None, options: dict[str, Any]) -> BaseStore:
    if options:
        raise ConfigurationError(f"MemoryStore takes no options, got {', '.join(sorted(options))}")
    return MemoryStore()


_FILE_OPTIONS = ("create", "durable", "lock_timeout")


def _open_file(directory: str | os.PathLike[str] | None, options: dict[str, Any]) -> BaseStore:
    unknown = sorted(set(options) - set(_FILE_OPTIONS))
    if unknown:
        raise ConfigurationError(
            f"FileStore does not take {', '.join(unknown)}; "
            "it takes create, durable and lock_timeout"
        )
    for flag in ("create", "durable"):
        if flag in options and not isinstance(options[flag], bool):
            raise ConfigurationError(f"{flag} must be True or False, not {options[flag]!r}")
    if "lock_timeout" in options:
        try:
            check_timeout(options["lock_timeout"])
        except ValueError as exc:
            raise ConfigurationError(str(exc)) from exc
    return FileStore(data_dir(directory), **options)


_POSTGRES_OPTIONS = ("dsn", "table", "create", "lock_timeout", "pool_size", "connect_timeout")


def _open_postgres(directory: str | os.PathLike[str] | None, options: dict[str, Any]) -> BaseStore:
    unknown = sorted(set(options) - set(_POSTGRES_OPTIONS))
    if unknown:
        raise ConfigurationError(
            f"PostgresStore does not take {', '.join(unknown)}; "
            f"it takes {', '.join(_POSTGRES_OPTIONS)}"
        )
    if directory is not None:
        raise ConfigurationError("PostgresStore takes no data directory; give dsn= instead")
    dsn = options.pop("dsn", None) or os.environ.get(DSN_VARIABLE)
    if not dsn:
        raise ConfigurationError(
            f"mode 'postgres' needs a server: pass dsn='postgresql://…' or set ${DSN_VARIABLE}"
        )
    try:
        from strategystore.postgres import PostgresStore  # noqa: PLC0415
    except ImportError as exc:
        raise ConfigurationError(str(exc)) from exc
    return PostgresStore(dsn, **options)


#: Each mode, and how to open its store from a data directory and options.
_BACKENDS: dict[str, Callable[[str | os.PathLike[str] | None, dict[str, Any]], BaseStore]] = {
    "file": _open_file,
    "memory": _open_memory,
    "postgres": _open_postgres,
}


@overload
def open_store(
    mode: Literal["file"], data_dir: str | os.PathLike[str] | None = None, **options: Any
) -> FileStore: ...


@overload
def open_store(mode: Literal["memory"], data_dir: None = None) -> MemoryStore: ...


@overload
def open_store(
    mode: Literal["postgres"], data_dir: None = None, **options: Any
) -> PostgresStore: ...


@overload
def open_store(
    mode: str | None = None, data_dir: str | os.PathLike[str] | None = None, **options: Any
) -> Store: ...


def open_store(
    mode: str | None = None,
    data_dir: str | os.PathLike[str] | None = None,
    **options: Any,
) -> Store:
    """Open the store a program is configured for.

    Args:
        mode: ``"file"``, ``"memory"`` or ``"postgres"``; defaults to
            ``$STRATEGYSTORE_MODE``, then ``"file"``.
        data_dir: the file store's directory; defaults to ``$STRATEGYSTORE_DIR``,
            then ``./strategy-data``. Ignored by the memory store.
        **options: passed to ``FileStore`` (``create``, ``durable``,
            ``lock_timeout``) or ``PostgresStore`` (``dsn``, which defaults to
            ``$STRATEGYSTORE_DSN``, ``table``, ``create``, ``lock_timeout``,
            ``pool_size``, ``connect_timeout``); the memory store takes none.

    Raises:
        ConfigurationError: an unknown mode, options the store does not take,
            or ``"postgres"`` without a DSN or without psycopg installed.
        StoreUnavailableError: ``"postgres"`` and the server cannot be reached.
    """
    chosen = mode if mode is not None else os.environ.get(MODE_VARIABLE) or "file"
    backend = _BACKENDS.get(chosen)
    if backend is None:
        source = "mode" if mode is not None else f"${MODE_VARIABLE}"
        choices = " or ".join(repr(name) for name in _BACKENDS)
        raise ConfigurationError(f"{source} is {chosen!r}; use {choices}")
    return backend(data_dir, options)
