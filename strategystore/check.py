"""Walk a data directory and list everything a person should fix.

``strategystore check`` runs this. It reads every file itself rather than
through ``FileStore``, so it keeps going past the first bad file and also
looks where the store never does (unknown files, misnamed documents, links,
brief directories that collide by letter case). It changes nothing, except
that with ``repair`` it removes stale temporary files, each only while
holding its brief's lock, which proves no writer owns it.
"""

from __future__ import annotations

import errno
import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from strategystore._fsio import READ_FLAGS, read_all
from strategystore._layout import (
    FORMAT,
    LOCKS_DIR,
    MARKER_NAME,
    DocumentFileError,
    MarkerError,
    case_collisions,
    decode_document_file,
    document_name,
    document_version,
    is_temporary,
    marker_format,
    misplacement,
    temporary_owner,
)
from strategystore._locks import BriefLocks
from strategystore.errors import LockTimeoutError, StoreFormatError, StrategyStoreError
from strategystore.models import MAX_VERSION, brief_id_problem

__all__ = ["DataDirCheck", "Finding"]

#: How long check waits for a brief's lock to judge its temporary files.
_LOCK_WAIT = 0.5
_NUMBERED_NAME = re.compile(r"([0-9]+)\.json", re.IGNORECASE)
_LINK_ADVICE = (
    "is a symbolic link, which the store never follows inside its data directory; "
    "replace it with the real file or directory"
)


@dataclass(frozen=True)
class Finding:
    """One thing ``check`` found: a problem (the default) or a note.

    Attributes:
        path: the file or directory, under the data directory as it was named.
        message: what is wrong and how to fix it.
        line: the 1-based line in the file, when the problem has one.
        note: ``True`` for something worth knowing that is not a problem
            (a stale temporary file); notes do not make ``check`` fail.
    """

    path: Path
    message: str
    line: int | None = None
    note: bool = False

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line is not None else str(self.path)
        return f"{where}: note: {self.message}" if self.note else f"{where}: {self.message}"


class DataDirCheck:
    """A walk over one data directory; iterate ``findings()`` to run it.

    Args:
        root: the data directory, as the user named it (findings use it as
            their path prefix).
        repair: remove stale temporary files.
        on_file: called with the running count after each entry looked at,
            for a progress display.

    After the walk, ``documents`` and ``briefs`` count what was valid and
    ``files`` counts every entry looked at.
    """

    def __init__(
        self,
        root: Path,
        *,
        repair: bool = False,
        on_file: Callable[[int], None] | None = None,
    ) -> None:
        self.root = root
        self.repair = repair
        self._on_file = on_file
        self.documents = 0
        self.briefs = 0
        self.files = 0
        self._locks: BriefLocks | None = None

    def findings(self) -> Iterator[Finding]:
        """Walk the directory and yield each finding.

        Files come in name order (documents by version), then the brief
        directories that collide by letter case.

        Raises:
            StoreFormatError: the directory does not exist or is not a directory.
        """
        if not self.root.is_dir():
            reason = "is not a directory" if self.root.exists() else "does not exist"
            where = self.root.absolute()
            raise StoreFormatError(
                f"{where} {reason}; create a data directory with `strategystore --dir {where} init`"
            )
        problem, newer = self._check_marker()
        if problem is not None:
            yield problem
            if newer:
                # Files of a newer format would be misjudged by these rules.
                return
        else:
            # Only to take brief locks for stale temporary files; a zero
            # timeout makes every attempt non-blocking.
            self._locks = BriefLocks(self.root.absolute(), 0)

        brief_dirs: list[str] = []
        for name in sorted(os.listdir(self.root)):
            path = self.root / name
            self._count()
            if name == MARKER_NAME:
                continue
            if name == LOCKS_DIR:
                yield from self._check_locks_dir(path)
                continue
            if is_temporary(name):
                yield Finding(
                    path,
                    "temporary file left by an interrupted `strategystore init`; "
                    "remove it by hand when no init is running",
                    note=True,
                )
                continue
            if name.startswith("."):
                continue  # .gitignore, .git and editor files belong to people
            mode = _mode(path)
            if mode is None:
                continue  # removed since the listing (a delete of a last version)
            if stat.S_ISLNK(mode):
                yield Finding(path, _LINK_ADVICE)
            elif not stat.S_ISDIR(mode):
                yield Finding(
                    path,
                    "unknown file; a data directory holds only brief directories "
                    "(move it elsewhere)",
                )
            else:
                invalid = brief_id_problem(name)
                if invalid is not None:
                    yield Finding(
                        path, f"directory name is not a valid brief id ({invalid}); rename it"
                    )
                    continue
                before = self.documents
                yield from self._check_brief_dir(name)
                if self.documents > before:
                    # Only a directory holding a document is a brief, in the
                    # store's eyes too; an empty one collides with nothing.
                    brief_dirs.append(name)
        yield from self._check_case_collisions(brief_dirs)

    def _count(self) -> None:
        self.files += 1
        if self._on_file is not None:
            self._on_file(self.files)

    # -- the marker and .locks/ ----------------------------------------------

    def _check_marker(self) -> tuple[Finding | None, bool]:
        """The marker file's problem, if any, and whether it names a newer format."""
        path = self.root / MARKER_NAME
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return Finding(
                path,
                f"missing: without it this is no data directory; restore it from git, or "
                f'write {{"format": {FORMAT}}} into it if this really is a data directory',
            ), False
        if stat.S_ISLNK(mode):
            return Finding(path, _LINK_ADVICE), False
        if not stat.S_ISREG(mode):
            return Finding(path, "is not a regular file"), False
        try:
            marker_format(path.read_bytes())
        except MarkerError as exc:
            return Finding(path, exc.reason), exc.newer
        return None, False

    def _check_locks_dir(self, path: Path) -> Iterator[Finding]:
        mode = _mode(path)
        if mode is None:
            return
        if stat.S_ISLNK(mode):
            yield Finding(path, _LINK_ADVICE)
            return
        if not stat.S_ISDIR(mode):
            yield Finding(path, "should be the directory of lock files; remove it")
            return
        for name in sorted(os.listdir(path)):
            lock = path / name
            self._count()
            lock_mode = _mode(lock)
            if lock_mode is None:
                continue
            if stat.S_ISLNK(lock_mode):
                yield Finding(lock, _LINK_ADVICE)
            elif not name.endswith(".lock") or not stat.S_ISREG(lock_mode):
                yield Finding(lock, "unknown file among the lock files; remove it")

    # -- brief directories ---------------------------------------------------

    def _check_brief_dir(self, brief_id: str) -> Iterator[Finding]:
        directory = self.root / brief_id
        try:
            names = sorted(os.listdir(directory), key=_document_order)
        except FileNotFoundError:
            return  # its last version was deleted since the listing
        except OSError as exc:
            yield Finding(
                directory,
                f"brief directory cannot be read: {exc.strerror}; its documents "
                "were not checked (fix its permissions)",
            )
            return
        present = set(names)
        temporaries: list[str] = []
        documents = 0
        for name in names:
            path = directory / name
            self._count()
            version = document_version(name)
            if version is not None:
                found = self._check_document(brief_id, version, path)
                if found is None:
                    continue  # deleted since the listing
                if not found:
                    documents += 1
                yield from found
            elif is_temporary(name):
                temporaries.append(name)
            elif (numbered := _NUMBERED_NAME.fullmatch(name)) is not None:
                yield Finding(path, _misnamed(int(numbered.group(1)), present))
            elif os.path.islink(path):
                yield Finding(path, _LINK_ADVICE)
            elif os.path.isdir(path):
                yield Finding(path, "unexpected directory inside a brief; move it elsewhere")
            else:
                yield Finding(
                    path,
                    "not a document (documents are named <version>.json); "
                    "move it out of the data directory",
                )
        if temporaries:
            yield from self._check_temporaries(brief_id, temporaries)
        if documents:
            self.briefs += 1
            self.documents += documents
        elif not names:
            yield Finding(directory, "empty brief directory; remove it", note=True)

    def _check_document(self, brief_id: str, version: int, path: Path) -> list[Finding] | None:
        """The document's problems; ``None`` when it no longer exists."""
        try:
            fd = os.open(path, READ_FLAGS)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return [Finding(path, _LINK_ADVICE)]
            return [Finding(path, f"cannot be read: {exc.strerror}")]
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                kind = "a directory" if os.path.isdir(path) else "not a regular file"
                return [Finding(path, f"is {kind}, where a document belongs; remove it")]
            data = read_all(fd)
        except OSError as exc:
            return [Finding(path, f"cannot be read: {exc.strerror}")]
        finally:
            os.close(fd)
        try:
            doc = decode_document_file(data)
        except DocumentFileError as exc:
            return [Finding(path, exc.reason, line=exc.line)]
        misplaced = misplacement(doc, brief_id, version)
        return [] if misplaced is None else [Finding(path, misplaced)]

    def _check_temporaries(self, brief_id: str, names: list[str]) -> Iterator[Finding]:
        directory = self.root / brief_id
        if self._locks is None:
            for name in names:
                yield Finding(
                    directory / name,
                    "temporary file; cannot tell whether a writer owns it until the "
                    "marker file is fixed",
                    note=True,
                )
            return
        findings: list[Finding] = []
        try:
            # A write makes and removes its temporary file while holding the
            # brief's lock; an import also prepares a batch of them before it
            # takes the lock, named after its process, which is still running.
            # Whatever is left while we hold the lock, by no live process, is
            # stale. The findings are reported once the lock is released, so
            # a slow reader of this output never holds up a writer.
            with self._locks.hold(brief_id, timeout=_LOCK_WAIT):
                for name in names:
                    findings.extend(self._check_temporary(directory / name))
        except LockTimeoutError:
            # A writer holds the lock (its temporary file is in use), or
            # writers kept the lock file from being made: say so, never that
            # nothing is there.
            for name in names:
                yield Finding(
                    directory / name,
                    "temporary file; a writer is busy with this brief, so whether it is "
                    "stale cannot be told now: run check again later",
                    note=True,
                )
            return
        except (StrategyStoreError, OSError) as exc:
            for name in names:
                yield Finding(
                    directory / name,
                    f"temporary file; cannot take the brief's lock to tell whether it is "
                    f"stale ({exc})",
                    note=True,
                )
            return
        yield from findings

    def _check_temporary(self, path: Path) -> list[Finding]:
        """What to say of one temporary file, while its brief's lock is held."""
        if not os.path.lexists(path):
            return []  # a writer finished with it since the listing
        owner = temporary_owner(path.name)
        if owner is not None and owner != os.getpid() and _process_alive(owner):
            return []  # prepared by an import that is still running
        if not self.repair:
            return [
                Finding(
                    path,
                    "stale temporary file left by an interrupted write; "
                    "`strategystore check --repair` removes it",
                    note=True,
                )
            ]
        try:
            os.unlink(path)
        except FileNotFoundError:
            return []
        except OSError as exc:
            return [Finding(path, f"stale temporary file, not removed: {exc.strerror}")]
        return [Finding(path, "removed stale temporary file", note=True)]

    def _check_case_collisions(self, brief_dirs: list[str]) -> Iterator[Finding]:
        for names in case_collisions(brief_dirs):
            for name in names:
                others = ", ".join(repr(n) for n in names if n != name)
                yield Finding(
                    self.root / name,
                    f"brief directory differs only by letter case from {others}; they collide "
                    "on a case-insensitive file system (macOS, Windows): merge them into one",
                )


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, under another user
    return True


def _mode(path: Path) -> int | None:
    """``path``'s file type and mode, not following a link; ``None`` once it is gone."""
    try:
        return os.lstat(path).st_mode
    except FileNotFoundError:
        return None


def _document_order(name: str) -> tuple[int, str]:
    """Sort ``2.json`` before ``10.json``, and everything else after the documents."""
    version = document_version(name)
    return (version if version is not None else MAX_VERSION, name)


def _misnamed(number: int, present: set[str]) -> str:
    if not 1 <= number < MAX_VERSION:
        return f"not a document: version {number} is outside 1 to {MAX_VERSION - 1}"
    canonical = document_name(number)
    if canonical in present:
        return (
            f"not a document: versions are named in plain decimal, and {canonical} "
            "exists too; keep one of them"
        )
    return f"not a document: versions are named in plain decimal; rename it to {canonical}"
