"""``resolve``: settle the document conflicts of a merge, rebase or cherry-pick.

Git never line-merges a document (``.gitattributes`` says ``-merge``), so a
document changed on both sides is always a conflict. ``resolve_work_tree``
reads the three stages of each conflicted document from git's index (never
the conflict markers), settles what the rules of ``_rules`` settle (the
three-way merge of a draft is ``_merge``), writes each resolved file in
canonical bytes and stages it::

    report = resolve_work_tree(Path("strategy-data"))
    for resolution in report.resolutions:
        print(resolution)  # acme/2.json: both sides added version 2; kept ours ...
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from pathlib import Path

from strategystore import _git
from strategystore._fsio import Writer
from strategystore._layout import (
    MARKER_NAME,
    DocumentFileError,
    conflict_marker_line,
    decode_document_file,
    document_name,
    document_version,
    is_brief_name,
)
from strategystore._locks import DEFAULT_LOCK_TIMEOUT, BriefLocks, check_platform
from strategystore._merge import DraftMerge, Sides, merge_drafts
from strategystore._rules import Conflict, Resolution, content_key, plan, resolve_conflict
from strategystore.errors import StoreFormatError, StrategyStoreError

__all__ = [
    "Conflict",
    "DraftMerge",
    "Resolution",
    "ResolveError",
    "ResolveReport",
    "Sides",
    "merge_drafts",
    "plan",
    "resolve_conflict",
    "resolve_work_tree",
]


# -- in a git work tree ----------------------------------------------------------


class ResolveError(StrategyStoreError):
    """``resolve`` cannot run here: not in a git work tree, or no operation in progress."""


@dataclass(frozen=True, repr=False)
class ResolveReport:
    """What ``resolve_work_tree`` found and did.

    Attributes:
        data_dir: the data directory.
        operation: ``"merge"``, ``"rebase"`` or ``"cherry-pick"``.
        resolutions: one per conflicted document, by brief and version.
        elsewhere: conflicted paths that are no document of the data directory
            (relative to the top of the work tree); left to the user.
        dry_run: nothing was written or staged.
    """

    data_dir: Path
    operation: str
    resolutions: tuple[Resolution, ...]
    elsewhere: tuple[str, ...]
    dry_run: bool

    @property
    def left(self) -> tuple[Resolution, ...]:
        """The documents that stay in conflict."""
        return tuple(r for r in self.resolutions if r.left)

    def __repr__(self) -> str:
        done = len(self.resolutions) - len(self.left)
        return (
            f"<ResolveReport {self.operation} in {str(self.data_dir)!r}: {done} resolved, "
            f"{len(self.left)} left, {len(self.elsewhere)} elsewhere"
            f"{', dry run' if self.dry_run else ''}>"
        )


_FILE_MODES = frozenset({"100644", "100755"})


def resolve_work_tree(
    data_dir: Path, *, dry_run: bool = False, lock_timeout: float = DEFAULT_LOCK_TIMEOUT
) -> ResolveReport:
    """Resolve the document conflicts of the operation in progress in ``data_dir``'s work tree.

    Each resolved document is written in canonical bytes, atomically and under
    its brief's lock, then staged (``git add``, or ``git rm`` when a deletion
    wins); what is left stays as git left it.

    Args:
        data_dir: the data directory, inside a git work tree.
        dry_run: decide, but write and stage nothing.
        lock_timeout: how long to wait for each brief's lock.

    Raises:
        ResolveError: ``data_dir`` is not in a git work tree, or no merge,
            rebase or cherry-pick is in progress there.
        GitError: a git command failed.
    """
    check_platform()
    root = data_dir.absolute()
    if not (root / MARKER_NAME).is_file():
        raise StoreFormatError(
            f"{data_dir} is not a data directory (it has no {MARKER_NAME}); name the data "
            "directory with --dir"
            if root.is_dir()
            else f"there is no data directory at {data_dir}; create one with `strategystore init`"
        )
    top = _git.top_of(root)
    if top is None:
        raise ResolveError(f"{data_dir} is not in a git work tree; there is nothing to resolve")
    operation = _git.operation_in_progress(top)
    if operation is None:
        held = _git.unmerged_entries(top)
        raise ResolveError(
            f"no merge, rebase, cherry-pick or revert is in progress in {top}; "
            + (
                f"git holds {len(held)} path{'' if len(held) == 1 else 's'} in conflict all the "
                "same (after a `git stash "
                "pop`?): keep one side of each with `git checkout --ours` or `--theirs`, "
                "then `git add` it"
                if held
                else "there is nothing to resolve"
            )
        )
    prefix = _git.relative_to_top(top, root)
    prefix = "" if prefix == "." else prefix + "/"
    documents: dict[str, tuple[str, int, dict[int, _git.IndexEntry]]] = {}
    elsewhere: list[str] = []
    for name, stages in sorted(_git.unmerged_entries(top).items()):
        key = _document_key(name, prefix)
        if key is None:
            elsewhere.append(name)
        else:
            documents[name] = (*key, stages)
    contents = dict(
        _git.read_objects(
            top,
            {
                entry.object_id
                for _, _, stages in documents.values()
                for entry in stages.values()
                if entry.mode in _FILE_MODES
            },
        )
    )
    conflicts = []
    unreadable = []
    left_by_git: dict[str, set[bytes | None]] = {}
    for name, (brief_id, version, stages) in documents.items():
        odd = [
            f"{_stage_name(stage, operation)} is not a regular file (mode {entry.mode})"
            for stage, entry in sorted(stages.items())
            if entry.mode not in _FILE_MODES
        ]
        odd += [
            f"{_stage_name(stage, operation)} cannot be read from git"
            for stage, entry in sorted(stages.items())
            if entry.mode in _FILE_MODES and contents.get(entry.object_id) is None
        ]
        path = name[len(prefix) :]
        if odd:
            unreadable.append(Resolution.leave(path, *odd))
            continue

        def stage(number: int, stages: dict[int, _git.IndexEntry] = stages) -> bytes | None:
            entry = stages.get(number)
            return None if entry is None else contents[entry.object_id]

        conflicts.append(Conflict(brief_id, version, stage(1), stage(2), stage(3)))
        left_by_git[path] = {stage(2), stage(3)}
    briefs = {c.brief_id for c in conflicts}
    taken = _taken_versions(top, root, prefix, briefs)
    present = _present(root, briefs, set(left_by_git))
    resolutions = [
        _unless_changed_by_hand(root, resolution, left_by_git.get(resolution.path, set()))
        for resolution in plan(conflicts, taken, Sides.of(operation), present)
    ]
    resolutions += unreadable
    resolutions.sort(key=lambda r: r.path)
    if not dry_run:
        _apply(top, root, prefix, resolutions, lock_timeout)
    return ResolveReport(root, operation, tuple(resolutions), tuple(elsewhere), dry_run)


def _present(root: Path, briefs: set[str], conflicted: set[str]) -> dict[str, dict[str, int]]:
    """The versions each brief holds outside the conflict, by ``content_key``."""
    found: dict[str, dict[str, int]] = {}
    for brief_id in briefs:
        try:
            names = os.listdir(root / brief_id)
        except OSError:
            continue
        for name in names:
            version = document_version(name)
            if version is None or f"{brief_id}/{name}" in conflicted:
                continue
            try:
                doc = decode_document_file((root / brief_id / name).read_bytes())
            except (OSError, DocumentFileError):
                continue
            found.setdefault(brief_id, {})[content_key(doc)] = version
    return found


def _unless_changed_by_hand(
    root: Path, resolution: Resolution, left_by_git: set[bytes | None]
) -> Resolution:
    """``resolution``, or a refusal when someone changed the file since git left it.

    Under ``-merge`` git leaves one side in the work tree (or, without it, a
    file with conflict markers). A file holding anything else is a person's
    resolution, not yet staged, and is never overwritten.
    """
    if not resolution.resolved:
        return resolution
    try:
        present: bytes | None = (root / resolution.path).read_bytes()
    except FileNotFoundError:
        present = None
    except OSError:
        return resolution  # what cannot be read is refused when it is written
    ours = {doc.to_json_bytes() for doc in resolution.documents}
    if (
        present in left_by_git
        or present in ours
        or (present is not None and conflict_marker_line(present) is not None)
    ):
        return resolution
    return Resolution.leave(
        resolution.path,
        "the file was changed since git left it (a resolution by hand, not yet staged?): "
        f"`git add` it to keep it, or `git checkout -m -- {resolution.path}` to start over",
    )


def _document_key(name: str, prefix: str) -> tuple[str, int] | None:
    """The brief and version a path (relative to the top) names, if it is a document."""
    if not name.startswith(prefix):
        return None
    parts = name[len(prefix) :].split("/")
    if len(parts) != 2 or not is_brief_name(parts[0]):
        return None
    version = document_version(parts[1])
    return None if version is None else (parts[0], version)


def _stage_name(stage: int, operation: str) -> str:
    sides = Sides.of(operation)
    return {1: "the base", 2: sides.ours, 3: sides.theirs}.get(stage, f"stage {stage}")


def _taken_versions(top: Path, root: Path, prefix: str, briefs: set[str]) -> dict[str, set[int]]:
    """The versions of each brief in the work tree and in any stage of the index."""
    taken: dict[str, set[int]] = {brief_id: set() for brief_id in briefs}
    for name in _git.index_paths(top, prefix or "."):
        key = _document_key(name, prefix)
        if key is not None and key[0] in taken:
            taken[key[0]].add(key[1])
    for brief_id, versions in taken.items():
        try:
            names = os.listdir(root / brief_id)
        except (FileNotFoundError, NotADirectoryError):
            continue
        versions.update(v for v in map(document_version, names) if v is not None)
    return taken


def _apply(
    top: Path, root: Path, prefix: str, resolutions: list[Resolution], lock_timeout: float
) -> None:
    """Write and stage what the resolutions decided."""
    resolved = [r for r in resolutions if r.resolved]
    if not resolved:
        return
    writer = Writer(root, durable=True)
    locks = BriefLocks(root, lock_timeout)
    locks.make_locks_dir()
    added: list[str] = []
    removed: list[str] = []
    created: list[Path] = []
    for resolution in resolved:
        with locks.hold(resolution.path.split("/", 1)[0]):
            for doc in resolution.documents:
                name = f"{doc.brief_id}/{document_name(doc.version)}"
                # A version resolve numbered is new: never written over what
                # a writer may have put there since the numbers were chosen.
                new = name != resolution.path
                if not writer.write_document(
                    doc.brief_id,
                    document_name(doc.version),
                    doc.to_json_bytes(),
                    exclusive=new,
                    durable=True,
                ):
                    _take_back(created)
                    raise ResolveError(
                        f"{name} appeared while resolving (another writer?); nothing was "
                        "staged: run `strategystore resolve` again"
                    )
                if new:
                    created.append(root / name)
                added.append(prefix + name)
        if resolution.remove:
            removed.append(prefix + resolution.path)
    try:
        _git.add(top, added)
        _git.remove(top, removed)
    except _git.GitError as exc:
        # New versions are taken back, so that running resolve again does not
        # number them once more; documents resolved in place read as resolved.
        _take_back(created)
        raise _git.GitError(
            f"{exc}; nothing was staged and the new versions were removed: "
            "run `strategystore resolve` again once git can stage"
        ) from exc


def _take_back(created: list[Path]) -> None:
    """Remove the new versions this run wrote."""
    for path in created:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
