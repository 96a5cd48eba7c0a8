"""``MemoryStore``: the in-memory twin of ``FileStore``.

It keeps the canonical bytes a file would hold and decodes them on every
read, so representation, validation and "no shared mutable state" are the
same as on disk. One re-entrant lock makes it safe to share between threads.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Hashable, Iterator
from contextlib import contextmanager

from strategystore.models import StrategyDocument
from strategystore.store import BaseStore

__all__ = ["MemoryStore"]


class MemoryStore(BaseStore):
    """A store that lives in this process only, for tests and runs that need no disk.

    It behaves exactly like ``FileStore``: same results, same errors.

    Example:
        >>> store = MemoryStore()
        >>> store.create_next("acme-q3").version
        1
    """

    def __init__(self) -> None:
        super().__init__()
        self._data: dict[str, dict[int, bytes]] = {}
        # A number from one count for every write and removal of a version.
        self._stamps: dict[tuple[str, int], int] = {}
        self._count = itertools.count()
        # Re-entrant so a write's check and write can share one critical
        # section with the reads they make.
        self._mutex = threading.RLock()

    def __repr__(self) -> str:
        return "MemoryStore()"

    def _load(self, brief_id: str, version: int) -> tuple[StrategyDocument, bytes] | None:
        with self._mutex:
            data = self._data.get(brief_id, {}).get(version)
        return None if data is None else (StrategyDocument.from_json_bytes(data), data)

    def _versions(self, brief_id: str) -> list[int]:
        with self._mutex:
            return list(self._data.get(brief_id, ()))

    def _briefs(self) -> list[str]:
        with self._mutex:
            return list(self._data)

    def _write(self, doc: StrategyDocument, data: bytes, *, exclusive: bool) -> bool:
        with self._mutex:
            versions = self._data.setdefault(doc.brief_id, {})
            if exclusive and doc.version in versions:
                return False
            versions[doc.version] = data
            self._stamps[doc.key] = next(self._count)
        return True

    def _remove(self, brief_id: str, version: int) -> None:
        with self._mutex:
            versions = self._data[brief_id]
            del versions[version]
            if not versions:
                del self._data[brief_id]
            self._stamps[(brief_id, version)] = next(self._count)

    def _stamp(self, brief_id: str, version: int) -> Hashable:
        with self._mutex:
            if version not in self._data.get(brief_id, {}):
                return None
            return self._stamps[(brief_id, version)]

    @contextmanager
    def _locked(self, brief_id: str, timeout: float | None = None) -> Iterator[None]:
        # One lock for every brief: writers of different briefs wait for each
        # other here, which no caller can tell from a lock per brief.
        with self._mutex:
            yield

    def _close(self) -> None:
        with self._mutex:
            self._data.clear()
            self._stamps.clear()

    def _case_variant(self, brief_id: str) -> str | None:
        folded = brief_id.lower()
        with self._mutex:
            return next((b for b in self._data if b != brief_id and b.lower() == folded), None)
