"""Whole-process timings of the command line on a large data directory.

Each command runs as a subprocess, timed from the parent from start to exit,
interleaved round by round with its reference: ``strategystore --version``
(the interpreter's start and the command line's imports, nothing else), or for
``check`` on a cold index one Python process that reads and validates every
file (``_validate_child``). Command and reference are started the same way:
the console script beside the running interpreter, or ``python -m
strategystore`` where there is none.
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from strategystore._index import INDEX_NAME, NO_INDEX_ENV
from strategystore._layout import LOCKS_DIR
from strategystore.bench._context import Context, settle
from strategystore.bench._datasets import Dataset
from strategystore.bench._measure import Contender, Figure, duration, relative_spread
from strategystore.files import FileStore
from strategystore.models import Section, Status, StrategyDocument

__all__ = ["measure_commands"]

_VALIDATE_CHILD = Path(__file__).parent / "_validate_child.py"

#: Each figure's target: at most this many times as long as its reference.
_TARGETS = {
    "check_unchanged_vs_startup": 3.0,
    "briefs_unchanged_vs_startup": 3.0,
    "check_cold_vs_validate_loop": 1.0,
    "check_staged_vs_startup": 1.5,
}

#: Documents changed and staged for the ``check PATH…`` figure.
STAGED_FILES = 10

#: A command whose first run takes longer than this is timed in at most
#: ``_LONG_ROUNDS`` rounds: on 100,000 documents a full walk takes many seconds.
_LONG_SECONDS = 2.0
_LONG_ROUNDS = 3

#: Brief directories named to one ``git add``, so that progress can be shown.
_ADD_CHUNK = 1_000


class _Runner:
    """Starts the command line and the reference loop as timed subprocesses."""

    def __init__(self, ctx: Context, dataset: Dataset) -> None:
        self.root = dataset.root
        self.docs = dataset.size
        script = shutil.which("strategystore", path=os.path.dirname(sys.executable))
        self.prefix = [script] if script else [sys.executable, "-m", "strategystore"]
        self.name = "strategystore" if script else "python -m strategystore"
        # Cached bytecode for every import, as in any installed environment
        # (the same private cache as the import-time figures); the index in
        # use, as by default; git variables of a calling hook would point the
        # commands at another repository.
        self.env = {
            k: v
            for k, v in os.environ.items()
            if k not in ("PYTHONDONTWRITEBYTECODE", NO_INDEX_ENV) and not k.startswith("GIT_")
        }
        self.env["PYTHONPYCACHEPREFIX"] = str(ctx.root / "pycache")

    def command(self, *args: str) -> list[str]:
        """The argument vector of ``strategystore --dir ROOT ARGS…``."""
        return [*self.prefix, "--dir", str(self.root), *args]

    def version(self) -> list[str]:
        """The argument vector of the reference, ``strategystore --version``."""
        return [*self.prefix, "--version"]

    def validate_loop(self) -> list[str]:
        """The argument vector of the reference of a cold ``check``."""
        return [sys.executable, str(_VALIDATE_CHILD), str(self.root)]

    def seconds(
        self,
        argv: Sequence[str],
        *,
        ok: Sequence[int] = (0,),
        before: Callable[[], None] | None = None,
    ) -> float:
        """Run ``argv`` in the data directory once; the seconds from start to exit.

        Raises:
            RuntimeError: it exited with a status not in ``ok``.
        """
        if before is not None:
            before()
        start = time.perf_counter()
        done = subprocess.run(
            argv,
            cwd=self.root,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            check=False,
        )
        seconds = time.perf_counter() - start
        if done.returncode not in ok:
            raise RuntimeError(
                f"{' '.join(argv)} exited {done.returncode}: "
                f"{done.stderr.decode(errors='replace').strip()}"
            )
        return seconds

    def contender(
        self,
        argv: Sequence[str],
        *,
        ok: Sequence[int] = (0,),
        before: Callable[[], None] | None = None,
    ) -> Contender:
        """One run of ``argv`` per round."""
        return lambda r: self.seconds(argv, ok=ok, before=before)


def measure_commands(ctx: Context) -> None:
    """The command line's figures, each against its reference, on one large data set.

    ``check`` and ``briefs`` on an unchanged directory, ``check`` on a cold
    index, and ``check PATH…`` of staged files. Runs last: it makes the data
    set a git repository.
    """
    dataset = ctx.dataset(ctx.settings.command_docs)
    # Files written by earlier scenarios have settled by now (the import
    # times run in between); a data set built just now has not.
    settle(dataset.built_at)
    runner = _Runner(ctx, dataset)
    docs = f"{dataset.size:,} docs"
    runner.seconds(runner.version())  # fills the bytecode cache, outside the measurement
    for key, name in (
        ("check_unchanged_vs_startup", "check"),
        ("briefs_unchanged_vs_startup", "briefs"),
    ):
        _unchanged(ctx, runner, key, f"{name}, unchanged directory of {docs}", name)
    _cold(
        ctx,
        runner,
        f"check, cold index, {docs} / one Python process reading + "
        "model_validate_json of every file",
    )
    _staged(ctx, runner, dataset)


def _rounds(first_run: float) -> int | None:
    return _LONG_ROUNDS if first_run > _LONG_SECONDS else None


def _unchanged(ctx: Context, runner: _Runner, key: str, title: str, name: str) -> None:
    """The command ``name`` run once to build what it keeps, then timed against ``--version``."""
    argv = runner.command(name)
    ctx.progress.show(f"{title}: first run")
    # Exit status 1 is a problem found: still a whole run, still timed.
    first = runner.seconds(argv, ok=(0, 1))
    timings = ctx.interleave(
        title,
        [runner.contender(argv, ok=(0, 1)), runner.contender(runner.version())],
        at_most=_rounds(first),
    )
    _slowdown(
        ctx,
        runner,
        key,
        f"{title} / {runner.name} --version",
        timings,
        first_run_seconds=first,
        index_files=[p.name for p in _index_files(runner.root)],
    )


def _cold(ctx: Context, runner: _Runner, label: str) -> None:
    """``check`` with its index removed before every run, against the validation loop."""
    ctx.progress.show("check, cold index: first run of the validation loop")
    first = runner.seconds(runner.validate_loop())  # fills the bytecode cache
    index_files = _index_files(runner.root)

    def remove_index() -> None:
        for path in _index_files(runner.root):
            path.unlink(missing_ok=True)

    timings = ctx.interleave(
        "check, cold index",
        [
            runner.contender(runner.command("check"), ok=(0, 1), before=remove_index),
            runner.contender(runner.validate_loop()),
        ],
        at_most=_rounds(first),
    )
    _slowdown(
        ctx,
        runner,
        "check_cold_vs_validate_loop",
        label,
        timings,
        index_files=[p.name for p in index_files],
    )


def _index_files(root: Path) -> list[Path]:
    """The listing index's file under ``.locks``, when there is one."""
    path = root / LOCKS_DIR / INDEX_NAME
    return [path] if path.exists() else []


def _staged(ctx: Context, runner: _Runner, dataset: Dataset) -> None:
    """``check PATH…`` of drafts changed and staged in a git repository, against ``--version``."""
    key = "check_staged_vs_startup"
    docs = f"git repository of {dataset.size:,} docs / {runner.name} --version"
    git = shutil.which("git")
    if git is None:
        label = f"check PATH… of {STAGED_FILES} staged files, {docs}"
        ctx.figures.append(
            Figure(key, label, None, "x", target=("<=", _TARGETS[key]), note="git not installed")
        )
        return
    _commit_everything(ctx, git, dataset)
    paths = _stage_edits(ctx, git, dataset)
    argv = runner.command("check", *paths)
    ctx.progress.show("check PATH…: first run")
    first = runner.seconds(argv)
    timings = ctx.interleave(
        "check PATH…", [runner.contender(argv), runner.contender(runner.version())]
    )
    label = f"check PATH… of {len(paths)} staged files, {docs}"
    _slowdown(ctx, runner, key, label, timings, first_run_seconds=first, paths=paths)


def _git(git: str, root: Path, *args: str) -> None:
    """Run git in ``root`` without the user's or the system's configuration."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(GIT_CONFIG_NOSYSTEM="1", GIT_CONFIG_GLOBAL=os.devnull)
    subprocess.run(
        [
            git,
            "-c",
            "user.name=bench",
            "-c",
            "user.email=bench@localhost",
            "-c",
            "commit.gpgsign=false",
            *args,
        ],
        cwd=root,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _commit_everything(ctx: Context, git: str, dataset: Dataset) -> None:
    """Make the data set a git repository with every file committed, showing progress."""
    root = dataset.root
    _git(git, root, "init", "-q")
    briefs = sorted(e.name for e in os.scandir(root) if e.is_dir() and not e.name.startswith("."))
    for i in range(0, len(briefs), _ADD_CHUNK):
        ctx.progress.show(f"git add: {i:,} of {len(briefs):,} brief directories")
        _git(git, root, "add", "--", *briefs[i : i + _ADD_CHUNK])
    ctx.progress.show("git add: the rest")
    _git(git, root, "add", "-A")
    ctx.progress.show(f"git commit of {dataset.size:,} documents")
    _git(git, root, "commit", "-q", "--no-verify", "-m", "bench data set")


def _stage_edits(ctx: Context, git: str, dataset: Dataset) -> list[str]:
    """Change and stage ``STAGED_FILES`` drafts; their paths, relative to the data directory.

    The drafts are drawn from every brief but the long one.
    """
    ctx.progress.show(f"editing and staging {STAGED_FILES} documents")
    store = FileStore(dataset.root, create=False, durable=False)
    keys = [(b, v) for b in dataset.briefs for v in range(1, dataset.next_version[b])]
    paths = []
    for brief, version in random.Random(11).sample(keys, min(STAGED_FILES, len(keys))):
        current = store.get_strategy(brief, version)
        if current is None or current.status is not Status.DRAFT:
            raise RuntimeError(f"bench data set: {brief} version {version} is no draft")
        first, *rest = current.sections
        edited = Section(key=first.key, title=first.title, body=first.body + " Revised.")
        store.update(
            StrategyDocument.model_validate(
                {
                    **current.model_dump(),
                    "sections": [edited.model_dump(), *(s.model_dump() for s in rest)],
                }
            ),
            expected=current,
        )
        paths.append(str(store.document_path(brief, version).relative_to(dataset.root)))
    _git(git, dataset.root, "add", "--", *paths)
    return paths


def _slowdown(
    ctx: Context,
    runner: _Runner,
    key: str,
    label: str,
    timings: Sequence[Sequence[float]],
    **details: object,
) -> None:
    """Add the figure of how many times as long the command takes as its reference.

    ``timings`` holds the command's seconds and the reference's, round by round.
    """
    command, reference = timings
    ratios = [c / r for c, r in zip(command, reference, strict=True)]
    command_s = statistics.median(command)
    reference_s = statistics.median(reference)
    ctx.figures.append(
        Figure(
            key,
            label,
            statistics.median(ratios),
            "x",
            target=("<=", _TARGETS[key]),
            store=duration(command_s),
            reference=duration(reference_s),
            spread=relative_spread(ratios),
            details={
                "store_seconds_per_op": command_s,
                "reference_seconds_per_op": reference_s,
                "rounds": len(ratios),
                "started_as": runner.name,
                "docs": runner.docs,
                **details,
            },
        )
    )
