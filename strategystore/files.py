"""``FileStore``: strategy documents as plain JSON files in a data directory.

Layout (format 1)::

    strategy-data/
    ├── strategystore.json        {"format": 1}, written last when initialising
    ├── .gitignore                ignores .locks/ and temporary files
    ├── .locks/<brief>.lock       one lock file per case-folded brief id
    └── <brief_id>/<version>.json the document's canonical bytes

Every write takes the brief's lock (``flock`` on its lock file, so it excludes
other threads and other processes alike), checks, then writes a temporary
file in the brief directory, fsyncs it, publishes it with ``os.link``
(insert-only: ``EEXIST`` is the unique constraint) or ``os.replace`` (upsert),
and fsyncs the directory. Reads take no lock: a document is only ever
replaced whole, so a reader sees the old bytes or the new ones.

Nothing inside the data directory is reached through a symbolic link: brief
directories, documents, ``.locks/`` and lock files are opened with
``O_NOFOLLOW`` relative to their parent's descriptor.
"""

from __future__ import annotations

import errno
import fcntl
import itertools
import json
import os
import re
import stat
import sys
import threading
import time
from collections.abc import Callable, Hashable
from contextlib import suppress
from pathlib import Path
from typing import Any, NamedTuple, TypeVar

from pydantic import ValidationError

from strategystore._fsio import read_all, write_all
from strategystore._locks import (
    DEFAULT_LOCK_TIMEOUT,
    acquire,
    check_timeout,
    close_lock,
    is_lock_at,
    is_marked,
    mark,
    open_registered,
    time_left,
)
from strategystore.errors import (
    CorruptDocumentError,
    LockTimeoutError,
    StoreFormatError,
    StrategyStoreError,
)
from strategystore.models import (
    MAX_VERSION,
    StrategyDocument,
    check_brief_id,
    describe_validation_error,
)
from strategystore.store import BaseStore

__all__ = [
    "FORMAT",
    "MARKER_NAME",
    "DocumentFileError",
    "FileStore",
    "conflict_marker_line",
    "decode_document_file",
    "describe_invalid",
]

#: The on-disk format this version reads and writes.
FORMAT = 1
#: The file that marks a directory as a data directory.
MARKER_NAME = "strategystore.json"
LOCKS_DIR = ".locks"
GITIGNORE = b"# strategystore: lock files and temporary files stay out of git\n.locks/\n.*.tmp\n"

_DOCUMENT_NAME = re.compile(r"[1-9][0-9]{0,9}\.json")
_CONFLICT_MARKERS = (b"<<<<<<<", b"|||||||", b"=======", b">>>>>>>")
_O_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _O_CLOEXEC
_READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | _O_CLOEXEC
_NO_LINKS = "the store never follows symbolic links inside its data directory"


def document_version(name: str) -> int | None:
    """The version a file name in a brief directory stands for, or ``None``.

    Only plain decimal names count: ``12.json`` is version 12, ``012.json`` is
    not a document.
    """
    if _DOCUMENT_NAME.fullmatch(name) is None:
        return None
    version = int(name[:-5])
    return version if version < MAX_VERSION else None


def is_temporary(name: str) -> bool:
    """Whether ``name`` is one of the store's temporary files."""
    return name.startswith(".") and name.endswith(".tmp")


def conflict_marker_line(data: bytes) -> int | None:
    """The 1-based line of the first git merge-conflict marker in ``data``, if any."""
    for number, line in enumerate(data.splitlines(), start=1):
        if line.startswith(_CONFLICT_MARKERS):
            return number
    return None


def describe_invalid(data: bytes, error: ValidationError, *, stored: bool = True) -> str:
    """Say, for a person, why ``data`` is not a valid document.

    Args:
        data: the bytes that did not validate.
        error: what validation said.
        stored: ``data`` is a file in a data directory (the advice is to
            restore it); ``False`` for input given to a command.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        return (
            "starts with a UTF-8 byte order mark (BOM), which a document file must not; "
            "save it as UTF-8 without a BOM"
        )
    if not data.strip():
        if stored:
            return "the file is empty; restore it from git or delete it"
        return "is empty; expected a JSON document"
    line = conflict_marker_line(data)
    if line is not None:
        return f"git merge-conflict marker at line {line}; resolve the conflict and remove it"
    summary = describe_validation_error(error)
    if summary.startswith("not valid JSON"):
        return summary
    return "not a valid strategy document: " + summary


class DocumentFileError(ValueError):
    """A document file that is not a valid, complete document.

    Attributes:
        reason: what is wrong and what to do, for a person.
        line: the 1-based line a person should look at, when there is one.
    """

    def __init__(self, reason: str, line: int | None = None) -> None:
        self.reason = reason
        self.line = line
        super().__init__(reason)


#: Every field a document file must state (DESIGN §6): the model's defaults
#: serve callers building documents, never a stored file.
_FILE_FIELDS = tuple(StrategyDocument.model_fields)
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[{}\[\]:]')
_JSON_POSITION = re.compile(r"at line (\d+) column \d+")


def decode_document_file(data: bytes) -> StrategyDocument:
    """The document a file in a data directory holds, by the rules for stored files.

    A file must be a valid document that states every field and repeats no
    key in any object; a file the store wrote is canonical, which proves both
    at once, so only a hand-edited layout is examined further.

    Raises:
        DocumentFileError: with the reason and, where it has one, the line.
    """
    try:
        doc = StrategyDocument.from_json_bytes(data)
    except ValidationError as exc:
        problems = exc.errors(include_url=False, include_input=False)
        parsed = bool(problems) and problems[0]["type"] != "json_invalid"
        if parsed and data.lstrip().startswith(b"{") and _utf8(data):
            # A field left out explains a confusing error (a default created_at
            # of now is after the file's updated_at), so it is named first.
            _check_hand_edited(data.decode())
        raise DocumentFileError(describe_invalid(data, exc), _error_line(data, exc)) from exc
    if doc._dump() != data:
        # Re-encoding a file with a repeated key, or a field left out, can
        # never give back the same bytes; only such files need a closer look.
        _check_hand_edited(data.decode())
    return doc


def _check_hand_edited(text: str) -> None:
    """Refuse a repeated key in any object, and a top-level field left out."""
    # The text is valid JSON (it parsed), so its strings and brackets can be
    # matched by pattern; a string followed by ':' is a key.
    frames: list[dict[str, int] | None] = []  # one per open object (keys: offsets) or array
    top_level: dict[str, int] = {}
    key: tuple[str, int] | None = None
    for token in _JSON_TOKEN.finditer(text):
        mark = token.group()
        if mark == "{":
            frames.append(top_level if not frames else {})
        elif mark == "[":
            frames.append(None)
        elif mark in "}]":
            frames.pop()
        elif mark == ":":
            assert key is not None
            name, offset = key
            seen = frames[-1]
            assert seen is not None
            if name in seen:
                first, again = _line_at(text, seen[name]), _line_at(text, offset)
                raise DocumentFileError(
                    f"the key {name!r} appears twice in one object, at lines {first} and "
                    f"{again}; a merge or a hand edit left both: keep the right one",
                    again,
                )
            seen[name] = offset
        else:
            # Only a string followed by ':' is a key; decoding is needed only
            # where an escape could spell the same key differently.
            key = (json.loads(mark) if "\\" in mark else mark[1:-1], token.start())
    missing = [field for field in _FILE_FIELDS if field not in top_level]
    if missing:
        raise DocumentFileError(
            f"does not state {', '.join(missing)}: a document file states every field "
            "(restore it from git, or add the missing fields)"
        )


def _utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


def _line_at(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _error_line(data: bytes, error: ValidationError) -> int | None:
    """The line a person should look at: a conflict marker, a JSON error, or the field."""
    marker_line = conflict_marker_line(data)
    if marker_line is not None:
        return marker_line
    problems = error.errors(include_url=False, include_input=False)
    if problems and problems[0]["type"] == "json_invalid":
        found = _JSON_POSITION.search(str(problems[0].get("ctx", {}).get("error", "")))
        return int(found.group(1)) if found else None
    return _field_line(data, error)


def _field_line(data: bytes, error: ValidationError) -> int | None:
    """The line of the top-level field the first validation error is about, if it is plain."""
    problems = error.errors(include_url=False, include_input=False)
    if not problems or not problems[0]["loc"]:
        return None
    field = json.dumps(str(problems[0]["loc"][0])).encode()
    # Blanks within the line only: \s would span lines, and a file of blank
    # lines would take quadratic time to search.
    pattern = re.compile(rb"^[ \t]*" + re.escape(field) + rb"[ \t]*:", re.MULTILINE)
    lines = [data.count(b"\n", 0, m.start()) + 1 for m in pattern.finditer(data)]
    # A name that also appears nested (a metadata key, say) is ambiguous.
    return lines[0] if len(lines) == 1 else None


class FileStore(BaseStore):
    """Strategy documents as JSON files under ``data_dir``, safe across threads and processes.

    Args:
        data_dir: the data directory. A missing one, or one holding only
            dot-files (a fresh ``git init``), is initialised when ``create``.
        create: initialise the directory when needed; otherwise a missing or
            empty directory raises ``StoreFormatError``.
        durable: fsync every file and directory a write touches, so a write
            that returned survives a power cut. ``False`` still survives a
            crash of the process, and is much faster.
        lock_timeout: seconds to wait for a brief's lock before
            ``LockTimeoutError``.

    Raises:
        StoreFormatError: ``data_dir`` is not a data directory (other content
            and no marker file), or was written by a newer format.
    """

    #: Called with the name of each I/O step of a write just before it runs
    #: (``temp-create``, ``write``, ``fsync``, ``link``/``replace``, ``dir-fsync``,
    #: ``unlink``, ``lock-release``) and the path it touches. Tests set it to
    #: inject faults or crash at an exact step; it is ``None`` otherwise.
    _io_hook: Callable[[str, Path], None] | None = None

    def __init__(
        self,
        data_dir: str | os.PathLike[str],
        *,
        create: bool = True,
        durable: bool = True,
        lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    ) -> None:
        self.data_dir = Path(os.path.abspath(data_dir))
        self.durable = durable
        self.lock_timeout = check_timeout(lock_timeout)
        self._root = str(self.data_dir)
        self._cache_lock = threading.Lock()
        self._made_root = False
        self._open_data_dir(create=create)
        # On a case-insensitive file system the marker answers to another case too.
        self._case_insensitive = os.path.lexists(self.data_dir / MARKER_NAME.upper())
        self._racy_ns = _racy_window_ns(self.data_dir)
        self._documents: dict[str, _Cached] = {}
        self._listings: dict[str, _Listing] = {}
        self._cached_bytes = 0
        self._fold_index: tuple[_Identity, dict[str, tuple[str, ...]]] | None = None
        # Brief directories (device, inode) whose entry this store made
        # durable, with the ctime its last durable write there left.
        self._durable_dirs: dict[tuple[int, int], int] = {}
        self._root_durable = self._made_root

    def __repr__(self) -> str:
        return (
            f"FileStore({str(self.data_dir)!r}, durable={self.durable!r}, "
            f"lock_timeout={self.lock_timeout!r})"
        )

    def document_path(self, brief_id: str, version: int) -> Path:
        """Where the document ``(brief_id, version)`` lives (whether or not it exists)."""
        return self.data_dir / check_brief_id(brief_id) / f"{version}.json"

    # -- opening the data directory ------------------------------------------

    def _open_data_dir(self, *, create: bool) -> None:
        root = self.data_dir
        if not root.exists():
            if not create:
                raise StoreFormatError(
                    f"{root} does not exist; create it with `strategystore --dir {root} init`"
                )
            self._make_data_dir(root)
        elif not root.is_dir():
            raise StoreFormatError(f"{root} is not a directory")
        if self._read_marker():
            return
        others = sorted(
            name for name in os.listdir(root) if not name.startswith(".") and name != MARKER_NAME
        )
        if self._read_marker():
            return  # another process finished initialising it a moment ago
        if others:
            shown = ", ".join(others[:3]) + (", …" if len(others) > 3 else "")
            raise StoreFormatError(
                f"{root} is not a strategystore data directory: it has no {MARKER_NAME} "
                f"and holds other files ({shown}); choose an empty directory"
            )
        if not create:
            raise StoreFormatError(
                f"{root} is not initialised; run `strategystore --dir {root} init`"
            )
        self._initialise()

    def _make_data_dir(self, root: Path) -> None:
        missing = []
        ancestor = root
        while not ancestor.exists():
            missing.append(ancestor)
            ancestor = ancestor.parent
        root.mkdir(parents=True, exist_ok=True)
        if self.durable:
            # A new directory is durable once its entry in its parent is.
            for created in reversed(missing):
                _fsync_dir(created.parent)
            self._made_root = True

    def _read_marker(self) -> bool:
        """Check the marker file; ``False`` when there is none."""
        path = self.data_dir / MARKER_NAME
        try:
            fd = os.open(path, _READ_FLAGS)
        except FileNotFoundError:
            return False
        except OSError as exc:
            raise StoreFormatError(f"{path}: cannot read the marker file ({exc.strerror})") from exc
        with os.fdopen(fd, "rb") as marker:
            if not stat.S_ISREG(os.fstat(marker.fileno()).st_mode):
                raise StoreFormatError(f"{path}: the marker is not a regular file")
            raw = marker.read()
        try:
            found = json.loads(raw)
            version = found["format"]
        except (ValueError, TypeError, KeyError) as exc:
            raise StoreFormatError(
                f'{path}: not a valid marker file; it should hold {{"format": {FORMAT}}}'
            ) from exc
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise StoreFormatError(f"{path}: format {version!r} is not a format number")
        if version > FORMAT:
            raise StoreFormatError(
                f"{path}: format {version} is newer than this strategystore reads "
                f"(format {FORMAT}); upgrade strategystore"
            )
        return True

    def _initialise(self) -> None:
        # The marker goes last: a directory with a marker is complete, and two
        # processes initialising at once both succeed (each publication is
        # insert-only and the loser finds the winner's identical file).
        self._make_locks_dir()
        root_fd = os.open(self.data_dir, _DIR_FLAGS & ~os.O_NOFOLLOW)
        try:
            self._add_missing_lines(root_fd, ".gitignore", GITIGNORE)
            marker = json.dumps({"format": FORMAT}, indent=2).encode() + b"\n"
            self._publish(
                root_fd,
                self._root,
                MARKER_NAME,
                marker,
                exclusive=True,
                durable=self.durable,
                missing_ok=True,
            )
        finally:
            os.close(root_fd)
        if not self._read_marker():  # pragma: no cover - removed by someone at once
            raise StoreFormatError(f"{self.data_dir}: the marker file vanished while initialising")

    def _add_missing_lines(self, root_fd: int, name: str, wanted: bytes) -> None:
        """Write ``name`` in the data directory, or add to the user's own the lines it lacks."""
        try:
            fd = os.open(name, _READ_FLAGS, dir_fd=root_fd)
        except FileNotFoundError:
            self._publish(
                root_fd,
                self._root,
                name,
                wanted,
                exclusive=True,
                durable=self.durable,
                missing_ok=True,
            )
            return
        except OSError:
            return  # a link or an unreadable file is the user's to fix; git shows it
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return
            present = read_all(fd, 0)
        finally:
            os.close(fd)
        have = {line.strip() for line in present.splitlines()}
        missing = [
            line for line in wanted.splitlines() if line.startswith(b"#") or line not in have
        ]
        if all(line.startswith(b"#") for line in missing):
            return
        joined = present if present.endswith(b"\n") or not present else present + b"\n"
        self._publish(
            root_fd,
            self._root,
            name,
            joined + b"\n".join(missing) + b"\n",
            exclusive=False,
            durable=self.durable,
        )

    # -- primitives: reading -------------------------------------------------

    def _load(self, brief_id: str, version: int) -> tuple[StrategyDocument, bytes] | None:
        path = f"{self._root}/{brief_id}/{version}.json"
        try:
            info = os.lstat(path)
        except (FileNotFoundError, NotADirectoryError):
            # Absent. (Through a brief directory that is a link this finds
            # nothing too; writing there is refused when the directory is opened.)
            self._drop(self._documents, path)
            return None
        except OSError:
            info = None
        cached = self._documents.get(path)
        if (
            cached is not None
            and info is not None
            and _identity(info) == cached.identity
            # lstat followed the brief directory; it must still be no link.
            and self._is_real_dir(f"{self._root}/{brief_id}")
        ):
            return _copy(cached.doc), cached.data
        seen_at = time.time_ns()
        found = self._read_document(brief_id, version)
        if found is None:
            self._drop(self._documents, path)
            return None
        data, identity = found
        doc = self._decode(brief_id, version, data)
        if doc is None:
            return None
        if self._settled(identity, seen_at):
            self._remember(self._documents, path, _Cached(identity, doc, data))
            doc = _copy(doc)
        return doc, data

    @staticmethod
    def _is_real_dir(path: str) -> bool:
        """Whether ``path`` is a directory, not a link; ``False`` once it is gone."""
        try:
            return stat.S_ISDIR(os.lstat(path).st_mode)
        except OSError:
            return False  # removed a moment ago (its last version deleted): read afresh

    def _decode(self, brief_id: str, version: int, data: bytes) -> StrategyDocument | None:
        path = f"{self._root}/{brief_id}/{version}.json"
        try:
            doc = decode_document_file(data)
        except DocumentFileError as exc:
            raise CorruptDocumentError(path, exc.reason) from exc
        if doc.brief_id != brief_id or doc.version != version:
            if (
                self._case_insensitive
                and doc.version == version
                and doc.brief_id.lower() == brief_id.lower()
            ):
                return None  # the same brief under another case: a read finds nothing
            raise CorruptDocumentError(
                path,
                f"holds version {doc.version} of brief {doc.brief_id!r}, which belongs at "
                f"{doc.brief_id}/{doc.version}.json; move it there or fix its fields",
            )
        return doc

    def _read_document(self, brief_id: str, version: int) -> tuple[bytes, _Identity] | None:
        """The bytes of a document file and the identity they were read under."""
        dir_fd = self._open_brief_dir(brief_id)
        if dir_fd is None:
            return None
        name = f"{version}.json"
        try:
            fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            path = self.data_dir / brief_id / name
            if exc.errno == errno.ELOOP:
                raise CorruptDocumentError(path, f"is a symbolic link; {_NO_LINKS}") from exc
            raise CorruptDocumentError(path, f"cannot be read: {exc.strerror}") from exc
        finally:
            os.close(dir_fd)
        try:
            # The identity is taken before the bytes: a change made while
            # reading then shows as a different identity on the next read.
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                path = self.data_dir / brief_id / name
                raise CorruptDocumentError(path, "is not a regular file; remove it")
            return read_all(fd, info.st_size), _identity(info)
        finally:
            os.close(fd)

    def _open_brief_dir(self, brief_id: str) -> int | None:
        """A descriptor of the brief's directory, or ``None`` when there is none."""
        try:
            return os.open(f"{self._root}/{brief_id}", _DIR_FLAGS)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._not_a_directory(self.data_dir / brief_id, exc) from exc

    @staticmethod
    def _not_a_directory(path: Path, exc: OSError) -> CorruptDocumentError:
        if path.is_symlink():
            return CorruptDocumentError(path, f"is a symbolic link; {_NO_LINKS}")
        if exc.errno == errno.ENOTDIR:
            return CorruptDocumentError(path, "is not a directory; move it elsewhere")
        return CorruptDocumentError(path, f"cannot be opened: {exc.strerror}")

    def _versions(self, brief_id: str) -> list[int]:
        path = f"{self._root}/{brief_id}"
        cached = self._listings.get(path)
        if cached is not None:
            try:
                unchanged = _identity(os.lstat(path)) == cached.identity
            except OSError:
                unchanged = False
            if unchanged:
                return list(cached.versions)
        seen_at = time.time_ns()
        dir_fd = self._open_brief_dir(brief_id)
        if dir_fd is None:
            self._drop(self._listings, path)
            return []
        try:
            identity = _identity(os.fstat(dir_fd))
            names = os.listdir(dir_fd)
        finally:
            os.close(dir_fd)
        versions = [v for v in map(document_version, names) if v is not None]
        if self._settled(identity, seen_at):
            self._remember(self._listings, path, _Listing(identity, tuple(versions)))
        return versions

    def _stamp(self, brief_id: str, version: int) -> Hashable:
        # Every write publishes a new file, so a rewritten document has a new
        # inode, and its identity changes.
        try:
            return _identity(os.lstat(f"{self._root}/{brief_id}/{version}.json"))
        except OSError:
            return None

    def _settled(self, identity: _Identity, seen_at: int) -> bool:
        """Whether a file's timestamps prove any later change would alter them.

        git's racy-entry rule: a change within the file system's timestamp
        granularity of the last one can leave mtime and ctime as they were, so
        only entries whose timestamps were already older than that when the
        file was looked at (``seen_at``, taken before its stat) are kept.
        """
        newest = max(identity[3], identity[4])
        return seen_at - newest > self._racy_ns

    def _remember(self, cache: dict[str, _Entry], key: str, entry: _Entry) -> None:
        with self._cache_lock:
            if cache is self._listings:
                if key not in cache and len(cache) >= LISTING_CACHE_SIZE:
                    cache.pop(next(iter(cache)), None)
            else:
                assert isinstance(entry, _Cached)
                size = len(entry.data)
                if size > CACHE_BYTES // 8:
                    return  # one huge document is not worth pushing out many small ones
                self._cached_bytes += size - _cached_size(cache.get(key))
                while self._cached_bytes > CACHE_BYTES or len(cache) >= CACHE_SIZE:
                    oldest = cache.pop(next(iter(cache)))
                    self._cached_bytes -= _cached_size(oldest)
            cache[key] = entry

    def _drop(self, cache: dict[str, _Entry], key: str) -> None:
        if key not in cache:
            # Every entry is checked against its file before it is used, so
            # dropping is only tidying; an absent key needs no lock.
            return
        with self._cache_lock:
            entry = cache.pop(key, None)
            if cache is self._documents:
                self._cached_bytes -= _cached_size(entry)

    def _briefs(self) -> list[str]:
        briefs = []
        with os.scandir(self._root) as entries:
            for entry in entries:
                if not _is_brief_name(entry.name) or not entry.is_dir(follow_symlinks=False):
                    continue
                try:
                    if self._versions(entry.name):
                        briefs.append(entry.name)
                except CorruptDocumentError:
                    # Passed over only when it became a link or a file since the
                    # scan; one that cannot be opened may hold versions, so it is
                    # listed and reading it raises.
                    with suppress(FileNotFoundError):
                        if stat.S_ISDIR(os.lstat(entry.path).st_mode):
                            briefs.append(entry.name)
        return briefs

    def _case_variant(self, brief_id: str) -> str | None:
        folded = brief_id.lower()
        names = self._names_by_fold()
        if names is not None:
            # The data directory's listing is settled: only names that fold to
            # the same id can collide, and usually there is none but this one.
            candidates = [name for name in names.get(folded, ()) if name != brief_id]
        elif not self._case_insensitive and self._holds_documents(brief_id):
            # Only a directory holding a document is a brief: one left empty by
            # a failed write, or kept by a stray file, vouches for nothing.
            return None
        else:
            listed = os.listdir(self._root)
            candidates = [name for name in listed if name != brief_id and name.lower() == folded]
        for name in candidates:
            with suppress(CorruptDocumentError):
                if self._versions(name):
                    return name
        return None

    def _names_by_fold(self) -> dict[str, tuple[str, ...]] | None:
        """The data directory's entries grouped by case-folded name, if settled.

        ``None`` while the directory changed too recently for its timestamps to
        prove a later change (the racy rule); the caller then looks itself.
        """
        seen_at = time.time_ns()
        identity = _identity(os.lstat(self._root))
        cached = self._fold_index
        if cached is not None and cached[0] == identity:
            return cached[1]
        if not self._settled(identity, seen_at):
            return None
        groups: dict[str, list[str]] = {}
        for name in os.listdir(self._root):
            if not name.startswith("."):
                groups.setdefault(name.lower(), []).append(name)
        if _identity(os.lstat(self._root)) != identity:
            return None  # changed while it was listed
        index = {fold: tuple(group) for fold, group in groups.items()}
        self._fold_index = (identity, index)
        return index

    def _holds_documents(self, brief_id: str) -> bool:
        dir_fd = self._open_brief_dir(brief_id)
        if dir_fd is None:
            return False
        try:
            with os.scandir(dir_fd) as entries:
                # Stops at the first document, however many versions follow.
                return any(document_version(entry.name) is not None for entry in entries)
        finally:
            os.close(dir_fd)

    # -- primitives: writing -------------------------------------------------

    def _write(
        self,
        doc: StrategyDocument,
        data: bytes,
        *,
        exclusive: bool,
        sync: bool = True,
        staged: object = None,
    ) -> None:
        durable = self.durable and sync
        self._forget(doc.brief_id, doc.version)
        dir_fd = self._make_brief_dir(doc.brief_id, durable=durable)
        where = f"{self._root}/{doc.brief_id}"
        try:
            before = os.fstat(dir_fd)
            self._publish(
                dir_fd,
                where,
                f"{doc.version}.json",
                data,
                exclusive=exclusive,
                durable=durable,
                staged=self._still_staged(dir_fd, staged),
                then=lambda: self._make_path_durable(dir_fd, before),
            )
        except OSError as exc:
            _name_document(exc, where, f"{doc.version}.json")
            raise
        finally:
            os.close(dir_fd)

    def _make_path_durable(self, dir_fd: int, before: os.stat_result) -> None:
        """Make the brief directory's entry durable, and the data directory's, when not known to be.

        Whoever made them, and however (an import that failed part-way, a
        process that crashed, a store with ``durable=False``), a durable write
        returns only once every directory on its path is on disk too. A store
        remembers each brief directory it made durable with the ctime its own
        last write left there: a directory nobody else touched since (the
        usual case, one writer per brief) needs no fsync of the data
        directory; one changed by anyone else, removed and made again under
        the same inode number included, gets one.
        """
        key = (before.st_dev, before.st_ino)
        if self._durable_dirs.get(key) != before.st_ctime_ns:
            if not self._root_durable:
                _fsync_dir(self.data_dir.parent, if_readable=True)
                self._root_durable = True
            _fsync_dir(self.data_dir)
        self._remember_durable(key, os.fstat(dir_fd).st_ctime_ns)

    def _remember_durable(self, key: tuple[int, int], ctime_ns: int) -> None:
        with self._cache_lock:
            if key not in self._durable_dirs and len(self._durable_dirs) >= LISTING_CACHE_SIZE:
                self._durable_dirs.pop(next(iter(self._durable_dirs)), None)
            self._durable_dirs[key] = ctime_ns

    def _stage(self, items: list[tuple[StrategyDocument, bytes]]) -> list[object]:
        if not self.durable:
            return [None] * len(items)
        tokens: list[object] = []
        created: list[str] = []
        try:
            for doc, data in items:
                tokens.append(self._stage_one(doc, data, created))
            staged = [t for t in tokens if isinstance(t, tuple)]
            if staged:
                if self._io_hook is not None:
                    self._io_hook("stage-sync", self.data_dir)
                if not _syncfs(self._root):
                    for brief_id, temp in staged:
                        _fsync_file(f"{self._root}/{brief_id}/{temp}")
        except BaseException as exc:
            self._unstage(tokens)
            if isinstance(exc, Exception):
                self._remove_if_empty(created)
            raise
        return tokens

    def _remove_if_empty(self, brief_ids: list[str]) -> None:
        """Remove brief directories a failed import made, unless a writer filled them."""
        for brief_id in brief_ids:
            # Only the brief's lock makes removing its directory safe from its writers.
            with suppress(StrategyStoreError, OSError), self._locked(brief_id):
                os.rmdir(f"{self._root}/{brief_id}")

    def _stage_one(self, doc: StrategyDocument, data: bytes, created: list[str]) -> object:
        """Write ``doc`` to a temporary file beside its name.

        Brief directories this makes are added to ``created``.
        """
        try:
            dir_fd = self._make_brief_dir(doc.brief_id, durable=False, made=created)
        except CorruptDocumentError:
            return None  # refused when its turn comes, under the lock
        try:
            name = f"{doc.version}.json"
            where = f"{self._root}/{doc.brief_id}"
            return (doc.brief_id, self._write_temporary(dir_fd, where, name, data, sync=False))
        except FileNotFoundError:
            return None  # its last version was deleted just now: written the plain way
        except OSError as exc:
            _name_document(exc, where, name)
            raise
        finally:
            os.close(dir_fd)

    @staticmethod
    def _still_staged(dir_fd: int, staged: object) -> str | None:
        """The staged temporary file's name, unless someone removed it by hand."""
        if not isinstance(staged, tuple):
            return None
        try:
            os.lstat(staged[1], dir_fd=dir_fd)
        except FileNotFoundError:
            return None  # written afresh instead
        return str(staged[1])

    def _unstage(self, tokens: list[object], *, locked: bool = False) -> None:
        for token in tokens:
            if isinstance(token, tuple):
                with suppress(OSError):
                    os.unlink(f"{self._root}/{token[0]}/{token[1]}")
                if locked:
                    # A brief directory made only to stage a refused document
                    # would otherwise stay behind, empty. Only the brief's
                    # lock makes removing it safe from its writers.
                    with suppress(OSError):
                        os.rmdir(f"{self._root}/{token[0]}")

    def _flush(self, keys: list[tuple[str, int]]) -> None:
        if not self.durable or not keys:
            return
        if self._io_hook is not None:
            self._io_hook("flush", self.data_dir)
        if _syncfs(self._root):
            return
        # Files first, then each directory once: a name is only durable once
        # the data it points to is.
        for brief_id, version in keys:
            path = self.data_dir / brief_id / f"{version}.json"
            with suppress(FileNotFoundError):
                fd = os.open(path, _READ_FLAGS)
                try:
                    os.fsync(fd)
                except OSError as exc:
                    exc.filename = str(path)
                    raise
                finally:
                    os.close(fd)
        for brief_id in dict.fromkeys(brief_id for brief_id, _ in keys):
            with suppress(FileNotFoundError):
                _fsync_dir(self.data_dir / brief_id)
        _fsync_dir(self.data_dir)

    def _publish(
        self,
        dir_fd: int,
        where: str,
        name: str,
        data: bytes,
        *,
        exclusive: bool,
        durable: bool,
        missing_ok: bool = False,
        staged: str | None = None,
        then: Callable[[], None] | None = None,
    ) -> None:
        """Write ``data`` to ``name`` in the directory ``dir_fd`` (at ``where``) atomically.

        The proven order: temporary file, write, fsync, link or replace, fsync
        of the directory. When that last fsync fails the previous state is put
        back, so a write that raises has changed nothing. ``staged`` names a
        temporary file already holding ``data`` durably (see ``_stage``);
        ``then`` runs after the directory fsync, and its failure is undone the
        same way (the directories above, made durable).
        """
        hook = self._io_hook
        # Even a write made durable later (an import) has its data durable
        # before its name is published: a name can reach the disk before the
        # data it points to, and an empty document is a corrupt one.
        temp = staged or self._write_temporary(
            dir_fd, where, name, data, sync=durable or self.durable
        )
        backup: str | None = None
        published = renamed = False
        try:
            try:
                if not exclusive:
                    if durable:
                        backup = _keep(dir_fd, name)
                    if hook is not None:
                        hook("replace", Path(where, name))
                    os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                    renamed = published = True
                else:
                    if hook is not None:
                        hook("link", Path(where, name))
                    try:
                        os.link(
                            temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False
                        )
                        published = True
                    except FileExistsError:
                        if not missing_ok:
                            raise
            finally:
                if not renamed:
                    # After a link the temporary name is redundant; after a failure
                    # it must not outlive the write.
                    with suppress(OSError):
                        os.unlink(temp, dir_fd=dir_fd)
            if durable:
                try:
                    if hook is not None:
                        hook("dir-fsync", Path(where))
                    os.fsync(dir_fd)
                    if then is not None:
                        then()
                except OSError:
                    if published:
                        _restore(dir_fd, name, backup)
                        backup = None
                    raise
        finally:
            if backup is not None:
                with suppress(OSError):
                    os.unlink(backup, dir_fd=dir_fd)

    def _write_temporary(
        self, dir_fd: int, where: str, name: str, data: bytes, *, sync: bool
    ) -> str:
        """A new temporary file beside ``name``, holding ``data``; returns its name."""
        hook = self._io_hook
        while True:
            temp = _temporary_name(name)
            if hook is not None:
                hook("temp-create", Path(where, temp))
            try:
                fd = os.open(
                    temp,
                    os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _O_CLOEXEC,
                    0o666,
                    dir_fd=dir_fd,
                )
                break
            except FileExistsError:
                continue  # left by a crashed process that had this pid
        try:
            try:
                if hook is not None:
                    hook("write", Path(where, temp))
                write_all(fd, data)
                if sync:
                    if hook is not None:
                        hook("fsync", Path(where, temp))
                    os.fsync(fd)
            finally:
                os.close(fd)
        except BaseException:
            with suppress(OSError):
                os.unlink(temp, dir_fd=dir_fd)
            raise
        return temp

    def _make_brief_dir(
        self, brief_id: str, *, durable: bool, made: list[str] | None = None
    ) -> int:
        """A descriptor of the brief's directory, made if missing (and then named in ``made``)."""
        dir_fd = self._open_brief_dir(brief_id)
        if dir_fd is not None:
            return dir_fd
        synced = False
        with suppress(FileExistsError):
            os.mkdir(f"{self._root}/{brief_id}")
            if made is not None:
                made.append(brief_id)
            if durable:
                _fsync_dir(self.data_dir)
                synced = True
        dir_fd = self._open_brief_dir(brief_id)
        if dir_fd is None:  # pragma: no cover - removed again at once by someone else
            raise CorruptDocumentError(self.data_dir / brief_id, "vanished while being created")
        if synced:
            info = os.fstat(dir_fd)
            self._remember_durable((info.st_dev, info.st_ino), info.st_ctime_ns)
        return dir_fd

    def _forget(self, brief_id: str, version: int) -> None:
        """Drop what the caches hold for a document this store is about to change."""
        self._drop(self._documents, f"{self._root}/{brief_id}/{version}.json")
        self._drop(self._listings, f"{self._root}/{brief_id}")

    def _remove(self, brief_id: str, version: int) -> None:
        try:
            self._remove_file(brief_id, version)
        except OSError as exc:
            _name_document(exc, f"{self._root}/{brief_id}", f"{version}.json")
            raise

    def _remove_file(self, brief_id: str, version: int) -> None:
        self._forget(brief_id, version)
        dir_fd = self._open_brief_dir(brief_id)
        if dir_fd is None:  # pragma: no cover - read under the same lock a moment ago
            return
        try:
            name = f"{version}.json"
            if self._io_hook is not None:
                self._io_hook("unlink", self.data_dir / brief_id / name)
            if not self.durable:
                os.unlink(name, dir_fd=dir_fd)
            else:
                # Moved aside rather than unlinked, so a failed directory fsync
                # can put the document back: a delete that raises deletes nothing.
                aside = _temporary_name(name)
                os.rename(name, aside, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                try:
                    if self._io_hook is not None:
                        self._io_hook("dir-fsync", self.data_dir / brief_id)
                    os.fsync(dir_fd)
                except OSError:
                    _restore(dir_fd, name, aside)
                    raise
                with suppress(OSError):
                    os.unlink(aside, dir_fd=dir_fd)
            left = os.listdir(dir_fd)
        finally:
            os.close(dir_fd)
        if not left:
            # Other files (a stale temporary, notes.md) keep the directory;
            # without documents it is no brief either way.
            try:
                os.rmdir(self.data_dir / brief_id)
            except OSError:
                return  # someone put a file there meanwhile: it stays, as no brief
            if self.durable:
                _fsync_dir(self.data_dir)

    # -- primitives: locking -------------------------------------------------

    def _locked(self, brief_id: str, timeout: float | None = None) -> _BriefLock:
        return _BriefLock(self, brief_id.lower() + ".lock", timeout)

    def _take_lock(self, name: str, timeout: float | None = None) -> tuple[int, int]:
        """Hold ``.locks/<name>``; returns its descriptor and the data directory's.

        Lock files hold no data, so anyone may remove them (``git clean -X``
        removes all of ``.locks/``), even while a writer holds one: a writer
        that then created a new file and locked it would not exclude the one
        still holding the old. So a lock counts only once it is proven to be
        the file at its path, made by a store (it holds its own device and
        inode), and that proof is kept true for as long as it is held: each
        holder also holds a shared ``flock`` on the data directory, and a lock
        file is only ever made (or a stray one adopted) under an exclusive one.
        Neither is taken while waiting for the other, and a gate on the marker
        file holds new holders back while a writer waits for the exclusive
        lock, so that wait ends with the critical sections already begun.
        """
        path = f"{self._root}/{LOCKS_DIR}/{name}"
        deadline = time.monotonic() + (self.lock_timeout if timeout is None else timeout)
        while True:
            fd = self._open_lock_file(name, deadline)
            # On False or an exception, acquire has disposed of the descriptor.
            if not acquire(fd, time_left(deadline), path):
                raise LockTimeoutError(self.data_dir / LOCKS_DIR / name, self.lock_timeout)
            try:
                self._pass_gate(name, deadline)
                root_fd = open_registered(self._root, _ROOT_FLAGS)
                shared = acquire(root_fd, time_left(deadline), self._root, fcntl.LOCK_SH)
            except BaseException:
                close_lock(fd)  # interrupted (Ctrl-C), or timed out, holding the brief's lock
                raise
            if not shared:
                close_lock(fd)
                raise LockTimeoutError(self.data_dir / LOCKS_DIR / name, self.lock_timeout)
            try:
                if is_lock_at(fd, path, name):
                    return fd, root_fd
            except BaseException:
                close_lock(fd)
                close_lock(root_fd)
                raise
            # Removed or replaced while this writer waited for it: lock the
            # file that is there now.
            close_lock(fd)
            close_lock(root_fd)

    def _pass_gate(self, name: str, deadline: float) -> None:
        """Wait while a writer is making a lock file (it holds the gate exclusively)."""
        gate = self._open_gate()
        if gate is None:
            return
        if not acquire(gate, time_left(deadline), f"{self._root}/{MARKER_NAME}", fcntl.LOCK_SH):
            raise LockTimeoutError(self.data_dir / LOCKS_DIR / name, self.lock_timeout)
        close_lock(gate)

    def _open_gate(self) -> int | None:
        """A descriptor of the marker file, the gate; ``None`` if it cannot be opened."""
        try:
            return open_registered(f"{self._root}/{MARKER_NAME}", _READ_FLAGS)
        except OSError:
            return None  # the gate only makes waits fair; the data directory's lock is the proof

    def _open_lock_file(self, name: str, deadline: float) -> int:
        """Open a brief's lock file, making it (and ``.locks/``) when it is missing or stray."""
        try:
            fd = self._open_in_locks(name, create=False)
        except FileNotFoundError:
            pass
        else:
            if is_marked(fd, name):
                return fd
            close_lock(fd)  # made by hand (touched, copied back): adopt it first
        while True:
            made = self._make_lock_file(name, deadline)
            if made is not None:
                return made
            if time_left(deadline) <= 0:
                raise LockTimeoutError(self.data_dir / LOCKS_DIR / name, self.lock_timeout)
            # A holder is slow (a long fsync, a stopped process): open the
            # gate for as long again, so writers of other briefs go on.
            time.sleep(min(_GATE_SLICE, time_left(deadline)))

    def _make_lock_file(self, name: str, deadline: float) -> int | None:
        """Make (or adopt) the lock file under the exclusive lock; ``None`` if a slice ran out.

        The gate stays closed for at most ``_GATE_SLICE`` seconds: writers in
        flight have finished by then unless one is stuck, and one stuck
        writer must not hold up the writers of every other brief.
        """
        gate = self._open_gate()
        # On False or an exception the descriptor is no longer this thread's.
        if gate is not None and not acquire(
            gate, time_left(deadline), f"{self._root}/{MARKER_NAME}"
        ):
            raise LockTimeoutError(self.data_dir / LOCKS_DIR / name, self.lock_timeout)
        try:
            root_fd = open_registered(self._root, _ROOT_FLAGS)
            # Exclusive: no writer is between proving its lock file and
            # releasing it, so none can be holding a file this replaces.
            if not acquire(root_fd, min(time_left(deadline), _GATE_SLICE), self._root):
                return None
            try:
                while True:
                    self._make_locks_dir()
                    with suppress(FileNotFoundError):  # .locks/ removed again at once
                        fd = self._open_in_locks(name, create=True)
                        break
                try:
                    mark(fd, name)
                except BaseException:
                    close_lock(fd)
                    raise
                return fd
            finally:
                close_lock(root_fd)
        finally:
            if gate is not None:
                close_lock(gate)

    def _make_locks_dir(self) -> None:
        with suppress(FileExistsError):
            os.mkdir(f"{self._root}/{LOCKS_DIR}")

    def _open_in_locks(self, name: str, *, create: bool) -> int:
        """Open ``.locks/<name>`` without following a link; registered for fork."""
        path = f"{self._root}/{LOCKS_DIR}/{name}"
        try:
            dir_fd = os.open(f"{self._root}/{LOCKS_DIR}", _DIR_FLAGS)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise self._not_a_directory(self.data_dir / LOCKS_DIR, exc) from exc
        try:
            flags = os.O_RDWR | os.O_NOFOLLOW | os.O_NONBLOCK | _O_CLOEXEC
            fd = open_registered(name, flags | (os.O_CREAT if create else 0), dir_fd=dir_fd)
        except FileNotFoundError:
            raise
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise CorruptDocumentError(path, f"is a symbolic link; {_NO_LINKS}") from exc
            exc.filename = path
            raise
        finally:
            os.close(dir_fd)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            close_lock(fd)
            raise CorruptDocumentError(path, "is not a regular file; remove it")
        return fd


class _BriefLock:
    """A brief's lock held for a ``with`` block (see ``FileStore._take_lock``)."""

    __slots__ = ("_fds", "_name", "_store", "_timeout")

    def __init__(self, store: FileStore, name: str, timeout: float | None) -> None:
        self._store = store
        self._name = name
        self._timeout = timeout
        self._fds = (-1, -1)

    def __enter__(self) -> None:
        self._fds = self._store._take_lock(self._name, self._timeout)

    def __exit__(self, *exc_info: object) -> None:
        # The write is complete by now, and closing the descriptor drops the
        # flock even when close reports an error: neither may leave the brief
        # locked or make a finished write look failed.
        try:
            hook = self._store._io_hook
            if hook is not None:
                with suppress(OSError):
                    hook("lock-release", self._store.data_dir / LOCKS_DIR / self._name)
        finally:
            try:
                close_lock(self._fds[0])
            finally:
                close_lock(self._fds[1])


_ROOT_FLAGS = os.O_RDONLY | os.O_DIRECTORY | _O_CLOEXEC
#: The longest a writer making a lock file keeps the gate closed at a time.
_GATE_SLICE = 0.05


#: How many decoded documents a FileStore keeps between reads, at most ...
CACHE_SIZE = 4096
#: ... and how many bytes of their files: the decoded form takes a few times
#: that, so a store's cache stays within some tens of megabytes.
CACHE_BYTES = 8 * 1024 * 1024
#: Listings are a few numbers each, so many more of them are kept: enough for
#: ``list_briefs`` over a large data directory to be answered from the cache.
LISTING_CACHE_SIZE = 65536

#: (st_dev, st_ino, st_size, st_mtime_ns, st_ctime_ns): what proves a file unchanged.
_Identity = tuple[int, int, int, int, int]


class _Cached(NamedTuple):
    identity: _Identity
    doc: StrategyDocument
    data: bytes


class _Listing(NamedTuple):
    identity: _Identity
    versions: tuple[int, ...]


_Entry = TypeVar("_Entry", _Cached, _Listing)


def _identity(info: os.stat_result) -> _Identity:
    return (info.st_dev, info.st_ino, info.st_size, info.st_mtime_ns, info.st_ctime_ns)


def _racy_window_ns(root: Path) -> int:
    """How old a timestamp must be before a cache may trust it, for this file system.

    Linux file systems stamp files from a clock that ticks every few
    milliseconds; FAT, HFS+ and some network file systems keep whole seconds
    (FAT's modification time even two). Timestamps with a fraction of a
    second show the fine kind.
    """
    stamps = []
    for name in (MARKER_NAME, LOCKS_DIR, "."):
        with suppress(OSError):
            info = os.lstat(root / name)
            stamps += [info.st_mtime_ns, info.st_ctime_ns]
    fine = any(stamp % 1_000_000_000 for stamp in stamps)
    return FINE_RACY_WINDOW_NS if fine else COARSE_RACY_WINDOW_NS


#: The racy window on file systems with sub-second timestamps (many clock ticks).
FINE_RACY_WINDOW_NS = 100_000_000
#: The racy window on file systems with whole-second (or two-second) timestamps.
COARSE_RACY_WINDOW_NS = 3_000_000_000


def _cached_size(entry: object) -> int:
    return len(entry.data) if isinstance(entry, _Cached) else 0


def _copy(doc: StrategyDocument) -> StrategyDocument:
    """A copy of a cached document that shares no mutable state with it."""
    # Sections are frozen and hold only strings, so a new list suffices.
    return doc.model_copy(
        update={"sections": list(doc.sections), "metadata": _copy_json(doc.metadata)}
    )


def _copy_json(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _copy_json(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_copy_json(v) for v in value]
    return value


def _name_document(exc: OSError, directory: str, name: str) -> None:
    """Make an error from writing ``directory/name`` name that document.

    A write names no file (a full disk's ``ENOSPC``), calls relative to a
    directory name only the file, and a temporary file's name means nothing
    to the person who asked for the document to be written.
    """
    named = exc.filename
    temporary = isinstance(named, str) and is_temporary(os.path.basename(named))
    if named is None or (temporary and exc.filename2 is None):
        exc.filename = os.path.join(directory, name)
    elif isinstance(named, str) and not os.path.isabs(named):
        # A link or rename names both ends: the temporary file, and the document.
        exc.filename = os.path.join(directory, named)
    if isinstance(exc.filename2, str) and not os.path.isabs(exc.filename2):
        exc.filename2 = os.path.join(directory, exc.filename2)


def _is_brief_name(name: str) -> bool:
    try:
        check_brief_id(name)
    except ValueError:
        return False
    return True


#: Numbers temporary files apart within a process; O_EXCL settles the rest.
_TEMP_NUMBERS = itertools.count()

_SYNCFS: list[Callable[[int], int] | None] = []


def _syncfs(path: str) -> bool:
    """Flush the whole file system holding ``path`` with one ``syncfs`` call.

    Returns ``False`` where that is not available, or not trustworthy: only
    since Linux 5.8 does ``syncfs`` report write-back errors. One call costs
    about what a single fsync does, where fsyncing each of N new files costs N
    times that, which is what makes a bulk import cheap.
    """
    if not _SYNCFS:
        _SYNCFS.append(_load_syncfs())
    syncfs = _SYNCFS[0]
    if syncfs is None:
        return False
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | _O_CLOEXEC)
    try:
        if syncfs(fd) != 0:
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


_PID = [os.getpid()]
if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=lambda: _PID.__setitem__(0, os.getpid()))


def _temporary_name(name: str) -> str:
    return f".{name}.{_PID[0]}-{next(_TEMP_NUMBERS)}.tmp"


def _keep(dir_fd: int, name: str) -> str | None:
    """Hard-link ``name`` to a temporary name, so that replacing it can be undone."""
    while True:
        backup = _temporary_name(name)
        try:
            os.link(name, backup, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        except FileExistsError:
            continue  # left by a crashed process that had this pid
        return backup


def _restore(dir_fd: int, name: str, backup: str | None) -> None:
    """Put back what ``name`` was before it was published: ``backup``, or nothing."""
    with suppress(OSError):
        if backup is None:
            os.unlink(name, dir_fd=dir_fd)
        else:
            os.replace(backup, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | _O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path, *, if_readable: bool = False) -> None:
    """fsync a directory; with ``if_readable``, skip one this user may not open.

    That is for directories outside the data directory, such as its parent.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | _O_CLOEXEC)
    except PermissionError:
        if if_readable:
            return
        raise
    try:
        os.fsync(fd)
    except OSError as exc:
        exc.filename = str(path)
        raise
    finally:
        os.close(fd)
