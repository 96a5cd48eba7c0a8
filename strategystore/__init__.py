"""strategystore: versioned strategy documents as plain JSON files.

Usage::

    from strategystore import FileStore, Status

    store = FileStore("strategy-data")
    draft = store.create_next("acme-q3-launch", [{"key": "goal", "title": "Goal", "body": "…"}])
    store.approve("acme-q3-launch", draft.version)
    store.get_latest("acme-q3-launch", status=Status.APPROVED)

``MemoryStore`` behaves identically without a disk, and ``PostgresStore`` in
one table of a PostgreSQL server; ``open_store`` picks one from
``$STRATEGYSTORE_MODE``, ``$STRATEGYSTORE_DIR`` and ``$STRATEGYSTORE_DSN``.
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from strategystore._backends import open_store
    from strategystore._diff import DocumentDiff, diff
    from strategystore.errors import (
        ConcurrentUpdateError,
        ConfigurationError,
        CorruptDocumentError,
        DuplicateVersionError,
        ImmutableVersionError,
        InvalidBriefIdError,
        LockTimeoutError,
        StatusChangeError,
        StoreFormatError,
        StoreUnavailableError,
        StrategyStoreError,
        VersionNotFoundError,
    )
    from strategystore.files import FileStore
    from strategystore.memory import MemoryStore
    from strategystore.models import Section, Status, StrategyDocument
    from strategystore.postgres import PostgresStore
    from strategystore.store import ImportSummary, Store

#: Where each public name lives: a name is imported on first use, so that
#: importing a submodule (the pytest plugin, say) loads nothing it does not need.
_HOMES = {
    "ConcurrentUpdateError": "strategystore.errors",
    "ConfigurationError": "strategystore.errors",
    "CorruptDocumentError": "strategystore.errors",
    "DocumentDiff": "strategystore._diff",
    "DuplicateVersionError": "strategystore.errors",
    "FileStore": "strategystore.files",
    "ImmutableVersionError": "strategystore.errors",
    "ImportSummary": "strategystore.store",
    "InvalidBriefIdError": "strategystore.errors",
    "LockTimeoutError": "strategystore.errors",
    "MemoryStore": "strategystore.memory",
    "PostgresStore": "strategystore.postgres",
    "Section": "strategystore.models",
    "Status": "strategystore.models",
    "StatusChangeError": "strategystore.errors",
    "Store": "strategystore.store",
    "StoreFormatError": "strategystore.errors",
    "StoreUnavailableError": "strategystore.errors",
    "StrategyDocument": "strategystore.models",
    "StrategyStoreError": "strategystore.errors",
    "VersionNotFoundError": "strategystore.errors",
    "diff": "strategystore._diff",
    "open_store": "strategystore._backends",
}


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is not None:
        import importlib  # noqa: PLC0415

        value = getattr(importlib.import_module(home), name)
        globals()[name] = value
        return value
    # importlib.metadata costs more to import than the rest of the package,
    # so the installed version is looked up only when someone asks for it.
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

        try:
            return version("strategystore")
        except PackageNotFoundError:  # pragma: no cover - running from a source tree
            return "0+unknown"
    raise AttributeError(f"module 'strategystore' has no attribute {name!r}")


__all__ = [
    "ConcurrentUpdateError",
    "ConfigurationError",
    "CorruptDocumentError",
    "DocumentDiff",
    "DuplicateVersionError",
    "FileStore",
    "ImmutableVersionError",
    "ImportSummary",
    "InvalidBriefIdError",
    "LockTimeoutError",
    "MemoryStore",
    "PostgresStore",
    "Section",
    "Status",
    "StatusChangeError",
    "Store",
    "StoreFormatError",
    "StoreUnavailableError",
    "StrategyDocument",
    "StrategyStoreError",
    "VersionNotFoundError",
    "__version__",
    "diff",
    "open_store",
]


def __dir__() -> list[str]:
    return sorted(__all__)
