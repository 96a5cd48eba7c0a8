"""One ``syncfs`` call that makes a whole file system durable, where it can be trusted.

An import makes many new files durable at once: one ``syncfs`` costs about
what a single fsync does, where fsyncing each of N files costs N times that.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Callable

__all__ = ["syncfs"]

_SYNCFS: list[Callable[[int], int] | None] = []


def syncfs(path: str) -> bool:
    """Flush the whole file system holding ``path`` with one ``syncfs`` call.

    Returns ``False`` where that is not available, or not trustworthy: only
    since Linux 5.8 does ``syncfs`` report write-back errors. One call costs
    about what a single fsync does, where fsyncing each of N new files costs N
    times that, which is what makes a bulk import cheap.
    """
    if not _SYNCFS:
        _SYNCFS.append(_load_syncfs())
    function = _SYNCFS[0]
    if function is None:
        return False
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_CLOEXEC", 0))
    try:
        if function(fd) != 0:
            import ctypes  # noqa: PLC0415 - only where syncfs exists, and only on failure

            code = ctypes.get_errno()
            raise OSError(code, os.strerror(code), path)
    finally:
        os.close(fd)
    return True


def _load_syncfs() -> Callable[[int], int] | None:
    if sys.platform != "linux":
        return None
    major, minor = (int(part) for part in re.findall(r"\d+", os.uname().release)[:2])
    if (major, minor) < (5, 8):
        return None
    import ctypes  # noqa: PLC0415 - kept out of `import strategystore`

    try:
        function: Callable[[int], int] = ctypes.CDLL(None, use_errno=True).syncfs
    except (OSError, AttributeError):
        return None
    return function
