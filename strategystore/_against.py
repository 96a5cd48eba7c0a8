"""``check --against REV``: the sealed versions of a commit, held up to the working tree.

Every version that was not a draft at ``REV`` must still exist, with the same
seal, and its status may only stay as it was or move from ``approved`` to
``withdrawn``. Drafts at ``REV`` and versions added since are not compared.
The data directory at ``REV`` is read with one ``git ls-tree`` and one
``git cat-file --batch``, however many documents it holds.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

from strategystore import _git
from strategystore._layout import (
    MARKER_NAME,
    DocumentFileError,
    decode_document_file,
    document_version,
    is_brief_name,
)
from strategystore.models import Status, StrategyDocument

__all__ = ["Baseline", "Change", "Key", "RevisionError", "Seen", "fingerprint"]

#: A version's key: ``(brief_id, version)``.
Key = tuple[str, int]

#: Files at REV are read by the oldest format's rules: a commit made before
#: ``migrate`` holds no seals, and its versions are compared by their content
#: (a seal a file does state is still checked).
_OLDEST_FORMAT = 1


class RevisionError(ValueError):
    """``--against`` cannot be used here: bad usage rather than a problem found.

    git is missing, the data directory is in no git work tree, or the
    revision names no commit.
    """


@dataclass(frozen=True, slots=True)
class Seen:
    """What the working tree holds for one version.

    Attributes:
        status: its status.
        seal: its ``content_digest``.
        fingerprint: ``fingerprint()`` of the file's bytes: a file unchanged
            since the revision is passed over without being decoded again.
    """

    status: Status
    seal: str | None
    fingerprint: bytes


def fingerprint(data: bytes) -> bytes:
    """A short hash of a file's bytes, to tell an unchanged file without decoding it."""
    return hashlib.blake2b(data, digest_size=16).digest()


@dataclass(frozen=True, slots=True)
class Change:
    """One thing the comparison found about a version: a problem, or a note."""

    brief_id: str
    version: int
    message: str
    note: bool = False


class Baseline:
    """The documents of a data directory as committed at one revision.

    Args:
        root: the data directory (it must exist).
        revision: what the user named, e.g. ``origin/main``; messages use it as given.

    Raises:
        RevisionError: git is not installed, ``root`` is in no git work tree,
            or ``revision`` names no commit.

    Creating one lists the files at the revision (``git ls-tree``); their
    contents are read by ``changes``. ``compared`` counts the versions that
    were not drafts at the revision and were compared.
    """

    def __init__(self, root: Path, revision: str) -> None:
        absolute = root.absolute()
        if shutil.which("git") is None:
            raise RevisionError("git is not installed (or not on PATH); --against needs it")
        top = _git.work_tree(absolute)
        if top is None:
            raise RevisionError(
                f"{root} is not inside a git work tree; --against compares with a commit "
                "of the repository that holds the data directory"
            )
        self.revision = revision
        self.compared = 0
        self._top = top
        #: The repository has no commit yet (its first is being made): nothing to compare.
        self.unborn = revision == "HEAD" and not _has_commits(top)
        self.elsewhere: list[str] = []
        self.missing = False
        self._objects: dict[Key, str] = {}
        if self.unborn:
            return
        commit = _commit(top, revision)
        try:
            under = _git.relative_to_top(top, absolute)
        except ValueError:
            raise RevisionError(f"{root} is not inside the git work tree at {top}") from None
        under = "" if under == "." else under
        entries = _git.tree_entries(top, commit, under)
        self._objects = _documents(entries, under)
        if (f"{under}/" if under else "") + MARKER_NAME not in entries:
            # Where the revision kept data directories, when it had none at this path.
            self.elsewhere = sorted(
                name.rpartition("/")[0] or "."
                for name in _git.tree_entries(top, commit)
                if name.rpartition("/")[2] == MARKER_NAME
            )
            self.missing = True

    def __repr__(self) -> str:
        return f"Baseline(revision={self.revision!r}, documents={len(self._objects)})"

    def changes(
        self, seen: Mapping[Key, Seen | None], exists: Callable[[Key], bool]
    ) -> Iterator[Change]:
        """Compare the versions at the revision with what the working tree holds.

        Args:
            seen: the versions the check looked at, each with what it holds,
                or ``None`` when its file could not be read (a problem the
                check reported already).
            exists: whether the file of a version not in ``seen`` is still
                there; only a missing one is compared (as deleted).

        Yields:
            Each violation, in key order, and a note for each file at the
            revision that could not be read.

        Raises:
            GitError: git could not read the objects.
        """

        def to_compare(key: Key) -> bool:
            if key in seen:
                return seen[key] is not None  # an unreadable file is a problem already
            return not exists(key)

        wanted = [key for key in sorted(self._objects) if to_compare(key)]
        contents = _git.read_objects(self._top, [self._objects[key] for key in wanted])
        for key, (_object_id, data) in zip(wanted, contents, strict=True):
            yield from self._compare(key, data, seen.get(key))

    def _compare(self, key: Key, data: bytes | None, now: Seen | None) -> Iterator[Change]:
        """The violations of one version; ``now`` is ``None`` when its file is gone."""
        brief_id, version = key
        if now is not None and data is not None and fingerprint(data) == now.fingerprint:
            # The same bytes: the same status and seal.
            if now.status is not Status.DRAFT:
                self.compared += 1
            return
        was = self._decode(key, data)
        if isinstance(was, Change):
            yield was
            return
        if was.status is Status.DRAFT:
            return
        self.compared += 1
        at = self.revision
        where = f"version {version} of {brief_id} was {was.status.value} at {at}"
        if now is None:
            then = ", then withdraw it" if was.status is Status.APPROVED else ""
            yield Change(
                brief_id,
                version,
                f"{where} and has been deleted; a sealed version is never deleted: "
                f"restore the file from {at}{then}",
            )
            return
        if now.status is Status.DRAFT:
            yield Change(
                brief_id,
                version,
                f"{where} and has been put back to draft; a sealed version never returns "
                f"to draft: restore the file from {at} and make changes in a new version",
            )
            return
        if now.seal != was.content_digest:
            yield Change(
                brief_id,
                version,
                f"{where} and has been edited (its seal changed); sealed content never "
                f"changes: restore the file from {at} and make the change in a new version "
                f"(`strategystore new {brief_id} --from {version}` starts one from it)",
            )
        if now.status is not was.status and not (
            was.status is Status.APPROVED and now.status is Status.WITHDRAWN
        ):
            yield Change(brief_id, version, _status_change(key, was.status, now.status, at))

    def _decode(self, key: Key, data: bytes | None) -> StrategyDocument | Change:
        """The document at the revision, or the note that says why it cannot be compared."""
        brief_id, version = key
        at = self.revision
        if data is None:
            return Change(
                brief_id,
                version,
                f"its content at {at} is not in this clone (a partial clone?), "
                "so it was not compared",
                note=True,
            )
        try:
            doc = decode_document_file(data, format=_OLDEST_FORMAT)
        except DocumentFileError as exc:
            return Change(
                brief_id,
                version,
                f"at {at} this file was no valid document ({exc.reason}), so it was not compared",
                note=True,
            )
        if doc.key != key:
            return Change(
                brief_id,
                version,
                f"at {at} this file held version {doc.version} of brief {doc.brief_id!r}, "
                "not its own, so it was not compared",
                note=True,
            )
        return doc


def _status_change(key: Key, was: Status, now: Status, at: str) -> str:
    brief_id, version = key
    if now is Status.APPROVED:
        again = "is approved again" if was is Status.WITHDRAWN else "is now approved"
        final = "a withdrawal" if was is Status.WITHDRAWN else "a rejection"
        return (
            f"version {version} of {brief_id} was {was.value} at {at} and {again}; "
            f"{final} is final: restore the file from {at}, and approve a new version instead"
        )
    return (
        f"version {version} of {brief_id} was {was.value} at {at} and is now {now.value}; "
        f"a sealed version may only move from approved to withdrawn: restore the file from {at}"
    )


def _has_commits(top: Path) -> bool:
    try:
        _git.run(top, "rev-parse", "--verify", "--quiet", "HEAD")
    except _git.GitError:
        return False
    return True


def _commit(top: Path, revision: str) -> str:
    """The commit ``revision`` names in the repository at ``top``."""
    try:
        out = _git.run(
            top, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{revision}^{{commit}}"
        )
    except _git.GitError:
        raise RevisionError(
            f"{revision!r} names no commit in the repository at {top}; if it is a branch of "
            "a remote, fetch it first (a CI checkout is often shallow: fetch the whole "
            "history, or `git fetch origin <branch>`)"
        ) from None
    return out.decode().strip()


def _documents(entries: Mapping[str, str], under: str) -> dict[Key, str]:
    """The object id of each file named as a document, ``<brief>/<version>.json``."""
    prefix = f"{under}/" if under else ""
    found: dict[Key, str] = {}
    for name, object_id in entries.items():
        if not name.startswith(prefix):
            continue
        parts = name[len(prefix) :].split("/")
        if len(parts) != 2 or not is_brief_name(parts[0]):
            continue
        version = document_version(parts[1])
        if version is not None:
            found[(parts[0], version)] = object_id
    return found
