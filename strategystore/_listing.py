"""The listing of briefs and versions that ``briefs``, ``versions`` and the review page show.

A ``Lister`` answers from the listing index (``_index``) what a file's
identity proves unchanged, and reads the rest; any other store, a data
directory on a case-insensitive file system, or ``STRATEGYSTORE_NO_INDEX``
reads every document through the store. Both give the same ``VersionRow``s.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType

from strategystore import _cache
from strategystore._cache import Identity, Listing
from strategystore._console import describe
from strategystore._index import ListingIndex, index_wanted
from strategystore._layout import MARKER_NAME, is_brief_name
from strategystore._unchanged import CREATED as _SHOWN_CREATED
from strategystore._unchanged import FIELDS, Columns, Shown
from strategystore._unchanged import REASON as _SHOWN_REASON
from strategystore._unchanged import SECTIONS as _SHOWN_SECTIONS
from strategystore._unchanged import STATUS as _SHOWN_STATUS
from strategystore._unchanged import UPDATED as _SHOWN_UPDATED
from strategystore._unchanged import VERSION as _SHOWN_VERSION
from strategystore._verdict import (
    CREATED,
    PROBLEM,
    REASON,
    SECTIONS,
    STATUS,
    STATUSES,
    UPDATED,
    Record,
    judge_file,
    micros,
    moment,
)
from strategystore.errors import CorruptDocumentError
from strategystore.files import FileStore
from strategystore.models import Status, StrategyDocument
from strategystore.store import BaseStore

__all__ = ["BriefSummary", "Lister", "VersionRow"]

_DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)


@dataclass(frozen=True, slots=True)
class VersionRow:
    """What a listing shows of one version: its fields, or the problem that hides them.

    ``problem`` is the one-line message for a version that cannot be read,
    ``damaged`` tells a bad file (``True``) from one the file system refused.
    Timestamps are microseconds since the epoch; ``created``/``updated`` give
    the datetimes.
    """

    version: int
    status: Status | None = None
    status_reason: str | None = None
    created_us: int = 0
    updated_us: int = 0
    section_count: int = 0
    problem: str | None = None
    damaged: bool = False

    @property
    def created(self) -> datetime:
        return moment(self.created_us)

    @property
    def updated(self) -> datetime:
        return moment(self.updated_us)

    @classmethod
    def of(cls, doc: StrategyDocument) -> VersionRow:
        return cls(
            doc.version,
            doc.status,
            doc.status_reason,
            micros(doc.created_at),
            micros(doc.updated_at),
            len(doc.sections),
        )


@dataclass(frozen=True, slots=True)
class BriefSummary:
    """What ``briefs`` shows of a brief the index proved whole: no version of it is damaged.

    ``latest`` is the row of its newest version, ``approved`` the newest
    approved version (``None`` when none is).
    """

    versions: int
    latest: VersionRow
    approved: int | None


_APPROVED_CODE = STATUSES.index(Status.APPROVED)


class Lister:
    """Briefs and version rows of one store, through the index where it can.

    Args:
        store: the store to list.
        use_index: use the listing index; by default where it applies (a
            ``FileStore`` on a case-sensitive file system, the environment
            not saying otherwise).

    ``close()`` (or leaving the ``with`` block) saves what was learnt.
    """

    def __init__(self, store: BaseStore, *, use_index: bool | None = None) -> None:
        self.store = store
        self._root = str(store.data_dir) if isinstance(store, FileStore) else ""
        self.index: ListingIndex | None = None
        self._listed: set[str] | None = None
        self._rowed: set[str] = set()
        self._numbers: dict[str, list[int]] = {}
        #: What ``briefs`` proved, by brief, until ``proven_summary`` asks for it.
        self._proven: dict[str, tuple[int, Shown]] = {}
        if use_index is None:
            use_index = index_wanted()
        if use_index and isinstance(store, FileStore):
            root = store.data_dir
            if not os.path.lexists(root / MARKER_NAME.upper()):
                self.index = ListingIndex(root, store.cache.racy_ns).load()

    def __enter__(self) -> Lister:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Save the index, if anything new was learnt; a failure to write is ignored."""
        if self.index is not None:
            # Entries not looked at are dropped only when every brief was.
            listed = self._listed
            self.index.save(full=listed is not None and listed <= self._rowed)

    # -- briefs and version numbers ------------------------------------------

    def briefs(self) -> list[str]:
        """The briefs with at least one version, ascending (``store.list_briefs()``).

        With the index, each brief directory it recorded is first proved
        unchanged by its identity (``ListingIndex.proven_many``), which
        proves it holds versions, and what ``proven_summary`` shows of it is
        kept. The store is asked only about the other directories, given the
        listing the index recorded of each: it answers from that only while
        an ``lstat`` of the directory still gives the identity it was listed
        with, as for a listing it made itself.
        """
        index = self.index
        if index is None or not isinstance(self.store, FileStore):
            briefs = self.store.list_briefs()
            self._listed = set(briefs)
            return briefs
        with os.scandir(self._root) as entries:
            names = sorted(
                e.name for e in entries if is_brief_name(e.name) and e.is_dir(follow_symlinks=False)
            )
        known = [name for name in names if index.knows(name)]
        self._proven.update(index.proven_many(self._root, known))
        cache = self.store.cache
        listings: dict[str, tuple[Identity, tuple[int, ...]]] | None = None
        briefs = []
        for name in names:
            if name not in self._proven:
                if listings is None:  # (only when some directory changed)
                    listings = {b: (found, versions) for b, found, versions in index.listings()}
                path = f"{self._root}/{name}"
                recorded = listings.get(name)
                if recorded is not None and cache.listing(path) is None:
                    cache.remember_listing(path, Listing(*recorded))
                if not self.store._lists_brief(name):
                    continue
            briefs.append(name)
        self._listed = set(briefs)
        return briefs

    def numbers(self, brief_id: str) -> list[int]:
        """A brief's version numbers, newest first (``store.list_version_numbers``).

        The store's read cache keeps a settled listing, so asking again costs a ``stat``.
        """
        numbers = self.store.list_version_numbers(brief_id)
        self._numbers[brief_id] = numbers
        return numbers

    # -- whole briefs ---------------------------------------------------------

    def proven_summary(self, brief_id: str) -> BriefSummary | None:
        """What ``briefs`` shows of a brief, if its directory and files prove it unchanged.

        No listing is asked for: ``briefs`` proved its versions by the
        directory's identity, as the index recorded it when it was listed.
        ``None`` when anything changed or is damaged, or ``briefs`` did not
        prove it: then ask ``numbers`` and ``summary``.
        """
        index = self.index
        proven = self._proven.pop(brief_id, None)
        if index is None or proven is None:
            return None
        self._rowed.add(brief_id)
        count, shown = proven
        latest = VersionRow(
            shown.version,
            STATUSES[shown.status],
            index.text(shown.reason),
            shown.created_us,
            shown.updated_us,
            shown.sections,
        )
        return BriefSummary(count, latest, shown.approved or None)

    def summary(self, brief_id: str, numbers: list[int]) -> BriefSummary | None:
        """What ``briefs`` shows of a brief, if the index proves every one of ``numbers`` unchanged.

        ``numbers`` are the brief's version numbers, newest first, as
        ``numbers`` gave them. ``None`` when there is no index, or any of the
        brief's files changed, was added or removed, is damaged or was not
        settled when recorded: then ask ``rows``.
        """
        index = self.index
        if index is None or not numbers:
            return None
        oldest_first = numbers[::-1]

        def complete(versions: Sequence[int], names: list[str]) -> bool:
            return list(versions) == oldest_first

        try:
            dir_fd = os.open(f"{self._root}/{brief_id}", _DIR_FLAGS)
        except OSError:
            return None
        try:
            flat = index.unchanged(brief_id, dir_fd, complete)
        finally:
            os.close(dir_fd)
        if flat is None:
            return None
        if numbers == self._numbers.get(brief_id):
            self._rowed.add(brief_id)
            index.present(brief_id, numbers)
            self._record_listing(index, brief_id, numbers)
        return _summary_of(index, flat)

    # -- version rows --------------------------------------------------------

    def rows(self, brief_id: str, numbers: list[int]) -> Iterator[VersionRow]:
        """A row for each of ``numbers`` that still exists, in that order."""
        index = self.index
        if index is None:
            yield from self._read_rows(brief_id, numbers)
            return
        if numbers == self._numbers.get(brief_id):
            self._rowed.add(brief_id)
            index.present(brief_id, numbers)
            self._record_listing(index, brief_id, numbers)
        root = f"{self._root}/{brief_id}"
        try:
            dir_fd = os.open(root, _DIR_FLAGS)
        except OSError:
            yield from self._read_rows(brief_id, numbers)
            return
        lookup, text, identity, is_file = index.lookup, index.text, _cache.identity, stat.S_ISREG
        try:
            for version in numbers:
                try:
                    info = os.stat(f"{version}.json", dir_fd=dir_fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue  # deleted since it was listed
                except OSError:
                    info = None
                record = None
                if info is not None and is_file(info.st_mode):
                    record = lookup(brief_id, version, identity(info))
                if record is not None and record[PROBLEM] == -1:
                    # The common case, inline: an unchanged valid document.
                    yield VersionRow(
                        version,
                        STATUSES[record[STATUS]],
                        text(record[REASON]),
                        record[CREATED],
                        record[UPDATED],
                        record[SECTIONS],
                    )
                    continue
                row = self._indexed_row(index, dir_fd, brief_id, version, record)
                if row is None:
                    yield from self._read_rows(brief_id, [version])
                elif row is not _GONE:
                    yield row
        finally:
            os.close(dir_fd)

    def _record_listing(self, index: ListingIndex, brief_id: str, numbers: list[int]) -> None:
        """Tell the index the listing the store gave, with the directory identity it holds for it.

        The store keeps a listing only under an identity settled when it was
        listed, and ``numbers`` proved it still true a moment ago.
        """
        if isinstance(self.store, FileStore):
            kept = self.store.cache.listing(f"{self._root}/{brief_id}")
            if kept is not None and sorted(kept.versions) == numbers[::-1]:
                index.record_dir(brief_id, kept.identity, numbers, exact=False)

    def _indexed_row(
        self, index: ListingIndex, dir_fd: int, brief_id: str, version: int, record: Record | None
    ) -> VersionRow | None:
        """The row of ``record``, else of a fresh read it records; ``None`` to ask the store."""
        name = f"{version}.json"
        if record is None:
            try:
                record = judge_file(name, brief_id, version, dir_fd=dir_fd)
            except FileNotFoundError:
                return _GONE
            if record is None:
                return None
            record = index.record(brief_id, record)
        return self._row_of(index, brief_id, version, record)

    def _row_of(
        self, index: ListingIndex, brief_id: str, version: int, record: Record
    ) -> VersionRow:
        problem = index.text(record[PROBLEM])
        if problem is not None:
            path = f"{self._root}/{brief_id}/{version}.json"
            return VersionRow(
                version, problem=describe(CorruptDocumentError(path, problem)), damaged=True
            )
        return VersionRow(
            version,
            STATUSES[record[STATUS]],
            index.text(record[REASON]),
            record[CREATED],
            record[UPDATED],
            record[SECTIONS],
        )

    def _read_rows(self, brief_id: str, numbers: list[int]) -> Iterator[VersionRow]:
        for version in numbers:
            try:
                doc = self.store.get_strategy(brief_id, version)
            except (CorruptDocumentError, OSError) as exc:
                yield VersionRow(
                    version,
                    problem=describe(exc),
                    damaged=isinstance(exc, CorruptDocumentError),
                )
                continue
            if doc is not None:  # else deleted since it was listed
                yield VersionRow.of(doc)


def _summary_of(index: ListingIndex, flat: Columns) -> BriefSummary:
    """The summary of a brief whose shown record values, oldest first, are ``flat``."""
    count = len(flat) // FIELDS
    last = (count - 1) * FIELDS
    latest = VersionRow(
        flat[last + _SHOWN_VERSION],
        STATUSES[flat[last + _SHOWN_STATUS]],
        index.text(flat[last + _SHOWN_REASON]),
        flat[last + _SHOWN_CREATED],
        flat[last + _SHOWN_UPDATED],
        flat[last + _SHOWN_SECTIONS],
    )
    statuses = flat[_SHOWN_STATUS::FIELDS]
    approved = None
    if _APPROVED_CODE in statuses:
        newest = count - 1 - statuses[::-1].index(_APPROVED_CODE)
        approved = flat[newest * FIELDS + _SHOWN_VERSION]
    return BriefSummary(count, latest, approved)


#: A version deleted since it was listed.
_GONE = VersionRow(0)
