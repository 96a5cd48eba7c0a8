"""The listing index: what listings and ``check`` learnt of each document, kept on disk.

``.locks/index.v1`` in the data directory (git-ignored with ``.locks/``)
remembers, for each document file, what a listing shows of it (status,
reason, timestamps, section count, seal, a fingerprint of its bytes) or the
problem that makes it damaged, under the identity of the file it came from
(device, inode, size, mtime, ctime) and the moment that identity was seen.

It is a cache under the read cache's rule (``_cache``): an entry answers only
while its file still has the identity it was recorded under, and only if that
identity was already settled (older than the file system's racy window) when
it was seen. Deleting, truncating or garbling the file, or two processes
writing it at once, changes no answer, only speed: an index that does not
read back whole is ignored, and a write that fails is skipped.

Layout: one line of JSON (the header: index format, store format, a stamp of
the code that judges documents, the byte length of the JSON part, the
number of records and a CRC-32 of all that follows), the JSON part (the
strings and each brief's number of records), then fixed-size binary records,
one per document, grouped by brief. No pickle, nothing that runs code when
read.
"""

from __future__ import annotations

import json
import os
import re
import stat
import struct
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import partial
from pathlib import Path

import pydantic
import pydantic_core

from strategystore import _cache
from strategystore._cache import Identity
from strategystore._fsio import READ_FLAGS, read_all
from strategystore._indexfile import DIR_FLAGS as _DIR_FLAGS
from strategystore._indexfile import write_atomically
from strategystore._layout import FORMAT, LOCKS_DIR
from strategystore._unchanged import (
    DIR_DENSE,
    DIR_EXACT,
    DIR_FLAGS_AT,
    DIR_KNOWN,
    DIR_RECORD,
    DIR_VALID,
    NO_PROOF,
    NOT_SHOWN,
    PROVED,
    RECORD_FORMAT,
    Columns,
    Shown,
    document_names,
    proves,
    shown_at,
    shown_in_range,
    shown_of,
    unchanged_brief,
)
from strategystore._verdict import (
    _DAMAGED,
    _FIRST_US,
    _LAST_US,
    _NONE,
    _SEEN,
    _VERSION,
    LINE,
    PROBLEM,
    REASON,
    STATUSES,
    JudgedNow,
    Record,
    each_split,
    judge_many,
)

__all__ = [
    "INDEX_NAME",
    "MAX_INDEX_BYTES",
    "NO_INDEX_ENV",
    "ListingIndex",
    "index_wanted",
    "is_index_file",
]

#: The index file, inside ``.locks/``.
INDEX_NAME = "index.v1"
#: ``write_atomically``'s temporary files of the index (a lock file's carry ``.lock``).
_INDEX_TEMPORARY = re.compile(r"\.index\.v1\.[0-9]+-[0-9]+\.tmp")
#: The layout of the file; a file of another layout is ignored and replaced.
INDEX_FORMAT = 3
#: Set (to anything but ``0`` or nothing) to make every command ignore the index.
NO_INDEX_ENV = "STRATEGYSTORE_NO_INDEX"
#: An index file larger than this is not read (some 1.5 million documents).
MAX_INDEX_BYTES = 256 * 1024 * 1024
#: brief, version, dev, ino, size, mtime, ctime, seen, status, has seal,
#: sections, created, updated, reason, problem, line, seal, fingerprint.
_RECORD = struct.Struct("<" + RECORD_FORMAT)
#: A brief directory's record: its identity when listed, and ``DIR_*`` flags.
_DIR = DIR_RECORD
_STATUS_COUNT = len(STATUSES)
_NO_DIR = bytes(_DIR.size)
#: The modules whose code decides what a document file holds: a change to
#: any of them (an upgrade, an edit) makes every recorded verdict doubtful,
#: and so does another pydantic, whose messages and parsing they rely on.
_JUDGES = (
    "models.py",
    "_layout.py",
    "_json.py",
    "_against.py",
    "_index.py",
    "_unchanged.py",
    "_verdict.py",
)


def is_index_file(name: str) -> bool:
    """Whether a name in ``.locks/`` is the index or one of its temporary files."""
    return name == INDEX_NAME or _INDEX_TEMPORARY.fullmatch(name) is not None


def index_wanted() -> bool:
    """Whether commands may use the index (``STRATEGYSTORE_NO_INDEX`` unset)."""
    return os.environ.get(NO_INDEX_ENV, "").strip() in ("", "0")


def _code_stamp() -> list[int | str]:
    here = Path(__file__).parent
    stamp: list[int | str] = [pydantic.VERSION, pydantic_core.__version__]
    for name in _JUDGES:
        try:
            info = os.stat(here / name)
        except OSError:
            return [0]
        stamp += [info.st_size, info.st_mtime_ns]
    return stamp


class ListingIndex:
    """The index of one data directory: load it, look entries up, record, save.

    Args:
        root: the data directory (absolute or as named).
        racy_ns: the racy window; by default the one its file system needs.

    Nothing here raises for a missing, damaged or unwritable index file.
    """

    def __init__(self, root: Path | str, racy_ns: int | None = None) -> None:
        self.root = Path(root)
        self.racy_ns = _cache.racy_window_ns(self.root) if racy_ns is None else racy_ns
        self._header = {
            "index": INDEX_FORMAT,
            "format": FORMAT,
            "code": _code_stamp(),
            # Every record and directory record was settled under this window.
            "racy": self.racy_ns,
        }
        #: brief -> (its first record, its number of records, its position)
        self._briefs: dict[str, tuple[int, int, int]] = {}
        self._dirs = memoryview(b"")
        #: brief -> (its directory's identity, the versions listed, nothing else listed)
        self._fresh_dirs: dict[str, tuple[Identity, frozenset[int], bool]] = {}
        #: briefs whose directory was looked at: a record of it not renewed is dropped
        self._dir_seen: set[str] = set()
        #: What ``judge_unknown`` judged in this run, until asked for.
        self.judged_now = JudgedNow()
        self._strings: list[str] = []
        self._numbers: dict[str, int] = {}
        self._records = memoryview(b"")
        self._docs: dict[str, dict[int, Record]] = {}
        self._fresh_docs: dict[str, dict[int, Record]] = {}
        self._present: dict[str, set[int]] = {}
        #: briefs ``unchanged`` proved whole: every record of them holds
        self._confirmed: set[str] = set()
        self._changed = False
        self.loaded = 0

    def __repr__(self) -> str:
        return f"<ListingIndex {str(self.root)!r}: {self.loaded} documents loaded>"

    # -- reading the file ----------------------------------------------------

    def load(self) -> ListingIndex:
        """Read the index file; a missing, foreign or damaged one leaves the index empty."""
        try:
            raw = self._read()
            if raw is not None:
                self._parse(raw)
        except (ValueError, TypeError, KeyError, IndexError, struct.error, RecursionError):
            self._briefs, self._strings, self._records = {}, [], memoryview(b"")
            self._dirs = memoryview(b"")
            self.loaded = 0
        return self

    def _read(self) -> bytes | None:
        try:
            dir_fd = os.open(self.root / LOCKS_DIR, _DIR_FLAGS)
        except OSError:
            return None
        try:
            fd = os.open(INDEX_NAME, READ_FLAGS, dir_fd=dir_fd)
        except OSError:
            return None  # absent, a link (O_NOFOLLOW), or unreadable
        finally:
            os.close(dir_fd)
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode) or info.st_size > MAX_INDEX_BYTES:
                return None
            if not _trusted_owner(info.st_uid):
                # Another user's verdicts may vouch for files this user cannot read.
                return None
            return read_all(fd, info.st_size)
        except OSError:
            return None
        finally:
            os.close(fd)

    def _parse(self, raw: bytes) -> None:
        end = raw.index(b"\n")
        header = json.loads(raw[:end])
        if not isinstance(header, dict):
            raise ValueError("not an index header")
        size, count, crc = header.pop("json"), header.pop("records"), header.pop("crc")
        if header != self._header or not isinstance(size, int) or not isinstance(count, int):
            raise ValueError("an index of another format or code")
        body = end + 1 + size
        records = body + count * _RECORD.size
        if size < 0 or count < 0 or len(raw) < records:
            raise ValueError("an index of the wrong length")
        if zlib.crc32(memoryview(raw)[end + 1 :]) != crc:
            raise ValueError("an index whose bytes changed")  # a flipped bit, say
        part = json.loads(raw[end + 1 : body])
        strings, briefs = part["strings"], part["briefs"]
        if not isinstance(strings, list) or not all(isinstance(s, str) for s in strings):
            raise ValueError("bad strings")
        if len(set(strings)) != len(strings):
            raise ValueError("repeated strings")  # the index never writes one twice
        if not isinstance(briefs, list) or len(raw) != records + len(briefs) * _DIR.size:
            raise ValueError("bad briefs")
        table: dict[str, tuple[int, int, int]] = {}
        first = 0
        for position, (name, number) in enumerate(briefs):
            if not isinstance(name, str) or not _is_int(number) or number < 0:
                raise ValueError("bad brief entry")
            table[name] = (first, number, position)
            first += number
        if first != count:
            raise ValueError("records do not add up")
        self._briefs, self._strings = table, strings
        self._records = memoryview(raw)[body:records]
        self._dirs = memoryview(raw)[records:]
        self.loaded = count

    def _loaded_docs(self, brief_id: str) -> dict[int, Record]:
        docs = self._docs.get(brief_id)
        if docs is not None:
            return docs
        docs = {}
        entry = self._briefs.get(brief_id)
        if entry is not None and entry[1]:
            start = entry[0] * _RECORD.size
            chunk = self._records[start : start + entry[1] * _RECORD.size]
            strings = len(self._strings)
            # A garbled record is passed over: its document is judged afresh.
            docs = {
                r[1]: r
                for r in _RECORD.iter_unpack(chunk)
                if _DAMAGED <= r[8] < len(STATUSES)
                and -1 <= r[13] < strings
                and -1 <= r[14] < strings
                and (r[8] == _DAMAGED) == (r[14] != _NONE)
                and _FIRST_US <= r[11] <= _LAST_US
                and _FIRST_US <= r[12] <= _LAST_US
            }
        self._docs[brief_id] = docs
        return docs

    # -- entries -------------------------------------------------------------

    def knows(self, brief_id: str) -> bool:
        """Whether the index holds anything of a brief."""
        return bool(self._briefs.get(brief_id, (0, 0))[1] or self._fresh_docs.get(brief_id))

    def settled(self, found: Identity, seen_at: int) -> bool:
        """Whether an identity seen at ``seen_at`` was already past the racy window."""
        return seen_at - max(found.mtime_ns, found.ctime_ns) > self.racy_ns

    def lookup(self, brief_id: str, version: int, found: Identity) -> Record | None:
        """The entry of a document file whose ``lstat`` gave ``found``, if it is still true."""
        fresh = self._fresh_docs.get(brief_id)
        if fresh is None:
            fresh = self._fresh_docs[brief_id] = {}
        record = fresh.get(version)
        if record is None:
            loaded = self._docs.get(brief_id)
            if loaded is None:
                loaded = self._loaded_docs(brief_id)
            record = loaded.get(version)
            if record is None:
                return None
        if record[2:7] != found or not self.settled(found, record[_SEEN]):
            return None  # changed, or not settled when it was recorded
        fresh[version] = record
        return record

    def unchanged(
        self, brief_id: str, dir_fd: int, complete: Callable[[Sequence[int], list[str]], bool]
    ) -> Columns | None:
        """A brief's records (``_unchanged.Columns``) if they prove all of it unchanged and valid.

        ``complete`` tells whether the recorded versions (ascending) and their
        file names are every document its directory (open as ``dir_fd``)
        holds. ``None`` when any file changed, was added or removed, is
        damaged or was not settled when recorded: then look each one up.
        """
        entry = self._briefs.get(brief_id)
        if entry is None or brief_id in self._fresh_docs or brief_id in self._confirmed:
            return None
        first, count, _ = entry
        start = first * _RECORD.size
        found = unchanged_brief(
            self._records[start : start + count * _RECORD.size],
            count,
            complete,
            dir_fd,
            racy_ns=self.racy_ns,
            statuses=len(STATUSES),
            strings=len(self._strings),
            moments=(_FIRST_US, _LAST_US),
            identity=_cache.identity,
        )
        if found is not None:
            self._confirmed.add(brief_id)
        return found

    # -- whole briefs, proved through their directory -----------------------------

    def proven_many(self, root: str, brief_ids: Sequence[str]) -> dict[str, tuple[int, Shown]]:
        """How many versions each of ``brief_ids`` (directories of ``root``) that the index
        proves holds, and what a list of briefs shows of it.

        A brief is proved by its directory when the directory still has the
        identity it was listed under, settled then: adding, removing or
        renaming an entry changes a directory's mtime and ctime, so it holds
        the recorded documents still. An edit in place changes only the file,
        so each file must still have its recorded identity too, and each be
        valid. The files' ``lstat`` calls, most of the time, are shared with
        a forked child process when there are many (``_verdict.each_split``).
        """
        statuses, strings = _STATUS_COUNT, len(self._strings)
        return {
            brief_id: (count, shown)
            for brief_id, count, shown in self._prove_all(root, brief_ids, exact=False)
            if shown_in_range(shown, statuses=statuses, strings=strings)
        }

    def proven_counts(self, root: str, names: Sequence[str]) -> dict[str, int]:
        """How many documents each entry of ``names`` holds that the index proves an exact brief.

        As ``proven_many`` proves them, the listing also having named nothing but documents.
        """
        return {b: count for b, count, _ in self._prove_all(root, names, exact=True)}

    def _prove_all(
        self, root: str, brief_ids: Sequence[str], *, exact: bool
    ) -> list[tuple[str, int, Shown]]:
        """Each of ``brief_ids`` proved by its directory, its number of records and ``Shown``.

        What a proof must check is worked out, and checked, in the process
        that checks it (``_verdict.each_split``): ``_unchanged.proves``.
        """
        entries = self._briefs
        fresh, confirmed = self._fresh_docs, self._confirmed
        candidates = [
            (b, entry)
            for b in brief_ids
            if (entry := entries.get(b)) is not None and b not in fresh and b not in confirmed
        ]
        check = partial(proves, self._records, self._dirs, root, exact)
        proven = []
        dirs = self._dirs
        for (brief_id, entry), verdict in zip(
            candidates, each_split(check, candidates), strict=True
        ):
            if verdict != NO_PROOF:
                self._dir_seen.add(brief_id)
            if verdict == PROVED:
                proven.append((brief_id, entry[1], shown_at(dirs, entry[2])))
        confirmed.update(brief_id for brief_id, _, _ in proven)
        return proven

    def listings(self) -> Iterator[tuple[str, Identity, tuple[int, ...]]]:
        """Each brief directory recorded: its name, identity when listed, versions then."""
        dirs = self._dirs
        for name, (first, count, position) in self._briefs.items():
            recorded = _DIR.unpack_from(dirs, position * _DIR.size)
            flags = recorded[DIR_FLAGS_AT]
            if flags & DIR_KNOWN and count:
                chunk = self._records[first * _RECORD.size : (first + count) * _RECORD.size]
                if flags & DIR_DENSE:
                    versions = tuple(range(1, count + 1))
                else:
                    versions = tuple(int(v[:-5]) for v in document_names(chunk, count, False))
                yield name, Identity(*recorded[:DIR_FLAGS_AT]), versions

    def record_dir(
        self, brief_id: str, found: Identity, versions: Iterable[int], *, exact: bool
    ) -> None:
        """Keep a brief directory's settled identity and the versions its listing named.

        ``exact``: the listing named nothing else. Kept only if the records
        saved of the brief are then of exactly those versions.
        """
        self._dir_seen.add(brief_id)
        kept = (found, frozenset(versions), exact)
        loaded = self._loaded_dir(brief_id)
        if not exact and loaded is not None and loaded[:2] == kept[:2]:
            # The same identity lists the same names: what check saw still holds.
            kept = loaded
        if loaded != kept:
            self._changed = True
        self._fresh_dirs[brief_id] = kept

    def _loaded_dir(self, brief_id: str) -> tuple[Identity, frozenset[int], bool] | None:
        entry = self._briefs.get(brief_id)
        if entry is None:
            return None
        recorded = _DIR.unpack_from(self._dirs, entry[2] * _DIR.size)
        flags = recorded[DIR_FLAGS_AT]
        if not flags & DIR_KNOWN:
            return None
        found = Identity(*recorded[:DIR_FLAGS_AT])
        return found, frozenset(self._loaded_docs(brief_id)), bool(flags & DIR_EXACT)

    def _dir_record(
        self, name: str, records: dict[int, Record], text: Callable[[int], int]
    ) -> bytes:
        """The directory record saved of a brief whose saved records are ``records``.

        ``text`` gives the number a string of this index has in the file saved.
        """
        kept = self._fresh_dirs.get(name)
        if kept is None and (name not in self._dir_seen or name in self._confirmed):
            kept = self._loaded_dir(name)
        if kept is None or kept[1] != records.keys():
            return _NO_DIR
        flags = DIR_KNOWN | (DIR_EXACT if kept[2] else 0)
        versions = sorted(records)
        if versions == list(range(1, len(records) + 1)):
            flags |= DIR_DENSE
        shown = shown_of([records[v] for v in versions], text)
        if shown is not NOT_SHOWN:
            flags |= DIR_VALID
        return _DIR.pack(*kept[0], flags, *shown)

    def record(self, brief_id: str, judged: Record) -> Record:
        """Keep what ``judge`` said of a file, if its identity was settled when seen.

        Returns:
            The record as the index holds it (kept or not), for ``text``.
        """
        intern = self._intern
        record = (*judged[:REASON], intern(judged[REASON]), intern(judged[PROBLEM]), *judged[LINE:])
        if self.settled(Identity(*record[2:7]), record[_SEEN]):
            self._fresh_docs.setdefault(brief_id, {})[record[_VERSION]] = record
            self._changed = True
        return record

    def _intern(self, value: str | None) -> int:
        if value is None:
            return _NONE
        if len(self._numbers) != len(self._strings):
            self._numbers = {text: number for number, text in enumerate(self._strings)}
        number = self._numbers.get(value)
        if number is None:
            number = self._numbers[value] = len(self._strings)
            self._strings.append(value)
        return number

    def text(self, number: int) -> str | None:
        """The reason or problem a record holds, as text."""
        return None if number == _NONE else self._strings[number]

    def present(self, brief_id: str, versions: Iterable[int]) -> None:
        """Say which versions a brief holds now: entries of others are not kept."""
        self._present[brief_id] = set(versions)

    # -- judging many files at once ----------------------------------------------

    def judge_unknown(self, items: list[tuple[str, str, int]]) -> None:
        """Judge and record many files (``(path, brief, version)``), on every core if worth it.

        Files that cannot be judged here are left to the caller, which meets
        them as misses (``_verdict.judge_many``).
        """
        keep = self.judged_now.keep
        for brief_id, record in judge_many(items):
            keep(brief_id, self.record(brief_id, record))

    # -- writing the file ----------------------------------------------------

    def save(self, *, full: bool) -> bool:
        """Write the index if it changed; whether it was written. Never raises for the disk.

        Args:
            full: every brief and document was looked at, so entries not
                looked at are gone and are dropped; otherwise they are kept.
        """
        confirmed = self._confirmed
        if full:
            docs = self._fresh_docs
            kept = sum(len(held) for name, held in docs.items() if name not in confirmed)
            kept += sum(self._briefs[name][1] for name in confirmed)
            if not self._changed and kept == self.loaded:
                return False
            if confirmed:
                docs = {**docs, **{name: self._whole(name) for name in confirmed}}
        else:
            gone = (
                set(self._loaded_docs(name)) - now
                for name, now in self._present.items()
                if name not in confirmed
            )
            if not self._changed and not any(gone):
                return False
            docs = self._merged()
        try:
            data = self._encode(docs)
        except (ValueError, OverflowError, struct.error):
            return False  # a value the layout cannot hold: better no index
        if len(data) > MAX_INDEX_BYTES:
            return False
        return write_atomically(self.root / LOCKS_DIR, INDEX_NAME, data)

    def _whole(self, brief_id: str) -> dict[int, Record]:
        return {**self._loaded_docs(brief_id), **self._fresh_docs.get(brief_id, {})}

    def _merged(self) -> dict[str, dict[int, Record]]:
        docs: dict[str, dict[int, Record]] = {}
        for name in self._briefs.keys() | self._fresh_docs.keys():
            merged = {**self._loaded_docs(name), **self._fresh_docs.get(name, {})}
            present = self._present.get(name)
            if present is not None:
                merged = {v: r for v, r in merged.items() if v in present}
            if merged:
                docs[name] = merged
        return docs

    def _encode(self, docs: dict[str, dict[int, Record]]) -> bytes:
        strings: dict[str, int] = {}
        held = self._strings

        def text(number: int) -> int:
            return _NONE if number == _NONE else strings.setdefault(held[number], len(strings))

        briefs = []
        packed = bytearray()
        dirs = bytearray()
        pack = _RECORD.pack
        for number, name in enumerate(sorted(name for name, held in docs.items() if held)):
            records = docs[name]
            briefs.append([name, len(records)])
            dirs += self._dir_record(name, records, text)
            for version in sorted(records):
                r = records[version]
                packed += pack(number, *r[1:REASON], text(r[REASON]), text(r[PROBLEM]), *r[LINE:])
        part = json.dumps(
            {"strings": list(strings), "briefs": briefs}, ensure_ascii=False, separators=(",", ":")
        ).encode()
        count = len(packed) // _RECORD.size
        body = part + bytes(packed) + bytes(dirs)
        crc = zlib.crc32(body)
        header = json.dumps({**self._header, "json": len(part), "records": count, "crc": crc})
        return header.encode() + b"\n" + body


def _trusted_owner(uid: int) -> bool:
    """Whether an index owned by ``uid`` may be read: this user's own, or any for root."""
    me = os.geteuid() if hasattr(os, "geteuid") else uid
    return me in (0, uid)


def _is_int(value: object) -> bool:
    return type(value) is int
