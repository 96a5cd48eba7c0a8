"""The ``resolve`` command: settle document conflicts of a merge, rebase or cherry-pick."""

from __future__ import annotations

import argparse

from strategystore import _render
from strategystore._console import data_dir, error
from strategystore._git import GitError
from strategystore.resolve import ResolveError, ResolveReport, resolve_work_tree

__all__ = ["cmd_resolve"]

#: What to run once every conflict is resolved and staged.
_CONTINUE = {
    "merge": "git commit",
    "rebase": "git rebase --continue",
    "cherry-pick": "git cherry-pick --continue",
    "revert": "git revert --continue",
}


def cmd_resolve(args: argparse.Namespace) -> int:
    """``resolve``: settle what document rules can settle; exit 1 if anything is left.

    Exits 2 when the data directory is not in a git work tree or no merge,
    rebase or cherry-pick is in progress.
    """
    try:
        report = resolve_work_tree(
            data_dir(args), dry_run=args.dry_run, lock_timeout=args.lock_timeout
        )
    except ResolveError as exc:
        error(str(exc))
        return 2
    except GitError as exc:
        error(str(exc))
        return 1
    for line in _account(report):
        print(line)
    return 1 if report.left else 0


def _account(report: ResolveReport) -> list[str]:
    """The lines ``resolve`` prints: one per document, then what is left to the user."""
    lines = [str(resolution) for resolution in report.resolutions]
    if report.elsewhere:
        lines.append(
            f"not a document of {report.data_dir.name}, left to you: {', '.join(report.elsewhere)}"
        )
    left = len(report.left)
    done = len(report.resolutions) - left
    verb = "would resolve" if report.dry_run else "resolved"
    if not report.resolutions:
        lines.append(
            f"no conflicted document in {report.data_dir} ({report.operation} in progress)"
        )
    elif left:
        lines.append(
            f"{verb} {_render.count(done, 'document')}; "
            f"{_render.count(left, 'document')} left in conflict"
        )
    elif report.dry_run:
        lines.append(f"would resolve {_render.count(done, 'document')}")
    else:
        hint = "" if report.elsewhere else f"; continue with `{_CONTINUE[report.operation]}`"
        lines.append(f"resolved and staged {_render.count(done, 'document')}{hint}")
    if report.dry_run:
        lines.append("dry run: nothing was written or staged")
    return lines
