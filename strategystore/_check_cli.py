"""The ``check`` command: problems and notes of a data directory, the gate for commits and CI."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from strategystore import _render
from strategystore._console import data_dir, error

if TYPE_CHECKING:
    from strategystore.check import DataDirCheck

__all__ = ["cmd_check"]


def cmd_check(args: argparse.Namespace) -> int:
    """``check``: every problem and note in the data directory, or in the paths named.

    Exit status: 1 on a problem (or, with ``--strict``, a note), 2 when
    ``--against`` cannot be used (no git work tree, no such commit), else 0.
    """
    # Imported here: only this command walks a directory or runs git.
    from strategystore._against import RevisionError  # noqa: PLC0415
    from strategystore._git import GitError  # noqa: PLC0415
    from strategystore.check import DataDirCheck  # noqa: PLC0415

    root = data_dir(args)
    progress = _render.Progress("checked", "entries")
    checker = DataDirCheck(
        root,
        paths=args.paths or None,
        against=args.against,
        repair=args.repair,
        on_file=progress.update,
    )
    problems = notes = 0
    try:
        for finding in checker.findings():
            progress.clear()
            print(finding)
            if finding.note:
                notes += 1
            else:
                problems += 1
    except RevisionError as exc:
        progress.clear()
        error(f"check --against: {exc}")
        return 2
    except GitError as exc:
        progress.clear()
        error(f"check --against {args.against}: {exc}")
        return 1
    progress.clear()
    print(f"{root}: {_summary(checker)}{_outcome(problems, notes, strict=args.strict)}")
    return 1 if problems or (notes and args.strict) else 0


def _summary(checker: DataDirCheck) -> str:
    """What was checked: ``3 documents in 2 briefs``, with the paths named and the comparison."""
    text = (
        f"{_render.count(checker.documents, 'document')} in "
        f"{_render.count(checker.briefs, 'brief')}"
    )
    if checker.paths is not None:
        outside = f", {checker.outside} outside it" if checker.outside else ""
        text += f" (of {_render.count(checker.named, 'path')} named{outside})"
    if checker.against is not None:
        text += (
            f", {_render.count(checker.compared, 'sealed version')} compared with {checker.against}"
        )
    return text


def _outcome(problems: int, notes: int, *, strict: bool) -> str:
    if problems:
        tail = f", {_render.count(notes, 'note')}" if notes else ""
        return f"; {_render.count(problems, 'problem')}{tail}"
    if notes and strict:
        return f", no problems; {_render.count(notes, 'note')}, which --strict refuses"
    return f", no problems ({_render.count(notes, 'note')})" if notes else ", no problems"
