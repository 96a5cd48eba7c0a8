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
import json
import os
import re
import secrets
import stat
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

from pydantic import ValidationError

from strategystore.errors import CorruptDocumentError, LockTimeoutError, StoreFormatError
from strategystore.models import MAX_VERSION, StrategyDocument, check_brief_id
from strategystore.store import BaseStore

__all__ = ["FORMAT", "MARKER_NAME", "FileStore", "conflict_marker_line", "describe_invalid"]

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


def describe_invalid(data: bytes, error: ValidationError) -> str:
    """Say, for a person, why ``data`` is not a valid document."""
    if not data.strip():
        return "the file is empty; restore it from git or delete it"
    line = conflict_marker_line(data)
    if line is not None:
        return f"git merge-conflict marker at line {line}; resolve the conflict and remove it"
    problems = error.errors(include_url=False, include_input=False)
    if problems and problems[0]["type"] == "json_invalid":
        detail = problems[0].get("ctx", {}).get("error", problems[0]["msg"])
        return f"not valid JSON: {detail}"
    parts = []
    for problem in problems[:5]:
        where = ".".join(str(p) for p in problem["loc"]) or "document"
        parts.append(f"{where}: {problem['msg']}")
    more = f" (and {len(problems) - 5} more)" if len(problems) > 5 else ""
    return "not a valid strategy document: " + "; ".join(parts) + more


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
        lock_timeout: float = 10.0,
    ) -> None:
        self.data_dir = Path(os.path.abspath(data_dir))
        self.durable = durable
        self.lock_timeout = float(lock_timeout)
        self._open_data_dir(create=create)
        # On a case-insensitive file system the marker answers to another case too.
        self._case_insensitive = os.path.lexists(self.data_dir / MARKER_NAME.upper())

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
            root.mkdir(parents=True, exist_ok=True)
        elif not root.is_dir():
            raise StoreFormatError(f"{root} is not a directory")
        if self._read_marker():
            return
        others = sorted(name for name in os.listdir(root) if not name.startswith("."))
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
        self._ensure_locks_dir()
        root_fd = os.open(self.data_dir, _DIR_FLAGS & ~os.O_NOFOLLOW)
        try:
            self._publish(
                root_fd,
                self.data_dir,
                ".gitignore",
                GITIGNORE,
                exclusive=True,
                durable=self.durable,
                missing_ok=True,
            )
            marker = json.dumps({"format": FORMAT}, indent=2).encode() + b"\n"
            self._publish(
                root_fd,
                self.data_dir,
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

    # -- primitives: reading -------------------------------------------------

    def _read(self, brief_id: str, version: int) -> StrategyDocument | None:
        name = f"{version}.json"
        dir_fd = self._open_brief_dir(brief_id)
        if dir_fd is None:
            return None
        try:
            data = self._read_document(dir_fd, brief_id, name)
        finally:
            os.close(dir_fd)
        if data is None:
            return None
        path = self.data_dir / brief_id / name
        try:
            doc = StrategyDocument.from_json_bytes(data)
        except ValidationError as exc:
            raise CorruptDocumentError(path, describe_invalid(data, exc)) from exc
        if doc.key != (brief_id, version):
            if (
                self._case_insensitive
                and doc.version == version
                and doc.brief_id.lower() == (brief_id.lower())
            ):
                return None  # the same brief under another case: a read finds nothing
            raise CorruptDocumentError(
                path,
                f"holds version {doc.version} of brief {doc.brief_id!r}, which belongs at "
                f"{doc.brief_id}/{doc.version}.json; move it there or fix its fields",
            )
        return doc

    def _read_document(self, dir_fd: int, brief_id: str, name: str) -> bytes | None:
        path = self.data_dir / brief_id / name
        try:
            fd = os.open(name, _READ_FLAGS, dir_fd=dir_fd)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise CorruptDocumentError(path, f"is a symbolic link; {_NO_LINKS}") from exc
            raise CorruptDocumentError(path, f"cannot be read: {exc.strerror}") from exc
        with os.fdopen(fd, "rb") as file:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                raise CorruptDocumentError(path, "is not a regular file; remove it")
            return file.read()

    def _open_brief_dir(self, brief_id: str) -> int | None:
        """A descriptor of the brief's directory, or ``None`` when there is none."""
        path = self.data_dir / brief_id
        try:
            return os.open(path, _DIR_FLAGS)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise self._not_a_directory(path, exc) from exc

    @staticmethod
    def _not_a_directory(path: Path, exc: OSError) -> CorruptDocumentError:
        if path.is_symlink():
            return CorruptDocumentError(path, f"is a symbolic link; {_NO_LINKS}")
        if exc.errno == errno.ENOTDIR:
            return CorruptDocumentError(path, "is not a directory; move it elsewhere")
        return CorruptDocumentError(path, f"cannot be opened: {exc.strerror}")

    def _versions(self, brief_id: str) -> list[int]:
        dir_fd = self._open_brief_dir(brief_id)
        if dir_fd is None:
            return []
        try:
            names = os.listdir(dir_fd)
        finally:
            os.close(dir_fd)
        return [v for v in map(document_version, names) if v is not None]

    def _briefs(self) -> list[str]:
        briefs = []
        with os.scandir(self.data_dir) as entries:
            for entry in entries:
                if not _is_brief_name(entry.name) or not entry.is_dir(follow_symlinks=False):
                    continue
                with suppress(FileNotFoundError, NotADirectoryError):
                    if any(document_version(n) is not None for n in os.listdir(entry.path)):
                        briefs.append(entry.name)
        return briefs

    def _case_variant(self, brief_id: str) -> str | None:
        if not self._case_insensitive and os.path.isdir(self.data_dir / brief_id):
            return None
        folded = brief_id.lower()
        return next((b for b in self._briefs() if b != brief_id and b.lower() == folded), None)

    # -- primitives: writing -------------------------------------------------

    def _write(
        self, doc: StrategyDocument, data: bytes, *, exclusive: bool, sync: bool = True
    ) -> None:
        durable = self.durable and sync
        dir_fd = self._make_brief_dir(doc.brief_id, durable=durable)
        try:
            self._publish(
                dir_fd,
                self.data_dir / doc.brief_id,
                f"{doc.version}.json",
                data,
                exclusive=exclusive,
                durable=durable,
            )
        finally:
            os.close(dir_fd)

    def _flush(self, keys: list[tuple[str, int]]) -> None:
        if not self.durable or not keys:
            return
        # Files first, then each directory once: a name is only durable once
        # the data it points to is.
        for brief_id, version in keys:
            with suppress(FileNotFoundError):
                fd = os.open(self.data_dir / brief_id / f"{version}.json", _READ_FLAGS)
                try:
                    os.fsync(fd)
                finally:
                    os.close(fd)
        for brief_id in dict.fromkeys(brief_id for brief_id, _ in keys):
            with suppress(FileNotFoundError):
                _fsync_dir(self.data_dir / brief_id)
        _fsync_dir(self.data_dir)

    def _publish(
        self,
        dir_fd: int,
        where: Path,
        name: str,
        data: bytes,
        *,
        exclusive: bool,
        durable: bool,
        missing_ok: bool = False,
    ) -> None:
        """Write ``data`` to ``name`` in the directory ``dir_fd`` (at ``where``) atomically.

        The proven order: temporary file, write, fsync, link or replace, fsync
        of the directory.
        """
        temp = f".{name}.{secrets.token_hex(6)}.tmp"
        hook = self._io_hook
        if hook is not None:
            hook("temp-create", where / temp)
        fd = os.open(
            temp,
            os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | _O_CLOEXEC,
            0o666,
            dir_fd=dir_fd,
        )
        renamed = False
        try:
            try:
                if hook is not None:
                    hook("write", where / temp)
                _write_all(fd, data)
                if durable:
                    if hook is not None:
                        hook("fsync", where / temp)
                    os.fsync(fd)
            finally:
                os.close(fd)
            if not exclusive:
                if hook is not None:
                    hook("replace", where / name)
                os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                renamed = True
            else:
                if hook is not None:
                    hook("link", where / name)
                try:
                    os.link(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd, follow_symlinks=False)
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
            if hook is not None:
                hook("dir-fsync", where)
            os.fsync(dir_fd)

    def _make_brief_dir(self, brief_id: str, *, durable: bool) -> int:
        path = self.data_dir / brief_id
        created = False
        try:
            os.mkdir(path)
            created = True
        except FileExistsError:
            pass
        if created and durable:
            _fsync_dir(self.data_dir)
        try:
            return os.open(path, _DIR_FLAGS)
        except OSError as exc:
            raise self._not_a_directory(path, exc) from exc

    def _remove(self, brief_id: str, version: int) -> None:
        dir_fd = self._open_brief_dir(brief_id)
        if dir_fd is None:  # pragma: no cover - read under the same lock a moment ago
            return
        try:
            if self._io_hook is not None:
                self._io_hook("unlink", self.data_dir / brief_id / f"{version}.json")
            os.unlink(f"{version}.json", dir_fd=dir_fd)
            if self.durable:
                if self._io_hook is not None:
                    self._io_hook("dir-fsync", self.data_dir / brief_id)
                os.fsync(dir_fd)
            left = os.listdir(dir_fd)
        finally:
            os.close(dir_fd)
        if not left:
            # Other files (a stale temporary, notes.md) keep the directory;
            # without documents it is no brief either way.
            with suppress(OSError):
                os.rmdir(self.data_dir / brief_id)
                if self.durable:
                    _fsync_dir(self.data_dir)

    # -- primitives: locking -------------------------------------------------

    @contextmanager
    def _locked(self, brief_id: str) -> Iterator[None]:
        check_brief_id(brief_id)
        name = brief_id.lower() + ".lock"
        path = self.data_dir / LOCKS_DIR / name
        fd = self._open_lock_file(name)
        if not _acquire(fd, self.lock_timeout):
            # The waiting thread now owns the descriptor and closes it.
            raise LockTimeoutError(path, self.lock_timeout)
        try:
            yield
        finally:
            if self._io_hook is not None:
                self._io_hook("lock-release", path)
            os.close(fd)  # closing the descriptor releases the flock

    def _ensure_locks_dir(self) -> int:
        path = self.data_dir / LOCKS_DIR
        with suppress(FileExistsError):
            os.mkdir(path)
        try:
            return os.open(path, _DIR_FLAGS)
        except OSError as exc:
            raise self._not_a_directory(path, exc) from exc

    def _open_lock_file(self, name: str) -> int:
        dir_fd = self._ensure_locks_dir()
        path = self.data_dir / LOCKS_DIR / name
        try:
            fd = os.open(
                name,
                os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | _O_CLOEXEC,
                0o666,
                dir_fd=dir_fd,
            )
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise CorruptDocumentError(path, f"is a symbolic link; {_NO_LINKS}") from exc
            raise
        finally:
            os.close(dir_fd)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise CorruptDocumentError(path, "is not a regular file; remove it")
        return fd


def _is_brief_name(name: str) -> bool:
    try:
        check_brief_id(name)
    except ValueError:
        return False
    return True


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | _O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _acquire(fd: int, timeout: float) -> bool:
    """Take an exclusive flock on ``fd`` within ``timeout`` seconds.

    Returns ``False`` on timeout, and then a waiting thread owns ``fd``: it
    closes it as soon as its blocked ``flock`` returns.
    """
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        pass
    else:
        return True
    if timeout <= 0:
        os.close(fd)
        return False
    return _wait_for_flock(fd, timeout)


def _wait_for_flock(fd: int, timeout: float) -> bool:
    # A blocking flock in a helper thread hands the lock over the moment its
    # holder releases it, with no polling; the caller waits on an event that
    # can time out, which flock itself cannot.
    granted = threading.Event()
    guard = threading.Lock()
    abandoned = False
    failures: list[OSError] = []

    def wait() -> None:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:
            failures.append(exc)
        with guard:
            if abandoned:
                os.close(fd)
            else:
                granted.set()

    threading.Thread(target=wait, name="strategystore-lock-wait", daemon=True).start()
    try:
        granted.wait(timeout)
    finally:
        with guard:
            if not granted.is_set():
                abandoned = True
    if abandoned:
        return False
    if failures:
        os.close(fd)
        raise failures[0]
    return True
