"""The ``strategystore`` command line: a thin client over the public API.

``main(argv)`` parses the arguments, calls ``FileStore``, prints, and returns
the exit status: 0 success, 1 a problem found, a thing not found or refused,
2 bad usage. Errors are one line on stderr, never a traceback, also when a
standard stream is closed: a command that needs a closed stream says so and
does nothing. Only ``init`` creates a data directory; every other command
needs an existing one.
"""

from __future__ import annotations

import argparse
import difflib
import importlib
import json
import math
import os
import re
import sys
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, NoReturn, TypeVar

from pydantic import JsonValue, ValidationError

from strategystore import __version__, _render
from strategystore._backends import DEFAULT_DATA_DIR
from strategystore.errors import DuplicateVersionError, LockTimeoutError, StrategyStoreError
from strategystore.files import MARKER_NAME, FileStore, describe_invalid
from strategystore.models import (
    MAX_VERSION,
    Section,
    Status,
    StrategyDocument,
    check_brief_id,
    check_version,
    describe_validation_error,
)
from strategystore.store import ImportOutcome

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

__all__ = ["main"]

PROG = "strategystore"
_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
DEFAULT_LOCK_TIMEOUT = 10.0

Handler = Callable[[argparse.Namespace], int]


_T = TypeVar("_T")


def main(argv: list[str] | None = None) -> int:
    """Run the command line.

    Args:
        argv: the arguments after the program name; ``sys.argv[1:]`` when ``None``.

    Returns:
        The exit status: 0 success, 1 a problem, a thing not found or refused,
        2 bad usage.
    """
    parser, commands = _parser()
    try:
        args, extra = parser.parse_known_args(argv)
        # Only bench hands unknown options on, to the parser its module builds.
        if extra and args.command != "bench":
            commands[args.command].error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:
        return _exit_status(exc)
    except _ClosedStreamError as exc:
        _error(str(exc))
        return 1
    args.extra = extra
    # Checked before the command runs, so a command that could not report
    # what it did (or read what it was given) does nothing at all.
    closed = _closed_stream(args)
    if closed is not None:
        _error(str(_ClosedStreamError(closed)))
        return 1
    handler: Handler = args.handler
    try:
        return handler(args)
    except KeyboardInterrupt:
        _error("interrupted")
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return 1
    except (StrategyStoreError, ValidationError, OSError) as exc:
        _error(_describe(exc))
        return 1
    except UnicodeEncodeError as exc:
        _error(f"cannot print {exc.object[exc.start : exc.end]!r} here: set PYTHONIOENCODING=utf-8")
        return 1


# -- the parser ---------------------------------------------------------------


class _ClosedStreamError(Exception):
    """A standard stream the command needs is closed (the process was started without it)."""

    def __init__(self, stream: str) -> None:
        super().__init__(f"standard {stream} is closed; nothing was done")


class _Parser(argparse.ArgumentParser):
    """An argument parser that refuses to print help on a closed standard output."""

    def print_help(self, file: SupportsWrite[str] | None = None) -> None:
        if file is None:
            _require_stdout()
        super().print_help(file)

    def error(self, message: str) -> NoReturn:
        if sys.stderr is None:
            # argparse would print the usage on standard output instead.
            self.exit(2)
        super().error(message)


class _ShowVersion(argparse.Action):
    """``--version``: print the program's version on standard output and exit."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: str | Sequence[Any] | None,
        option_string: str | None = None,
    ) -> None:
        _require_stdout()
        print(f"{PROG} {__version__}")
        parser.exit()


def _require_stdout() -> None:
    """Raise ``_ClosedStreamError`` when standard output is closed."""
    if sys.stdout is None:
        raise _ClosedStreamError("output")


def _closed_stream(args: argparse.Namespace) -> str | None:
    """The standard stream the parsed command needs that is closed, if any."""
    # ``file`` is the input argument of put, new and import; - is standard input.
    if sys.stdin is None and getattr(args, "file", None) == "-":
        return "input"
    if sys.stdout is None and args.prints:
        return "output"
    return None


def _parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    parser = _Parser(
        prog=PROG,
        description="Versioned marketing-strategy documents as plain JSON files.",
        epilog=f"DIR defaults to $STRATEGYSTORE_DIR, then ./{DEFAULT_DATA_DIR}. "
        f"Run `{PROG} COMMAND --help` for a command's options.",
    )
    parser.add_argument(
        "--dir",
        metavar="DIR",
        help=f"the data directory (default: $STRATEGYSTORE_DIR, then ./{DEFAULT_DATA_DIR})",
    )
    parser.add_argument(
        "--lock-timeout",
        metavar="SECONDS",
        type=_seconds_arg,
        default=DEFAULT_LOCK_TIMEOUT,
        help="seconds a write waits for a brief's lock held by another writer "
        f"(default: {DEFAULT_LOCK_TIMEOUT:g})",
    )
    parser.add_argument(
        "--version", action=_ShowVersion, help="show program's version number and exit"
    )
    # --dir and --lock-timeout are also accepted after the command, where
    # people tend to type them.
    common = _Parser(add_help=False)
    common.add_argument("--dir", metavar="DIR", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    common.add_argument(
        "--lock-timeout",
        metavar="SECONDS",
        type=_seconds_arg,
        default=argparse.SUPPRESS,
        help=argparse.SUPPRESS,
    )

    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    commands: dict[str, argparse.ArgumentParser] = {}

    def command(
        name: str, handler: Handler, help_text: str, *, prints: bool = True, **kwargs: Any
    ) -> argparse.ArgumentParser:
        """Add a command; ``prints`` says whether it writes to standard output."""
        kwargs.setdefault("description", help_text[0].upper() + help_text[1:] + ".")
        command_parser = sub.add_parser(name, help=help_text, parents=[common], **kwargs)
        command_parser.set_defaults(handler=handler, prints=prints)
        commands[name] = command_parser
        return command_parser

    _reading_commands(command)
    _writing_commands(command)
    _bulk_commands(command)
    return parser, commands


_CommandFactory = Callable[..., argparse.ArgumentParser]


def _reading_commands(command: _CommandFactory) -> None:
    command("init", _cmd_init, "make a data directory")

    p = command("briefs", _cmd_briefs, "list briefs with their version count and latest status")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    p = command("versions", _cmd_versions, "list the versions of a brief, newest first")
    p.add_argument("brief", metavar="BRIEF")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    p = command("show", _cmd_show, "show a document (the latest version by default)")
    p.add_argument("brief", metavar="BRIEF")
    p.add_argument("version", metavar="VERSION", nargs="?", type=_version_arg)
    p.add_argument("--json", action="store_true", help="print the document's file as it is")


def _writing_commands(command: _CommandFactory) -> None:
    p = command(
        "put",
        _cmd_put,
        "save a document from JSON (replaces a differing draft)",
        epilog="The JSON is a whole document, as `show --json` prints it.",
    )
    p.add_argument("file", metavar="FILE", help="a JSON file, or - for standard input")
    p.add_argument(
        "--create", action="store_true", help="refuse to touch a version that already exists"
    )

    p = command(
        "new",
        _cmd_new,
        "add the next version of a brief",
        epilog='FILE holds {"sections": [{"key": …, "title": …, "body": …}, …], '
        '"metadata": {…}}; both are optional.',
    )
    p.add_argument("brief", metavar="BRIEF")
    p.add_argument("file", metavar="FILE", help="a JSON file, or - for standard input")

    p = command("approve", _cmd_approve, "approve a draft")
    _add_key(p)
    p = command("reject", _cmd_reject, "reject a draft")
    _add_key(p)
    p.add_argument("--reason", metavar="TEXT", help="why, kept in the document")
    p = command("withdraw", _cmd_withdraw, "withdraw an approved version (the soft delete)")
    _add_key(p)
    p.add_argument("--reason", metavar="TEXT", help="why, kept in the document")

    p = command("delete", _cmd_delete, "delete a draft")
    _add_key(p)

    p = command("diff", _cmd_diff, "show what changed between two versions, section by section")
    p.add_argument("brief", metavar="BRIEF")
    p.add_argument("old", metavar="V1", type=_version_arg)
    p.add_argument("new", metavar="V2", type=_version_arg)


def _bulk_commands(command: _CommandFactory) -> None:
    p = command(
        "check",
        _cmd_check,
        "validate every file in the data directory",
        epilog="Lists each problem with its path (and line); exits 1 if there is any. "
        "Stale temporary files are notes and do not change the exit status.",
    )
    p.add_argument(
        "--repair",
        action="store_true",
        help="remove stale temporary files (never a document)",
    )

    p = command(
        "export",
        _cmd_export,
        "write documents as JSON Lines to standard output",
        epilog="One document per line; briefs sorted, versions ascending within a brief.",
    )
    p.add_argument("briefs", metavar="BRIEF", nargs="*", help="only these briefs (default: all)")

    p = command(
        "import",
        _cmd_import,
        "read documents from JSON Lines",
        prints=False,
        epilog="Identical documents are skipped; differing ones are refused unless --upsert.",
    )
    p.add_argument("file", metavar="FILE", help="a JSON Lines file, or - for standard input")
    p.add_argument("--upsert", action="store_true", help="replace differing drafts")

    p = command(
        "import-sql",
        _cmd_import_sql,
        "copy the rows of a SQLite strategy_document table",
        prints=False,
        epilog="Naive timestamps are read as UTC. Identical documents are skipped; "
        "differing ones are refused unless --upsert, so a re-run is safe.",
    )
    p.add_argument("database", metavar="DATABASE", help="the SQLite file")
    p.add_argument("--upsert", action="store_true", help="replace differing drafts")

    command("schema", _cmd_schema, "print the JSON Schema of a document file, for editors")

    # The bench module builds its own parser from the arguments left over, so
    # importing this module never imports it.
    command(
        "bench",
        _cmd_bench,
        "measure this store on this disk against the raw-file limit and SQLite",
        add_help=False,
        allow_abbrev=False,
    )


def _add_key(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("brief", metavar="BRIEF")
    parser.add_argument("version", metavar="VERSION", type=_version_arg)


# Plain ASCII decimal only: int() would also take "1_0", "+1", " 1" and the
# digits of other scripts, and "1_0" would name version 10.
_VERSION_TEXT = re.compile(r"[1-9][0-9]*")
_SECONDS_TEXT = re.compile(r"(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?")


def _version_arg(text: str) -> int:
    """A VERSION argument: ``[1-9][0-9]*`` in ``1 <= version < 2**31``."""
    if _VERSION_TEXT.fullmatch(text) and len(text) <= len(str(MAX_VERSION)):
        try:
            return check_version(int(text))
        except ValueError:
            pass
    raise argparse.ArgumentTypeError(f"{text!r} is not a version number (1 to {MAX_VERSION - 1})")


def _seconds_arg(text: str) -> float:
    """A number of seconds: plain ASCII decimal, not negative, finite."""
    if _SECONDS_TEXT.fullmatch(text):
        seconds = float(text)
        if math.isfinite(seconds):
            return seconds
    raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds (0 or more)")


# -- commands ---------------------------------------------------------------


def _cmd_init(args: argparse.Namespace) -> int:
    path = _data_dir(args)
    existed = (path / MARKER_NAME).is_file()
    FileStore(path, lock_timeout=args.lock_timeout)
    if existed:
        print(f"{path} is already a data directory")
    else:
        print(f"initialised data directory {path}")
        print(f"next: {PROG} new BRIEF FILE, or {PROG} import FILE")
    return 0


def _cmd_briefs(args: argparse.Namespace) -> int:
    store = _store(args)
    rows: list[dict[str, Any]] = []
    status = 0
    for brief in store.list_briefs():
        numbers: list[int] = []
        try:
            numbers = store.list_version_numbers(brief)
            latest = store.get_latest(brief)
            approved = store.get_latest(brief, status=Status.APPROVED)
        except StrategyStoreError as exc:
            _error(_describe(exc))
            status = 1
            latest = approved = None
        rows.append(
            {
                "brief_id": brief,
                "versions": len(numbers),
                "latest_version": numbers[0] if numbers else None,
                "latest_status": None if latest is None else latest.status.value,
                "latest_approved_version": None if approved is None else approved.version,
                "updated_at": None if latest is None else _render.iso(latest.updated_at),
                "_updated": None if latest is None else latest.updated_at,
            }
        )
    if args.json:
        _print_json([{k: v for k, v in row.items() if not k.startswith("_")} for row in rows])
    elif not rows:
        _error(f"no briefs yet in {_data_dir(args)}; add one with `{PROG} new BRIEF FILE`")
    else:
        table = [
            (
                row["brief_id"],
                str(row["versions"]),
                _render.text(row["latest_version"]),
                row["latest_status"] or "unreadable",
                _render.text(row["latest_approved_version"]),
                "" if row["_updated"] is None else _render.minute(row["_updated"]),
            )
            for row in rows
        ]
        headers = ("BRIEF", "VERSIONS", "LATEST", "STATUS", "APPROVED", "UPDATED (UTC)")
        print("\n".join(_render.table(headers, table, right={1, 2, 4})))
    return status


def _cmd_versions(args: argparse.Namespace) -> int:
    store = _store(args)
    docs = store.list_versions_by_brief(args.brief)
    if not docs:
        _error(f"brief {args.brief!r} has no versions in {_data_dir(args)}")
        return 1
    if args.json:
        _print_json(
            [
                {
                    "version": doc.version,
                    "status": doc.status.value,
                    "status_reason": doc.status_reason,
                    "created_at": _render.iso(doc.created_at),
                    "updated_at": _render.iso(doc.updated_at),
                    "section_count": len(doc.sections),
                }
                for doc in docs
            ]
        )
        return 0
    table = [
        (
            str(doc.version),
            doc.status.value,
            _render.minute(doc.created_at),
            _render.minute(doc.updated_at),
            str(len(doc.sections)),
            doc.status_reason or "",
        )
        for doc in docs
    ]
    headers = ("VERSION", "STATUS", "CREATED (UTC)", "UPDATED (UTC)", "SECTIONS", "REASON")
    print("\n".join(_render.table(headers, table, right={0, 4})))
    return 0


def _cmd_show(args: argparse.Namespace) -> int:
    store = _store(args)
    if args.version is None:
        doc = store.get_latest(args.brief)
        if doc is None:
            _error(f"brief {args.brief!r} has no versions in {_data_dir(args)}")
            return 1
    else:
        doc = store.get_strategy(args.brief, args.version)
        if doc is None:
            _error(f"version {args.version} of brief {args.brief!r} does not exist")
            return 1
    if args.json:
        # The file as it is, even where a hand edit left it in another layout.
        loaded = store._load(doc.brief_id, doc.version)
        data = doc.to_json_bytes() if loaded is None else loaded[1]
        sys.stdout.write(data.decode())
    else:
        print(_render_document(doc))
    return 0


def _cmd_put(args: argparse.Namespace) -> int:
    store = _store(args)
    name, data = _read_input(args.file)
    data = data.removeprefix(b"\xef\xbb\xbf")  # a BOM is no data
    try:
        doc = StrategyDocument.from_json_bytes(data)
    except ValidationError as exc:
        _error(f"{name}: {describe_invalid(data, exc, stored=False)}")
        return 1
    where = f"version {doc.version} of {doc.brief_id}"
    if args.create:
        store.create(doc)
        print(f"created {where} ({doc.status.value})")
        return 0
    before = store.get_strategy(doc.brief_id, doc.version)
    store.save(doc)
    if before is None:
        print(f"created {where} ({doc.status.value})")
    elif before == doc:
        print(f"{where} is unchanged: the file already holds this document")
    else:
        print(f"replaced draft {where}")
    return 0


def _cmd_new(args: argparse.Namespace) -> int:
    store = _store(args)
    check_brief_id(args.brief)
    name, data = _read_input(args.file)
    shape = '{"sections": [...], "metadata": {...}}'
    if not data.strip():
        _error(f"{name}: is empty; expected a JSON object like {shape}")
        return 1
    try:
        given = json.loads(data)
    except UnicodeDecodeError:
        _error(f"{name}: not UTF-8 text")
        return 1
    except json.JSONDecodeError as exc:
        _error(f"{name}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
        return 1
    except ValueError:
        # The only other ValueError of json.loads: an integer longer than
        # Python converts (its own message suggests a Python setting).
        _error(f"{name}: not valid JSON: a number has too many digits to read")
        return 1
    except RecursionError:
        _error(f"{name}: not valid JSON: nested too deeply to read")
        return 1
    if not isinstance(given, dict):
        _error(f"{name}: expected a JSON object like {shape}")
        return 1
    unknown = sorted(set(given) - {"sections", "metadata"})
    if unknown:
        _error(f"{name}: unexpected field {', '.join(map(repr, unknown))}; expected {shape}")
        return 1
    raw_sections = given.get("sections", [])
    metadata = given.get("metadata", {})
    if not isinstance(raw_sections, list) or not isinstance(metadata, dict):
        _error(f"{name}: sections must be a list and metadata an object, as in {shape}")
        return 1
    sections = []
    for number, raw in enumerate(raw_sections, start=1):
        try:
            sections.append(Section.model_validate(raw))
        except ValidationError as exc:
            _error(f"{name}: section {number}: {describe_validation_error(exc)}")
            return 1
    doc = store.create_next(args.brief, sections, metadata)
    print(f"created version {doc.version} of {doc.brief_id} ({doc.status.value})")
    return 0


def _cmd_approve(args: argparse.Namespace) -> int:
    return _change_status(args, Status.APPROVED)


def _cmd_reject(args: argparse.Namespace) -> int:
    return _change_status(args, Status.REJECTED)


def _cmd_withdraw(args: argparse.Namespace) -> int:
    return _change_status(args, Status.WITHDRAWN)


def _change_status(args: argparse.Namespace, target: Status) -> int:
    store = _store(args)
    before = store.get_strategy(args.brief, args.version)
    if target is Status.APPROVED:
        doc = store.approve(args.brief, args.version)
    elif target is Status.REJECTED:
        doc = store.reject(args.brief, args.version, reason=args.reason)
    else:
        doc = store.withdraw(args.brief, args.version, reason=args.reason)
    where = f"version {doc.version} of {doc.brief_id}"
    if before is not None and before.status is target:
        print(f"{where} is already {target.value}; nothing changed")
    else:
        print(f"{target.value} {where}")
    return 0


def _cmd_delete(args: argparse.Namespace) -> int:
    store = _store(args)
    if not store.delete(args.brief, args.version):
        _error(f"version {args.version} of brief {args.brief!r} does not exist")
        return 1
    print(f"deleted draft version {args.version} of {args.brief}")
    return 0


def _cmd_diff(args: argparse.Namespace) -> int:
    store = _store(args)
    docs = []
    for version in (args.old, args.new):
        doc = store.get_strategy(args.brief, version)
        if doc is None:
            _error(f"version {version} of brief {args.brief!r} does not exist")
            return 1
        docs.append(doc)
    print("\n".join(_render_diff(docs[0], docs[1])))
    return 0


def _cmd_check(args: argparse.Namespace) -> int:
    from strategystore.check import DataDirCheck  # noqa: PLC0415 - only this command walks

    root = _data_dir(args)
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


def _cmd_export(args: argparse.Namespace) -> int:
    store = _store(args)
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
            _error(_describe(exc))
            status = 1
            continue
        if not versions and named:
            progress.clear()
            _error(f"brief {brief!r} has no versions in {_data_dir(args)}")
            status = 1
        for version in versions:
            try:
                doc = store.get_strategy(brief, version)
            except StrategyStoreError as exc:
                progress.clear()
                _error(_describe(exc))
                status = 1
                continue
            if doc is None:
                continue  # deleted since it was listed
            sys.stdout.write(doc.model_dump_json() + "\n")
            exported += 1
            progress.update(exported)
    progress.finish(f"exported {_render.count(exported, 'document')}")
    return status


def _cmd_import(args: argparse.Namespace) -> int:
    store = _store(args)
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
                    _error(f"{name}:{number}: {describe_invalid(line, exc, stored=False)}")
                    invalid += 1
                    continue
                line_of.setdefault(doc.key, deque()).append(number)
                yield doc

        def on_result(
            doc: StrategyDocument, outcome: ImportOutcome, error: StrategyStoreError | None
        ) -> None:
            number = _next_of(line_of, doc.key, 0)
            if outcome == "refused" and error is not None:
                progress.clear()
                _error(f"{name}:{number}: {_refusal(error)}")
            progress.update(number)

        summary = store.import_documents(documents(), upsert=args.upsert, on_result=on_result)
    progress.clear()
    refused = summary.refused + invalid
    _error(f"{summary.written} written, {summary.skipped} skipped, {refused} refused", prefix="")
    return 1 if refused else 0


def _cmd_import_sql(args: argparse.Namespace) -> int:
    import sqlite3  # noqa: PLC0415 - only this command reads SQL

    from strategystore.sql import SqlSourceError, UnmappableRowError, read_documents  # noqa: PLC0415

    store = _store(args)
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
                _error(f"{database}: row id {row_id}: cannot map: {result.reason}")
                unmappable += 1
                progress.update(rows)
                continue
            row_of.setdefault(result.key, deque()).append(row_id)
            yield result

    def on_result(
        doc: StrategyDocument, outcome: ImportOutcome, error: StrategyStoreError | None
    ) -> None:
        row_id = _next_of(row_of, doc.key, "?")
        if outcome == "refused" and error is not None:
            progress.clear()
            _error(f"{database}: row id {row_id}: {_refusal(error)}")
        progress.update(rows)

    try:
        summary = store.import_documents(documents(), upsert=args.upsert, on_result=on_result)
    except SqlSourceError as exc:
        progress.clear()
        _error(str(exc))
        return 1
    except sqlite3.Error as exc:
        progress.clear()
        _error(f"{database}: {exc}")
        return 1
    progress.clear()
    refused = summary.refused + unmappable
    _error(f"{summary.written} written, {summary.skipped} skipped, {refused} refused", prefix="")
    return 1 if refused else 0


def _cmd_schema(args: argparse.Namespace) -> int:
    generated = StrategyDocument.model_json_schema()
    schema = {
        "$schema": _SCHEMA_DIALECT,
        "title": "strategystore document",
        **{k: v for k, v in generated.items() if k != "title"},
        # The defaults serve callers building documents; a stored file states
        # every field (DESIGN §6).
        "required": list(StrategyDocument.model_fields),
    }
    _print_json(schema)
    return 0


def _cmd_bench(args: argparse.Namespace) -> int:
    try:
        bench = importlib.import_module("strategystore.bench")
    except ModuleNotFoundError as exc:
        if exc.name == "strategystore.bench":
            _error("the bench command is not available in this installation")
        else:
            _error(f"bench needs the {exc.name} package: pip install 'strategystore[bench]'")
        return 1
    parser = argparse.ArgumentParser(
        prog=f"{PROG} bench",
        description="Measure this store on this disk against the raw-file limit and SQLite.",
    )
    bench.configure_parser(parser)
    try:
        bench_args = parser.parse_args(args.extra)
    except SystemExit as exc:
        return _exit_status(exc)
    status: int = bench.run(bench_args, _data_dir(args))
    return status


# -- rendering ----------------------------------------------------------------


def _render_document(doc: StrategyDocument) -> str:
    lines = [
        f"# {doc.brief_id}, version {doc.version} ({doc.status.value})",
        "",
        f"created   {_render.second(doc.created_at)}",
        f"updated   {_render.second(doc.updated_at)}",
    ]
    if doc.status_reason:
        lines.append(f"reason    {doc.status_reason}")
    for index, (key, value) in enumerate(doc.metadata.items()):
        label = "metadata" if index == 0 else ""
        lines.append(f"{label:<10}{key}: {_json_text(value)}")
    if not doc.sections:
        lines += ["", "(no sections)"]
    for section in doc.sections:
        title = section.title or "(untitled)"
        lines += ["", f"## {title}  [{section.key}]", ""]
        lines.append(section.body.rstrip("\n") if section.body.strip() else "(empty)")
    return "\n".join(lines)


def _render_diff(old: StrategyDocument, new: StrategyDocument) -> list[str]:
    def header(mark: str, doc: StrategyDocument) -> str:
        return (
            f"{mark} {doc.brief_id} version {doc.version} "
            f"({doc.status.value}, updated {_render.minute(doc.updated_at)} UTC)"
        )

    lines = [header("---", old), header("+++", new)]
    changed = False

    if old.status is not new.status or old.status_reason != new.status_reason:
        changed = True
        lines.append("")
        if old.status is not new.status:
            lines.append(f"status: {old.status.value} -> {new.status.value}")
        if old.status_reason != new.status_reason:
            lines.append(
                f"reason: {_json_text(old.status_reason)} -> {_json_text(new.status_reason)}"
            )

    metadata = []
    for key in sorted(old.metadata.keys() | new.metadata.keys()):
        if key not in new.metadata:
            metadata.append(f"  - {key}: {_json_text(old.metadata[key])}")
        elif key not in old.metadata:
            metadata.append(f"  + {key}: {_json_text(new.metadata[key])}")
        elif _json_text(old.metadata[key]) != _json_text(new.metadata[key]):
            # Compared as JSON text: 1, 1.0 and true are different values.
            before, after = _json_text(old.metadata[key]), _json_text(new.metadata[key])
            metadata.append(f"  ~ {key}: {before} -> {after}")
    if metadata:
        changed = True
        lines += ["", "metadata:", *metadata]

    sections = []
    old_by_key = {s.key: s for s in old.sections}
    new_by_key = {s.key: s for s in new.sections}
    for section in new.sections:
        before_section = old_by_key.get(section.key)
        if before_section is None:
            sections.append(f'  + {section.key} "{section.title}" (added)')
            sections += _body_diff("", section.body)
        elif before_section != section:
            sections.append(f'  ~ {section.key} "{section.title}" (changed)')
            if before_section.title != section.title:
                sections.append(f'      title: "{before_section.title}" -> "{section.title}"')
            sections += _body_diff(before_section.body, section.body)
    for section in old.sections:
        if section.key not in new_by_key:
            sections.append(f'  - {section.key} "{section.title}" (removed)')
            sections += _body_diff(section.body, "")
    old_order = [s.key for s in old.sections if s.key in new_by_key]
    new_order = [s.key for s in new.sections if s.key in old_by_key]
    if old_order != new_order:
        sections.append(f"  order: {', '.join(old_order)} -> {', '.join(new_order)}")
    if sections:
        changed = True
        lines += ["", "sections:", *sections]

    if not changed:
        lines += ["", "no differences in status, metadata or sections"]
    return lines


def _next_of(queues: dict[tuple[str, int], deque[_T]], key: tuple[str, int], default: _T) -> _T:
    """The oldest value queued under ``key`` (removed), or ``default``."""
    queue = queues.get(key)
    if not queue:
        return default
    value = queue.popleft()
    if not queue:
        del queues[key]
    return value


def _body_diff(before: str, after: str) -> list[str]:
    if before == after:
        return []
    if before.splitlines() == after.splitlines():
        return ["      (only line endings or the final newline differ)"]
    diff = difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=2)
    # The first two lines name the files; the section line above already does.
    return [f"      {line}" for line in list(diff)[2:]]


def _json_text(value: JsonValue) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _print_json(value: object) -> None:
    print(json.dumps(value, ensure_ascii=False, indent=2))


# -- input, errors, progress --------------------------------------------------


def _data_dir(args: argparse.Namespace) -> Path:
    return Path(args.dir or os.environ.get("STRATEGYSTORE_DIR") or DEFAULT_DATA_DIR)


def _store(args: argparse.Namespace) -> FileStore:
    return FileStore(_data_dir(args), create=False, lock_timeout=args.lock_timeout)


def _read_input(source: str) -> tuple[str, bytes]:
    if source == "-":
        return "<stdin>", sys.stdin.buffer.read()
    return source, Path(source).read_bytes()


@contextmanager
def _open_binary(source: str) -> Iterator[tuple[str, IO[bytes]]]:
    if source == "-":
        yield "<stdin>", sys.stdin.buffer
        return
    with open(source, "rb") as stream:
        yield source, stream


def _describe(exc: BaseException) -> str:
    """One line naming what is wrong, for stderr."""
    if isinstance(exc, ValidationError):
        message = describe_validation_error(exc)
    elif isinstance(exc, LockTimeoutError):
        # The error's own hint names the Python argument; say what to type instead.
        message = (
            f"could not lock {exc.lock_path} within {exc.timeout:g} s: another writer holds it; "
            "retry, or wait longer with --lock-timeout SECONDS"
        )
    elif isinstance(exc, DuplicateVersionError):
        message = (
            f"version {exc.version} of brief {exc.brief_id!r} already exists "
            f"(status {exc.existing.status.value})"
        )
    elif isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        message = f"{exc.filename}: {exc.strerror}"
    else:
        message = str(exc) or type(exc).__name__
    return " ".join(message.split("\n"))


def _refusal(error: StrategyStoreError) -> str:
    """Why an import refused a document, with the option that would change it."""
    if isinstance(error, DuplicateVersionError):
        key = f"version {error.version} of brief {error.brief_id!r}"
        if error.existing.status is Status.DRAFT:
            return f"refused: {key} exists with other content; --upsert replaces a draft"
        return (
            f"refused: {key} exists with other content and is "
            f"{error.existing.status.value}; only drafts can change"
        )
    return f"refused: {_describe(error)}"


def _error(message: str, *, prefix: str = f"{PROG}: ") -> None:
    # With standard error closed there is nowhere to say it; print() would
    # fall back to standard output.
    if sys.stderr is None:
        return
    print(f"{prefix}{' '.join(message.splitlines())}", file=sys.stderr)


def _exit_status(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    return exc.code if isinstance(exc.code, int) else 2


def _silence_stdout() -> None:
    # The reader went away (`strategystore export | head`); Python would
    # otherwise complain again when it flushes stdout at exit.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
