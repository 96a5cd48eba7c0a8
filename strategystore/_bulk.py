"""The commands that work through many documents: check, export, import, import-sql, bench.

They show progress on stderr when it is a terminal, keep going past a
document they cannot read or write, name each one, and exit 1 when there
was any.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import IO, TypeVar

from pydantic import ValidationError

from strategystore import _render
from strategystore._arguments import check_brief_id
from strategystore._console import PROG, data_dir, describe, error, exit_status, open_store
from strategystore._layout import describe_invalid
from strategystore.errors import DuplicateVersionError, StrategyStoreError
from strategystore.models import Status, StrategyDocument
from strategystore.store import ImportOutcome

__all__ = ["cmd_bench", "cmd_check", "cmd_export", "cmd_import", "cmd_import_sql"]

_T = TypeVar("_T")


def cmd_check(args: argparse.Namespace) -> int:
    """``check``: every problem and note in the data directory; exit 1 on a problem."""
    from strategystore.check import DataDirCheck  # noqa: PLC0415 - only this command walks

    root = data_dir(args)
    progress = _render.Progress("checked", "entries")
    checker = DataDirCheck(root, repair=args.repair, on_file=progress.update)
    problems = notes = 0
    for finding in checker.findings():
        progress.clear()
        print(finding)
        if finding.note:
            notes += 1
        else:
            problems += 1
    progress.clear()
    documents = _render.count(checker.documents, "document")
    contents = f"{documents} in {_render.count(checker.briefs, 'brief')}"
    if problems:
        tail = f", {_render.count(notes, 'note')}" if notes else ""
        print(f"{root}: {contents}; {_render.count(problems, 'problem')}{tail}")
        return 1
    tail = f" ({_render.count(notes, 'note')})" if notes else ""
    print(f"{root}: {contents}, no problems{tail}")
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    """``export [BRIEF…]``: documents as JSON Lines on standard output."""
    store = open_store(args)
    # Checked before writing anything, so a typo does not leave half an export.
    named = sorted({check_brief_id(b) for b in args.briefs})
    briefs = named or store.list_briefs()
    progress = _render.Progress("exported", "documents")
    status = exported = 0
    for brief in briefs:
        # Newest last within a brief, so a replay in order ends on the latest.
        try:
            versions = sorted(store.list_version_numbers(brief))
        except StrategyStoreError as exc:
            # An unreadable brief directory: the backup is incomplete, say so.
            progress.clear()
            error(describe(exc))
            status = 1
            continue
        if not versions and named:
            progress.clear()
            error(f"brief {brief!r} has no versions in {data_dir(args)}")
            status = 1
        for version in versions:
            try:
                doc = store.get_strategy(brief, version)
            except StrategyStoreError as exc:
                progress.clear()
                error(describe(exc))
                status = 1
                continue
            if doc is None:
                continue  # deleted since it was listed
            sys.stdout.write(doc.model_dump_json() + "\n")
            exported += 1
            progress.update(exported)
    progress.finish(f"exported {_render.count(exported, 'document')}")
    return status


def cmd_import(args: argparse.Namespace) -> int:
    """``import FILE``: documents from JSON Lines, each line on its own."""
    store = open_store(args)
    progress = _render.Progress("imported", "lines")
    invalid = 0
    # The same key may come on several lines; results come back in input order.
    line_of: dict[tuple[str, int], deque[int]] = {}

    with _open_binary(args.file) as (name, stream):

        def documents() -> Iterator[StrategyDocument]:
            nonlocal invalid
            for number, line in enumerate(stream, start=1):
                if number == 1:
                    line = line.removeprefix(b"\xef\xbb\xbf")  # noqa: PLW2901 - a BOM is no data
                if not line.strip():
                    continue
                try:
                    doc = StrategyDocument.from_json_bytes(line)
                except ValidationError as exc:
                    progress.clear()
                    error(f"{name}:{number}: {describe_invalid(line, exc, stored=False)}")
                    invalid += 1
                    continue
                line_of.setdefault(doc.key, deque()).append(number)
                yield doc

        def on_result(
            doc: StrategyDocument, outcome: ImportOutcome, problem: StrategyStoreError | None
        ) -> None:
            number = _next_of(line_of, doc.key, 0)
            if outcome == "refused" and problem is not None:
                progress.clear()
                error(f"{name}:{number}: {_refusal(problem)}")
            progress.update(number)

        summary = store.import_documents(documents(), upsert=args.upsert, on_result=on_result)
    progress.clear()
    refused = summary.refused + invalid
    error(f"{summary.written} written, {summary.skipped} skipped, {refused} refused", prefix="")
    return 1 if refused else 0


def cmd_import_sql(args: argparse.Namespace) -> int:
    """``import-sql DATABASE``: the rows of a SQLite ``strategy_document`` table."""
    import sqlite3  # noqa: PLC0415 - only this command reads SQL

    from strategystore.sql import SqlSourceError, UnmappableRowError, read_documents  # noqa: PLC0415

    store = open_store(args)
    progress = _render.Progress("imported", "rows")
    database = args.database
    unmappable = rows = 0
    row_of: dict[tuple[str, int], deque[object]] = {}

    def documents() -> Iterator[StrategyDocument]:
        nonlocal unmappable, rows
        for row_id, result in read_documents(database):
            rows += 1
            if isinstance(result, UnmappableRowError):
                progress.clear()
                error(f"{database}: row id {row_id}: cannot map: {result.reason}")
                unmappable += 1
                progress.update(rows)
                continue
            row_of.setdefault(result.key, deque()).append(row_id)
            yield result

    def on_result(
        doc: StrategyDocument, outcome: ImportOutcome, problem: StrategyStoreError | None
    ) -> None:
        row_id = _next_of(row_of, doc.key, "?")
        if outcome == "refused" and problem is not None:
            progress.clear()
            error(f"{database}: row id {row_id}: {_refusal(problem)}")
        progress.update(rows)

    try:
        summary = store.import_documents(documents(), upsert=args.upsert, on_result=on_result)
    except SqlSourceError as exc:
        progress.clear()
        error(str(exc))
        return 1
    except sqlite3.Error as exc:
        progress.clear()
        error(f"{database}: {exc}")
        return 1
    progress.clear()
    refused = summary.refused + unmappable
    error(f"{summary.written} written, {summary.skipped} skipped, {refused} refused", prefix="")
    return 1 if refused else 0


def cmd_bench(args: argparse.Namespace) -> int:
    """``bench``: hand the arguments left over to the benchmark's own parser, and run it."""
    try:
        bench = importlib.import_module("strategystore.bench")
    except ModuleNotFoundError as exc:
        if exc.name == "strategystore.bench":
            error("the bench command is not available in this installation")
        else:
            error(f"bench needs the {exc.name} package: pip install 'strategystore[bench]'")
        return 1
    parser = argparse.ArgumentParser(
        prog=f"{PROG} bench",
        description="Measure this store on this disk against the raw-file limit and SQLite.",
    )
    bench.configure_parser(parser)
    try:
        bench_args = parser.parse_args(args.extra)
    except SystemExit as exc:
        return exit_status(exc)
    status: int = bench.run(bench_args, data_dir(args))
    return status


def _refusal(problem: StrategyStoreError) -> str:
    """Why an import refused a document, with the option that would change it."""
    if isinstance(problem, DuplicateVersionError):
        key = f"version {problem.version} of brief {problem.brief_id!r}"
        if problem.existing.status is Status.DRAFT:
            return f"refused: {key} exists with other content; --upsert replaces a draft"
        return (
            f"refused: {key} exists with other content and is "
            f"{problem.existing.status.value}; only drafts can change"
        )
    return f"refused: {describe(problem)}"


def _next_of(queues: dict[tuple[str, int], deque[_T]], key: tuple[str, int], default: _T) -> _T:
    """The oldest value queued under ``key`` (removed), or ``default``."""
    queue = queues.get(key)
    if not queue:
        return default
    value = queue.popleft()
    if not queue:
        del queues[key]
    return value


@contextmanager
def _open_binary(source: str) -> Iterator[tuple[str, IO[bytes]]]:
    """The name to report and a binary stream of a FILE argument, ``-`` being standard input."""
    if source == "-":
        yield "<stdin>", sys.stdin.buffer
        return
    with open(source, "rb") as stream:
        yield source, stream
