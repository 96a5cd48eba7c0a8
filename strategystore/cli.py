"""The ``strategystore`` command line: a thin client over the public API.

``main(argv)`` parses the arguments, calls ``FileStore``, prints, and returns
the exit status: 0 success, 1 a problem found, a thing not found or refused,
2 bad usage. Errors are one line on stderr, never a traceback, also when a
standard stream is closed: a command that needs a closed stream says so and
does nothing. Only ``init`` creates a data directory; every other command
needs an existing one.

This module is the front end: the parser, the dispatch and the translation of
errors into messages and exit statuses. The commands live in ``_commands``
(single documents) and ``_bulk`` (many at once).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import sys
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NoReturn

from pydantic import ValidationError

import strategystore
from strategystore import (
    _bulk,
    _check_cli,
    _commands,
    _copy,
    _edit,
    _migrate,
    _resolve_cli,
    _serve_cli,
)
from strategystore._backends import (
    DATA_DIR_VARIABLE,
    DEFAULT_DATA_DIR,
    DSN_VARIABLE,
    MODE_VARIABLE,
)
from strategystore._console import PROG, close_stores, describe, error, exit_status
from strategystore._locks import DEFAULT_LOCK_TIMEOUT, check_timeout
from strategystore.errors import StrategyStoreError
from strategystore.models import MAX_VERSION, check_version

if TYPE_CHECKING:
    from _typeshed import SupportsWrite

__all__ = ["main"]

Handler = Callable[[argparse.Namespace], int]


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
        return exit_status(exc)
    except _ClosedStreamError as exc:
        error(str(exc))
        return 1
    args.extra = extra
    # Checked before the command runs, so a command that could not report
    # what it did (or read what it was given) does nothing at all.
    closed = _closed_stream(args)
    if closed is not None:
        error(str(_ClosedStreamError(closed)))
        return 1
    handler: Handler = args.handler
    try:
        return _run(handler, args)
    finally:
        close_stores()


def _run(handler: Handler, args: argparse.Namespace) -> int:
    """Run the command, turning what it raised into a message and an exit status."""
    try:
        return handler(args)
    except KeyboardInterrupt:
        error("interrupted")
        return 130
    except BrokenPipeError:
        _silence_stdout()
        return 1
    except (StrategyStoreError, ValidationError, OSError) as exc:
        error(describe(exc))
        return 1
    except UnicodeEncodeError as exc:
        error(f"cannot print {exc.object[exc.start : exc.end]!r} here: set PYTHONIOENCODING=utf-8")
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
        # Looked up only here: finding the installed version costs more than the CLI's imports.
        print(f"{PROG} {strategystore.__version__}")
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
        epilog=f"DIR defaults to ${DATA_DIR_VARIABLE}, then ./{DEFAULT_DATA_DIR}; with "
        f"${MODE_VARIABLE}=postgres the store is ${DSN_VARIABLE}. "
        f"Run `{PROG} COMMAND --help` for a command's options.",
    )
    parser.add_argument(
        "--dir",
        metavar="DIR",
        help=f"the data directory (default: ${DATA_DIR_VARIABLE}, then ./{DEFAULT_DATA_DIR})",
    )
    parser.add_argument(
        "--store",
        metavar="DIR|URL",
        help="the store: a data directory, or a PostgreSQL URL "
        "(postgresql://USER@HOST/DATABASE?table=NAME)",
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
        "--store", metavar="DIR|URL", default=argparse.SUPPRESS, help=argparse.SUPPRESS
    )
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
    command("init", _commands.cmd_init, "make a data directory")

    p = command(
        "briefs",
        _commands.cmd_briefs,
        "list briefs with their version count and latest status",
        epilog="A brief with a version that cannot be read is shown as far as it can be, "
        "the damaged versions named; the command then exits 1.",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    p = command(
        "versions",
        _commands.cmd_versions,
        "list the versions of a brief, newest first",
        epilog="A version that cannot be read is listed as damaged, with the problem on "
        "standard error; the command then exits 1.",
    )
    p.add_argument("brief", metavar="BRIEF")
    p.add_argument("--json", action="store_true", help="print JSON instead of a table")

    p = command("show", _commands.cmd_show, "show a document (the latest version by default)")
    p.add_argument("brief", metavar="BRIEF")
    p.add_argument("version", metavar="VERSION", nargs="?", type=_version_arg)
    p.add_argument("--json", action="store_true", help="print the document's file as it is")
    p.add_argument(
        "--approved",
        action="store_true",
        help="show the latest approved version (instead of VERSION)",
    )


def _writing_commands(command: _CommandFactory) -> None:
    p = command(
        "put",
        _commands.cmd_put,
        "save a document from JSON (replaces a differing draft)",
        epilog="The JSON is a whole document, as `show --json` prints it.",
    )
    p.add_argument("file", metavar="FILE", help="a JSON file, or - for standard input")
    p.add_argument(
        "--create", action="store_true", help="refuse to touch a version that already exists"
    )

    p = command(
        "new",
        _commands.cmd_new,
        "add the next version of a brief",
        epilog='FILE holds {"sections": [{"key": …, "title": …, "body": …}, …], '
        '"metadata": {…}}, both optional, or a whole document as `show --json` prints it '
        "(its sections and metadata are taken, its other fields ignored). With --from "
        "VERSION instead of FILE, the sections and metadata of that version are taken.",
    )
    p.add_argument("brief", metavar="BRIEF")
    p.add_argument("file", metavar="FILE", nargs="?", help="a JSON file, or - for standard input")
    p.add_argument(
        "--from",
        dest="from_version",
        metavar="VERSION",
        type=_version_arg,
        help="start from the sections and metadata of this version of the brief",
    )

    p = command(
        "edit",
        _edit.cmd_edit,
        "edit a draft in $VISUAL or $EDITOR (the latest version by default)",
        epilog="The editor works on a temporary copy. What it saves is checked (on a "
        "terminal you may edit again) and written only if nobody changed the draft "
        "meanwhile; when nothing is saved after an edit, the copy is kept and named. "
        "A version that is not a draft is refused: start a new draft with "
        "`new BRIEF --from VERSION`.",
    )
    p.add_argument("brief", metavar="BRIEF")
    p.add_argument(
        "version",
        metavar="VERSION",
        nargs="?",
        type=_version_arg,
        help="the draft to edit (default: the latest version)",
    )

    p = command("approve", _commands.cmd_approve, "approve a draft")
    _add_key(p)
    p = command("reject", _commands.cmd_reject, "reject a draft")
    _add_key(p)
    p.add_argument("--reason", metavar="TEXT", help="why, kept in the document")
    p = command(
        "withdraw", _commands.cmd_withdraw, "withdraw an approved version (the soft delete)"
    )
    _add_key(p)
    p.add_argument("--reason", metavar="TEXT", help="why, kept in the document")

    p = command("delete", _commands.cmd_delete, "delete a draft")
    _add_key(p)

    p = command(
        "diff",
        _commands.cmd_diff,
        "show what changed between two versions, section by section",
        epilog="Exits 1 when the status, reason, metadata or sections differ and 0 when "
        "they do not (versions differing only in number and timestamps), like diff(1).",
    )
    p.add_argument("brief", metavar="BRIEF")
    p.add_argument("old", metavar="V1", type=_version_arg)
    p.add_argument("new", metavar="V2", type=_version_arg)


def _bulk_commands(command: _CommandFactory) -> None:
    p = command(
        "check",
        _check_cli.cmd_check,
        "validate the data directory, or the documents named",
        epilog="Lists each problem with its path (and line); exits 1 if there is any. "
        "Notes (stale temporary files, editor leftovers, unknown files) do not change "
        "the exit status unless --strict. With --against REV, every version that was not "
        "a draft at REV must still be there, sealed as it was.",
    )
    p.add_argument(
        "paths",
        metavar="PATH",
        nargs="*",
        help="check only these files (as pre-commit passes them); paths outside the "
        "data directory are ignored",
    )
    p.add_argument(
        "--against",
        metavar="REV",
        help="also compare every frozen version with the commit REV (e.g. origin/main)",
    )
    p.add_argument("--strict", action="store_true", help="exit 1 on notes too")
    p.add_argument(
        "--repair",
        action="store_true",
        help="remove stale temporary files (never a document)",
    )

    p = command(
        "resolve",
        _resolve_cli.cmd_resolve,
        "settle document conflicts of a merge, rebase or cherry-pick",
        epilog="Renumbers drafts both sides added, merges drafts both sides changed by "
        "section and metadata key, keeps sealed versions as sealed; stages what it "
        "resolves and exits 1 if anything is left.",
    )
    p.add_argument("--dry-run", action="store_true", help="say what would be done; write nothing")

    command(
        "migrate",
        _migrate.cmd_migrate,
        "convert a format-1 data directory to format 2 in place",
        epilog="Seals every version that is not a draft as it stands; safe to run again "
        "after an interruption.",
    )

    p = command(
        "export",
        _bulk.cmd_export,
        "write documents as JSON Lines to standard output",
        epilog="One document per line; briefs sorted, versions ascending within a brief.",
    )
    p.add_argument("briefs", metavar="BRIEF", nargs="*", help="only these briefs (default: all)")

    p = command(
        "import",
        _bulk.cmd_import,
        "read documents from JSON Lines",
        prints=False,
        epilog="Identical documents are skipped; differing ones are refused unless --upsert.",
    )
    p.add_argument("file", metavar="FILE", help="a JSON Lines file, or - for standard input")
    p.add_argument("--upsert", action="store_true", help="replace differing drafts")

    p = command(
        "import-sql",
        _bulk.cmd_import_sql,
        "copy the rows of a SQLite strategy_document table",
        prints=False,
        epilog="Naive timestamps are read as UTC. Identical documents are skipped; "
        "differing ones are refused unless --upsert, so a re-run is safe.",
    )
    p.add_argument("database", metavar="DATABASE", help="the SQLite file")
    p.add_argument("--upsert", action="store_true", help="replace differing drafts")

    p = command(
        "copy",
        _copy.cmd_copy,
        "copy every document from one store to another (directory or PostgreSQL)",
        prints=False,
        epilog="SOURCE and TARGET are each a data directory or a PostgreSQL URL; TARGET is "
        "created when missing. Identical documents are skipped and differing ones refused "
        "unless --upsert, so an interrupted copy is simply run again.",
    )
    p.add_argument("source", metavar="SOURCE", help="the store to read")
    p.add_argument("target", metavar="TARGET", help="the store to write")
    p.add_argument("briefs", metavar="BRIEF", nargs="*", help="only these briefs (default: all)")
    p.add_argument("--upsert", action="store_true", help="replace differing drafts")

    command("schema", _commands.cmd_schema, "print the JSON Schema of a document file, for editors")

    p = command(
        "serve",
        _serve_cli.cmd_serve,
        "serve the review page: briefs, timelines, versions, diffs and check in a browser",
        epilog="Read-only unless --allow-write. Needs the web extra: "
        "pip install 'strategystore[web]'.",
    )
    p.add_argument(
        "--port",
        type=_port_arg,
        default=_serve_cli.DEFAULT_PORT,
        help=f"the port (default: {_serve_cli.DEFAULT_PORT}; 0 picks a free one)",
    )
    p.add_argument(
        "--host",
        default=_serve_cli.DEFAULT_HOST,
        help=f"the address to bind (default: {_serve_cli.DEFAULT_HOST}, this machine only)",
    )
    p.add_argument(
        "--allow-write",
        action="store_true",
        help="offer approve, reject, withdraw and new draft on the page",
    )

    # The bench module builds its own parser from the arguments left over, so
    # importing this module never imports it.
    command(
        "bench",
        _bulk.cmd_bench,
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


def _port_arg(text: str) -> int:
    """A ``--port``: plain ASCII decimal from 0 to 65535."""
    if re.fullmatch(r"[0-9]{1,5}", text) and int(text) <= 65535:
        return int(text)
    raise argparse.ArgumentTypeError(f"{text!r} is not a port number (0 to 65535)")


def _seconds_arg(text: str) -> float:
    """A lock timeout: plain ASCII decimal, finite, and in the range the lock accepts."""
    message = f"{text!r} is not a number of seconds (0 or more)"
    if not _SECONDS_TEXT.fullmatch(text) or not math.isfinite(seconds := float(text)):
        raise argparse.ArgumentTypeError(message)
    try:
        return check_timeout(seconds)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(message) from exc


def _silence_stdout() -> None:
    # The reader went away (`strategystore export | head`); Python would
    # otherwise complain again when it flushes stdout at exit.
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
