"""flocks taken with a timeout, and kept from forked children.

Waiting with a timeout is a blocking ``flock`` in a helper thread, so the
next holder gets the lock the moment it is released and nobody polls. Every
descriptor that may come to hold a flock is registered, so that a forked
child closes its copies and never keeps a parent's lock alive.
"""

from __future__ import annotations

import os
import threading
import time
from contextlib import suppress

try:
    import fcntl
except ImportError:  # Windows: FileStore refuses to open there, so no lock is ever taken
    fcntl = None  # type: ignore[assignment]

__all__ = [
    "acquire",
    "close_lock",
    "close_locks",
    "forks",
    "open_registered",
    "time_left",
    "unregister",
]

_LOCK_EX = fcntl.LOCK_EX if fcntl is not None else 0


def time_left(deadline: float) -> float:
    """Seconds until ``deadline`` (a ``time.monotonic()`` value), never below 0."""
    return max(0.0, deadline - time.monotonic())


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


#: How many forks lie between this process and the one that imported this
#: module: what tells a descriptor a forked child inherited from its own,
#: which a process id cannot once ids are handed out again.
_FORKS = 0


def forks() -> int:
    """How many times this process's line has forked since the module was imported."""
    return _FORKS


def _before_fork() -> None:
    _LOCK_FDS_GUARD.acquire()


def _after_fork_in_parent() -> None:
    _LOCK_FDS_GUARD.release()


def _close_inherited_locks() -> None:
    global _LOCK_FDS_GUARD, _FORKS  # noqa: PLW0603 - a fresh guard for the child's only thread
    _LOCK_FDS_GUARD = threading.Lock()
    _FORKS += 1
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


def unregister(fd: int) -> bool:
    """Take ``fd`` off the registry without its guard; whether it was on it.

    For descriptors holding no flock (a kept one, between writes), which a
    child forked at this moment may inherit harmlessly, and for a
    collector's ``__del__``, which may have interrupted the guard's holder.
    """
    try:
        _LOCK_FDS.remove(fd)
    except KeyError:
        return False
    return True


def close_lock(fd: int) -> None:
    """Close a registered lock descriptor, which releases its flock; once only."""
    with _LOCK_FDS_GUARD:
        if fd not in _LOCK_FDS:
            return  # closed in a forked child already
        _LOCK_FDS.discard(fd)
        with suppress(OSError):
            os.close(fd)


def close_locks(*fds: int) -> None:
    """``close_lock`` each of ``fds`` that is a descriptor (not -1)."""
    for fd in fds:
        if fd >= 0:
            close_lock(fd)


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
