"""Lock files and their flocks: timeouts, the waiter thread, fork hygiene.

A lock is an exclusive ``flock`` on a file. Waiting with a timeout is a
blocking ``flock`` in a helper thread, so the next writer gets the lock the
moment it is released and nobody polls. Every descriptor that may come to
hold a flock is registered, so that a forked child closes its copies and
never keeps a parent's lock alive. A lock file made by a store holds a mark
(its own device, inode, the inode's generation, its modification time and its
name) and keeps the modification time it was given, which tells it from a
copy, a new file or another brief's lock file put in its place by hand.
"""

from __future__ import annotations

import errno
import os
import stat
import struct
import sys
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from strategystore._fsio import (
    DIR_FLAGS,
    MISSING_OPEN_FLAGS,
    O_CLOEXEC,
    READ_FLAGS,
    ROOT_FLAGS,
    not_a_directory,
)
from strategystore._layout import LOCKS_DIR, MARKER_NAME, NO_LINKS, lock_name
from strategystore.errors import ConfigurationError, CorruptDocumentError, LockTimeoutError

try:
    import fcntl
except ImportError:  # Windows: FileStore refuses to open there, so no lock is ever taken
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "DEFAULT_LOCK_TIMEOUT",
    "GATE_SLICE",
    "NO_GENERATION",
    "BriefLock",
    "BriefLocks",
    "acquire",
    "check_platform",
    "check_timeout",
    "close_lock",
    "generation",
    "is_lock_at",
    "is_marked",
    "lock_mark",
    "mark",
    "open_registered",
    "time_left",
]


#: Seconds a writer waits for a brief's lock unless told otherwise.
DEFAULT_LOCK_TIMEOUT = 10.0
_LOCK_EX = fcntl.LOCK_EX if fcntl is not None else 0


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


def time_left(deadline: float) -> float:
    """Seconds until ``deadline`` (a ``time.monotonic()`` value), never below 0."""
    return max(0.0, deadline - time.monotonic())


#: ``FS_IOC_GETVERSION`` (``_IOR('v', 1, long)``): an inode's generation on
#: Linux (ext4, XFS, btrfs); a file system without one refuses it.
_GET_GENERATION = (2 << 30) | (struct.calcsize("l") << 16) | (ord("v") << 8) | 1
#: The mark of a lock file on a file system that says nothing of generations.
NO_GENERATION = "-"


def generation(fd: int, info: os.stat_result) -> str:
    """What tells this inode from an earlier file that had the same inode number.

    A file system hands a freed inode number out again, at once on ext4, so
    a copy of a lock file can land on the number its mark names. The
    generation (Linux) or birth time (macOS, BSD) differs each time.
    """
    birth = getattr(info, "st_birthtime", None)
    if birth is not None:
        return repr(birth)
    if fcntl is None or not sys.platform.startswith("linux"):
        return NO_GENERATION
    try:
        return fcntl.ioctl(fd, _GET_GENERATION, bytes(8)).hex()
    except OSError:
        return NO_GENERATION  # tmpfs, for one, has none (and never reuses numbers soon)


def lock_mark(info: os.stat_result, name: str, generation: str) -> bytes:
    """What a lock file a store made holds: its device, inode, generation, mtime and name.

    The store gives the file the modification time its mark names, a time
    before the mark was written: a copy, or a file written since, has a
    later one.
    """
    return f"{info.st_dev}:{info.st_ino}:{generation}:{info.st_mtime_ns}:{name}\n".encode()


def is_marked(fd: int, name: str, info: os.stat_result, generation: str) -> bool:
    """Whether a store made (or adopted) this lock file under this name.

    ``info`` and ``generation`` are the descriptor's. A copy or a new file has
    another inode, or another generation of it, and a later modification time;
    another brief's lock file renamed into place has another name.
    """
    return os.pread(fd, 256, 0) == lock_mark(info, name, generation)


def mark(fd: int, name: str) -> str:
    """Make the lock file open as ``fd`` a store's own under ``name``; returns its generation.

    Raises:
        ConfigurationError: the file system does not keep the modification time
            the file is given.
    """
    info = os.fstat(fd)
    made = generation(fd, info)
    if is_marked(fd, name, info, made):
        return made
    # Whole even seconds, which every file system keeps (FAT's are two
    # seconds apart), and before any time a later write can leave.
    pinned = (time.time_ns() // 2_000_000_000 - 1) * 2_000_000_000
    for _ in range(3):
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{info.st_dev}:{info.st_ino}:{made}:{pinned}:{name}\n".encode(), 0)
        os.utime(fd, ns=(pinned, pinned))
        if is_marked(fd, name, os.fstat(fd), made):
            return made
        # Touched by hand at this very moment, or a file system that does not
        # keep the time it is given: the latter fails every time.
    raise ConfigurationError(
        f"{name}: this file system does not keep the modification time a lock file is "
        "given, which tells a store's lock file from a copy; keep the data directory "
        "on a local file system"
    )


def is_lock_at(fd: int, path: str, name: str, generation: str) -> bool:
    """Whether the lock file open as ``fd`` (of ``generation``) is the store's one at ``path``."""
    held = os.fstat(fd)
    try:
        there = os.lstat(path)
    except OSError:
        return False
    if (held.st_dev, held.st_ino) != (there.st_dev, there.st_ino):
        return False
    return is_marked(fd, name, held, generation)


#: Lock descriptors this process holds or waits with. flock belongs to the open
#: file description, which a forked child shares, so the child closes its
#: copies: otherwise it would keep the parent's lock alive for its whole life.
_LOCK_FDS: set[int] = set()
_LOCK_FDS_GUARD = threading.Lock()
#: Lock files with a waiting thread left behind by a timeout, and how many.
_STUCK: dict[str, int] = {}


def open_registered(path: str, flags: int, *, dir_fd: int | None = None) -> int:
    """``os.open`` a descriptor that may come to hold a flock, registered for fork.

    Opening and registering happen under the guard that ``fork`` takes too,
    so no child is ever forked between the two with an unregistered copy.
    """
    with _LOCK_FDS_GUARD:
        fd = os.open(path, flags, 0o666, dir_fd=dir_fd)
        _LOCK_FDS.add(fd)
    return fd


def _before_fork() -> None:
    _LOCK_FDS_GUARD.acquire()


def _after_fork_in_parent() -> None:
    _LOCK_FDS_GUARD.release()


def _close_inherited_locks() -> None:
    global _LOCK_FDS_GUARD  # noqa: PLW0603 - a fresh guard for the child's only thread
    _LOCK_FDS_GUARD = threading.Lock()
    for fd in _LOCK_FDS:
        with suppress(OSError):
            os.close(fd)
    _LOCK_FDS.clear()
    _STUCK.clear()


if hasattr(os, "register_at_fork"):
    # The guard is held across fork, so a child never sees a descriptor
    # opened but not yet registered, or unregistered but not yet closed.
    os.register_at_fork(
        before=_before_fork,
        after_in_parent=_after_fork_in_parent,
        after_in_child=_close_inherited_locks,
    )


def close_lock(fd: int) -> None:
    """Close a registered lock descriptor, which releases its flock; once only."""
    with _LOCK_FDS_GUARD:
        if fd not in _LOCK_FDS:
            return  # closed in a forked child already
        _LOCK_FDS.discard(fd)
        with suppress(OSError):
            os.close(fd)


def acquire(fd: int, timeout: float, key: str, mode: int = _LOCK_EX) -> bool:
    """Take a flock (exclusive unless ``mode`` says ``LOCK_SH``) on ``fd`` within ``timeout`` s.

    Returns ``True`` with the lock held, or ``False`` on timeout. On
    ``False`` or an exception ``fd`` is no longer the caller's: it is closed,
    or a waiting thread closes it once its blocked ``flock`` returns.
    """
    try:
        fcntl.flock(fd, mode | fcntl.LOCK_NB)
    except BlockingIOError:
        pass
    except BaseException:
        close_lock(fd)
        raise
    else:
        return True
    if timeout <= 0:
        close_lock(fd)
        return False
    if _STUCK.get(key):
        # A thread already waits on this lock for a caller that gave up: the
        # holder is slow or stuck, so poll rather than add a thread per retry.
        return _poll_for_flock(fd, timeout, mode)
    return _wait_for_flock(fd, timeout, key, mode)


def _poll_for_flock(fd: int, timeout: float, mode: int) -> bool:
    deadline = time.monotonic() + timeout
    pause = 0.001
    try:
        while True:
            try:
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
            except BlockingIOError:
                left = deadline - time.monotonic()
                if left <= 0:
                    close_lock(fd)
                    return False
                time.sleep(min(pause, left))
                pause = min(pause * 2, 0.05)
            else:
                return True
    except BaseException:
        close_lock(fd)
        raise


def _wait_for_flock(fd: int, timeout: float, key: str, mode: int) -> bool:
    # A blocking flock in a helper thread hands the lock over the moment its
    # holder releases it, with no polling; the caller waits on an event that
    # can time out, which flock itself cannot.
    granted = threading.Event()
    guard = threading.Lock()
    abandoned = False
    failures: list[OSError] = []

    def wait() -> None:
        try:
            fcntl.flock(fd, mode)
        except OSError as exc:
            failures.append(exc)
        with guard:
            if not abandoned:
                granted.set()
                return
        close_lock(fd)
        with _LOCK_FDS_GUARD:
            if _STUCK.get(key, 0) > 1:
                _STUCK[key] -= 1
            else:
                _STUCK.pop(key, None)

    def give_up() -> None:
        nonlocal abandoned
        with guard:
            abandoned = not granted.is_set()
            if abandoned:  # counted before the waiter can see it and count down
                with _LOCK_FDS_GUARD:
                    _STUCK[key] = _STUCK.get(key, 0) + 1

    threading.Thread(target=wait, name="strategystore-lock-wait", daemon=True).start()
    try:
        # Event.wait refuses timeouts past threading.TIMEOUT_MAX (some 292
        # years); a wait that long is a wait for as long as it takes.
        granted.wait(None if timeout >= threading.TIMEOUT_MAX else timeout)
    except BaseException:
        give_up()
        if not abandoned:
            close_lock(fd)  # interrupted (Ctrl-C) just as the lock was granted
        raise
    give_up()
    if abandoned:
        return False
    if failures:
        close_lock(fd)
        raise failures[0]
    return True


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
        self._held = threading.local()

    def __repr__(self) -> str:
        return f"BriefLocks({self._root!r}, timeout={self.timeout!r})"

    def hold(self, brief_id: str, timeout: float | None = None) -> BriefLock:
        """A context manager holding the brief's lock; ``timeout`` overrides the default."""
        return BriefLock(self, lock_name(brief_id), timeout)

    def _depths(self) -> dict[str, tuple[int, int]]:
        """This thread's held locks: name -> (depth, pid)."""
        depths: dict[str, tuple[int, int]] | None = getattr(self._held, "depths", None)
        if depths is None:
            depths = self._held.depths = {}
        return depths

    def take(self, name: str, timeout: float | None = None) -> tuple[int, int]:
        """Hold ``.locks/<name>``; returns its descriptor and the data directory's.

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

    def _timed_out(self, name: str) -> LockTimeoutError:
        return LockTimeoutError(self.data_dir / LOCKS_DIR / name, self.timeout)

    def _pass_gate(self, name: str, deadline: float) -> None:
        """Wait while a writer is making a lock file (it holds the gate exclusively)."""
        gate = self._open_gate()
        if gate is None:
            return
        if not acquire(gate, time_left(deadline), f"{self._root}/{MARKER_NAME}", fcntl.LOCK_SH):
            raise self._timed_out(name)
        close_lock(gate)

    def _open_gate(self) -> int | None:
        """A descriptor of the marker file, the gate; ``None`` if it cannot be opened."""
        try:
            return open_registered(f"{self._root}/{MARKER_NAME}", READ_FLAGS)
        except OSError:
            return None  # the gate only makes waits fair; the data directory's lock is the proof

    def _open_lock_file(self, name: str, deadline: float) -> tuple[int, str]:
        """Open a brief's lock file, making it (and ``.locks/``) when it is missing or stray.

        Returns its descriptor and the generation of its inode.
        """
        try:
            fd, info = self._open_in_locks(name, create=False)
        except FileNotFoundError:
            pass
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
        if gate is not None and not acquire(
            gate, time_left(deadline), f"{self._root}/{MARKER_NAME}"
        ):
            raise self._timed_out(name)
        try:
            root_fd = open_registered(self._root, ROOT_FLAGS)
            # Exclusive: no writer is between proving its lock file and
            # releasing it, so none can be holding a file this replaces.
            if not acquire(root_fd, min(time_left(deadline), GATE_SLICE), self._root):
                return None
            try:
                while True:
                    self.make_locks_dir()
                    with suppress(FileNotFoundError):  # .locks/ removed again at once
                        fd = self._open_in_locks(name, create=True)[0]
                        break
                try:
                    return fd, mark(fd, name)
                except ConfigurationError as exc:
                    close_lock(fd)
                    raise ConfigurationError(f"{self.data_dir / LOCKS_DIR}/{exc}") from None
                except BaseException:
                    close_lock(fd)
                    raise
            finally:
                close_lock(root_fd)
        finally:
            if gate is not None:
                close_lock(gate)

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
            flags = os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | O_CLOEXEC
            fd = open_registered(name, flags | (os.O_CREAT if create else 0), dir_fd=dir_fd)
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

    __slots__ = ("_fds", "_locks", "_name", "_nested", "_timeout")

    def __init__(self, locks: BriefLocks, name: str, timeout: float | None) -> None:
        self._locks = locks
        self._name = name
        self._timeout = timeout
        self._fds = (-1, -1)
        self._nested = False

    def __repr__(self) -> str:
        return f"<BriefLock {self._name!r} of {self._locks._root!r}>"

    def __enter__(self) -> None:
        depths = self._locks._depths()
        held = depths.get(self._name)
        if held is not None and held[1] == os.getpid():
            depths[self._name] = (held[0] + 1, held[1])
            self._nested = True
            return
        self._fds = self._locks.take(self._name, self._timeout)
        depths[self._name] = (1, os.getpid())

    def __exit__(self, *exc_info: object) -> None:
        depths = self._locks._depths()
        if self._nested:
            depth, pid = depths[self._name]
            depths[self._name] = (depth - 1, pid)
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
            try:
                close_lock(self._fds[0])
            finally:
                close_lock(self._fds[1])


#: The longest a writer making a lock file keeps the gate closed at a time.
GATE_SLICE = 0.05
