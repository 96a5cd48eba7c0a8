"""The write path of a data directory: every call that changes the file system.

A document is written in the proven order: a temporary file in the same
directory, the whole of the data, fsync, ``os.link`` (insert-only: ``EEXIST``
is the unique constraint) or ``os.replace``, fsync of the directory. When that
last fsync fails the previous state is put back, so a write that raises has
changed nothing. Nothing inside the data directory is reached through a
symbolic link: directories and files are opened with ``O_NOFOLLOW`` relative
to their parent's descriptor.

This is the one module that creates, writes, renames, links, removes or
fsyncs files (lock files aside, which ``_locks`` owns): a test that models a
power cut replaces this module's ``os`` and sees every such call.
"""

from __future__ import annotations

import errno
import itertools
import os
from collections.abc import Callable, Iterable
from contextlib import suppress
from dataclasses import dataclass
from functools import partial
from pathlib import Path

from strategystore import _syncfs
from strategystore._durable_dirs import DurableDirs
from strategystore._layout import NO_LINKS, name_document, temporary_name
from strategystore.errors import CorruptDocumentError

__all__ = [
    "DIR_FLAGS",
    "MISSING_OPEN_FLAGS",
    "O_CLOEXEC",
    "READ_FLAGS",
    "ROOT_FLAGS",
    "Staged",
    "StepHook",
    "Writer",
    "fsync_dir",
    "not_a_directory",
    "open_dir",
    "read_all",
    "write_all",
]

O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
#: The POSIX open flags this module needs that the platform lacks (Windows: all
#: three). FileStore refuses to open unless this is empty, so the 0 standing in
#: for a missing flag below is never used: it only lets the package import.
MISSING_OPEN_FLAGS = tuple(
    name for name in ("O_DIRECTORY", "O_NOFOLLOW", "O_NONBLOCK") if not hasattr(os, name)
)
_O_DIRECTORY: int = getattr(os, "O_DIRECTORY", 0)
_O_NOFOLLOW: int = getattr(os, "O_NOFOLLOW", 0)
_O_NONBLOCK: int = getattr(os, "O_NONBLOCK", 0)
#: A directory inside the data directory, never through a link.
DIR_FLAGS = os.O_RDONLY | _O_DIRECTORY | _O_NOFOLLOW | O_CLOEXEC
#: A file inside the data directory: never through a link, never blocking on a pipe.
READ_FLAGS = os.O_RDONLY | _O_NOFOLLOW | _O_NONBLOCK | O_CLOEXEC
#: The data directory itself, which may be reached through a link.
ROOT_FLAGS = os.O_RDONLY | _O_DIRECTORY | O_CLOEXEC
_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _O_NOFOLLOW | O_CLOEXEC

#: Called with the name of each I/O step just before it runs (``temp-create``,
#: ``write``, ``fsync``, ``link``/``replace``, ``dir-fsync``, ``unlink``,
#: ``stage-sync``, ``flush``, ``lock-release``) and the path it touches.
StepHook = Callable[[str, Path], None]


def read_all(fd: int, size: int = 0) -> bytes:
    """Everything left to read from ``fd``; ``size`` is how much is expected (a hint)."""
    chunks: list[bytes] = []
    while True:
        chunk = os.read(fd, max(size + 1, 65536))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd``, however many calls it takes."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def open_dir(root: str, name: str, path: Path | None = None) -> int | None:
    """A descriptor of the directory ``root/name`` (``path`` to a person); ``None`` if absent.

    ``path`` defaults to ``Path(root, name)``, built only for an error.

    Raises:
        CorruptDocumentError: it is a link, not a directory, or cannot be opened.
    """
    try:
        return os.open(f"{root}/{name}", DIR_FLAGS)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise not_a_directory(Path(root, name) if path is None else path, exc) from exc


def not_a_directory(path: Path, exc: OSError) -> CorruptDocumentError:
    """The error for a directory of the data directory that could not be opened."""
    if path.is_symlink():
        return CorruptDocumentError(path, f"is a symbolic link; {NO_LINKS}")
    if exc.errno == errno.ENOTDIR:
        return CorruptDocumentError(path, "is not a directory; move it elsewhere")
    return CorruptDocumentError(path, f"cannot be opened: {exc.strerror}")


def fsync_dir(path: Path, *, if_readable: bool = False) -> None:
    """fsync a directory; with ``if_readable``, skip one this user may not open.

    That is for directories outside the data directory, such as its parent.
    """
    try:
        _fsync(path, ROOT_FLAGS)
    except PermissionError:
        if not if_readable:
            raise


def _fsync(path: str | Path, flags: int) -> None:
    """fsync the file or directory at ``path``; an error names it."""
    fd = os.open(path, flags)
    try:
        os.fsync(fd)
    except OSError as exc:
        exc.filename = str(path)
        raise
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Staged:
    """A document's data, written durably to a temporary file beside its name."""

    brief_id: str
    temporary: str


class Writer:
    """Every change a ``FileStore`` makes to its data directory.

    Args:
        data_dir: the data directory (absolute).
        durable: fsync what each write touches, so it survives a power cut.

    ``on_step`` is a seam for tests: set to a ``StepHook``, it is called just
    before each I/O step, to inject a fault or crash at an exact one.
    """

    on_step: StepHook | None = None

    def __init__(self, data_dir: Path, *, durable: bool) -> None:
        self.data_dir = data_dir
        self.durable = durable
        self._root = str(data_dir)
        # Whether the data directory's own entry in its parent is known durable.
        self.root_durable = False
        # Brief directories whose entry this writer made durable.
        self._durable_dirs = DurableDirs(_DURABLE_DIRS_KEPT)

    def __repr__(self) -> str:
        return f"Writer({str(self.data_dir)!r}, durable={self.durable!r})"

    def close(self) -> None:
        """Close the brief directories this writer keeps open."""
        self._durable_dirs.close()

    def _step(self, step: str, where: str | Path, name: str | None = None) -> None:
        # The path is built only for a hook: a write makes half a dozen steps,
        # and a Path each would cost it more than several of its system calls.
        if (hook := self.on_step) is not None:
            hook(step, Path(where) if name is None else Path(where, name))

    # -- the data directory ----------------------------------------------------

    def make_data_dir(self) -> None:
        """Make the data directory and its missing parents, durably when ``durable``."""
        missing = []
        ancestor = self.data_dir
        while not ancestor.exists():
            missing.append(ancestor)
            ancestor = ancestor.parent
        self.data_dir.mkdir(parents=True, exist_ok=True)
        if self.durable:
            # A new directory is durable once its entry in its parent is.
            for created in reversed(missing):
                fsync_dir(created.parent)
            self.root_durable = True

    def write_root_file(self, name: str, data: bytes, *, exclusive: bool) -> bool:
        """Write a file of the data directory itself (the marker, ``.gitignore``).

        With ``exclusive`` a file already there is kept as it is, and ``False``
        is returned.
        """
        root_fd = os.open(self._root, ROOT_FLAGS)
        try:
            written = self.publish(
                root_fd, self._root, name, data, exclusive=exclusive, durable=self.durable
            )
            if not written and self.durable:
                # Another process wrote it a moment ago: durable once this is.
                os.fsync(root_fd)
        finally:
            os.close(root_fd)
        return written

    # -- documents ---------------------------------------------------------------

    def write_document(
        self,
        brief_id: str,
        name: str,
        data: bytes,
        *,
        exclusive: bool,
        durable: bool,
        staged: Staged | None = None,
        absent: bool = False,
    ) -> bool:
        """Write ``data`` as ``<brief_id>/<name>`` atomically; ``False`` if ``exclusive`` found it.

        With ``durable`` the document, its directory and every directory on
        its path are durable when this returns; otherwise only the data is,
        until ``flush``. ``staged`` is the data already written by ``stage``;
        ``absent``: the caller, holding the lock, found no ``name`` (see ``publish``).
        """
        dir_fd = self.open_brief_dir(brief_id, make=True, durable=durable)
        assert dir_fd is not None
        where = f"{self._root}/{brief_id}"
        try:
            # Only a durable write makes the directories above durable, from
            # how they are now: judged before its first fsync, which it sleeps in.
            known = durable and self._durable_dirs.unchanged(os.fstat(dir_fd))
            return self.publish(
                dir_fd,
                where,
                name,
                data,
                exclusive=exclusive,
                durable=durable,
                staged=self._still_staged(dir_fd, staged),
                absent=absent,
                then=partial(self._make_path_durable, dir_fd, known) if durable else None,
            )
        except OSError as exc:
            name_document(exc, where, name)
            raise
        finally:
            os.close(dir_fd)

    def remove_document(self, brief_id: str, name: str) -> None:
        """Remove ``<brief_id>/<name>``, and the brief directory when nothing else is left."""
        where = f"{self._root}/{brief_id}"
        try:
            self._remove_document(brief_id, name)
        except OSError as exc:
            name_document(exc, where, name)
            raise

    def _remove_document(self, brief_id: str, name: str) -> None:
        dir_fd = self.open_brief_dir(brief_id)
        if dir_fd is None:  # pragma: no cover - read under the same lock a moment ago
            return
        try:
            self._step("unlink", f"{self._root}/{brief_id}", name)
            if not self.durable:
                os.unlink(name, dir_fd=dir_fd)
            else:
                # Moved aside rather than unlinked, so a failed directory fsync
                # can put the document back: a delete that raises deletes nothing.
                aside = self._temporary_name(name)
                os.rename(name, aside, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                try:
                    self._step("dir-fsync", f"{self._root}/{brief_id}")
                    os.fsync(dir_fd)
                except OSError:
                    _restore(dir_fd, name, aside)
                    raise
                with suppress(OSError):
                    os.unlink(aside, dir_fd=dir_fd)
            left = os.listdir(dir_fd)
        finally:
            os.close(dir_fd)
        if not left:
            # Other files (a stale temporary, notes.md) keep the directory;
            # without documents it is no brief either way.
            try:
                os.rmdir(self.data_dir / brief_id)
            except OSError:
                return  # someone put a file there meanwhile: it stays, as no brief
            if self.durable:
                fsync_dir(self.data_dir)

    def remove_brief_dir(self, brief_id: str) -> None:
        """Remove the brief's directory if it is empty; the caller holds the brief's lock."""
        with suppress(OSError):
            os.rmdir(f"{self._root}/{brief_id}")

    def open_brief_dir(
        self,
        brief_id: str,
        *,
        make: bool = False,
        durable: bool = False,
        made: list[str] | None = None,
    ) -> int | None:
        """A descriptor of the brief's directory; with ``make``, made if missing.

        A directory this makes is named in ``made``, and with ``durable`` its
        entry is made durable.
        """
        dir_fd = open_dir(self._root, brief_id)
        if dir_fd is not None or not make:
            return dir_fd
        created = False
        with suppress(FileExistsError):
            os.mkdir(f"{self._root}/{brief_id}")
            created = True
            if made is not None:
                made.append(brief_id)
        dir_fd = open_dir(self._root, brief_id)
        if dir_fd is None:  # pragma: no cover - removed again at once by someone else
            raise CorruptDocumentError(self.data_dir / brief_id, "vanished while being created")
        if created and durable:
            # Opened first: what the fsync makes durable is the directory remembered.
            try:
                fsync_dir(self.data_dir)
            except BaseException:
                os.close(dir_fd)
                raise
            self._durable_dirs.remember(dir_fd, os.fstat(dir_fd))
        return dir_fd

    def _make_path_durable(self, dir_fd: int, known: bool, after: os.stat_result) -> None:
        """Make the brief directory's entry durable, and the data directory's, when not known to be.

        Whoever made them, and however (an import that failed part-way, a
        process that crashed, a store with ``durable=False``), a durable write
        returns only once every directory on its path is on disk too. A writer
        remembers each brief directory it made durable, kept open, with the
        ctime its own last write left there (``DurableDirs``): a directory
        nobody else touched since (the usual case, one writer per brief)
        needs no fsync of the data directory; one changed by anyone else, or
        removed and made again, gets one.
        """
        if not known:
            if not self.root_durable:
                fsync_dir(self.data_dir.parent, if_readable=True)
                self.root_durable = True
            fsync_dir(self.data_dir)
        self._durable_dirs.remember(dir_fd, after)

    # -- imports: staging and flushing -----------------------------------------------

    def stage(self, items: list[tuple[str, str, bytes]], made: list[str]) -> list[Staged | None]:
        """Write each ``(brief_id, name, data)`` to a temporary file, all durable together.

        A ``None`` is for a document to be written the plain way when its
        turn comes. Brief directories this makes are added to ``made``; on
        failure nothing staged is left behind, and removing those directories
        (under their briefs' locks) is the caller's.
        """
        staged: list[Staged | None] = []
        try:
            for brief_id, name, data in items:
                staged.append(self._stage_one(brief_id, name, data, made))
            if any(staged):
                self._step("stage-sync", self.data_dir)
                if not _syncfs.syncfs(self._root):
                    for token in staged:
                        if token is not None:
                            path = f"{self._root}/{token.brief_id}/{token.temporary}"
                            _fsync(path, READ_FLAGS)
        except BaseException:
            self.unstage(staged)
            raise
        return staged

    def _stage_one(self, brief_id: str, name: str, data: bytes, made: list[str]) -> Staged | None:
        try:
            dir_fd = self.open_brief_dir(brief_id, make=True, made=made)
        except CorruptDocumentError:
            return None  # refused when its turn comes, under the lock
        assert dir_fd is not None
        where = f"{self._root}/{brief_id}"
        try:
            return Staged(brief_id, self.write_temporary(dir_fd, where, name, data, sync=False))
        except FileNotFoundError:
            return None  # its last version was deleted just now: written the plain way
        except OSError as exc:
            name_document(exc, where, name)
            raise
        finally:
            os.close(dir_fd)

    def unstage(self, staged: Iterable[Staged | None], *, remove_dirs: bool = False) -> None:
        """Discard staged copies not written, with ``remove_dirs`` their emptied directories too.

        A brief directory made only to stage a refused document would
        otherwise stay behind, empty; only the brief's lock makes removing it
        safe from its writers, so ``remove_dirs`` is for a caller holding it.
        """
        for token in staged:
            if token is None:
                continue
            with suppress(OSError):
                os.unlink(f"{self._root}/{token.brief_id}/{token.temporary}")
            if remove_dirs:
                self.remove_brief_dir(token.brief_id)

    @staticmethod
    def _still_staged(dir_fd: int, staged: Staged | None) -> str | None:
        """The staged temporary file's name, unless someone removed it by hand."""
        if staged is None:
            return None
        try:
            os.lstat(staged.temporary, dir_fd=dir_fd)
        except FileNotFoundError:
            return None  # written afresh instead
        return staged.temporary

    def flush(self, keys: list[tuple[str, str]]) -> None:
        """Make durable the documents ``(brief_id, name)`` written with ``durable=False``."""
        if not self.durable or not keys:
            return
        self._step("flush", self.data_dir)
        if _syncfs.syncfs(self._root):
            return
        # Files first, then each directory once: a name is only durable once
        # the data it points to is.
        for brief_id, name in keys:
            with suppress(FileNotFoundError):
                _fsync(self.data_dir / brief_id / name, READ_FLAGS)
        for brief_id in dict.fromkeys(brief_id for brief_id, _ in keys):
            with suppress(FileNotFoundError):
                fsync_dir(self.data_dir / brief_id)
        fsync_dir(self.data_dir)

    # -- publishing ----------------------------------------------------------------

    def publish(
        self,
        dir_fd: int,
        where: str,
        name: str,
        data: bytes,
        *,
        exclusive: bool,
        durable: bool,
        staged: str | None = None,
        then: Callable[[os.stat_result], None] | None = None,
        absent: bool = False,
    ) -> bool:
        """Write ``data`` to ``name`` in the directory ``dir_fd`` (at ``where``) atomically.

        Returns ``False``, changing nothing, when ``exclusive`` finds ``name``
        there. ``staged`` names a temporary file already holding ``data``
        durably; ``then(fstat of the directory)`` runs after the directory fsync
        (the fstat before it), undone like it on failure (the directories above).
        ``absent``: the caller found no ``name`` under the lock, so no backup
        link is tried (an undo then removes ``name``).
        """
        # Even a write made durable later (an import) has its data durable
        # before its name is published: a name can reach the disk before the
        # data it points to, and an empty document is a corrupt one.
        temp = staged or self.write_temporary(
            dir_fd, where, name, data, sync=durable or self.durable
        )
        backup: str | None = None
        published = renamed = False
        try:
            try:
                if not exclusive:
                    if durable and not absent:
                        backup = self._keep(dir_fd, name)
                    self._step("replace", where, name)
                    os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                    renamed = published = True
                else:
                    self._step("link", where, name)
                    try:
                        os.link(
                            temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False
                        )
                        published = True
                    except FileExistsError:
                        return False
            finally:
                if not renamed:
                    # After a link the temporary name is redundant; after a failure
                    # it must not outlive the write.
                    with suppress(OSError):
                        os.unlink(temp, dir_fd=dir_fd)
            if durable:
                try:
                    published_as = None if then is None else os.fstat(dir_fd)
                    self._step("dir-fsync", where)
                    os.fsync(dir_fd)
                    if then is not None and published_as is not None:
                        then(published_as)
                except OSError:
                    if published:
                        _restore(dir_fd, name, backup)
                        backup = None
                    raise
        finally:
            if backup is not None:
                with suppress(OSError):
                    os.unlink(backup, dir_fd=dir_fd)
        return True

    def write_temporary(
        self, dir_fd: int, where: str, name: str, data: bytes, *, sync: bool
    ) -> str:
        """A new temporary file beside ``name``, holding ``data``; returns its name."""
        while True:
            temp = self._temporary_name(name)
            self._step("temp-create", where, temp)
            try:
                fd = os.open(temp, _CREATE_FLAGS, 0o666, dir_fd=dir_fd)
                break
            except FileExistsError:
                continue  # left by a crashed process that had this pid
        try:
            try:
                self._step("write", where, temp)
                write_all(fd, data)
                if sync:
                    self._step("fsync", where, temp)
                    os.fsync(fd)
            finally:
                os.close(fd)
        except BaseException:
            with suppress(OSError):
                os.unlink(temp, dir_fd=dir_fd)
            raise
        return temp

    def _keep(self, dir_fd: int, name: str) -> str | None:
        """Hard-link ``name`` to a temporary name, so that replacing it can be undone."""
        while True:
            backup = self._temporary_name(name)
            try:
                os.link(name, backup, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                return None
            except FileExistsError:
                continue  # left by a crashed process that had this pid
            return backup

    @staticmethod
    def _temporary_name(name: str) -> str:
        return temporary_name(name, _PID[0], next(_TEMP_NUMBERS))


#: How many brief directories a writer remembers as durable, each kept open.
_DURABLE_DIRS_KEPT = 32
#: Numbers temporary files apart within a process; O_EXCL settles the rest.
_TEMP_NUMBERS = itertools.count()
_PID = [os.getpid()]
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _PID.__setitem__(0, os.getpid()))


def _restore(dir_fd: int, name: str, backup: str | None) -> None:
    """Put back what ``name`` was before it was published: ``backup``, or nothing."""
    with suppress(OSError):
        if backup is None:
            os.unlink(name, dir_fd=dir_fd)
        else:
            os.replace(backup, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
