"""``FileStore``: strategy documents as plain JSON files in a data directory.

The store is composed of the modules that each own one part of it:
``_layout`` (what the files and names must be), ``_fsio`` (the write path,
the only code that changes the disk), ``_locks`` (the brief locks) and
``_cache`` (what may be remembered between reads). This module reads, and
puts those parts together behind ``BaseStore``'s primitives.

Every write takes the brief's lock (``flock`` on its lock file, so it
excludes other threads and other processes alike), checks, then publishes
the document atomically. Reads take no lock: a document is only ever
replaced whole, so a reader sees the old bytes or the new ones.

That needs ``flock`` and POSIX file semantics, so a FileStore opens on Linux
and macOS only: elsewhere (Windows) the package imports, and ``FileStore()``
raises ``ConfigurationError`` saying why.
"""

from __future__ import annotations

import errno
import os
import shlex
import stat
import threading
import time
from collections import deque
from collections.abc import Hashable, Sequence
from contextlib import suppress
from pathlib import Path

from strategystore import _cache
from strategystore._arguments import check_brief_id
from strategystore._cache import Cached, Listing, ReadCache, copy_document
from strategystore._fsio import READ_FLAGS, Staged, StepHook, Writer, open_dir, read_all
from strategystore._layout import (
    FORMAT,
    GITATTRIBUTES,
    GITIGNORE,
    MARKER_NAME,
    NO_LINKS,
    DocumentFileError,
    MarkerError,
    decode_document_file,
    document_name,
    document_version,
    is_brief_name,
    marker_bytes,
    marker_format,
    misplacement,
    missing_lines,
)
from strategystore._locks import (
    DEFAULT_LOCK_TIMEOUT,
    BriefLock,
    BriefLocks,
    check_platform,
    check_timeout,
)
from strategystore._primitives import BulkWriter
from strategystore.errors import CorruptDocumentError, StoreFormatError, StrategyStoreError
from strategystore.models import StrategyDocument
from strategystore.store import BaseStore

__all__ = ["FileStore", "add_missing_lines"]


class FileStore(BaseStore):
    """Strategy documents as JSON files under ``data_dir``, safe across threads and processes.

    Args:
        data_dir: the data directory. A missing one, or one holding only
            dot-files (a fresh ``git init``), is initialised when ``create``.
        create: initialise the directory when needed; otherwise a missing or
            empty directory raises ``StoreFormatError``.
        durable: fsync every file and directory a write touches, so a write
            that returned survives a power cut. ``False`` still survives a
            crash of the process, and is much faster.
        lock_timeout: seconds to wait for a brief's lock before
            ``LockTimeoutError``.

    Raises:
        ConfigurationError: the platform is not Linux or macOS (Windows has
            no ``flock``); ``MemoryStore`` works everywhere.
        StoreFormatError: ``data_dir`` is not a data directory (other content
            and no marker file), or was written by a newer format.

    A store is a context manager; ``close()`` (or leaving the ``with`` block)
    ends its use.
    """

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        create: bool = True,
        durable: bool = True,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    ) -> None:
        check_platform()
        super().__init__()
        self.data_dir = Path(os.path.abspath(data_dir))
        self.durable = durable
        self.lock_timeout = check_timeout(lock_timeout)
        self._root = str(self.data_dir)
        #: Every change the store makes to the data directory goes through it.
        self.io = Writer(self.data_dir, durable=durable)
        #: The brief locks.
        self.locks = BriefLocks(self.data_dir, self.lock_timeout)
        self._open_data_dir(create=create)
        # On a case-insensitive file system the marker answers to another case too.
        self._case_insensitive = os.path.lexists(self.data_dir / MARKER_NAME.upper())
        #: What the store remembers between reads; it changes no answer, only speed.
        self.cache = ReadCache(_cache.racy_window_ns(self.data_dir))
        # Per thread, the document path its last ``_load`` found absent (see ``_write``).
        self._seen = _Seen()
        # Per brief, a document this store published there (see ``_holds_documents``).
        self._published: dict[str, str] = {}

    def __repr__(self) -> str:
        return (
            f"FileStore({str(self.data_dir)!r}, durable={self.durable!r}, "
            f"lock_timeout={self.lock_timeout!r})"
        )

    def document_path(self, brief_id: str, version: int) -> Path:
        """Where the document ``(brief_id, version)`` lives (whether or not it exists)."""
        return self.data_dir / check_brief_id(brief_id) / document_name(version)

    @property
    def on_step(self) -> StepHook | None:
        """Called with each I/O step of a write just before it runs, and the path it touches.

        The steps are ``temp-create``, ``write``, ``fsync``, ``link`` or
        ``replace``, ``dir-fsync``, ``unlink``, ``stage-sync``, ``flush`` and
        ``lock-release``. It is ``None`` unless set: tests set it to inject
        faults or crash at an exact step.
        """
        return self.io.on_step

    @on_step.setter
    def on_step(self, hook: StepHook | None) -> None:
        self.io.on_step = hook
        self.locks.on_step = hook

    def _close(self) -> None:
        self.cache = ReadCache(self.cache.racy_ns)
        self.locks.close()
        self.io.close()

    # -- opening the data directory ------------------------------------------

    def _open_data_dir(self, *, create: bool) -> None:
        root = self.data_dir
        if not root.exists():
            if not create:
                raise StoreFormatError(
                    f"{root} does not exist; create it with `strategystore --dir {root} init`"
                )
            self.io.make_data_dir()
        elif not root.is_dir():
            raise StoreFormatError(f"{root} is not a directory")
        if self._read_marker():
            return
        others = sorted(
            name for name in os.listdir(root) if not name.startswith(".") and name != MARKER_NAME
        )
        if self._read_marker():
            return  # another process finished initialising it a moment ago
        if others:
            shown = ", ".join(others[:3]) + (", …" if len(others) > 3 else "")
            raise StoreFormatError(
                f"{root} is not a strategystore data directory: it has no {MARKER_NAME} "
                f"and holds other files ({shown}); choose an empty directory"
            )
        if not create:
            raise StoreFormatError(
                f"{root} is not initialised; run `strategystore --dir {root} init`"
            )
        self._initialise()

    def _read_marker(self) -> bool:
        """Check the marker file; ``False`` when there is none."""
        path = self.data_dir / MARKER_NAME
        try:
            fd = os.open(path, READ_FLAGS)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StoreFormatError(f"{path}: cannot read the marker file ({exc.strerror})") from exc
        with os.fdopen(fd, "rb") as marker:
            if not stat.S_ISREG(os.fstat(marker.fileno()).st_mode):
                raise StoreFormatError(f"{path}: the marker is not a regular file")
            raw = marker.read()
        try:
            found = marker_format(raw, older=True)
        except MarkerError as exc:
            raise StoreFormatError(f"{path}: {exc.reason}") from exc
        if found < FORMAT:
            raise StoreFormatError(
                f"{self.data_dir} is a data directory of format {found}, older than this "
                f"strategystore reads (format {FORMAT}); convert it with "
                f"`strategystore --dir {shlex.quote(str(self.data_dir))} migrate`, which seals "
                "every version that is not a draft"
            )
        return True

    def _initialise(self) -> None:
        # The marker goes last: a directory with a marker is complete, and two
        # processes initialising at once both succeed (each publication is
        # insert-only and the loser finds the winner's identical file).
        self.locks.make_locks_dir()
        self.write_git_files()
        self.io.write_root_file(MARKER_NAME, marker_bytes(), exclusive=True)
        if not self._read_marker():  # pragma: no cover - removed by someone at once
            raise StoreFormatError(f"{self.data_dir}: the marker file vanished while initialising")

    def write_git_files(self) -> list[str]:
        """Write ``.gitignore`` and ``.gitattributes``; to the user's own, add what they lack.

        Returns:
            The names of the files written or changed.
        """
        return [
            name
            for name, wanted in ((".gitignore", GITIGNORE), (".gitattributes", GITATTRIBUTES))
            if add_missing_lines(self.io, name, wanted)
        ]

    # -- primitives: reading -------------------------------------------------

    def _load(self, brief_id: str, version: int) -> tuple[StrategyDocument, bytes] | None:
        path = f"{self._root}/{brief_id}/{version}.json"
        cache = self.cache
        seen = self._seen
        try:
            info = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            # Absent. (Through a brief directory that is a link this finds
            # nothing too; writing there is refused when the directory is opened.)
            cache.forget_document(path)
            seen.absent = path
            return None
        except OSError:
            info = None
        seen.absent = None
        cached = cache.document(path)
        if (
            cached is not None
            and info is not None
            and _cache.identity(info) == cached.identity
            # lstat followed the brief directory; it must still be no link.
            and _is_real_dir(f"{self._root}/{brief_id}")
        ):
            return copy_document(cached.doc), cached.data
        seen_at = time.time_ns()
        found = self._read_document(brief_id, version)
        if found is None:
            cache.forget_document(path)
            return None
        data, identity = found
        doc = self._decode(brief_id, version, data)
        if doc is None:
            return None
        if cache.settled(identity, seen_at):
            cache.remember_document(path, Cached(identity, doc, data))
            doc = copy_document(doc)
        return doc, data

    def _decode(self, brief_id: str, version: int, data: bytes) -> StrategyDocument | None:
        path = f"{self._root}/{brief_id}/{version}.json"
        try:
            doc = decode_document_file(data)
        except DocumentFileError as exc:
            raise CorruptDocumentError(path, exc.reason) from exc
        misplaced = misplacement(doc, brief_id, version)
        if misplaced is not None:
            if (
                self._case_insensitive
                and doc.version == version
                and doc.brief_id.lower() == brief_id.lower()
            ):
                return None  # the same brief under another case: a read finds nothing
            raise CorruptDocumentError(path, misplaced)
        return doc

    def _read_document(self, brief_id: str, version: int) -> tuple[bytes, _cache.Identity] | None:
        """The bytes of a document file and the identity they were read under."""
        dir_fd = self._open_brief_dir(brief_id)
        if dir_fd is None:
            return None
        name = document_name(version)
        try:
            fd = os.open(name, READ_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            path = self.data_dir / brief_id / name
            if exc.errno == errno.ELOOP:
                raise CorruptDocumentError(path, f"is a symbolic link; {NO_LINKS}") from exc
            raise CorruptDocumentError(path, f"cannot be read: {exc.strerror}") from exc
        finally:
            os.close(dir_fd)
        try:
            # The identity is taken before the bytes: a change made while
            # reading then shows as a different identity on the next read.
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                path = self.data_dir / brief_id / name
                raise CorruptDocumentError(path, "is not a regular file; remove it")
            return read_all(fd, info.st_size), _cache.identity(info)
        finally:
            os.close(fd)

    def _open_brief_dir(self, brief_id: str) -> int | None:
        return open_dir(self._root, brief_id)

    def _versions(self, brief_id: str) -> list[int]:
        path = f"{self._root}/{brief_id}"
        cache = self.cache
        cached = cache.listing(path)
        if cached is not None:
            try:
                unchanged = _cache.identity(os.lstat(path)) == cached.identity
            except OSError:
                unchanged = False
            if unchanged:
                return list(cached.versions)
        seen_at = time.time_ns()
        dir_fd = self._open_brief_dir(brief_id)
        if dir_fd is None:
            cache.forget_listing(path)
            return []
        try:
            identity = _cache.identity(os.fstat(dir_fd))
            names = os.listdir(dir_fd)
        finally:
            os.close(dir_fd)
        versions = [v for v in map(document_version, names) if v is not None]
        if cache.settled(identity, seen_at):
            cache.remember_listing(path, Listing(identity, tuple(versions)))
        return versions

    def _stamp(self, brief_id: str, version: int) -> Hashable:
        # Every write publishes a new file, so a rewritten document has a new
        # inode, and its identity changes.
        try:
            return _cache.identity(os.lstat(f"{self._root}/{brief_id}/{version}.json"))
        except OSError:
            return None

    def _briefs(self) -> list[str]:
        with os.scandir(self._root) as entries:
            return [
                entry.name
                for entry in entries
                if is_brief_name(entry.name)
                and entry.is_dir(follow_symlinks=False)
                and self._lists_brief(entry.name)
            ]

    def _lists_brief(self, name: str) -> bool:
        """Whether ``list_briefs`` names the directory ``name`` (a brief's name, seen as one).

        It holds a version; or it cannot be opened, and may hold versions, so
        it is listed and reading it raises. It is passed over when it became
        a link or a file since it was seen.
        """
        try:
            return bool(self._versions(name))
        except CorruptDocumentError:
            with suppress(FileNotFoundError):
                return stat.S_ISDIR(os.lstat(f"{self._root}/{name}").st_mode)
            return False

    def _case_variant(self, brief_id: str) -> str | None:
        folded = brief_id.lower()
        names = self._names_by_fold()
        if names is not None:
            # The data directory's listing is settled: only names that fold to
            # the same id can collide, and usually there is none but this one.
            candidates = [name for name in names.get(folded, ()) if name != brief_id]
        elif not self._case_insensitive and self._holds_documents(brief_id):
            # Only a directory holding a document is a brief: one left empty by
            # a failed write, or kept by a stray file, vouches for nothing.
            return None
        else:
            listed = os.listdir(self._root)
            candidates = [name for name in listed if name != brief_id and name.lower() == folded]
        for name in candidates:
            with suppress(CorruptDocumentError):
                if self._versions(name):
                    return name
        return None

    def _names_by_fold(self) -> dict[str, tuple[str, ...]] | None:
        """The data directory's entries grouped by case-folded name, if settled.

        ``None`` while the directory changed too recently for its timestamps to
        prove a later change (the racy rule); the caller then looks itself.
        """
        seen_at = time.time_ns()
        identity = _cache.identity(os.lstat(self._root))
        index = self.cache.folds(identity)
        if index is not None:
            return index
        if not self.cache.settled(identity, seen_at):
            return None
        groups: dict[str, list[str]] = {}
        for name in os.listdir(self._root):
            if not name.startswith("."):
                groups.setdefault(name.lower(), []).append(name)
        if _cache.identity(os.lstat(self._root)) != identity:
            return None  # changed while it was listed
        index = {fold: tuple(group) for fold, group in groups.items()}
        self.cache.remember_folds(identity, index)
        return index

    def _holds_documents(self, brief_id: str) -> bool:
        published = self._published.get(brief_id)
        if published is not None:
            # The document this store last published there, if still there,
            # answers in one lstat what a listing would.
            with suppress(OSError):
                os.lstat(f"{self._root}/{brief_id}/{published}")
                return True
        dir_fd = self._open_brief_dir(brief_id)
        if dir_fd is None:
            return False
        try:
            with os.scandir(dir_fd) as entries:
                # Stops at the first document, however many versions follow.
                return any(document_version(entry.name) is not None for entry in entries)
        finally:
            os.close(dir_fd)

    # -- primitives: writing and locking ---------------------------------------------

    def _write(self, doc: StrategyDocument, data: bytes, *, exclusive: bool) -> bool:
        # A write right after this thread's ``_load`` found the document absent,
        # under the lock, has nothing to keep for an undo: no backup link is tried.
        seen = self._seen
        absent = seen.absent == f"{self._root}/{doc.brief_id}/{doc.version}.json"
        seen.absent = None
        return self._publish(doc, data, exclusive=exclusive, durable=self.durable, absent=absent)

    def _publish(
        self,
        doc: StrategyDocument,
        data: bytes,
        *,
        exclusive: bool,
        durable: bool,
        staged: Staged | None = None,
        absent: bool = False,
    ) -> bool:
        self._forget(doc.brief_id, doc.version)
        name = document_name(doc.version)
        written = self.io.write_document(
            doc.brief_id,
            name,
            data,
            exclusive=exclusive,
            durable=durable,
            staged=staged,
            absent=absent,
        )
        published = self._published
        if len(published) >= _PUBLISHED_KEPT and doc.brief_id not in published:
            published.clear()  # (atomic, unlike evicting one while other threads write)
        published[doc.brief_id] = name
        return written

    def _remove(self, brief_id: str, version: int) -> None:
        self._forget(brief_id, version)
        self.io.remove_document(brief_id, document_name(version))

    def _forget(self, brief_id: str, version: int) -> None:
        """Drop what the cache holds for a document this store is about to change."""
        self.cache.forget_document(f"{self._root}/{brief_id}/{version}.json")
        self.cache.forget_listing(f"{self._root}/{brief_id}")

    def _bulk_writer(self) -> BulkWriter:
        return _StagedImport(self) if self.durable else _UnsyncedImport(self)

    def _locked(self, brief_id: str, timeout: float | None = None) -> BriefLock:
        return self.locks.hold(brief_id, timeout)


class _UnsyncedImport(BulkWriter):
    """An import's writes, each published at once and made durable together at the end."""

    def __init__(self, store: FileStore) -> None:
        super().__init__(store)
        self._files = store
        self._written: list[tuple[str, str]] = []

    def write(self, doc: StrategyDocument, data: bytes) -> None:
        self._files._publish(doc, data, exclusive=False, durable=False)
        self._written.append((doc.brief_id, document_name(doc.version)))

    def finish(self) -> None:
        self._files.io.flush(self._written)


class _StagedImport(_UnsyncedImport):
    """An import whose documents of a batch are written to temporary files first.

    Their data is made durable together (one ``syncfs`` where it can be
    trusted), before any lock is taken, so an import never publishes a name
    whose data a power cut could lose, and pays for one flush, not one per file.
    """

    def __init__(self, store: FileStore) -> None:
        super().__init__(store)
        # Per key, in the batch's order: a key may come twice in one batch.
        self._staged: dict[tuple[str, int], deque[Staged | None]] = {}

    def prepare(self, items: Sequence[tuple[StrategyDocument, bytes]]) -> None:
        io = self._files.io
        made: list[str] = []
        try:
            staged = io.stage(
                [(doc.brief_id, document_name(doc.version), data) for doc, data in items], made
            )
        except Exception:
            self._remove_if_empty(made)
            raise
        for (doc, _), token in zip(items, staged, strict=True):
            self._staged.setdefault(doc.key, deque()).append(token)

    def _remove_if_empty(self, brief_ids: list[str]) -> None:
        """Remove brief directories a failed import made, unless a writer filled them."""
        for brief_id in brief_ids:
            # Only the brief's lock makes removing its directory safe from its writers.
            with suppress(StrategyStoreError, OSError), self._files._locked(brief_id):
                self._files.io.remove_brief_dir(brief_id)

    def _next(self, doc: StrategyDocument) -> Staged | None:
        queue = self._staged.get(doc.key)
        return queue[0] if queue else None

    def _done(self, doc: StrategyDocument) -> Staged | None:
        queue = self._staged.get(doc.key)
        return queue.popleft() if queue else None

    def write(self, doc: StrategyDocument, data: bytes) -> None:
        self._files._publish(doc, data, exclusive=False, durable=False, staged=self._next(doc))
        self._done(doc)
        self._written.append((doc.brief_id, document_name(doc.version)))

    def release(self, doc: StrategyDocument) -> None:
        self._files.io.unstage([self._done(doc)], remove_dirs=True)

    def end_batch(self) -> None:
        self._files.io.unstage(token for queue in self._staged.values() for token in queue)
        self._staged.clear()


class _Seen(threading.local):
    """What one thread's last ``FileStore._load`` saw."""

    #: The document path it found absent, if it did.
    absent: str | None = None


#: How many briefs ``FileStore._published`` remembers.
_PUBLISHED_KEPT = 4096


def _is_real_dir(path: str) -> bool:
    """Whether ``path`` is a directory, not a link; ``False`` once it is gone."""
    try:
        return stat.S_ISDIR(os.lstat(path).st_mode)
    except OSError:
        return False  # removed a moment ago (its last version deleted): read afresh


def add_missing_lines(io: Writer, name: str, wanted: bytes) -> bool:
    """Write the root file ``name``, or add the lines it lacks; whether anything was written.

    A link or a file that is not regular is the user's to fix, left alone.
    """
    try:
        fd = os.open(f"{io.data_dir!s}/{name}", READ_FLAGS)
    except FileNotFoundError:  # (False when another process wrote it a moment ago)
        return io.write_root_file(name, wanted, exclusive=True)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        present = read_all(fd, 0)
    finally:
        os.close(fd)
    joined = missing_lines(present, wanted)
    if joined is None:
        return False
    return io.write_root_file(name, joined, exclusive=False)
