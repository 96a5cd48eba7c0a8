"""The brief directories a writer knows durable, kept open so none can be made again unseen."""

from __future__ import annotations

import os
import threading
import weakref
from contextlib import suppress

try:
    import fcntl
except ImportError:  # Windows: the package imports, FileStore refuses to open
    fcntl = None  # type: ignore[assignment]

__all__ = ["DurableDirs"]

#: How many brief directories one process keeps open at most, over all its
#: stores, unless its descriptor limit is low: then a sixteenth of that limit.
PROCESS_LIMIT = 64


class DurableDirs:
    """Brief directories whose entry in the data directory one writer made durable.

    A durable write into a brief directory needs no fsync of the data
    directory when the directory is one remembered here and unchanged since
    the writer's own last write there: the same device and inode number,
    and the ctime that write left. Each remembered directory is kept open.
    That is what makes the inode number trustworthy: while a descriptor
    holds it, a directory removed and made again in its place gets another
    number, where on a file system whose ctime advances only once per clock
    tick (Linux before 6.13) it could otherwise get the same number and the
    same ctime within one tick. The ctime tells the rest: a directory
    renamed away and back.

    At most ``limit`` are kept (the least recently written one leaves
    first), and no more in the whole process than its share of descriptors
    (``PROCESS_LIMIT``): a directory that finds no room is not remembered,
    and the next durable write there fsyncs the data directory, as the
    first one does. ``close`` closes them all; a writer dropped unclosed has
    them closed by the collector, and a forked child closes its copies.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        # (device, inode) -> (the descriptor keeping it open, its ctime after the last write).
        self._kept: dict[tuple[int, int], tuple[int, int]] = {}
        self._guard = threading.Lock()
        self._closed = False
        self._finalizer = weakref.finalize(self, _close_all, self._kept)
        _ALL.add(self)

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{len(self._kept)} of {self.limit} kept"
        return f"DurableDirs({state})"

    def unchanged(self, info: os.stat_result) -> bool:
        """Whether ``info`` (an fstat of a brief directory) is one remembered, unchanged since.

        The kept descriptor must still be that directory: one closed behind
        the store's back (``os.closerange`` when a process daemonizes) holds
        nothing, and its number may be another file's now.
        """
        key = (info.st_dev, info.st_ino)
        kept = self._kept.get(key)
        if kept is None or kept[1] != info.st_ctime_ns:
            return False
        if _holds(kept[0], key):
            return True
        with self._guard:
            if self._kept.get(key) is kept:  # not one remembered again meanwhile
                del self._kept[key]
                _BUDGET.give_back(1)
        return False

    def remember(self, dir_fd: int, info: os.stat_result) -> None:
        """Remember the directory open as ``dir_fd`` durable as ``info`` (its fstat) shows it."""
        key = (info.st_dev, info.st_ino)
        leaving: list[tuple[tuple[int, int], int]] = []
        with self._guard:
            if self._closed:
                return
            kept = self._kept.pop(key, None)
            if kept is not None:
                self._kept[key] = (kept[0], info.st_ctime_ns)
                return
            # A full writer hands its oldest directory's place to this one;
            # any other needs a place of the process's.
            full = len(self._kept) >= self.limit
            if not full and not _BUDGET.take():
                return
            fd = _keep_open(dir_fd)
            if fd < 0:
                if not full:
                    _BUDGET.give_back(1)
                return
            if full:
                old_key = next(iter(self._kept))
                leaving.append((old_key, self._kept.pop(old_key)[0]))
            self._kept[key] = (fd, info.st_ctime_ns)
        for old_key, fd in leaving:
            _close(fd, old_key)

    def close(self) -> None:
        """Close every kept directory and remember no more."""
        with self._guard:
            self._closed = True
            self._finalizer()


class _Budget:
    """How many brief directories the process keeps open, against its limit."""

    def __init__(self) -> None:
        self.used = 0
        self.guard = threading.Lock()

    def take(self) -> bool:
        limit = _process_limit()  # the descriptor limit may have been changed since
        with self.guard:
            if self.used >= limit:
                return False
            self.used += 1
            return True

    def give_back(self, count: int) -> None:
        with self.guard:
            self.used -= count


def _process_limit() -> int:
    soft = _descriptor_limit()
    return PROCESS_LIMIT if soft is None else min(PROCESS_LIMIT, soft // 16)


def _descriptor_limit() -> int | None:
    """The process's soft limit on open descriptors; ``None`` when there is none to go by."""
    try:
        import resource  # noqa: PLC0415 - POSIX only, as FileStore is

        soft = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    except (ImportError, OSError, ValueError):
        return None
    return None if soft == resource.RLIM_INFINITY else soft


#: How a kept directory is opened: its own open file, told from any other
#: descriptor on that directory (the store's writes open theirs without
#: ``O_NONBLOCK``) by its flags, should its number be closed behind the
#: store's back and given to another.
_O_NONBLOCK: int = getattr(os, "O_NONBLOCK", 0)
_KEPT_FLAGS = (
    os.O_RDONLY
    | getattr(os, "O_DIRECTORY", 0)
    | getattr(os, "O_NOFOLLOW", 0)
    | getattr(os, "O_CLOEXEC", 0)
    | _O_NONBLOCK
)


def _keep_open(dir_fd: int) -> int:
    """A descriptor of its own on the directory open as ``dir_fd``; -1 when there is no room."""
    try:
        fd = os.open(".", _KEPT_FLAGS, dir_fd=dir_fd)
    except OSError:  # out of descriptors, or the directory removed meanwhile
        return -1
    soft = _descriptor_limit()
    if soft is not None and fd >= soft // 2:
        # Half the descriptors are in use: the process needs the rest more.
        os.close(fd)
        return -1
    return fd


def _holds(fd: int, key: tuple[int, int]) -> bool:
    """Whether ``fd`` is still a kept descriptor on the directory ``key``."""
    try:
        info = os.fstat(fd)
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    except OSError:
        return False
    return (info.st_dev, info.st_ino) == key and flags & _O_NONBLOCK != 0


def _close_all(kept: dict[tuple[int, int], tuple[int, int]]) -> None:
    items = [(key, fd) for key, (fd, _) in kept.items()]
    kept.clear()
    _BUDGET.give_back(len(items))
    for key, fd in items:
        _close(fd, key)


def _close(fd: int, key: tuple[int, int]) -> None:
    # Only a descriptor that is still the directory: its number may be
    # another file's now, if someone closed it behind the store's back.
    if _holds(fd, key):
        with suppress(OSError):
            os.close(fd)


_BUDGET = _Budget()
#: Every writer's directories in this process, for a forked child to close.
_ALL: weakref.WeakSet[DurableDirs] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # The child's only thread is the forking one: a guard another thread of
    # the parent held is never released here. The copies are closed, as the
    # lock descriptors are: a child's first durable write to a brief
    # directory fsyncs the data directory.
    _BUDGET.guard = threading.Lock()
    for dirs in list(_ALL):
        dirs._guard = threading.Lock()
        dirs._finalizer()
        dirs._finalizer = weakref.finalize(dirs, _close_all, dirs._kept)
    _BUDGET.used = 0


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
