"""What a document file holds, as the listing index records it, judged one by one or on every core.

``judge`` turns a file's bytes into a ``Record`` by the rules the store
reads them by; ``judge_many`` spreads many files over worker processes for a
cold index. ``_index`` keeps the records.
"""

from __future__ import annotations

import os
import stat
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Final, TypeVar

from strategystore import _cache
from strategystore._against import Seen, fingerprint
from strategystore._cache import Identity
from strategystore._fsio import READ_FLAGS, read_all, write_all
from strategystore._indexfile import DIR_FLAGS
from strategystore._layout import DocumentFileError, decode_document_file, document_version
from strategystore._layout import misplacement as _misplacement
from strategystore.models import Status, brief_id_problem

__all__ = [
    "CREATED",
    "FINGERPRINT",
    "LINE",
    "PROBLEM",
    "REASON",
    "SECTIONS",
    "STATUS",
    "STATUSES",
    "JudgedNow",
    "Listed",
    "Record",
    "each_split",
    "judge",
    "judge_file",
    "judge_many",
    "micros",
    "moment",
    "seen_of",
    "unknown_documents",
]

_T = TypeVar("_T")

#: Statuses by their code in a record; a damaged document has code -1.
STATUSES = tuple(Status)
_STATUS_CODE = {status: code for code, status in enumerate(STATUSES)}
_DAMAGED = -1
_NONE = -1
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
#: The timestamps a datetime can hold, in microseconds since the epoch.
_FIRST_US = (datetime.min.replace(tzinfo=UTC) - _EPOCH) // _MICROSECOND
_LAST_US = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // _MICROSECOND
_NO_SEAL = bytes(32)
_NO_PRINT = bytes(16)

#: What the index remembers of one document: a tuple laid out as ``_RECORD``
#: packs it, for speed (brief number, version, dev, ino, size, mtime_ns,
#: ctime_ns, seen_at, status code (-1 damaged), sealed, section count,
#: created_at and updated_at in microseconds since the epoch, reason,
#: problem, problem line (-1 none), seal bytes, fingerprint of the bytes).
#: ``judge`` gives reason and problem as text, ``ListingIndex`` holds them as
#: numbers into its strings (``ListingIndex.text`` turns one back).
Record = tuple[Any, ...]
_VERSION: Final = 1
_SEEN: Final = 7
STATUS: Final = 8
_SEALED: Final = 9
SECTIONS: Final = 10
CREATED: Final = 11
UPDATED: Final = 12
REASON: Final = 13
PROBLEM: Final = 14
LINE: Final = 15
_SEAL: Final = 16
FINGERPRINT: Final = 17


def micros(moment: datetime) -> int:
    """A UTC datetime as whole microseconds since the epoch (exact)."""
    return (moment - _EPOCH) // _MICROSECOND


def moment(us: int) -> datetime:
    """The UTC datetime ``micros`` gave."""
    return _EPOCH + timedelta(microseconds=us)


def judge(brief_id: str, version: int, found: Identity, seen_at: int, data: bytes) -> Record:
    """What a document file's bytes hold, by the rules the store reads them by."""
    head = (0, version, *found, seen_at)
    try:
        doc = decode_document_file(data)
    except DocumentFileError as exc:
        line = _NONE if exc.line is None else exc.line
        return (*head, _DAMAGED, 0, 0, 0, 0, None, exc.reason, line, _NO_SEAL, _NO_PRINT)
    misplaced = _misplacement(doc, brief_id, version)
    if misplaced is not None:
        return (*head, _DAMAGED, 0, 0, 0, 0, None, misplaced, _NONE, _NO_SEAL, _NO_PRINT)
    digest = doc.content_digest
    return (
        *head,
        _STATUS_CODE[doc.status],
        digest is not None,
        len(doc.sections),
        micros(doc.created_at),
        micros(doc.updated_at),
        doc.status_reason,
        None,
        _NONE,
        _NO_SEAL if digest is None else bytes.fromhex(digest[7:]),
        fingerprint(data),
    )


def judge_file(
    path: str, brief_id: str, version: int, *, dir_fd: int | None = None
) -> Record | None:
    """Read and judge one document file; ``None`` when it cannot be read as a regular file.

    ``path`` is relative to ``dir_fd`` when given.

    Raises:
        FileNotFoundError: there is no such file.
    """
    seen_at = time.time_ns()
    try:
        fd = os.open(path, READ_FLAGS, dir_fd=dir_fd)
    except FileNotFoundError:
        raise
    except OSError:
        return None
    try:
        # The identity is taken before the bytes, as the store does.
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            return None
        # One read of what fstat promised, and one more byte: a short read
        # is the end of a regular file, so no second call is made to learn it.
        data = os.read(fd, info.st_size + 1)
        if len(data) > info.st_size:
            data += read_all(fd)
    except OSError:
        return None
    finally:
        os.close(fd)
    return judge(brief_id, version, _cache.identity(info), seen_at, data)


def seen_of(record: Record) -> Seen:
    """What a valid document's record tells the comparison with a revision."""
    return Seen(
        STATUSES[record[STATUS]],
        "sha256:" + record[_SEAL].hex() if record[_SEALED] else None,
        record[FINGERPRINT],
    )


class JudgedNow:
    """What was judged in this run, by brief and version, each handed out once, settled or not.

    The file was read a moment ago, after the data directory was listed:
    reading it again would learn nothing that a change made since could not
    also have made after the second reading.
    """

    __slots__ = ("_records",)

    def __init__(self) -> None:
        self._records: dict[tuple[str, int], Record] = {}

    def __repr__(self) -> str:
        return f"<JudgedNow: {len(self._records)} records not yet asked for>"

    def keep(self, brief_id: str, record: Record) -> None:
        """Keep the record of a brief's document (as the index holds it)."""
        self._records[brief_id, record[_VERSION]] = record

    def take(self, brief_id: str, version: int) -> Record | None:
        """The record of a document, once; ``None`` if it was not judged (or was taken)."""
        return self._records.pop((brief_id, version), None)

    def take_valid(self, brief_id: str, versions: Iterable[int]) -> set[int]:
        """Those of ``versions`` judged valid documents, their records taken; the rest left."""
        records = self._records
        valid = set()
        for version in versions:
            record = records.get((brief_id, version))
            if record is not None and record[PROBLEM] == _NONE:
                del records[brief_id, version]
                valid.add(version)
        return valid


#: A brief directory as listed: its names, its identity taken just before, and when.
Listed = tuple[list[str], Identity | None, int]


def unknown_documents(
    known: Callable[[str], bool],
    root: Path,
    names: Iterable[str],
    listings: dict[str, Listed] | None = None,
) -> list[tuple[str, str, int]]:
    """The documents of the briefs ``known`` knows nothing of: ``(path, brief, version)``.

    Each directory listed is kept in ``listings``, if given, for a walk that
    follows to list it no second time.
    """
    found = []
    for name in names:
        if known(name) or brief_id_problem(name) is not None:
            continue
        directory = f"{root}/{name}"
        seen_at = time.time_ns()
        try:
            fd = os.open(directory, DIR_FLAGS)
        except OSError:
            continue  # not a directory, or gone: the walk says what it is
        try:
            # The identity first: a change made while listing then shows as
            # a different identity next time.
            identity = _cache.identity(os.fstat(fd))
            entries = os.listdir(fd)
        except OSError:
            continue
        finally:
            os.close(fd)
        if listings is not None:
            listings[name] = (entries, identity, seen_at)
        for entry in entries:
            version = document_version(entry)
            if version is not None:
                found.append((f"{directory}/{entry}", name, version))
    return found


def _judge_chunk(items: list[tuple[str, str, int]]) -> list[tuple[str, Record]]:
    """Judge files in a worker process: ``(path, brief, version)`` each."""
    done = []
    for path, brief_id, version in items:
        try:
            record = judge_file(path, brief_id, version)
        except FileNotFoundError:
            continue
        if record is not None:
            done.append((brief_id, record))
    return done


#: Below this many files to judge, one process does it all.
PARALLEL_FROM = 2000
_CHUNK = 500
#: This process's part of an equal share of the files.
_OWN_SHARE = 0.95


def _workers() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # pragma: no cover - macOS
        return os.cpu_count() or 1


def judge_many(items: list[tuple[str, str, int]]) -> Iterator[tuple[str, Record]]:
    """Judge many files (``(path, brief, version)``) on every core: ``(brief, record)`` each.

    This process judges a share itself while worker processes, one per
    other core, judge the rest; only theirs travel back through pipes.
    Yields nothing when it is not worth it (few files, one core), when the
    process runs other threads (forking one is unsafe: the review page), or
    when processes cannot be started; the caller judges those files itself.
    """
    workers = min(_workers(), 32)
    if len(items) < PARALLEL_FROM or workers < 2 or threading.active_count() > 1:
        return
    import multiprocessing  # noqa: PLC0415 (only a cold index needs it)
    from concurrent.futures import ProcessPoolExecutor  # noqa: PLC0415

    # A little less than an equal share: the caller also takes in, in this
    # process, what every worker judged, chunk by chunk as each arrives.
    share = int(len(items) * _OWN_SHARE / workers)
    chunks = [items[i : i + _CHUNK] for i in range(share, len(items), _CHUNK)]
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork" if "fork" in methods else None)
    # A pool that cannot run leaves the work to the caller.
    with suppress(Exception), ProcessPoolExecutor(workers - 1, mp_context=context) as pool:
        theirs = pool.map(_judge_chunk, chunks)
        yield from _judge_chunk(items[:share])
        for chunk in theirs:
            yield from chunk


#: Below this many items, ``each_split`` asks no other process.
SPLIT_FROM = 2000


def each_split(check: Callable[[_T], int], items: Sequence[_T]) -> list[int]:
    """``check`` of each item; a forked child asks the second half while this one asks the first.

    ``check`` answers a number from 0 to 255 (a ``bool`` is one).

    For checks that are mostly system calls (``lstat`` of many files), which
    one Python process makes one at a time. The child only answers, as
    bytes through a pipe: whatever it changes in its own memory is lost
    with it. Not worth it, or not safe, with few items, one core, other
    threads running (the review page) or no ``fork``: then this process
    asks them all, as it does for any item the child did not answer.
    """
    half = len(items) // 2
    if len(items) < SPLIT_FROM or _workers() < 2 or threading.active_count() > 1:
        return [check(item) for item in items]
    try:
        read_end, write_end = os.pipe()
    except OSError:
        return [check(item) for item in items]
    try:
        pid = os.fork()
    except (AttributeError, OSError):
        os.close(read_end)
        os.close(write_end)
        return [check(item) for item in items]
    if pid == 0:  # pragma: no cover - the child; coverage does not follow it
        status = 1
        try:
            os.close(read_end)
            write_all(write_end, bytes(map(check, items[half:])))
            status = 0
        finally:
            os._exit(status)
    os.close(write_end)
    try:
        mine = [check(item) for item in items[:half]]
        answered = _read_to_end(read_end)
    finally:
        os.close(read_end)
        os.waitpid(pid, 0)
    rest = items[half:]
    if len(answered) != len(rest):
        return mine + [check(item) for item in rest]
    return mine + list(answered)


def _read_to_end(fd: int) -> bytes:
    chunks = []
    while chunk := os.read(fd, 65536):
        chunks.append(chunk)
    return b"".join(chunks)
