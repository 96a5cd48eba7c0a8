"""Lock files and their flocks: timeouts, the waiter thread, fork hygiene.

A lock is an exclusive ``flock`` on a file. Waiting with a timeout is a
blocking ``flock`` in a helper thread, so the next writer gets the lock the
moment it is released and nobody polls. Every descriptor that may come to
hold a flock is registered, so that a forked child closes its copies and
never keeps a parent's lock alive. A lock file made by a store holds a mark
(its own device, inode and name), which tells it from a copy, a new file or
another brief's lock file put in its place by hand.
"""

from __future__ import annotations

import fcntl
import os
import threading
import time
from contextlib import suppress

__all__ = [
    "DEFAULT_LOCK_TIMEOUT",
    "acquire",
    "check_timeout",
    "close_lock",
    "is_lock_at",
    "is_marked",
    "lock_mark",
    "mark",
    "open_registered",
    "time_left",
]


#: Seconds a writer waits for a brief's lock unless told otherwise.
DEFAULT_LOCK_TIMEOUT = 10.0


def check_timeout(value: object) -> float:
    """``value`` as a lock timeout in seconds, or ``ValueError`` saying what it must be."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ValueError(f"lock_timeout must be a number of seconds >= 0, not {value!r}")
    return float(value)


def time_left(deadline: float) -> float:
    """Seconds until ``deadline`` (a ``time.monotonic()`` value), never below 0."""
    return max(0.0, deadline - time.monotonic())


def lock_mark(info: os.stat_result, name: str) -> bytes:
    """What a lock file a store made holds: its own device, inode and name."""
    return f"{info.st_dev}:{info.st_ino}:{name}\n".encode()


def is_marked(fd: int, name: str) -> bool:
    """Whether a store made (or adopted) this lock file under this name.

    A copy or a new file has another inode, and another brief's lock file
    renamed into place another name.
    """
    return os.pread(fd, 256, 0) == lock_mark(os.fstat(fd), name)


def mark(fd: int, name: str) -> None:
    mark = lock_mark(os.fstat(fd), name)
    if os.pread(fd, 256, 0) != mark:
        os.ftruncate(fd, 0)
        os.pwrite(fd, mark, 0)


def is_lock_at(fd: int, path: str, name: str) -> bool:
    """Whether the lock file open as ``fd`` is the one at ``path``, and a store's."""
    held = os.fstat(fd)
    try:
        there = os.lstat(path)
    except OSError:
        return False
    if (held.st_dev, held.st_ino) != (there.st_dev, there.st_ino):
        return False
    return os.pread(fd, 256, 0) == lock_mark(held, name)


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


def acquire(fd: int, timeout: float, key: str, mode: int = fcntl.LOCK_EX) -> bool:
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
