"""The commands that work through many documents: export, import, import-sql, bench.

They show progress on stderr when it is a terminal, keep going past a
document they cannot read or write, name each one, and exit 1 when there
was any.
"""

from __future__ import annotations

import argparse
import importlib
import json
import shlex
import sys
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TypeVar

from pydantic import ValidationError

from strategystore import _render
from strategystore._arguments import check_brief_id
from strategystore._console import (
    PROG,
    describe,
    error,
    exit_status,
    location,
    open_store,
    place,
)
from strategystore._layout import describe_invalid, repeated_key
from strategystore.errors import DuplicateVersionError, StrategyStoreError
from strategystore.models import Status, StrategyDocument
from strategystore.store import BaseStore, ImportOutcome

__all__ = [
    "cmd_bench",
    "cmd_export",
    "cmd_import",
    "cmd_import_sql",
    "readable_documents",
    "refusal",
]

_T = TypeVar("_T")

#: At most this many bytes of an input's first lines wait to be read as one
#: pretty-printed document (a hint to use ``put``) before their errors are said.
_PRETTY_LIMIT = 16 * 1024 * 1024


def cmd_export(args: argparse.Namespace) -> int:
    """``export [BRIEF…]``: documents as JSON Lines on standard output.

    Briefs ascending, and versions ascending within a brief, so a replay in
    order ends on the latest. A document or brief that cannot be read is
    named on standard error, the rest is exported, and the exit status is 1.
    """
    store = open_store(args)
    # Checked before writing anything, so a typo does not leave half an export.
    named = sorted({check_brief_id(b) for b in args.briefs})
    progress = _render.Progress("exported", "documents")
    status = exported = 0

    def say(message: str) -> None:
        # Anything unread leaves the backup incomplete: say so.
        nonlocal status
        progress.clear()
        error(message)
        status = 1

    for doc in readable_documents(store, named or store.list_briefs(), say):
        sys.stdout.write(doc.model_dump_json() + "\n")
        exported += 1
        progress.update(exported)
    for brief in named:
        if not store.list_version_numbers(brief):
            say(f"brief {brief!r} has no versions in {place(args)}")
    progress.finish(f"exported {_render.count(exported, 'document')}")
    return status


def readable_documents(
    store: BaseStore, briefs: list[str], say: Callable[[str], None]
) -> Iterator[StrategyDocument]:
    """Every document of ``briefs`` that can be read, briefs and versions ascending.

    Each brief is read as it stood at one instant; past a damaged version the
    rest of its brief is read one version at a time. ``say`` is told of each
    document or brief that cannot be read.
    """
    for brief in briefs:
        last = 0
        try:
            for doc in store.iter_documents([brief]):
                yield doc
                last = doc.version
        except StrategyStoreError as exc:
            say(describe(exc))
            yield from _rest_of_brief(store, brief, last, describe(exc), say)


def _rest_of_brief(
    store: BaseStore, brief: str, after: int, said: str, say: Callable[[str], None]
) -> Iterator[StrategyDocument]:
    """The versions of ``brief`` above ``after``, once ``iter_documents`` stopped at a damaged one.

    They are read one at a time, so one damaged version hides no other;
    ``say`` is told of each problem but ``said``, the one already told.
    """
    try:
        versions = sorted(v for v in store.list_version_numbers(brief) if v > after)
    except StrategyStoreError as exc:
        if describe(exc) != said:
            say(describe(exc))
        return
    for version in versions:
        try:
            doc = store.get_strategy(brief, version)
        except StrategyStoreError as exc:
            if describe(exc) != said:
                say(describe(exc))
            continue
        if doc is not None:  # else deleted since it was listed
            yield doc


def cmd_import(args: argparse.Namespace) -> int:
    """``import FILE``: documents from JSON Lines, each line on its own."""
    store = open_store(args)
    progress = _render.Progress("imported", "lines")
    invalid = 0
    # The same key may come on several lines; results come back in input order.
    line_of: dict[tuple[str, int], deque[int]] = {}

    with _open_binary(args.file) as (name, stream):

        def report(number: int, line: bytes, exc: ValidationError) -> None:
            nonlocal invalid
            progress.clear()
            error(f"{name}:{number}: {describe_invalid(line, exc, stored=False)}")
            invalid += 1

        def documents() -> Iterator[StrategyDocument]:
            nonlocal invalid
            guard = _PrettyDocumentGuard(report)
            for number, line in enumerate(stream, start=1):
                if number == 1:
                    line = line.removeprefix(b"\xef\xbb\xbf")  # noqa: PLW2901 - a BOM is no data
                if not line.strip():
                    continue
                try:
                    doc = StrategyDocument.from_json_bytes(line)
                except ValidationError as exc:
                    guard.failed(number, line, exc)
                    continue
                # A line as export writes it repeats no key; only others are looked at.
                exported = doc.__pydantic_serializer__.to_json(doc)
                if exported != line.rstrip() and (repeated := repeated_key(line)) is not None:
                    progress.clear()
                    error(f"{name}:{number}: {repeated.reason}")
                    invalid += 1
                    continue
                guard.succeeded()
                line_of.setdefault(doc.key, deque()).append(number)
                yield doc
            if guard.looks_like_one_document():
                progress.clear()
                error(
                    f"{name}: not JSON Lines: this looks like one pretty-printed document; "
                    f"use `{PROG} put {shlex.quote(args.file)}`"
                )
                invalid += 1

        def on_result(
            doc: StrategyDocument, outcome: ImportOutcome, problem: StrategyStoreError | None
        ) -> None:
            number = _next_of(line_of, doc.key, 0)
            if outcome == "refused" and problem is not None:
                progress.clear()
                error(f"{name}:{number}: {refusal(problem)}")
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
            error(f"{database}: row id {row_id}: {refusal(problem)}")
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
        description="Measure this store on this disk against the raw-file limit and SQLite; "
        "with --store postgresql://…, PostgresStore against the same SQL written by hand.",
    )
    bench.configure_parser(parser)
    try:
        bench_args = parser.parse_args(args.extra)
    except SystemExit as exc:
        return exit_status(exc)
    where = location(args)
    if isinstance(where, str):
        try:
            importlib.import_module("strategystore.postgres")
        except ImportError:
            error("bench on PostgreSQL needs psycopg 3: pip install 'strategystore[postgres]'")
            return 1
    measure = bench.run if isinstance(where, Path) else bench.run_postgres
    status: int = measure(bench_args, where)
    return status


class _PrettyDocumentGuard:
    """Holds back the errors of an input's first lines while it may be one pretty-printed document.

    No line of JSON Lines opens an object it does not close, so when the first
    line does, the errors of the lines that follow wait: if the whole input
    (up to ``_PRETTY_LIMIT`` bytes) is one JSON object with a ``brief_id``,
    they are never said and the caller says to use ``put`` instead; otherwise
    they are said in order, as soon as that is known.
    """

    def __init__(self, report: Callable[[int, bytes, ValidationError], None]) -> None:
        self._report = report
        self._held: list[tuple[int, bytes, ValidationError]] | None = []
        self._size = 0
        self._started = False

    def failed(self, number: int, line: bytes, exc: ValidationError) -> None:
        """Line ``number`` is not a document: hold its error, or say it."""
        if not self._started:
            self._started = True
            if not _opens_an_object(line):
                self._held = None
        if self._held is not None and self._size + len(line) <= _PRETTY_LIMIT:
            self._held.append((number, line, exc))
            self._size += len(line)
            return
        self._release()
        self._report(number, line, exc)

    def succeeded(self) -> None:
        """A line is a document: the input is JSON Lines, and held errors are said."""
        self._started = True
        self._release()

    def looks_like_one_document(self) -> bool:
        """At the end of the input: whether it is one pretty-printed document.

        When it is not, the errors still held are said.
        """
        if self._held and _one_document(b"".join(line for _, line, _ in self._held)):
            self._held = None
            return True
        self._release()
        return False

    def _release(self) -> None:
        for held in self._held or ():
            self._report(*held)
        self._held = None


def _opens_an_object(line: bytes) -> bool:
    """Whether ``line`` starts a JSON object that it does not hold whole (not JSON by itself)."""
    if not line.lstrip().startswith(b"{"):
        return False
    try:
        json.loads(line)
    except (ValueError, RecursionError):
        return True
    return False


def _one_document(data: bytes) -> bool:
    """Whether ``data`` as a whole is one JSON object with a ``brief_id``."""
    try:
        value = json.loads(data)
    except (ValueError, RecursionError):
        return False
    return isinstance(value, dict) and "brief_id" in value


def refusal(problem: StrategyStoreError) -> str:
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
