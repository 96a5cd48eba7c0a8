"""What ``check`` reports, and how it judges names that are not documents.

A ``Finding`` is a problem or a note. Names in a data directory that the
store does not read are judged here: misnumbered documents, editor, system
and merge leftovers, unknown files and directories, links and special files.
"""

from __future__ import annotations

import os
import re
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from strategystore import _cache
from strategystore._cache import Identity
from strategystore._index import is_index_file
from strategystore._layout import (
    document_name,
    document_version,
    is_temporary,
    temporary_owner,
)
from strategystore.models import MAX_VERSION

__all__ = [
    "LINK_ADVICE",
    "SPECIAL_ADVICE",
    "Finding",
    "check_temporary",
    "holds_documents",
    "invalid_brief_dir",
    "leftover",
    "misnamed",
    "mode_and_identity",
    "mode_of",
    "other_entry",
    "plain_file",
]

_NUMBERED_NAME = re.compile(r"([0-9]+)\.json", re.IGNORECASE)
LINK_ADVICE = (
    "is a symbolic link, which the store never follows inside its data directory; "
    "replace it with the real file or directory"
)
SPECIAL_ADVICE = (
    "is a special file (a pipe, socket or device), which a data directory never holds; remove it"
)
_WHILE_OPEN = " once no editor has the file open"
#: Files editors, systems and merge tools leave behind: what each is, and
#: when it can be deleted.
_LEFTOVERS = tuple(
    (re.compile(pattern, re.DOTALL), what, when)
    for pattern, what, when in (
        (r".*\.sw[op]", "an editor's swap file (vim)", _WHILE_OPEN),
        (r".*~", "an editor's backup copy", ""),
        (r"#.*#", "an editor's auto-save file (Emacs)", _WHILE_OPEN),
        (r"\.#.*", "an editor's lock file (Emacs)", _WHILE_OPEN),
        (r"\.DS_Store", "a macOS Finder file", ""),
        (r"(?i:thumbs\.db)", "a Windows Explorer thumbnail cache", ""),
        (r".*\.orig", "a merge leftover (from git mergetool)", " once the merge is done"),
        (r".*\.rej", "a patch leftover (hunks `git apply --reject` could not apply)", ""),
        (r".*\.bak", "a backup copy", ""),
    )
)


@dataclass(frozen=True)
class Finding:
    """One thing ``check`` found: a problem (the default) or a note.

    Attributes:
        path: the file or directory, under the data directory as it was named.
        message: what is wrong and how to fix it.
        line: the 1-based line in the file, when the problem has one.
        note: ``True`` for something worth knowing that is not a problem
            (a stale temporary file, an editor's leftover, an unknown file);
            notes do not make ``check`` fail unless it is strict.
    """

    path: Path
    message: str
    line: int | None = None
    note: bool = False

    def __str__(self) -> str:
        # A name that is not UTF-8 is shown with escapes, never fails to print.
        shown = os.fsencode(self.path).decode("utf-8", "backslashreplace")
        where = f"{shown}:{self.line}" if self.line is not None else shown
        return f"{where}: note: {self.message}" if self.note else f"{where}: {self.message}"


def other_entry(path: Path, present: set[str]) -> Finding | None:
    """Judge an entry of a brief directory that is neither a document nor a temporary file."""
    if (numbered := _NUMBERED_NAME.fullmatch(path.name)) is not None:
        return Finding(path, misnamed(int(numbered.group(1)), present))
    mode = mode_of(path)
    if mode is None:
        return None
    if stat.S_ISLNK(mode):
        return Finding(path, LINK_ADVICE)  # whatever its name: git would commit the link
    if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode)):
        return Finding(path, SPECIAL_ADVICE)
    if path.name == ".gitattributes":
        return Finding(
            path,
            "a .gitattributes inside the data directory can undo the rule that keeps git "
            "from merging documents line by line; remove it (the data directory's own "
            "holds the rules)",
        )
    if (left := leftover(path)) is not None:
        return left
    if stat.S_ISDIR(mode):
        return Finding(
            path,
            "unexpected directory inside a brief; move it out of the data directory",
            note=True,
        )
    if stat.S_ISREG(mode):
        return Finding(
            path,
            "not a document (documents are named <version>.json); "
            "move it out of the data directory, or delete it",
            note=True,
        )
    return Finding(path, SPECIAL_ADVICE)


def leftover(path: Path) -> Finding | None:
    """The note for a file an editor, a system or a merge tool left behind, if it is one."""
    for pattern, what, when in _LEFTOVERS:
        if pattern.fullmatch(path.name):
            return Finding(path, f"{what}; it can be deleted{when}", note=True)
    return None


def invalid_brief_dir(path: Path, invalid: str) -> Finding:
    if holds_documents(path):
        return Finding(
            path,
            f"directory name is not a valid brief id ({invalid}), so the store cannot see "
            "the documents in it; rename it",
        )
    return Finding(
        path,
        f"unknown directory: its name is not a valid brief id ({invalid}); "
        "move it out of the data directory",
        note=True,
    )


def holds_documents(directory: Path) -> bool:
    """Whether a directory holds a file named as a document; ``True`` when it cannot be read."""
    try:
        return any(document_version(name) is not None for name in os.listdir(directory))
    except FileNotFoundError:
        return False
    except OSError:
        return True


def mode_and_identity(path: str | Path) -> tuple[int, Identity] | None:
    """``path``'s mode and identity, not following a link; ``None`` once it is gone."""
    try:
        info = os.lstat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError:
        return (0, Identity(0, 0, 0, 0, 0))  # judged by reading it
    return info.st_mode, _cache.identity(info)


def mode_of(path: Path) -> int | None:
    """``path``'s file type and mode, not following a link; ``None`` once it is gone."""
    try:
        return os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None


def misnamed(number: int, present: set[str]) -> str:
    if not 1 <= number < MAX_VERSION:
        return f"not a document: version {number} is outside 1 to {MAX_VERSION - 1}"
    canonical = document_name(number)
    if canonical in present:
        return (
            f"not a document: versions are named in plain decimal, and {canonical} "
            "exists too; keep one of them"
        )
    return f"not a document: versions are named in plain decimal; rename it to {canonical}"


def check_temporary(path: Path, *, repair: bool) -> list[Finding]:
    """What to say of one temporary file, while its brief's lock is held."""
    if not os.path.lexists(path):
        return []  # a writer finished with it since the listing
    owner = temporary_owner(path.name)
    if owner is not None and owner != os.getpid() and _process_alive(owner):
        return []  # prepared by an import that is still running
    if not repair:
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


def locks_dir_findings(
    path: Path, only: set[str] | None, count: Callable[[], None]
) -> Iterator[Finding]:
    """The problems of ``.locks/`` and the lock files in it (``only`` those, or all)."""
    mode = mode_of(path)
    if mode is None:
        return
    if stat.S_ISLNK(mode):
        yield Finding(path, LINK_ADVICE)
        return
    if not stat.S_ISDIR(mode):
        yield Finding(path, "should be the directory of lock files; remove it")
        return
    with os.scandir(path) as scan:
        # The type the listing gives, where it gives one, spares a stat
        # per lock file; anything but a lock file is stat-ed to judge it.
        plain = {e.name: e.name.endswith(".lock") and plain_file(e) for e in scan}
    for name in sorted(plain):
        if (only is not None and name not in only) or is_index_file(name):
            continue  # the listing index is a cache, no lock file
        count()
        if plain[name]:
            continue
        lock = path / name
        lock_mode = mode_of(lock)
        if lock_mode is None:
            continue
        if is_temporary(name) and stat.S_ISREG(lock_mode):
            # A writer makes one (to put its own lock file in place of another
            # user's) and renames it within one call. One whose process is not
            # running here holds nothing, but a writer in another PID
            # namespace looks just so, and no brief lock covers it: it is
            # never removed for the user.
            owner = temporary_owner(name)
            if owner is None or not _process_alive(owner):
                yield Finding(
                    lock,
                    "temporary lock file left by an interrupted write; it holds nothing: "
                    "remove it by hand when no writer is running",
                    note=True,
                )
            continue
        if stat.S_ISLNK(lock_mode):
            yield Finding(lock, LINK_ADVICE)
        elif not name.endswith(".lock") or not stat.S_ISREG(lock_mode):
            yield Finding(lock, "unknown file among the lock files; remove it")


def plain_file(entry: os.DirEntry[str]) -> bool:
    """Whether a listed entry is a regular file, not a link (stat-ed if its type is unknown)."""
    try:
        return entry.is_file(follow_symlinks=False)
    except OSError:
        return False


def _process_alive(pid: int) -> bool:
    if pid <= 0:
        return False  # no process's (0 would signal this process group)
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        return True  # alive, under another user
    return True
