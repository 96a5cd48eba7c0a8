"""What ``check`` asks of git's side of a data directory: its attributes and the index.

``.gitattributes`` must keep git from merging documents line by line, and a
document the index holds in conflict shows one side only, without markers.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

from strategystore import _git
from strategystore._against import Baseline, Key
from strategystore._findings import Finding, mode_of
from strategystore._layout import GITATTRIBUTES, GITIGNORE, document_name, document_version

__all__ = ["git_files", "revision_findings", "unmerged", "version_exists"]


def git_files(root: Path) -> Iterator[Finding]:
    """``.gitattributes`` must keep git from line-merging documents; ``.gitignore`` helps."""
    found = list(_git_file_lines(root))
    yield from found
    if not any(f.path.name == ".gitattributes" for f in found):
        yield from _attributes_in_force(root)


def _attributes_in_force(root: Path) -> Iterator[Finding]:
    """What git itself applies to a document: another line may override the store's."""
    try:
        found = _repository_of(root)
        if found is None:
            return
        top, under = found
        sample = (under + "/" if under else "") + "a/1.json"
        out = _git.run(top, "check-attr", "-z", "merge", "text", "eol", "--", sample)
    except (_git.GitError, ValueError):
        return
    fields = out.split(b"\0")
    applied = {fields[i + 1].decode(): fields[i + 2].decode() for i in range(0, len(fields) - 2, 3)}
    wanted = {"merge": "unset", "text": "set", "eol": "lf"}
    if applied != wanted:
        shown = ", ".join(f"{k}: {applied.get(k, '?')}" for k in wanted)
        yield Finding(
            root / ".gitattributes",
            f"git applies {shown} to documents here, not merge: unset, text: set, eol: lf, "
            "so git may merge documents line by line; a later line (here, or in a "
            ".gitattributes or info/attributes git reads) overrides the store's: remove it",
        )


def _git_file_lines(root: Path) -> Iterator[Finding]:
    """The store's lines each git file must hold."""
    for name, wanted, harm, note in (
        (".gitattributes", GITATTRIBUTES, "git may merge documents line by line", False),
        (".gitignore", GITIGNORE, "git shows lock and temporary files", True),
    ):
        path = root / name
        mode = mode_of(path)
        if mode is not None and stat.S_ISLNK(mode):
            yield Finding(
                path,
                f"is a symbolic link, which git does not read inside a work tree, so {harm}; "
                f"replace it with a regular file and run `strategystore init`",
                note=note,
            )
            continue
        try:
            present = b"" if mode is None else path.read_bytes()
        except OSError:
            continue
        lacking = [
            line.decode()
            for line in wanted.splitlines()
            if not line.startswith(b"#")
            and line not in {held.strip() for held in present.splitlines()}
        ]
        if lacking:
            what = "does not exist" if mode is None else f"lacks {', '.join(lacking)}"
            yield Finding(
                path,
                f"{what}, so {harm}; run `strategystore init`, which adds only what is missing",
                note=note,
            )


def unmerged(root: Path, wanted: dict[str, set[str] | None] | None) -> Iterator[Finding]:
    """The documents git's index holds in conflict (a merge, rebase, stash pop …).

    ``.gitattributes`` keeps git from line-merging a document, so such a
    file holds one side, without conflict markers: only the index says
    it is unresolved.
    """
    try:
        found = _repository_of(root)
        if found is None:
            return
        top, under = found
        operation = _git.operation_in_progress(top)
        entries = _git.unmerged_entries(top, under)
    except (_git.GitError, ValueError):
        return
    prefix = under + "/" if under else ""
    for name in sorted(entries):
        brief_id, _, file_name = name.removeprefix(prefix).partition("/")
        if not name.startswith(prefix) or document_version(file_name) is None:
            continue
        if wanted is not None and (
            brief_id not in wanted or file_name not in (wanted[brief_id] or {file_name})
        ):
            continue
        yield Finding(
            root / brief_id / file_name,
            "unresolved: git holds this document in conflict"
            + (f" in the {operation} under way" if operation else "")
            + ", and the file shows one side only; "
            + (
                "run `strategystore resolve`, which settles it by document rules or says why not"
                if operation
                else "keep one side with `git checkout --ours` or `--theirs`, then `git add` it"
            ),
        )


def revision_findings(root: Path, baseline: Baseline) -> Iterator[Finding]:
    """What stops a comparison with the revision before it starts, if anything."""
    at = baseline.revision
    if baseline.unborn:
        yield Finding(root, "there is no commit yet: nothing to compare with HEAD", note=True)
    elif baseline.missing and baseline.elsewhere:
        # A data directory moved in the change: its sealed versions would go
        # uncompared, so the gate does not pass.
        yield Finding(
            root,
            f"{at} has no data directory at this path, but has one at "
            f"{', '.join(baseline.elsewhere)}: a moved data directory cannot be compared "
            f"with {at}; move it back, or compare it with the commit that moved it",
        )
    elif baseline.missing:
        yield Finding(root, f"{at} has no data directory at all: nothing to compare", note=True)


def version_exists(root: Path, key: Key) -> bool:
    """Whether a version's file is there; ``True`` when that cannot be told."""
    brief_id, version = key
    try:
        os.lstat(root / brief_id / document_name(version))
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:
        return True  # unreadable is not gone
    return True


def _repository_of(root: Path) -> tuple[Path, str] | None:
    """The work tree holding ``root`` and ``root``'s path in it (``""`` at its top), if any.

    It starts no git process where there is no ``.git`` above ``root``.

    Raises:
        GitError: git failed.
        ValueError: ``root`` is not below the work tree's top.
    """
    absolute = root.absolute()
    if not _git.in_repository(absolute):
        return None
    top = _git.work_tree(absolute)
    if top is None:
        return None
    under = _git.relative_to_top(top, absolute)
    return top, "" if under == "." else under
