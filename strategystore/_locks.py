"""Brief locks: making lock files, proving one a store's own, and holding them.

A lock is an exclusive ``flock`` on a file (``_flock`` takes it with a
timeout and keeps it from forked children); ``_lockmark`` marks a lock file
as a store's own, which tells it from a copy, a new file or another brief's
lock file put in its place by hand.
"""

from __future__ import annotations

import errno
import itertools
import os
import stat
import sys
import threading
import time
import weakref
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from strategystore._flock import (
    acquire,
    close_lock,
    close_locks,
    forks,
    open_registered,
    time_left,
)
from strategystore._fsio import (
    DIR_FLAGS,
    MISSING_OPEN_FLAGS,
    READ_FLAGS,
    ROOT_FLAGS,
    not_a_directory,
)
from strategystore._kept import KeptLocks, open_kept
from strategystore._layout import (
    LOCKS_DIR,
    MARKER_NAME,
    NO_LINKS,
    lock_name,
    temporary_name,
)
from strategystore._lockmark import generation, is_lock_at, is_marked, mark
from strategystore.errors import ConfigurationError, CorruptDocumentError, LockTimeoutError

try:
    import fcntl
except ImportError:  # Windows: FileStore refuses to open there, so no lock is ever taken
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "DEFAULT_LOCK_TIMEOUT",
    "GATE_SLICE",
    "BriefLock",
    "BriefLocks",
    "acquire",
    "check_platform",
    "check_timeout",
    "generation",
    "is_lock_at",
    "is_marked",
    "mark",
]


#: Seconds a writer waits for a brief's lock unless told otherwise.
DEFAULT_LOCK_TIMEOUT = 10.0
_LOCK_EX = fcntl.LOCK_EX if fcntl is not None else 0
#: A lock file: read and written, never through a link, never blocking on a pipe.
_LOCK_FILE_FLAGS = READ_FLAGS | os.O_RDWR  # (O_RDONLY is 0)
_CREATE_NEW = os.O_CREAT | os.O_EXCL


def check_platform() -> None:
    """Refuse, saying why, a platform where a data directory cannot be kept safely.

    Raises:
        ConfigurationError: no ``flock`` (Windows), or no ``O_NOFOLLOW`` and
            the other POSIX open flags the write path relies on.
    """
    if fcntl is not None and not MISSING_OPEN_FLAGS:
        return
    platform = "Windows" if sys.platform == "win32" else f"this Python ({sys.platform})"
    raise ConfigurationError(
        f"FileStore needs Linux or macOS: it takes brief locks with flock, which {platform} "
        "lacks, and relies on POSIX rename and link semantics and on fsync of directories; "
        "use MemoryStore (open_store('memory')) here"
    )


def check_timeout(value: object) -> float:
    """``value`` as a lock timeout in seconds, or ``ValueError`` saying what it must be."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"lock_timeout must be a number of seconds >= 0, not {value!r}")
    return float(value)


class BriefLocks:
    """The brief locks of one data directory: ``.locks/<brief>.lock``.

    Args:
        data_dir: the data directory (absolute).
        timeout: seconds to wait for a lock before ``LockTimeoutError``.

    Raises:
        ConfigurationError: the platform has no ``flock`` (see ``check_platform``).

    A lock is re-entrant within a thread: ``hold`` of a brief this thread
    holds already (under any case of its id) holds at once, so a store's
    methods may call each other under the lock. It does not pass to a forked
    child, whose copies of the descriptors are closed.
    """

    #: Called as ``on_step("lock-release", path)`` before a lock is released (a test seam).
    on_step: Callable[[str, Path], None] | None = None

    def __init__(self, data_dir: Path, timeout: float) -> None:
        # Every user of a data directory (the store, check, resolve, migrate)
        # takes these locks, so refusing here covers them all.
        check_platform()
        self.data_dir = data_dir
        self.timeout = timeout
        self._root = str(data_dir)
        self._marker = f"{self._root}/{MARKER_NAME}"
        self._held = threading.local()
        #: Every thread's kept descriptors, for ``close``.
        self._kept: weakref.WeakSet[KeptLocks] = weakref.WeakSet()
        self._kept_guard = threading.Lock()
        self._guard_forks = forks()
        self._closed = False

    def __repr__(self) -> str:
        return f"BriefLocks({self._root!r}, timeout={self.timeout!r})"

    def hold(self, brief_id: str, timeout: float | None = None) -> BriefLock:
        """A context manager holding the brief's lock; ``timeout`` overrides the default."""
        return BriefLock(self, lock_name(brief_id), timeout)

    def _depths(self) -> dict[str, tuple[int, int]]:
        """This thread's held locks: name -> (depth, the forks() it was taken at)."""
        depths: dict[str, tuple[int, int]] | None = getattr(self._held, "depths", None)
        if depths is None:
            depths = self._held.depths = {}
        return depths

    def take(self, name: str, timeout: float | None = None) -> tuple[int, int | KeptLocks]:
        """Hold ``.locks/<name>``; returns its descriptor and the data directory's.

        Taken through the thread's kept descriptors, the second is those,
        and the lock is given back with their ``release``.

        Lock files hold no data, so anyone may remove them (``git clean -X``
        removes all of ``.locks/``), even while a writer holds one: a writer
        that then created a new file and locked it would not exclude the one
        still holding the old. So a lock counts only once it is proven to be
        the file at its path, made by a store (it holds its own device and
        inode), and that proof is kept true for as long as it is held: each
        holder also holds a shared ``flock`` on the data directory, and a lock
        file is only ever made (or a stray one adopted) under an exclusive one.
        Neither is taken while waiting for the other, and a gate on the marker
        file holds new holders back while a writer waits for the exclusive
        lock, so that wait ends with the critical sections already begun.
        """
        path = f"{self._root}/{LOCKS_DIR}/{name}"
        held = self._take_at_once(name, path)
        if held is not None:
            return held
        deadline = time.monotonic() + (self.timeout if timeout is None else timeout)
        while True:
            fd, made = self._open_lock_file(name, deadline)
            # On False or an exception, acquire has disposed of the descriptor.
            if not acquire(fd, time_left(deadline), path):
                raise self._timed_out(name)
            try:
                self._pass_gate(name, deadline)
                root_fd = open_registered(self._root, ROOT_FLAGS)
                shared = acquire(root_fd, time_left(deadline), self._root, fcntl.LOCK_SH)
            except BaseException:
                close_lock(fd)  # interrupted (Ctrl-C), or timed out, holding the brief's lock
                raise
            if not shared:
                close_lock(fd)
                raise self._timed_out(name)
            try:
                if is_lock_at(fd, path, name, made):
                    return fd, root_fd
            except BaseException:
                close_lock(fd)
                close_lock(root_fd)
                raise
            # Removed or replaced while this writer waited for it: lock the
            # file that is there now.
            close_lock(fd)
            close_lock(root_fd)

    def _take_at_once(self, name: str, path: str) -> tuple[int, KeptLocks] | None:
        """``take`` when nothing stands in the way, through this thread's kept descriptors.

        ``None`` when the lock file is missing, stray or held, the gate is
        closed, or anything else is not as usual: ``take`` then goes the way
        that waits, makes, adopts and says what is wrong.
        """
        try:
            kept = self._kept_locks()
        except OSError:
            return None
        with kept.guard:
            if not kept.usable:
                return None
            entry = kept.files.get(name)
            fd = -1 if entry is None else entry[0]
            depth = kept.depth
            locked = shared = False
            try:
                if fd < 0:
                    fd = open_registered(name, _LOCK_FILE_FLAGS, dir_fd=kept.locks_dir)
                fcntl.flock(fd, _LOCK_EX | fcntl.LOCK_NB)
                locked = True
                fcntl.flock(kept.gate, fcntl.LOCK_SH | fcntl.LOCK_NB)
                fcntl.flock(kept.gate, fcntl.LOCK_UN)
                if depth == 0:
                    fcntl.flock(kept.root, fcntl.LOCK_SH | fcntl.LOCK_NB)
                kept.depth = depth + 1
                shared = True
                # The shared lock is on the data directory at the path only
                # while the kept one is it, and the gate is the marker there.
                if (_key(os.stat(self._root)), _key(os.lstat(self._marker))) != kept.keys:
                    raise OSError(errno.ESTALE, "the data directory or its marker was replaced")
                there = os.lstat(path)
                key = (there.st_dev, there.st_ino)
                if entry is not None and entry[1] == key:
                    kept.again(name, fd)
                    return fd, kept
                held = os.fstat(fd)
                if (
                    (held.st_dev, held.st_ino) == key
                    and stat.S_ISREG(held.st_mode)
                    and is_marked(fd, name, held, generation(fd, held))
                ):
                    kept.keep(name, fd, key)
                    return fd, kept
            except BlockingIOError:
                _give_back(kept, name, fd, entry is not None, locked=locked, shared=shared)
                return None  # held: what is kept is still as it was
            except OSError:
                pass
            except BaseException:
                # An interrupt (Ctrl-C, a signal handler) may land between any
                # flock and the flag after it: undo every one, whatever the flags.
                _give_back_interrupted(kept, name, fd, entry is not None, depth)
                raise
            _give_back(kept, name, fd, entry is not None, locked=locked, shared=shared)
            # .locks/ or a lock file may have been removed or replaced: the
            # next write opens everything again.
            kept.forget(name)
            kept.retire()
        self._held.kept = None
        return None

    def _kept_locks(self) -> KeptLocks:
        """This thread's kept descriptors (see ``_kept``), opened at its first write.

        A lock file opened in a ``.locks/`` since removed or moved aside is
        not the one at its path, so the proof fails and they are dropped.
        """
        kept: KeptLocks | None = getattr(self._held, "kept", None)
        if kept is None or not kept.usable:
            if self._guard_forks != forks():
                # A forked child: another thread of the parent may have held
                # the guard at the fork, and no thread here will release it.
                self._kept_guard, self._guard_forks = threading.Lock(), forks()
            with self._kept_guard:
                if self._closed:
                    # A write still under way as the store closed: it takes
                    # the lock the way that keeps nothing open.
                    raise OSError(errno.EBADF, "the locks are closed")
                kept = open_kept(
                    self._root,
                    f"{self._root}/{LOCKS_DIR}",
                    self._marker,
                    dir_flags=DIR_FLAGS,
                    read_flags=READ_FLAGS,
                )
                self._kept.add(kept)
            self._held.kept = kept
        return kept

    def close(self) -> None:
        """Close the descriptors that threads keep between writes.

        Those a held lock was taken through close at its release. A later
        write opens its thread's again.
        """
        with self._kept_guard:
            self._closed = True
            kept = list(self._kept)
        for each in kept:
            each.close()

    def _timed_out(self, name: str) -> LockTimeoutError:
        return LockTimeoutError(self.data_dir / LOCKS_DIR / name, self.timeout)

    def _pass_gate(self, name: str, deadline: float) -> None:
        """Wait while a writer is making a lock file (it holds the gate exclusively)."""
        gate = self._open_gate()
        if gate is None:
            return
        if not acquire(gate, time_left(deadline), self._marker, fcntl.LOCK_SH):
            raise self._timed_out(name)
        close_lock(gate)

    def _open_gate(self) -> int | None:
        """A descriptor of the marker file, the gate; ``None`` if it cannot be opened."""
        try:
            return open_registered(self._marker, READ_FLAGS)
        except OSError:
            return None  # the gate only makes waits fair; the data directory's lock is the proof

    def _open_lock_file(self, name: str, deadline: float) -> tuple[int, str]:
        """Open a brief's lock file, making it (and ``.locks/``) when it is missing or stray.

        Returns its descriptor and the generation of its inode.
        """
        try:
            fd, info = self._open_in_locks(name, create=False)
        except (FileNotFoundError, PermissionError):
            pass  # missing, or another user's that this one may not write: make its own
        else:
            try:
                made = generation(fd, info)
                if is_marked(fd, name, info, made):
                    return fd, made
            except BaseException:
                close_lock(fd)
                raise
            close_lock(fd)  # made by hand (touched, copied back): adopt it first
        while True:
            opened = self._make_lock_file(name, deadline)
            if opened is not None:
                return opened
            if time_left(deadline) <= 0:
                raise self._timed_out(name)
            # A holder is slow (a long fsync, a stopped process): open the
            # gate for as long again, so writers of other briefs go on.
            time.sleep(min(GATE_SLICE, time_left(deadline)))

    def _make_lock_file(self, name: str, deadline: float) -> tuple[int, str] | None:
        """Make (or adopt) the lock file under the exclusive lock; ``None`` if a slice ran out.

        The gate stays closed for at most ``GATE_SLICE`` seconds: writers in
        flight have finished by then unless one is stuck, and one stuck
        writer must not hold up the writers of every other brief.
        """
        gate = self._open_gate()
        # On False or an exception the descriptor is no longer this thread's.
        if gate is not None and not acquire(gate, time_left(deadline), self._marker):
            raise self._timed_out(name)
        try:
            root_fd = open_registered(self._root, ROOT_FLAGS)
            # Exclusive: no writer is between proving its lock file and
            # releasing it, so none can be holding a file this replaces.
            if not acquire(root_fd, min(time_left(deadline), GATE_SLICE), self._root):
                return None
            try:
                # None: another user's lock file, which this one may open but
                # not give a time (only its owner may), or may not write at all.
                return self._mark_in_place(name) or self._replace_lock_file(name)
            finally:
                close_lock(root_fd)
        finally:
            if gate is not None:
                close_lock(gate)

    def _mark_in_place(self, name: str) -> tuple[int, str] | None:
        """Open (making it if missing) and mark ``.locks/<name>``; its descriptor and generation.

        ``None`` when this user may not write the file or give it a time.
        """
        while True:
            self.make_locks_dir()
            try:
                fd = self._open_in_locks(name, create=True)[0]
                break
            except FileNotFoundError:
                continue  # .locks/ removed again at once
            except PermissionError:
                return None
        try:
            return fd, mark(fd, name)
        except PermissionError:
            close_lock(fd)
            return None
        except ConfigurationError as exc:
            close_lock(fd)
            raise ConfigurationError(f"{self.data_dir / LOCKS_DIR}/{exc}") from None
        except BaseException:
            close_lock(fd)
            raise

    def _replace_lock_file(self, name: str) -> tuple[int, str] | None:
        """Put this user's own lock file in place of ``.locks/<name>``; its descriptor, generation.

        Only under the data directory's exclusive lock: nobody holds the file it
        replaces. ``None`` when ``.locks/`` was removed meanwhile.

        Raises:
            PermissionError: ``.locks/`` does not let this user replace the
                file (it is not writable, or has the sticky bit).
        """
        path = f"{self._root}/{LOCKS_DIR}/{name}"
        try:
            dir_fd = os.open(f"{self._root}/{LOCKS_DIR}", DIR_FLAGS)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise not_a_directory(self.data_dir / LOCKS_DIR, exc) from exc
        fd = -1
        try:
            while True:
                temp = temporary_name(name, os.getpid(), next(_TEMP_NUMBERS))
                try:
                    fd = open_registered(temp, _LOCK_FILE_FLAGS | _CREATE_NEW, dir_fd=dir_fd)
                    break
                except FileExistsError:
                    continue  # left by a crashed process that had this pid
            made = mark(fd, name)
            os.rename(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except FileNotFoundError:
            # .locks/ removed meanwhile (``git clean -X``): the caller makes it again.
            close_locks(fd)
            return None
        except PermissionError as exc:
            close_locks(fd)
            with suppress(OSError):
                os.unlink(temp, dir_fd=dir_fd)
            raise PermissionError(
                exc.errno,
                "this user may not make this lock file, nor mark one another user made "
                "(only a file's owner may give it a time), nor replace it; let every user "
                "of the data directory write .locks/ (one group, umask 002, no sticky bit)",
                path,
            ) from exc
        except BaseException:
            close_locks(fd)
            with suppress(OSError):
                os.unlink(temp, dir_fd=dir_fd)
            raise
        finally:
            os.close(dir_fd)
        return fd, made

    def make_locks_dir(self) -> None:
        """Make ``.locks/`` if it is missing."""
        with suppress(FileExistsError):
            os.mkdir(f"{self._root}/{LOCKS_DIR}")

    def _open_in_locks(self, name: str, *, create: bool) -> tuple[int, os.stat_result]:
        """Open ``.locks/<name>`` without following a link; registered for fork.

        Returns the descriptor and what ``fstat`` says of it.
        """
        path = f"{self._root}/{LOCKS_DIR}/{name}"
        try:
            dir_fd = os.open(f"{self._root}/{LOCKS_DIR}", DIR_FLAGS)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise not_a_directory(self.data_dir / LOCKS_DIR, exc) from exc
        try:
            flags = _LOCK_FILE_FLAGS | (os.O_CREAT if create else 0)
            fd = open_registered(name, flags, dir_fd=dir_fd)
        except FileNotFoundError:
            raise
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise CorruptDocumentError(path, f"is a symbolic link; {NO_LINKS}") from exc
            exc.filename = path
            raise
        finally:
            os.close(dir_fd)
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            close_lock(fd)
            raise CorruptDocumentError(path, "is not a regular file; remove it")
        return fd, info


class BriefLock:
    """A brief's lock held for a ``with`` block (see ``BriefLocks.take``)."""

    __slots__ = ("_fds", "_forks", "_locks", "_name", "_nested", "_timeout")

    def __init__(self, locks: BriefLocks, name: str, timeout: float | None) -> None:
        self._locks = locks
        self._name = name
        self._timeout = timeout
        self._fds: tuple[int, int | KeptLocks] = (-1, -1)
        self._nested = False
        self._forks = -1

    def __repr__(self) -> str:
        return f"<BriefLock {self._name!r} of {self._locks._root!r}>"

    def __enter__(self) -> None:
        depths = self._locks._depths()
        self._forks = forks()
        held = depths.get(self._name)
        if held is not None and held[1] == self._forks:
            depths[self._name] = (held[0] + 1, held[1])
            self._nested = True
            return
        self._fds = self._locks.take(self._name, self._timeout)
        depths[self._name] = (1, self._forks)

    def __exit__(self, *exc_info: object) -> None:
        if self._forks != forks():
            # Entered before a fork, left in the child: the child holds
            # nothing of it (its copies were closed at the fork), and these
            # descriptor numbers may be the child's own locks by now.
            return
        depths = self._locks._depths()
        if self._nested:
            depth, taken = depths[self._name]
            depths[self._name] = (depth - 1, taken)
            return
        depths.pop(self._name, None)
        # The write is complete by now, and closing the descriptor drops the
        # flock even when close reports an error: neither may leave the brief
        # locked or make a finished write look failed.
        try:
            hook = self._locks.on_step
            if hook is not None:
                with suppress(OSError):
                    hook("lock-release", self._locks.data_dir / LOCKS_DIR / self._name)
        finally:
            fd, root = self._fds
            if isinstance(root, KeptLocks):
                root.release(fd)
            else:
                try:
                    close_lock(fd)
                finally:
                    close_lock(root)


def _give_back_interrupted(kept: KeptLocks, name: str, fd: int, was_kept: bool, depth: int) -> None:
    """Undo a take through ``kept`` interrupted anywhere; its guard is held.

    ``LOCK_UN`` of a descriptor this thread alone uses and holds nothing on
    is a no-op, so each is given back whether or not its flock went through.
    """
    kept.depth = depth
    with suppress(OSError):
        fcntl.flock(kept.gate, fcntl.LOCK_UN)
    if depth == 0:
        with suppress(OSError):
            fcntl.flock(kept.root, fcntl.LOCK_UN)
    kept.held.discard(fd)
    if fd >= 0:
        _give_back(kept, name, fd, was_kept, locked=True, shared=False)


def _key(info: os.stat_result) -> tuple[int, int]:
    return info.st_dev, info.st_ino


def _give_back(
    kept: KeptLocks, name: str, fd: int, was_kept: bool, *, locked: bool, shared: bool
) -> None:
    """Undo a take through ``kept`` that stopped part-way; its guard is held."""
    if shared:
        kept.depth -= 1
        if kept.depth == 0:
            with suppress(OSError):
                fcntl.flock(kept.root, fcntl.LOCK_UN)
    if not was_kept:
        close_locks(fd)
    elif locked:
        try:
            fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError:
            kept.forget(name)


#: Numbers for this process's temporary lock files.
_TEMP_NUMBERS = itertools.count()
#: The longest a writer making a lock file keeps the gate closed at a time.
GATE_SLICE = 0.05
