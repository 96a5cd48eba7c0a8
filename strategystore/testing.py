"""A pytest plugin: your application's tests against ``MemoryStore`` and ``FileStore``.

Installing strategystore registers this plugin (the ``pytest11`` entry
point), so a test asks for a store by name and needs no conftest::

    def test_x(strategy_store): ...

``strategy_store`` runs the test twice, as ``test_x[memory]`` and
``test_x[file]``; ``memory_store`` and ``file_store`` give one store each.
Every store is fresh for its test and closed after it. A conftest fixture of
the same name overrides the plugin's; ``-p no:strategystore`` turns the
plugin off.

This module's own imports are pytest and typing only: the stores are
imported by the fixtures that build them, when a test first asks for one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path

    from strategystore import FileStore, MemoryStore, Store

__all__ = ["file_store", "memory_store", "strategy_store"]

#: The directory under the test's ``tmp_path`` that ``file_store`` uses.
DATA_DIR_NAME = "strategy-data"


def _open_memory_store() -> MemoryStore:
    from strategystore import MemoryStore  # noqa: PLC0415 - keep the plugin's import light

    return MemoryStore()


def _open_file_store(tmp_path: Path) -> FileStore:
    from strategystore import FileStore  # noqa: PLC0415 - keep the plugin's import light

    # A test's directory is thrown away afterwards, so nothing is worth an fsync.
    return FileStore(tmp_path / DATA_DIR_NAME, durable=False)


@pytest.fixture
def memory_store() -> Iterator[MemoryStore]:
    """A fresh, empty ``MemoryStore``, closed after the test."""
    with _open_memory_store() as store:
        yield store


@pytest.fixture
def file_store(tmp_path: Path) -> Iterator[FileStore]:
    """A ``FileStore`` on a new data directory, ``tmp_path / "strategy-data"``; closed after.

    It is opened with ``durable=False`` for speed: writes skip fsync, which
    a temporary directory does not need. Everything else, the files, the
    locks and every rule, is as in production.
    """
    with _open_file_store(tmp_path) as store:
        yield store


@pytest.fixture(params=["memory", "file"], ids=["memory", "file"])
def strategy_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    """Runs the test twice, on a fresh ``MemoryStore`` and ``FileStore``: ids ``memory``, ``file``.

    The stores are the ones ``memory_store`` and ``file_store`` give, built
    here rather than through those fixtures, so a conftest that overrides
    either does not change this one. Each is closed after the test.
    """
    store: Store = _open_memory_store() if request.param == "memory" else _open_file_store(tmp_path)
    try:
        yield store
    finally:
        store.close()
