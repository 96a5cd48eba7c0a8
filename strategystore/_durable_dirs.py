"""The brief directories a writer knows durable, kept open so none can be made again unseen."""

from __future__ import annotations

import os
import threading
import weakref
from contextlib import suppress

__all__ = ["DurableDirs"]


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

    At most ``limit`` are kept, the least recently written one leaving
    first; ``close`` closes them all, and a writer dropped unclosed has them
    closed by the collector.
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
        """Whether ``info`` (an fstat of a brief directory) is one remembered, unchanged since."""
        kept = self._kept.get((info.st_dev, info.st_ino))
        return kept is not None and kept[1] == info.st_ctime_ns

    def remember(self, dir_fd: int, info: os.stat_result) -> None:
        """Remember the directory open as ``dir_fd`` durable as ``info`` (its fstat) shows it."""
        key = (info.st_dev, info.st_ino)
        leaving: list[int] = []
        with self._guard:
            if self._closed:
                return
            kept = self._kept.pop(key, None)
            if kept is None:
                while len(self._kept) >= self.limit:
                    leaving.append(self._kept.pop(next(iter(self._kept)))[0])
                try:
                    fd = os.dup(dir_fd)
                except OSError:
                    fd = -1  # out of descriptors: not remembered, so the next write fsyncs
            else:
                fd = kept[0]
            if fd >= 0:
                self._kept[key] = (fd, info.st_ctime_ns)
        for fd in leaving:
            _close(fd)

    def close(self) -> None:
        """Close every kept directory and remember no more."""
        with self._guard:
            self._closed = True
            self._finalizer()


def _close_all(kept: dict[tuple[int, int], tuple[int, int]]) -> None:
    fds = [fd for fd, _ in kept.values()]
    kept.clear()
    for fd in fds:
        _close(fd)


def _close(fd: int) -> None:
    with suppress(OSError):
        os.close(fd)


#: Every writer's directories in this process, for a forked child to unlock.
_ALL: weakref.WeakSet[DurableDirs] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    # A guard held by another thread of the parent is never released in the
    # child, whose only thread is the forking one.
    for dirs in list(_ALL):
        dirs._guard = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
