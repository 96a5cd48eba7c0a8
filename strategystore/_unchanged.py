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
from typing import Any, NamedTuple

from strategystore import _cache
from strategystore import _verdict as _record
from strategystore._cache import Identity
from strategystore._indexfile import DIR_FLAGS
from strategystore._verdict import _FIRST_US, _LAST_US, _NONE
from strategystore.models import Status

__all__ = [
    "CHANGED",
    "DIR_DENSE",
    "DIR_EXACT",
    "DIR_FLAGS_AT",
    "DIR_FORMAT",
    "DIR_KNOWN",
    "DIR_RECORD",
    "DIR_VALID",
    "FIELDS",
    "NOT_SHOWN",
    "NO_PROOF",
    "PROVED",
    "RECORD_FORMAT",
    "Columns",
    "Proof",
    "Shown",
    "dir_proves",
    "document_names",
    "files_prove",
    "in_range",
    "proof_of",
    "proves",
    "same_files",
    "shown_at",
    "shown_in_range",
    "shown_of",
    "unchanged_brief",
]

#: One record: brief, version, dev, ino, size, mtime, ctime, seen, status,
#: has seal, sections, created, updated, reason, problem, line, seal,
#: fingerprint (``_index`` describes them).
RECORD_FORMAT = "IIQQQqqqbBIqqiii32s16s"
_RECORD_SIZE = struct.calcsize("<" + RECORD_FORMAT)
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
    return flat if in_range(flat, statuses=statuses, strings=strings, moments=moments) else None


def in_range(flat: Columns, *, statuses: int, strings: int, moments: tuple[int, int]) -> bool:
    """Whether every record of ``flat`` is of a valid document whose fields a listing can show."""
    shown = flat[STATUS::FIELDS]
    reasons = flat[REASON::FIELDS]
    problems = flat[_PROBLEM::FIELDS]
    first, last = moments
    return (
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


#: What the index remembers of a brief directory: dev, ino, size, mtime,
#: ctime (its identity when it was listed), the flags below, then what a
#: list of briefs shows of it (``Shown``), derived from its records.
DIR_FORMAT = "QQQqqBIbIiqqI"
#: Where a directory record's identity ends and its flags are.
DIR_FLAGS_AT = 5
#: The directory record holds an identity (else it is empty).
DIR_KNOWN = 1
#: Its listing named only the brief's documents, no other entry.
DIR_EXACT = 2
#: The brief's versions are 1 to its number of records.
DIR_DENSE = 4
#: Every record of the brief is of a valid document.
DIR_VALID = 8
DIR_RECORD = struct.Struct("<" + DIR_FORMAT)

#: A record's identity fields (dev, ino, size, mtime, ctime), the rest skipped.
_IDENTITY = struct.Struct("<8xQQQqq" + f"{struct.calcsize('<' + RECORD_FORMAT) - 48}x")
_VERSIONS = struct.Struct("<4xI" + f"{struct.calcsize('<' + RECORD_FORMAT) - 8}x")
_STAT_IDENTITY = attrgetter("st_dev", "st_ino", "st_size", "st_mtime_ns", "st_ctime_ns")
_dense: list[str] = []


def document_names(records: memoryview, count: int, dense: bool) -> list[str]:
    """The file names of a brief's ``count`` records, ascending by version."""
    if dense:
        if len(_dense) < count:
            _dense.extend(f"{v}.json" for v in range(len(_dense) + 1, count + 1))
        return _dense[:count]
    return [f"{v}.json" for (v,) in _VERSIONS.iter_unpack(records)]


def same_files(
    records: memoryview,
    names: list[str],
    dir_fd: int,
    identity: Callable[[os.stat_result], Identity],
) -> bool:
    """Whether each of ``names`` in ``dir_fd`` still has the identity its record holds.

    Every file is ``lstat``-ed: an edit in place changes a file's identity
    but not its directory's. The identities are compared as tuples in one
    C-level comparison.
    """
    if not names:
        return False
    try:
        infos = list(map(partial(os.stat, dir_fd=dir_fd, follow_symlinks=False), names))
    except OSError:
        return False
    recorded = list(_IDENTITY.iter_unpack(records))
    if list(map(_STAT_IDENTITY, infos)) != recorded:
        return False
    # An identity made otherwise (whole seconds, say) must agree too.
    return identity(infos[0]) == recorded[0]


class Shown(NamedTuple):
    """What a list of briefs shows of a brief whose every record is of a valid document.

    Of its newest version: the number, status code, section count, reason
    (a string number of the index, -1 for none), created and updated
    (microseconds since the epoch); then its newest approved version, 0
    when none is.
    """

    version: int
    status: int
    sections: int
    reason: int
    created_us: int
    updated_us: int
    approved: int


#: The ``Shown`` of a directory record that holds none.
NOT_SHOWN = Shown(0, 0, 0, -1, 0, 0, 0)


_APPROVED = _record.STATUSES.index(Status.APPROVED)


def shown_of(records: Sequence[tuple[Any, ...]], text: Callable[[int], int]) -> Shown:
    """The ``Shown`` of a brief whose index records (``_verdict.Record``) are ``records``,
    ascending by version; ``NOT_SHOWN`` unless each is of a valid document.

    ``text`` gives the number a reason's string has where the ``Shown`` is kept.
    """
    status, version = _record.STATUS, _record._VERSION
    if not records or any(r[_record.PROBLEM] != _NONE or r[status] < 0 for r in records):
        return NOT_SHOWN
    latest = records[-1]
    approved = (r[version] for r in reversed(records) if r[status] == _APPROVED)
    return Shown(
        latest[version],
        latest[status],
        latest[_record.SECTIONS],
        text(latest[_record.REASON]),
        latest[_record.CREATED],
        latest[_record.UPDATED],
        next(approved, 0),
    )


def shown_at(dirs: memoryview, position: int) -> Shown:
    """The ``Shown`` kept in the directory record at ``position`` of ``dirs``."""
    return Shown._make(DIR_RECORD.unpack_from(dirs, position * DIR_RECORD.size)[DIR_FLAGS_AT + 1 :])


def shown_in_range(shown: Shown, *, statuses: int, strings: int) -> bool:
    """Whether each value of ``shown`` is one a listing can show (a record read back whole)."""
    return (
        0 <= shown.status < statuses
        and -1 <= shown.reason < strings
        and _FIRST_US <= shown.created_us <= _LAST_US
        and _FIRST_US <= shown.updated_us <= _LAST_US
    )


class Proof(NamedTuple):
    """A brief to prove by its directory: its records, the directory's identity, its files."""

    first: int
    records_count: int
    identity: tuple[int, ...]
    records: memoryview
    names: list[str]


def files_prove(plan: Proof, dir_fd: int) -> bool:
    """Whether the directory ``dir_fd`` and its files still have the identities ``plan`` holds."""
    try:
        if _cache.identity(os.fstat(dir_fd)) != plan.identity:
            return False
    except OSError:
        return False
    return same_files(plan.records, plan.names, dir_fd, _cache.identity)


def dir_proves(root: str, item: tuple[str, Proof]) -> bool:
    """``_files_prove`` of the brief directory ``root/brief`` (never through a link)."""
    brief_id, plan = item
    try:
        dir_fd = os.open(f"{root}/{brief_id}", DIR_FLAGS)
    except OSError:
        return False
    try:
        return files_prove(plan, dir_fd)
    finally:
        os.close(dir_fd)


def proof_of(
    records: memoryview, dirs: memoryview, entry: tuple[int, int, int], *, exact: bool
) -> Proof | None:
    """What proving a brief by its directory must check, if its directory record allows it.

    ``entry`` is the brief's first record, number of records and position
    among the directory records; ``exact``: its listing must have named
    nothing but documents.
    """
    first, count, position = entry
    values = DIR_RECORD.unpack_from(dirs, position * DIR_RECORD.size)
    flags = values[DIR_FLAGS_AT]
    wanted = DIR_KNOWN | DIR_VALID | (DIR_EXACT if exact else 0)
    if flags & wanted != wanted or not count:
        return None
    chunk = records[first * _RECORD_SIZE : (first + count) * _RECORD_SIZE]
    names = document_names(chunk, count, bool(flags & DIR_DENSE))
    return Proof(first, count, values[:DIR_FLAGS_AT], chunk, names)


#: What ``proves`` answers of a brief: nothing to prove it by, something changed, proved.
NO_PROOF, CHANGED, PROVED = 0, 1, 2


def proves(
    records: memoryview,
    dirs: memoryview,
    root: str,
    exact: bool,
    item: tuple[str, tuple[int, int, int]],
) -> int:
    """Whether the brief of ``item`` (its id and index entry) is proved by its directory.

    ``records`` and ``dirs`` are the index's records and directory records;
    ``exact`` as for ``proof_of``.
    """
    brief_id, entry = item
    plan = proof_of(records, dirs, entry, exact=exact)
    if plan is None:
        return NO_PROOF
    return PROVED if dir_proves(root, (brief_id, plan)) else CHANGED
