"""One benchmark run: its scratch directory, its scenarios in order, its report."""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from strategystore._render import Progress
from strategystore.bench._commands import measure_commands
from strategystore.bench._context import Context
from strategystore.bench._footprint import measure_export, measure_import_time
from strategystore.bench._race import measure_create_next_race
from strategystore.bench._reads import measure_reads, prepare_reads
from strategystore.bench._report import build_report, missed_targets, render
from strategystore.bench._scaling import measure_scaling
from strategystore.bench._settings import WIDTH, Settings
from strategystore.bench._writes import measure_bulk_import, measure_save, measure_tinydb

__all__ = ["emit", "run"]


def run(args: argparse.Namespace, data_dir: Path) -> int:
    """Run the benchmark on ``data_dir``'s file system and print the report.

    Works in a fresh ``.bench-*`` directory inside ``data_dir`` (or inside its
    nearest existing parent when it does not exist yet), removed afterwards.
    Progress goes to stderr only when stderr is a terminal.

    Args:
        args: options added by ``configure_parser``.
        data_dir: the data directory whose disk is measured.

    Returns:
        0, or with ``--check`` 1 when a target was missed; each missed
        target is then named on stderr, after the report.
    """
    settings = Settings.from_args(args)
    where = Path(os.path.abspath(data_dir))
    while not where.is_dir():
        where = where.parent
    root = Path(tempfile.mkdtemp(prefix=".bench-", dir=where))
    progress = Progress(prefix="bench: ", stream=sys.stderr)
    try:
        report = _measure(Context(settings, root, progress))
    finally:
        progress.clear()
        shutil.rmtree(root, ignore_errors=True)
    return emit(report, args, render)


def emit(
    report: dict[str, Any],
    args: argparse.Namespace,
    text: Callable[[dict[str, Any], int | None], str],
) -> int:
    """Print ``report`` as ``--json`` or ``--wide`` say (``text`` renders it); the exit status.

    Returns:
        0, or with ``--check`` 1 when a target was missed; each missed
        target is then named on stderr, after the report.
    """
    if getattr(args, "json", False):
        print(json.dumps(report, indent=2))
    else:
        print(text(report, None if getattr(args, "wide", False) else WIDTH))
    if not getattr(args, "check", False):
        return 0
    missed = missed_targets(report)
    for line in missed:
        print(f"bench: target missed: {line}", file=sys.stderr)
    return 1 if missed else 0


def _measure(ctx: Context) -> dict[str, Any]:
    """Every scenario, in an order that lets files settle before they are read."""
    started = time.perf_counter()
    with ctx.cleanup:
        reads = prepare_reads(ctx)
        # Built first so they have settled (see SETTLE_SECONDS) by the time
        # the scaling table reads them.
        for size in ctx.settings.sizes:
            ctx.dataset(size)
        measure_save(ctx, durable=True)
        measure_save(ctx, durable=False)
        measure_reads(ctx, reads)
        measure_bulk_import(ctx)
        measure_create_next_race(ctx)
        measure_scaling(ctx)
        measure_tinydb(ctx)
        measure_export(ctx)
        measure_import_time(ctx)
        measure_commands(ctx)  # last: it makes a data set a git repository
    return build_report(ctx, time.perf_counter() - started)
