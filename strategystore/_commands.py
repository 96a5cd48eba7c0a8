"""The commands that read, write or compare single documents.

Each ``cmd_*`` takes the parsed arguments and returns the exit status; the
front end (``cli``) parses, dispatches and turns errors into messages.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from strategystore import _render
from strategystore._arguments import check_brief_id
from strategystore._console import (
    PROG,
    data_dir,
    describe,
    error,
    location,
    open_store,
    place,
    print_json,
)
from strategystore._diff import diff
from strategystore._layout import MARKER_NAME, describe_invalid, repeated_key
from strategystore._listing import BriefSummary, Lister, VersionRow
from strategystore.errors import (
    StatusChangeError,
    StrategyStoreError,
)
from strategystore.files import FileStore
from strategystore.models import Section, Status, StrategyDocument, describe_validation_error
from strategystore.store import BaseStore

__all__ = [
    "cmd_approve",
    "cmd_briefs",
    "cmd_delete",
    "cmd_diff",
    "cmd_init",
    "cmd_new",
    "cmd_put",
    "cmd_reject",
    "cmd_schema",
    "cmd_show",
    "cmd_versions",
    "cmd_withdraw",
]

_SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"

#: What ``new`` reads from FILE.
_NEW_SHAPE = '{"sections": [...], "metadata": {...}}'


def cmd_init(args: argparse.Namespace) -> int:
    """``init``: make a data directory (or table), or say it is one already.

    On an existing data directory it adds the git lines it lacks.
    """
    if isinstance(location(args), str):
        with open_store(args, create=True) as table:
            print(f"{table!r} is ready")
        print(f"next: {PROG} new BRIEF FILE, or {PROG} copy DIR URL")
        return 0
    path = data_dir(args)
    existed = (path / MARKER_NAME).is_file()
    store = FileStore(path, create=True, lock_timeout=args.lock_timeout)
    if existed:
        # A directory made before .gitattributes existed, or a user's own
        # file: add only the lines it lacks.
        for name in store.write_git_files():
            print(f"added the lines strategystore needs to {path / name}")
        print(f"{path} is already a data directory")
    else:
        print(f"initialised data directory {path}")
        print(f"next: {PROG} new BRIEF FILE, or {PROG} import FILE")
    return 0


def cmd_briefs(args: argparse.Namespace) -> int:
    """``briefs``: each brief with its version count, latest status and latest approved version.

    Every version is looked at (through the listing index where a file is
    unchanged); one that cannot be read is named on standard error and
    marked in its brief's row (a ``DAMAGED`` column, ``damaged`` in JSON), the
    rest of the brief is shown, and the exit status is 1.
    """
    store = open_store(args)
    with Lister(store) as lister:
        rows = [_brief_row(lister, brief) for brief in lister.briefs()]
    marked = [row for row in rows if "damaged" in row or "error" in row]
    if args.json:
        for row in rows:
            updated = row["_updated"]
            row["updated_at"] = None if updated is None else _render.iso(updated)
        print_json([{k: v for k, v in row.items() if not k.startswith("_")} for row in rows])
    elif not rows:
        error(f"no briefs yet in {place(args)}; add one with `{PROG} new BRIEF FILE`")
    else:
        table: list[tuple[str, ...]] = [
            (
                row["brief_id"],
                _render.text(row["versions"]) if "error" not in row else "?",
                _render.text(row["latest_version"]),
                "unreadable" if "error" in row else _render.text(row["latest_status"]),
                _render.text(row["latest_approved_version"]),
                "" if row["_updated"] is None else _render.minute(row["_updated"]),
                _damaged_cell(row),
            )
            for row in rows
        ]
        headers = ("BRIEF", "VERSIONS", "LATEST", "STATUS", "APPROVED", "UPDATED (UTC)", "DAMAGED")
        # The DAMAGED column appears only when there is something to put in it.
        width = len(headers) if marked else len(headers) - 1
        lines = _render.table(headers[:width], [line[:width] for line in table], right={1, 2, 4})
        print("\n".join(lines))
    return 1 if marked else 0


def _brief_row(lister: Lister, brief: str) -> dict[str, Any]:
    """What ``briefs`` shows of one brief, its problems said on standard error as they are met.

    ``updated_at`` is filled in from ``_updated`` only for JSON, which shows it.
    """
    summary = lister.proven_summary(brief)
    if summary is not None:
        return _summary_row(brief, summary)
    row: dict[str, Any] = {
        "brief_id": brief,
        "versions": None,
        "latest_version": None,
        "latest_status": None,
        "latest_approved_version": None,
        "updated_at": None,
        "_updated": None,
    }
    try:
        numbers = lister.numbers(brief)
    except (StrategyStoreError, OSError) as exc:
        row["error"] = describe(exc)
        error(row["error"])
        return row
    summary = lister.summary(brief, numbers)
    if summary is not None:
        return _summary_row(brief, summary)
    row["versions"] = len(numbers)
    damaged: list[dict[str, Any]] = []
    for entry in _read_each(lister, brief, numbers):
        if entry.problem is not None:
            damaged.append({"version": entry.version, "error": entry.problem})
        if row["latest_version"] is None:
            row["latest_version"] = entry.version
            if entry.status is None:
                row["latest_status"] = _problem_status(entry)
            else:
                row["latest_status"] = entry.status.value
                row["_updated"] = entry.updated
        if entry.status is Status.APPROVED and row["latest_approved_version"] is None:
            row["latest_approved_version"] = entry.version
    if damaged:
        row["damaged"] = damaged
    return row


def _summary_row(brief: str, summary: BriefSummary) -> dict[str, Any]:
    """The ``briefs`` row of a brief the index proved whole."""
    latest = summary.latest
    assert latest.status is not None
    return {
        "brief_id": brief,
        "versions": summary.versions,
        "latest_version": latest.version,
        "latest_status": latest.status.value,
        "latest_approved_version": summary.approved,
        "updated_at": None,
        "_updated": latest.updated,
    }


def _damaged_cell(row: dict[str, Any]) -> str:
    """The ``DAMAGED`` cell of a ``briefs`` row: the versions that could not be read."""
    if "error" in row:
        return "?"
    return ", ".join(str(entry["version"]) for entry in row.get("damaged", ()))


def cmd_versions(args: argparse.Namespace) -> int:
    """``versions BRIEF``: the versions of a brief, newest first.

    A version that cannot be read is listed as ``damaged`` (``unreadable`` when
    the file system refused to read it), its problem said on standard error,
    and the exit status is 1.
    """
    store = open_store(args)
    with Lister(store) as lister:
        entries = list(_read_each(lister, args.brief, lister.numbers(args.brief)))
    if not entries:
        error(f"brief {args.brief!r} has no versions in {place(args)}")
        return 1
    status = 1 if any(entry.problem is not None for entry in entries) else 0
    if args.json:
        print_json(
            [
                {"version": entry.version, "error": entry.problem}
                if entry.problem is not None
                else {
                    "version": entry.version,
                    "status": _status_of(entry),
                    "status_reason": entry.status_reason,
                    "created_at": _render.iso(entry.created),
                    "updated_at": _render.iso(entry.updated),
                    "section_count": entry.section_count,
                }
                for entry in entries
            ]
        )
        return status
    table = [
        (str(entry.version), _problem_status(entry), "", "", "", "")
        if entry.problem is not None
        else (
            str(entry.version),
            _status_of(entry),
            _render.minute(entry.created),
            _render.minute(entry.updated),
            str(entry.section_count),
            entry.status_reason or "",
        )
        for entry in entries
    ]
    headers = ("VERSION", "STATUS", "CREATED (UTC)", "UPDATED (UTC)", "SECTIONS", "REASON")
    print("\n".join(_render.table(headers, table, right={0, 4})))
    return status


def _read_each(lister: Lister, brief: str, versions: list[int]) -> Iterator[VersionRow]:
    """A row for each of ``versions`` that still exists, or for the problem reading it.

    Each problem is said on standard error as it is met.
    """
    for entry in lister.rows(brief, versions):
        if entry.problem is not None:
            error(entry.problem)
        yield entry


def _status_of(entry: VersionRow) -> str:
    assert entry.status is not None
    return entry.status.value


def _problem_status(entry: VersionRow) -> str:
    """The status shown for a version that could not be read."""
    return "damaged" if entry.damaged else "unreadable"


def cmd_show(args: argparse.Namespace) -> int:
    """``show BRIEF [VERSION | --approved]``: a document, readable or (``--json``) as stored."""
    if args.approved and args.version is not None:
        return _usage("show", "takes VERSION or --approved, not both")
    store = open_store(args)
    doc = read_named(store, args)
    if doc is None:
        return 1
    if args.json:
        # The file as it is, even where a hand edit left it in another layout.
        stored = store.get_stored_bytes(doc.brief_id, doc.version)
        data = doc.to_json_bytes() if stored is None else stored
        sys.stdout.write(data.decode())
    else:
        print(_render.document(doc))
    return 0


def read_named(store: BaseStore, args: argparse.Namespace) -> StrategyDocument | None:
    """The document ``BRIEF [VERSION]`` (or ``--approved``) names; ``None``, said, when absent."""
    if getattr(args, "approved", False):
        doc = store.get_latest(args.brief, status=Status.APPROVED)
        missing = f"brief {args.brief!r} has no approved version in {place(args)}"
    elif args.version is None:
        doc = store.get_latest(args.brief)
        missing = f"brief {args.brief!r} has no versions in {place(args)}"
    else:
        doc = store.get_strategy(args.brief, args.version)
        missing = f"version {args.version} of brief {args.brief!r} does not exist"
    if doc is None:
        error(missing)
    return doc


def cmd_put(args: argparse.Namespace) -> int:
    """``put FILE``: save a whole document given as JSON."""
    store = open_store(args)
    name, data = _read_input(args.file)
    data = data.removeprefix(b"\xef\xbb\xbf")  # a BOM is no data
    try:
        doc = StrategyDocument.from_json_bytes(data)
    except ValidationError as exc:
        error(f"{name}: {_unsealed_hint(data) or describe_invalid(data, exc, stored=False)}")
        return 1
    if data != doc.to_json_bytes() and (repeated := repeated_key(data)) is not None:
        error(f"{name}: {repeated.reason}")
        return 1
    where = f"version {doc.version} of {doc.brief_id}"
    try:
        if args.create:
            store.create(doc)
            print(f"created {where} ({doc.status.value})")
            return 0
        before = store.get_strategy(doc.brief_id, doc.version)
        store.save(doc)
    except StatusChangeError as exc:
        error(_status_change(exc))
        return 1
    except ValueError as exc:
        error(describe(exc))
        return 1
    if before is None:
        print(f"created {where} ({doc.status.value})")
    elif before == doc:
        print(f"{where} is unchanged: the file already holds this document")
    else:
        print(f"replaced draft {where}")
    return 0


def _unsealed_hint(data: bytes) -> str | None:
    """What to do with a draft's JSON whose status was changed by hand, if ``data`` is that."""
    try:
        given = json.loads(data)
    except (ValueError, RecursionError):
        return None
    if not isinstance(given, dict) or given.get("content_digest", "") is not None:
        return None
    status = given.get("status")
    if status in (None, Status.DRAFT.value) or status not in set(Status):
        return None
    brief, version = given.get("brief_id", "BRIEF"), given.get("version", "VERSION")
    return (
        f"{'an' if status[0] in 'aeiou' else 'a'} {status} version carries the seal of its "
        'content, and this one says "content_digest": null (a draft\'s JSON with its status '
        f"changed?); to change a draft's status run "
        f"`{PROG} {_VERB.get(status, 'approve')} {brief} {version}`, and "
        "to store a new version with that status leave content_digest out"
    )


_VERB = {"approved": "approve", "rejected": "reject", "withdrawn": "withdraw"}


def _status_change(exc: StatusChangeError) -> str:
    """What ``put`` says of a document that would change a stored draft's status."""
    steps = {
        Status.APPROVED: ["approve"],
        Status.REJECTED: ["reject"],
        Status.WITHDRAWN: ["approve", "withdraw"],
    }.get(exc.status, [])
    commands = ", then ".join(f"`{PROG} {step} {exc.brief_id} {exc.version}`" for step in steps)
    return (
        f"version {exc.version} of {exc.brief_id} is a draft, and put cannot make it "
        f"{exc.status.value}: a status changes only through its own command; put the content "
        f"as a draft, then run {commands or f'`{PROG} --help`'}"
    )


def cmd_new(args: argparse.Namespace) -> int:
    """``new BRIEF [FILE | --from VERSION]``: the next version of a brief.

    Its sections and metadata come from FILE (a JSON object of ``sections``
    and ``metadata``, or a whole document as ``show --json`` prints it, whose
    other fields are ignored) or from an existing version (``--from``).
    """
    if args.file is not None and args.from_version is not None:
        return _usage("new", "takes FILE or --from VERSION, not both")
    if args.file is None and args.from_version is None:
        return _usage("new", "needs FILE (- for standard input) or --from VERSION")
    store = open_store(args)
    check_brief_id(args.brief)
    origin = ""
    if args.from_version is not None:
        source = store.get_strategy(args.brief, args.from_version)
        if source is None:
            error(f"version {args.from_version} of brief {args.brief!r} does not exist")
            return 1
        sections, metadata = list(source.sections), dict(source.metadata)
        origin = f" from version {source.version}"
    else:
        name, data = _read_input(args.file)
        content = _new_content(name, data)
        if isinstance(content, str):
            error(content)
            return 1
        sections, metadata = content
    doc = store.create_next(args.brief, sections, metadata)
    print(f"created version {doc.version} of {doc.brief_id} ({doc.status.value}){origin}")
    return 0


def _new_content(name: str, data: bytes) -> tuple[list[Section], dict[str, Any]] | str:
    """The sections and metadata ``new`` reads from ``data``, or what is wrong with it."""
    if not data.strip():
        return f"{name}: is empty; expected a JSON object like {_NEW_SHAPE}"
    try:
        given = json.loads(data)
    except UnicodeDecodeError:
        return f"{name}: not UTF-8 text"
    except json.JSONDecodeError as exc:
        return f"{name}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
    except ValueError:
        # The only other ValueError of json.loads: an integer longer than
        # Python converts (its own message suggests a Python setting).
        return f"{name}: not valid JSON: a number has too many digits to read"
    except RecursionError:
        return f"{name}: not valid JSON: nested too deeply to read"
    if not isinstance(given, dict):
        return f"{name}: expected a JSON object like {_NEW_SHAPE}"
    if (repeated := repeated_key(data)) is not None:
        return f"{name}: {repeated.reason}"
    if "brief_id" in given and "version" in given:
        # A whole document, as `show --json` prints it: only its content is new.
        given = {key: given[key] for key in ("sections", "metadata") if key in given}
    unknown = sorted(set(given) - {"sections", "metadata"})
    if unknown:
        return (
            f"{name}: unexpected field {', '.join(map(repr, unknown))}; expected {_NEW_SHAPE}, "
            f"or a whole document as `{PROG} show --json` prints it"
        )
    raw_sections = given.get("sections", [])
    metadata = given.get("metadata", {})
    if not isinstance(raw_sections, list) or not isinstance(metadata, dict):
        return f"{name}: sections must be a list and metadata an object, as in {_NEW_SHAPE}"
    sections = []
    for number, raw in enumerate(raw_sections, start=1):
        try:
            sections.append(Section.model_validate(raw))
        except ValidationError as exc:
            return f"{name}: section {number}: {describe_validation_error(exc)}"
    return sections, metadata


def cmd_approve(args: argparse.Namespace) -> int:
    """``approve BRIEF VERSION``."""
    return _change_status(args, Status.APPROVED)


def cmd_reject(args: argparse.Namespace) -> int:
    """``reject BRIEF VERSION [--reason TEXT]``."""
    return _change_status(args, Status.REJECTED)


def cmd_withdraw(args: argparse.Namespace) -> int:
    """``withdraw BRIEF VERSION [--reason TEXT]``."""
    return _change_status(args, Status.WITHDRAWN)


def _change_status(args: argparse.Namespace, target: Status) -> int:
    store = open_store(args)
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
        given = getattr(args, "reason", None)
        if given is not None and given != doc.status_reason:
            kept = "no reason" if doc.status_reason is None else f"the reason {doc.status_reason!r}"
            print(f"the new reason was not recorded: it keeps {kept}")
    else:
        print(f"{target.value} {where}")
    return 0


def cmd_delete(args: argparse.Namespace) -> int:
    """``delete BRIEF VERSION``: delete a draft."""
    store = open_store(args)
    if not store.delete(args.brief, args.version):
        error(f"version {args.version} of brief {args.brief!r} does not exist")
        return 1
    print(f"deleted draft version {args.version} of {args.brief}")
    return 0


def cmd_diff(args: argparse.Namespace) -> int:
    """``diff BRIEF V1 V2``: what changed between two versions, section by section.

    Exits 1 when status, reason, metadata or sections differ and 0 when they
    do not, as ``diff(1)`` does.
    """
    store = open_store(args)
    docs = []
    for version in (args.old, args.new):
        doc = store.get_strategy(args.brief, version)
        if doc is None:
            error(f"version {version} of brief {args.brief!r} does not exist")
            return 1
        docs.append(doc)
    changes = diff(docs[0], docs[1])
    print(changes)
    return 1 if changes.changed else 0


def _usage(command: str, problem: str) -> int:
    """Say in one line that ``command`` was used wrongly; the usage status, 2."""
    error(f"{command} {problem}; see `{PROG} {command} --help`")
    return 2


def cmd_schema(args: argparse.Namespace) -> int:
    """``schema``: the JSON Schema of a document file."""
    # The serialization schema lists content_digest, which every file states.
    generated = StrategyDocument.model_json_schema(mode="serialization")
    seal = generated["properties"]["content_digest"]
    seal.pop("readOnly", None)  # a file states it; only its value is derived
    seal["anyOf"][0]["pattern"] = "^sha256:[0-9a-f]{64}$"
    schema = {
        "$schema": _SCHEMA_DIALECT,
        "title": "strategystore document",
        **{k: v for k, v in generated.items() if k != "title"},
        # The defaults serve callers building documents; a stored file states
        # every field (DESIGN §6).
        "required": list(generated["properties"]),
    }
    print_json(schema)
    return 0


def _read_input(source: str) -> tuple[str, bytes]:
    """The name to report and the bytes of a FILE argument, ``-`` being standard input."""
    if source == "-":
        return "<stdin>", sys.stdin.buffer.read()
    return source, Path(source).read_bytes()
