"""A lock file's mark: what tells a store's own lock file from a copy or a stand-in.

A lock file made by a store holds a mark (its own device, inode, the
inode's generation, its modification time and its name) and keeps the
modification time it was given.
"""

from __future__ import annotations

import os
import struct
import sys
import time

from strategystore.errors import ConfigurationError

try:
    import fcntl
except ImportError:  # Windows: FileStore refuses to open there, so no lock is ever taken
    fcntl = None  # type: ignore[assignment]

__all__ = ["NO_GENERATION", "generation", "is_lock_at", "is_marked", "lock_mark", "mark"]


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
    key = (info.st_dev, info.st_ino)
    known = _GENERATIONS.get(key)
    if known is not None and known[0] == info.st_ctime_ns:
        return known[1]
    try:
        found = fcntl.ioctl(fd, _GET_GENERATION, bytes(8)).hex()
    except OSError:
        found = NO_GENERATION  # tmpfs, for one, has none (and never reuses numbers soon)
    # Another file given this inode number once this one is freed (it is
    # open now) has a later ctime, past the window of coarse timestamps.
    if time.time_ns() - info.st_ctime_ns > _GENERATION_SETTLED_NS:
        if len(_GENERATIONS) >= _GENERATIONS_KEPT:
            _GENERATIONS.clear()
        _GENERATIONS[key] = (info.st_ctime_ns, found)
    return found


#: Generations asked for: (device, inode) -> (ctime, generation), for ctimes
#: already older than the window below when asked.
_GENERATIONS: dict[tuple[int, int], tuple[int, str]] = {}
_GENERATIONS_KEPT = 4096
#: Past whole-second (and FAT's two-second) timestamps.
_GENERATION_SETTLED_NS = 3_000_000_000


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
