"""Publishing the listing index's file: whole or not at all, never through a link."""

from __future__ import annotations

import os
import time
from contextlib import suppress
from pathlib import Path

__all__ = ["DIR_FLAGS", "write_atomically"]

DIR_FLAGS = os.O_RDONLY | getattr(os, "O_DIRECTORY", 0) | getattr(os, "O_NOFOLLOW", 0)
_NEW_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
DIR_FLAGS |= getattr(os, "O_CLOEXEC", 0)
_NEW_FLAGS |= getattr(os, "O_CLOEXEC", 0)


def write_atomically(locks_dir: Path, name: str, data: bytes) -> bool:
    """Publish ``data`` as ``name``: a temporary file, then a rename, in ``locks_dir``."""
    try:
        dir_fd = os.open(locks_dir, DIR_FLAGS)
    except OSError:
        return False  # no .locks/ (or a link there): no index
    temporary = f".{name}.{os.getpid()}-{time.monotonic_ns()}.tmp"
    try:
        fd = os.open(temporary, _NEW_FLAGS, 0o644, dir_fd=dir_fd)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)
        os.replace(temporary, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        return True
    except OSError:
        with suppress(OSError):
            os.unlink(temporary, dir_fd=dir_fd)
        return False  # read-only, full or refused: the index is only a cache
    finally:
        os.close(dir_fd)
