"""The few git plumbing commands ``check --against`` and ``resolve`` need.

Every call runs ``git`` with a fixed locale and reads its machine-readable
output (``-z`` where there is one). Many objects are read through one
``git cat-file --batch`` process, never one process per file.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "GitError",
    "GitNotFoundError",
    "IndexEntry",
    "add",
    "in_repository",
    "index_paths",
    "operation_in_progress",
    "read_objects",
    "relative_to_top",
    "remove",
    "run",
    "top_of",
    "tree_entries",
    "unmerged_entries",
    "work_tree",
]


class GitError(RuntimeError):
    """git is missing, the directory is not in a repository, or a git command failed."""


class GitNotFoundError(GitError):
    """git is not installed, or not on ``PATH``."""


def _environment() -> dict[str, str]:
    env = dict(os.environ)
    env["LC_ALL"] = "C"
    env["GIT_OPTIONAL_LOCKS"] = "0"  # reading must not take the index lock
    # A path is a path: `[EU]` or `*` in a directory's name must not match others.
    env["GIT_LITERAL_PATHSPECS"] = "1"
    env.pop("GIT_DIR", None)  # a hook's environment names the repository it runs for
    env.pop("GIT_WORK_TREE", None)
    return env


def run(cwd: Path, *args: str, stdin: bytes | None = None) -> bytes:
    """``git ARGS`` in ``cwd``; its standard output.

    Raises:
        GitError: git is not installed, or the command failed (its message kept).
    """
    if not cwd.is_dir():
        # subprocess reports a missing cwd as FileNotFoundError, like a missing git.
        raise GitError(f"{cwd} is not a directory")
    try:
        done = subprocess.run(
            ["git", *args],
            cwd=cwd,
            input=stdin,
            capture_output=True,
            env=_environment(),
            check=False,
        )
    except FileNotFoundError:
        raise GitNotFoundError("git is not installed (or not on PATH)") from None
    if done.returncode != 0:
        message = done.stderr.decode(errors="replace").strip() or f"exit status {done.returncode}"
        raise GitError(f"git {args[0]}: {' '.join(message.splitlines())}")
    return done.stdout


def work_tree(path: Path) -> Path | None:
    """The top of the work tree ``path`` is in, or ``None`` when it is in none."""
    try:
        out = run(path, "rev-parse", "--show-toplevel")
    except GitError:
        return None
    return Path(os.fsdecode(out.rstrip(b"\n")))


def top_of(path: Path) -> Path | None:
    """The top of the work tree the directory ``path`` is in, or ``None`` when it is in none.

    Unlike ``work_tree``, a git that cannot run at all is an error, not "no work tree".

    Raises:
        GitError: git is not installed, or ``path`` is not a directory.
    """
    if not path.is_dir():
        raise GitError(f"{path} is not a directory")
    try:
        out = run(path, "rev-parse", "--is-inside-work-tree", "--show-toplevel")
    except GitNotFoundError:
        raise
    except GitError:
        return None
    answer, _, top = out.partition(b"\n")
    if answer != b"true" or not top.strip(b"\n"):
        return None
    return Path(os.fsdecode(top.rstrip(b"\n")))


def relative_to_top(top: Path, path: Path) -> str:
    """``path`` (inside the work tree ``top``) as git names it: relative, with ``/``."""
    return path.resolve().relative_to(top.resolve()).as_posix()


def operation_in_progress(top: Path) -> str | None:
    """``"merge"``, ``"rebase"``, ``"cherry-pick"`` or ``"revert"`` when one is under way.

    A ``git am`` (which keeps its state where an apply-based rebase does) is none of them.
    """
    git_dir = Path(os.fsdecode(run(top, "rev-parse", "--absolute-git-dir").rstrip(b"\n")))
    if (git_dir / "rebase-merge").is_dir():
        return "rebase"
    if (git_dir / "rebase-apply").is_dir():
        # rebase-apply is also where `git am` keeps its state.
        return None if (git_dir / "rebase-apply" / "applying").exists() else "rebase"
    if (git_dir / "CHERRY_PICK_HEAD").exists():
        return "cherry-pick"
    if (git_dir / "REVERT_HEAD").exists():
        return "revert"
    if (git_dir / "MERGE_HEAD").exists():
        return "merge"
    return None


def in_repository(path: Path) -> bool:
    """Whether ``path`` looks to be inside a git work tree (a ``.git`` above it).

    It runs no git, so asking costs nothing where there is no repository.
    """
    return any((directory / ".git").exists() for directory in (path, *path.parents))


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """One stage of an unmerged path: 1 the common base, 2 ours, 3 theirs."""

    mode: str
    object_id: str
    stage: int


def unmerged_entries(top: Path, under: str = "") -> dict[str, dict[int, IndexEntry]]:
    """The unmerged paths of the index (below ``under``), each with its stages."""
    args = ["ls-files", "--unmerged", "-z", "--full-name"]
    if under:
        args += ["--", under]
    found: dict[str, dict[int, IndexEntry]] = {}
    for record in run(top, *args).split(b"\0"):
        if not record:
            continue
        info, _, name = record.partition(b"\t")
        mode, object_id, stage = info.decode().split()
        entry = IndexEntry(mode, object_id, int(stage))
        found.setdefault(os.fsdecode(name), {})[entry.stage] = entry
    return found


def tree_entries(top: Path, revision: str, under: str = "") -> dict[str, str]:
    """Every file of ``revision`` below ``under`` (relative to the top), with its object id.

    Raises:
        GitError: ``revision`` names no commit.
    """
    commit = run(
        top, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{revision}^{{commit}}"
    )
    args = ["ls-tree", "-r", "-z", "--full-tree", commit.decode().strip()]
    if under:
        args += ["--", under]
    found: dict[str, str] = {}
    for record in run(top, *args).split(b"\0"):
        if not record:
            continue
        info, _, name = record.partition(b"\t")
        _mode, kind, object_id = info.decode().split()
        if kind == "blob":
            found[os.fsdecode(name)] = object_id
    return found


def read_objects(top: Path, object_ids: Iterable[str]) -> Iterator[tuple[str, bytes | None]]:
    """The contents of many objects through one ``git cat-file --batch``; ``None`` if missing."""
    wanted = list(object_ids)
    if not wanted:
        return
    stdin = b"".join(object_id.encode() + b"\n" for object_id in wanted)
    out = run(top, "cat-file", "--batch", stdin=stdin)
    position = 0
    for object_id in wanted:
        end = out.index(b"\n", position)
        header = out[position:end].split()
        position = end + 1
        if len(header) < 3 or header[-1] == b"missing":
            yield object_id, None
            continue
        size = int(header[2])
        yield object_id, out[position : position + size]
        position += size + 1  # the object, then a newline


def add(top: Path, paths: Iterable[str]) -> None:
    """Stage ``paths`` (relative to the top) with ``git add``."""
    names = list(paths)
    if names:
        run(top, "add", "--", *names)


def index_paths(top: Path, under: str = "") -> set[str]:
    """Every path of the index below ``under`` (relative to the top), in any stage."""
    args = ["ls-files", "--cached", "-z", "--full-name"]
    if under:
        args += ["--", under]
    return {os.fsdecode(name) for name in run(top, *args).split(b"\0") if name}


def remove(top: Path, paths: Iterable[str]) -> None:
    """Remove ``paths`` (relative to the top) from the index and the work tree: ``git rm``."""
    names = list(paths)
    if names:
        run(top, "rm", "--quiet", "--force", "--ignore-unmatch", "--", *names)
