"""The descriptors a writing thread keeps between its writes, so that its next lock opens nothing.

Taking an unheld brief's lock the usual way opens three files (the lock
file, the data directory, the marker that is the gate) and closes them
again. A thread that writes keeps them open instead, with the lock files of
the last few briefs it wrote, and releases a lock with ``LOCK_UN`` rather
than ``close``. A kept lock file needs no second look at its mark: the open
descriptor keeps its inode from being freed, so the file at its path with
the same device and inode is the very file proved a store's own when it was
first kept. The data directory and the marker are trusted only while the
entries at their paths are the ones opened (``keys``): a directory put in
its place, or a marker rewritten by ``migrate``, ``git checkout`` or an
editor, makes the thread open everything again. A lock file a thread holds
is never closed to make room for another, however many briefs it holds.

Every flock-holding descriptor here is registered with ``_flock``, so a
forked child closes its copies; the child's thread then keeps its own.
"""

from __future__ import annotations

import os
import threading
import weakref
from contextlib import suppress

from strategystore._flock import forks, open_registered, unregister

try:
    import fcntl
except ImportError:  # Windows: FileStore refuses to open there, so no lock is ever taken
    fcntl = None  # type: ignore[assignment]

__all__ = ["KEPT_LOCK_FILES", "KeptLocks", "drop_inherited"]

#: Lock files a thread keeps open between writes, the most recently written.
KEPT_LOCK_FILES = 4


class KeptLocks:
    """One thread's kept descriptors of one data directory (see the module's docstring).

    ``guard`` is held while the owning thread uses them and while ``close``
    (from any thread) closes them, so a close never takes a descriptor from
    under a write; while locks taken through them are held (``depth``), the
    last release closes them instead.
    """

    __slots__ = (
        "__weakref__",
        "closed",
        "depth",
        "files",
        "forks",
        "gate",
        "guard",
        "held",
        "keys",
        "locks_dir",
        "root",
    )

    def __init__(self, locks_dir: int, root: int, gate: int) -> None:
        self.locks_dir = locks_dir
        self.root = root
        self.gate = gate
        #: (device, inode) of the data directory and of the marker, as opened.
        self.keys = (_key(os.fstat(root)), _key(os.fstat(gate)))
        #: The kept lock files held now: never closed to make room.
        self.held: set[int] = set()
        #: Lock file name -> (descriptor, (device, inode) proved), oldest first.
        self.files: dict[str, tuple[int, tuple[int, int]]] = {}
        #: Locks held through ``root``'s shared flock.
        self.depth = 0
        self.closed = False
        self.forks = forks()
        self.guard = threading.Lock()
        _KEPT.add(self)

    def __repr__(self) -> str:
        state = "closed" if self.closed else f"{len(self.files)} lock files, {self.depth} held"
        return f"<KeptLocks {state}>"

    @property
    def usable(self) -> bool:
        """Whether this process (not a forked child) may use them now."""
        return not self.closed and self.forks == forks()

    def keep(self, name: str, fd: int, key: tuple[int, int]) -> None:
        """Keep the proved and now held lock file ``name`` open as ``fd``, as the newest."""
        files = self.files
        old = files.pop(name, None)
        if old is not None and old[0] != fd:
            _close(old[0])
        files[name] = (fd, key)
        self.held.add(fd)
        self._trim()

    def again(self, name: str, fd: int) -> None:
        """The kept lock file ``name``, proved again and now held: the newest."""
        self.files[name] = self.files.pop(name)
        self.held.add(fd)

    def _trim(self) -> None:
        """Close the least recently written unheld lock files past the bound."""
        files = self.files
        while len(files) > KEPT_LOCK_FILES:
            unheld = next((name for name, (fd, _) in files.items() if fd not in self.held), None)
            if unheld is None:
                return  # every one held: trimmed at a release
            _close(files.pop(unheld)[0])

    def forget(self, name: str) -> None:
        """Close the kept lock file ``name``, if one is kept."""
        old = self.files.pop(name, None)
        if old is not None:
            _close(old[0])

    def release(self, fd: int) -> None:
        """Release a lock taken through these: the lock file's flock, and the shared one last."""
        with self.guard:
            self.held.discard(fd)
            try:
                fcntl.flock(fd, fcntl.LOCK_UN)
            except OSError:
                # Closing drops the flock whatever went wrong.
                self._drop_file(fd)
            self.depth -= 1
            self._trim()
            if self.depth == 0:
                try:
                    fcntl.flock(self.root, fcntl.LOCK_UN)
                except OSError:
                    self.closed = True
                if self.closed:
                    self._close_all()

    def _drop_file(self, fd: int) -> None:
        for name, (kept, _) in list(self.files.items()):
            if kept == fd:
                del self.files[name]
        _close(fd)

    def close(self) -> None:
        """Close them now, or, while a lock taken through them is held, at its release."""
        if self.forks != forks():
            return  # a forked child's copies were closed at the fork
        with self.guard:
            self.retire()

    def retire(self) -> None:
        """``close``, for the holder of ``guard``."""
        self.closed = True
        if self.depth == 0:
            self._close_all()

    def _close_all(self) -> None:
        files, self.files = self.files, {}
        self.held = set()
        for fd, _ in files.values():
            _close(fd)
        root, gate, self.root, self.gate = self.root, self.gate, -1, -1
        locks_dir, self.locks_dir = self.locks_dir, -1
        _close(root)
        _close(gate)
        if locks_dir >= 0:
            with suppress(OSError):
                os.close(locks_dir)

    def __del__(self) -> None:
        # Dropped with its thread or its store: nothing can be held through
        # them any more. Closed without the registry's guard, which the
        # collector may have interrupted a holder of.
        try:
            if self.forks == forks() and not self.closed:
                self.closed = True
                self._close_all()
        except (TypeError, AttributeError):
            pass  # at interpreter exit, with this module's names already gone


def open_kept(root: str, locks_dir: str, marker: str, dir_flags: int, read_flags: int) -> KeptLocks:
    """Open the descriptors a thread keeps for the data directory ``root``."""
    opened: list[int] = []
    try:
        opened.append(os.open(locks_dir, dir_flags))
        opened.append(open_registered(root, dir_flags))
        opened.append(open_registered(marker, read_flags))
    except BaseException:
        if opened:
            with suppress(OSError):
                os.close(opened[0])
        for fd in opened[1:]:
            _close(fd)
        raise
    return KeptLocks(*opened)


def _key(info: os.stat_result) -> tuple[int, int]:
    return info.st_dev, info.st_ino


def _close(fd: int) -> None:
    if fd >= 0 and unregister(fd):
        with suppress(OSError):
            os.close(fd)


#: Every thread's kept descriptors in this process, given up in a forked child.
_KEPT: weakref.WeakSet[KeptLocks] = weakref.WeakSet()


def drop_inherited() -> None:
    """In a forked child: forget the parent's kept descriptors (closing the unregistered one).

    The registered ones were closed with every other lock descriptor. The
    guards are not taken: another thread of the parent may have held one.
    """
    for kept in list(_KEPT):
        kept.closed = True
        kept.files = {}
        kept.root = kept.gate = -1
        locks_dir, kept.locks_dir = kept.locks_dir, -1
        if locks_dir >= 0:
            with suppress(OSError):
                os.close(locks_dir)


if hasattr(os, "register_at_fork"):
    # After _flock's own hook, which closed the registered descriptors.
    os.register_at_fork(after_in_child=drop_inherited)
