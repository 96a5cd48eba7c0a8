"""Whether a whole brief is as the listing index recorded it, proved in one pass.

The index (``_index``) keeps a brief's records together, ascending by
version. On an unchanged brief, ``unchanged_brief`` checks them all at once:
it ``lstat``s every file (through the brief directory's descriptor) and
compares the identities, the racy rule and the ranges of the fields a
listing shows column by column, so the per-file work runs in the
interpreter's C loops. Anything else (a file changed, added, removed, damaged
or not settled) answers ``None``, and the caller judges the brief file by
file.
"""

from __future__ import annotations

import os
import stat
import struct
from collections.abc import Callable, Sequence
from functools import partial
from operator import attrgetter, sub

from strategystore._cache import Identity

__all__ = ["FIELDS", "RECORD_FORMAT", "Columns", "unchanged_brief"]

#: One record: brief, version, dev, ino, size, mtime, ctime, seen, status,
#: has seal, sections, created, updated, reason, problem, line, seal,
#: fingerprint (``_index`` describes them).
RECORD_FORMAT = "IIQQQqqqbBIqqiii32s16s"
#: The same record, reading only what a listing shows and what proves it:
#: version, dev, ino, size, mtime, ctime, seen, status, sections, created,
#: updated, reason, problem.
_SHOWN_FORMAT = "4xIQQQqqqbxIqqii4x32x16x"
#: Values ``_SHOWN_FORMAT`` gives per record.
FIELDS = 13
VERSION, STATUS, SECTIONS, CREATED, UPDATED, REASON = 0, 7, 8, 9, 10, 11
_DEV, _CTIME, _SEEN, _PROBLEM = 1, 5, 6, 12
_MTIME = 4
assert struct.calcsize("<" + RECORD_FORMAT) == struct.calcsize("<" + _SHOWN_FORMAT)

#: The shown values of a brief's records, flat: record ``i``'s field ``f``
#: is at ``i * FIELDS + f``.
Columns = tuple[int, ...]

_layouts: dict[int, struct.Struct] = {}
_MODE = attrgetter("st_mode")


def _layout(count: int) -> struct.Struct:
    layout = _layouts.get(count)
    if layout is None:
        layout = _layouts[count] = struct.Struct("<" + _SHOWN_FORMAT * count)
    return layout


def unchanged_brief(
    records: memoryview,
    count: int,
    complete: Callable[[Sequence[int], list[str]], bool],
    dir_fd: int,
    *,
    racy_ns: int,
    statuses: int,
    strings: int,
    moments: tuple[int, int],
    identity: Callable[[os.stat_result], Identity],
) -> Columns | None:
    """The brief's records, if they prove every one of ``versions`` unchanged and valid.

    Args:
        records: the brief's ``count`` records, packed.
        complete: given the recorded versions (ascending) and their file
            names, whether they are every document the brief directory holds.
        dir_fd: the brief directory, opened.
        racy_ns: an identity counts only if it was seen this much after its
            last change.
        statuses: how many status codes there are.
        strings: how many strings the index holds.
        moments: the first and last timestamp a datetime can hold.
        identity: what makes a file's identity of its ``stat``.

    Returns:
        ``None`` unless the records are ``complete``, each file
        is a regular file with the identity recorded, settled when it was
        seen, and recorded as a valid document whose fields are in range.
    """
    if not count:
        return None
    flat: Columns = _layout(count).unpack(records)
    recorded = flat[VERSION::FIELDS]
    names = list(map("{}.json".format, recorded))
    if not complete(recorded, names):
        return None
    try:
        infos = list(map(partial(os.stat, dir_fd=dir_fd, follow_symlinks=False), names))
    except OSError:
        return None
    if not all(map(stat.S_ISREG, map(_MODE, infos))):
        return None
    # Field by field, as ``identity`` makes it.
    for field, name in enumerate(Identity._fields, _DEV):
        if list(map(attrgetter(f"st_{name}"), infos)) != list(flat[field::FIELDS]):
            return None
    if identity(infos[0]) != flat[_DEV : _CTIME + 1]:
        return None  # an identity made otherwise (whole seconds, say)
    mtimes, ctimes = flat[_MTIME::FIELDS], flat[_CTIME::FIELDS]
    if min(map(sub, flat[_SEEN::FIELDS], map(max, mtimes, ctimes))) <= racy_ns:
        return None  # not settled when it was recorded
    shown = flat[STATUS::FIELDS]
    reasons = flat[REASON::FIELDS]
    problems = flat[_PROBLEM::FIELDS]
    first, last = moments
    in_range = (
        min(shown) >= 0
        and max(shown) < statuses
        and min(problems) == max(problems) == -1
        and min(reasons) >= -1
        and max(reasons) < strings
        and min(flat[CREATED::FIELDS]) >= first
        and max(flat[CREATED::FIELDS]) <= last
        and min(flat[UPDATED::FIELDS]) >= first
        and max(flat[UPDATED::FIELDS]) <= last
    )
    return flat if in_range else None
