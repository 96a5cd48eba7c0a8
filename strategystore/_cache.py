"""What a ``FileStore`` remembers between reads, and the rule that says when it may.

The disk is the truth. An entry is kept with the identity of the file it came
from (device, inode, size, mtime, ctime) and answers only while the file still
has that identity, and only if that identity was *settled* when the entry was
made: git's racy-entry rule, since a change within the file system's
timestamp granularity of the last one can leave mtime and ctime as they were.
Removing the cache changes no answer, only speed.
"""

from __future__ import annotations

import os
import threading
from contextlib import suppress
from pathlib import Path
from typing import Any, NamedTuple

from strategystore._layout import LOCKS_DIR, MARKER_NAME
from strategystore.models import StrategyDocument

__all__ = [
    "CACHE_BYTES",
    "CACHE_SIZE",
    "COARSE_RACY_WINDOW_NS",
    "FINE_RACY_WINDOW_NS",
    "LISTING_CACHE_SIZE",
    "Cached",
    "Identity",
    "Listing",
    "ReadCache",
    "copy_document",
    "identity",
    "racy_window_ns",
]

#: How many decoded documents a FileStore keeps between reads, at most ...
CACHE_SIZE = 4096
#: ... and how many bytes of their files: the decoded form takes a few times
#: that, so a store's cache stays within some tens of megabytes.
CACHE_BYTES = 8 * 1024 * 1024
#: Listings are a few numbers each, so many more of them are kept: enough for
#: ``list_briefs`` over a large data directory to be answered from the cache.
LISTING_CACHE_SIZE = 65536
#: The racy window on file systems with sub-second timestamps (many clock ticks).
FINE_RACY_WINDOW_NS = 100_000_000
#: The racy window on file systems with whole-second (or two-second) timestamps.
COARSE_RACY_WINDOW_NS = 3_000_000_000


class Identity(NamedTuple):
    """What proves a file unchanged since it was looked at."""

    dev: int
    ino: int
    size: int
    mtime_ns: int
    ctime_ns: int


def identity(info: os.stat_result) -> Identity:
    """The identity ``stat`` gave a file."""
    return Identity(info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def racy_window_ns(root: Path) -> int:
    """How old a timestamp must be before a cache may trust it, for this file system.

    Linux file systems stamp files from a clock that ticks every few
    milliseconds; FAT, HFS+ and some network file systems keep whole seconds
    (FAT's modification time even two). Timestamps with a fraction of a
    second show the fine kind.
    """
    stamps = []
    for name in (MARKER_NAME, LOCKS_DIR, "."):
        with suppress(OSError):
            info = os.lstat(root / name)
            stamps += [info.st_mtime_ns, info.st_ctime_ns]
    fine = any(stamp % 1_000_000_000 for stamp in stamps)
    return FINE_RACY_WINDOW_NS if fine else COARSE_RACY_WINDOW_NS


class Cached(NamedTuple):
    """A document as decoded from its file, and the file's bytes and identity."""

    identity: Identity
    doc: StrategyDocument
    data: bytes


class Listing(NamedTuple):
    """A brief directory's versions, and the directory's identity."""

    identity: Identity
    versions: tuple[int, ...]


class ReadCache:
    """Documents, listings and the data directory's case-fold index, each tied to an identity.

    Args:
        racy_ns: the racy window of the data directory's file system.

    Every entry is checked against its file by the caller before it is used,
    so forgetting one is only tidying.
    """

    def __init__(self, racy_ns: int) -> None:
        self.racy_ns = racy_ns
        self._documents: dict[str, Cached] = {}
        self._listings: dict[str, Listing] = {}
        self._bytes = 0
        self._folds: tuple[Identity, dict[str, tuple[str, ...]]] | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"<ReadCache {len(self._documents)} documents ({self._bytes} bytes), "
            f"{len(self._listings)} listings>"
        )

    @property
    def document_count(self) -> int:
        """How many documents are kept."""
        return len(self._documents)

    @property
    def document_bytes(self) -> int:
        """How many bytes of document files are kept."""
        return self._bytes

    def documents(self) -> list[Cached]:
        """The documents kept, oldest first."""
        return list(self._documents.values())

    def settled(self, found: Identity, seen_at: int) -> bool:
        """Whether a file's timestamps prove any later change would alter them.

        Only entries whose timestamps were already older than the racy window
        when the file was looked at (``seen_at``, taken before its stat) are kept.
        """
        return seen_at - max(found.mtime_ns, found.ctime_ns) > self.racy_ns

    # -- documents ---------------------------------------------------------------

    def document(self, path: str) -> Cached | None:
        """The entry for the document file at ``path``, if there is one."""
        return self._documents.get(path)

    def remember_document(self, path: str, entry: Cached) -> None:
        """Keep ``entry``, pushing out the oldest entries beyond the bounds."""
        size = len(entry.data)
        if size > CACHE_BYTES // 8:
            return  # one huge document is not worth pushing out many small ones
        with self._lock:
            documents = self._documents
            self._bytes += size - _size(documents.get(path))
            while self._bytes > CACHE_BYTES or len(documents) >= CACHE_SIZE:
                self._bytes -= _size(documents.pop(next(iter(documents))))
            documents[path] = entry

    def forget_document(self, path: str) -> None:
        """Drop the entry for ``path``."""
        if path not in self._documents:
            # An absent key needs no lock.
            return
        with self._lock:
            self._bytes -= _size(self._documents.pop(path, None))

    # -- listings ----------------------------------------------------------------

    def listing(self, path: str) -> Listing | None:
        """The entry for the brief directory at ``path``, if there is one."""
        return self._listings.get(path)

    def remember_listing(self, path: str, entry: Listing) -> None:
        """Keep ``entry``, pushing out the oldest listing beyond the bound."""
        with self._lock:
            listings = self._listings
            if path not in listings and len(listings) >= LISTING_CACHE_SIZE:
                listings.pop(next(iter(listings)), None)
            listings[path] = entry

    def forget_listing(self, path: str) -> None:
        """Drop the entry for ``path``."""
        if path not in self._listings:
            return
        with self._lock:
            self._listings.pop(path, None)

    # -- the case-fold index ----------------------------------------------------------

    def folds(self, root: Identity) -> dict[str, tuple[str, ...]] | None:
        """The data directory's names grouped by case-folded name, if kept for ``root``."""
        kept = self._folds
        return kept[1] if kept is not None and kept[0] == root else None

    def remember_folds(self, root: Identity, index: dict[str, tuple[str, ...]]) -> None:
        """Keep the fold index of the data directory as it had identity ``root``."""
        self._folds = (root, index)


def _size(entry: Cached | None) -> int:
    return 0 if entry is None else len(entry.data)


def copy_document(doc: StrategyDocument) -> StrategyDocument:
    """A copy of a cached document that shares no mutable state with it."""
    # Sections are frozen and hold only strings, so a new list suffices.
    return doc.model_copy(
        update={"sections": list(doc.sections), "metadata": _copy_json(doc.metadata)}
    )


def _copy_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_json(v) for v in value]
    return value
