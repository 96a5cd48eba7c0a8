"""Who last changed each document of a brief, and when, from git.

One ``git log`` per brief, newest commit first: the first commit that names
a file is the one that last changed it. A data directory outside a git work
tree, or a machine without git, simply has no history to show.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path, PurePosixPath

from strategystore import _git
from strategystore._layout import document_version

__all__ = ["Commit", "last_commits"]

_COMMIT_MARK = "\x01"


@dataclass(frozen=True)
class Commit:
    """The commit that last changed a file.

    Attributes:
        commit: its full object id.
        author: its author's name.
        date: its author date.
    """

    commit: str
    author: str
    date: datetime

    @property
    def short(self) -> str:
        """The abbreviated object id people quote."""
        return self.commit[:12]


def last_commits(data_dir: Path, brief_id: str) -> dict[int, Commit]:
    """The last commit of each version file of ``brief_id``, by version; empty outside git."""
    if not _git.in_repository(data_dir):
        return {}
    try:
        top = _git.top_of(data_dir)
        if top is None:
            return {}
        under = _git.relative_to_top(top, data_dir / brief_id)
        out = _git.run(
            top,
            "log",
            f"--format={_COMMIT_MARK}%H%x00%an%x00%aI",
            "--name-only",
            "--no-renames",
            "--end-of-options",
            "HEAD",
            "--",
            under,
        )
    except (_git.GitError, OSError, ValueError):
        # No commit yet, no git, or a directory git cannot name: no history.
        return {}
    found: dict[int, Commit] = {}
    current: Commit | None = None
    for line in out.decode("utf-8", "replace").splitlines():
        if line.startswith(_COMMIT_MARK):
            commit, author, date = line[1:].split("\x00")
            current = Commit(commit, author, datetime.fromisoformat(date))
        elif line and current is not None:
            path = PurePosixPath(line)
            version = document_version(path.name)
            if version is not None and path.parent.name == brief_id:
                found.setdefault(version, current)
    return found
