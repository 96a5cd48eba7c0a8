"""The commands that read, write or compare single documents.

Each ``cmd_*`` takes the parsed arguments and returns the exit status; the
front end (``cli``) parses, dispatches and turns errors into messages.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from strategystore import _render
from strategystore._arguments import check_brief_id
from strategystore._console import PROG, data_dir, describe, error, open_store, print_json
from strategystore._layout import MARKER_NAME, describe_invalid
from strategystore.diff import diff
from strategystore.errors import StrategyStoreError
from strategystore.models import Section, Status, StrategyDocument, describe_validation_error

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


def cmd_init(args: argparse.Namespace) -> int:
    """``init``: make a data directory, or say it is one already."""
    path = data_dir(args)
    existed = (path / MARKER_NAME).is_file()
    open_store(args, create=True)
    if existed:
        print(f"{path} is already a data directory")
    else:
        print(f"initialised data directory {path}")
        print(f"next: {PROG} new BRIEF FILE, or {PROG} import FILE")
    return 0


def cmd_briefs(args: argparse.Namespace) -> int:
    """``briefs``: each brief with its version count and latest status."""
    store = open_store(args)
    rows: list[dict[str, Any]] = []
    status = 0
    for brief in store.list_briefs():
        numbers: list[int] = []
        try:
            numbers = store.list_version_numbers(brief)
            latest = store.get_latest(brief)
            approved = store.get_latest(brief, status=Status.APPROVED)
        except StrategyStoreError as exc:
            error(describe(exc))
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
        print_json([{k: v for k, v in row.items() if not k.startswith("_")} for row in rows])
    elif not rows:
        error(f"no briefs yet in {data_dir(args)}; add one with `{PROG} new BRIEF FILE`")
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


def cmd_versions(args: argparse.Namespace) -> int:
    """``versions BRIEF``: the versions of a brief, newest first."""
    store = open_store(args)
    docs = store.list_versions_by_brief(args.brief)
    if not docs:
        error(f"brief {args.brief!r} has no versions in {data_dir(args)}")
        return 1
    if args.json:
        print_json(
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


def cmd_show(args: argparse.Namespace) -> int:
    """``show BRIEF [VERSION]``: a document, readable or (``--json``) as stored."""
    store = open_store(args)
    if args.version is None:
        doc = store.get_latest(args.brief)
        if doc is None:
            error(f"brief {args.brief!r} has no versions in {data_dir(args)}")
            return 1
    else:
        doc = store.get_strategy(args.brief, args.version)
        if doc is None:
            error(f"version {args.version} of brief {args.brief!r} does not exist")
            return 1
    if args.json:
        # The file as it is, even where a hand edit left it in another layout.
        stored = store.get_stored_bytes(doc.brief_id, doc.version)
        data = doc.to_json_bytes() if stored is None else stored
        sys.stdout.write(data.decode())
    else:
        print(_render.document(doc))
    return 0


def cmd_put(args: argparse.Namespace) -> int:
    """``put FILE``: save a whole document given as JSON."""
    store = open_store(args)
    name, data = _read_input(args.file)
    data = data.removeprefix(b"\xef\xbb\xbf")  # a BOM is no data
    try:
        doc = StrategyDocument.from_json_bytes(data)
    except ValidationError as exc:
        error(f"{name}: {describe_invalid(data, exc, stored=False)}")
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


def cmd_new(args: argparse.Namespace) -> int:
    """``new BRIEF FILE``: the next version of a brief, from its sections and metadata."""
    store = open_store(args)
    check_brief_id(args.brief)
    name, data = _read_input(args.file)
    shape = '{"sections": [...], "metadata": {...}}'
    if not data.strip():
        error(f"{name}: is empty; expected a JSON object like {shape}")
        return 1
    try:
        given = json.loads(data)
    except UnicodeDecodeError:
        error(f"{name}: not UTF-8 text")
        return 1
    except json.JSONDecodeError as exc:
        error(f"{name}: not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}")
        return 1
    except ValueError:
        # The only other ValueError of json.loads: an integer longer than
        # Python converts (its own message suggests a Python setting).
        error(f"{name}: not valid JSON: a number has too many digits to read")
        return 1
    except RecursionError:
        error(f"{name}: not valid JSON: nested too deeply to read")
        return 1
    if not isinstance(given, dict):
        error(f"{name}: expected a JSON object like {shape}")
        return 1
    unknown = sorted(set(given) - {"sections", "metadata"})
    if unknown:
        error(f"{name}: unexpected field {', '.join(map(repr, unknown))}; expected {shape}")
        return 1
    raw_sections = given.get("sections", [])
    metadata = given.get("metadata", {})
    if not isinstance(raw_sections, list) or not isinstance(metadata, dict):
        error(f"{name}: sections must be a list and metadata an object, as in {shape}")
        return 1
    sections = []
    for number, raw in enumerate(raw_sections, start=1):
        try:
            sections.append(Section.model_validate(raw))
        except ValidationError as exc:
            error(f"{name}: section {number}: {describe_validation_error(exc)}")
            return 1
    doc = store.create_next(args.brief, sections, metadata)
    print(f"created version {doc.version} of {doc.brief_id} ({doc.status.value})")
    return 0


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
    """``diff BRIEF V1 V2``: what changed between two versions, section by section."""
    store = open_store(args)
    docs = []
    for version in (args.old, args.new):
        doc = store.get_strategy(args.brief, version)
        if doc is None:
            error(f"version {version} of brief {args.brief!r} does not exist")
            return 1
        docs.append(doc)
    print(diff(docs[0], docs[1]))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    """``schema``: the JSON Schema of a document file."""
    generated = StrategyDocument.model_json_schema()
    schema = {
        "$schema": _SCHEMA_DIALECT,
        "title": "strategystore document",
        **{k: v for k, v in generated.items() if k != "title"},
        # The defaults serve callers building documents; a stored file states
        # every field (DESIGN §6).
        "required": list(StrategyDocument.model_fields),
    }
    print_json(schema)
    return 0


def _read_input(source: str) -> tuple[str, bytes]:
    """The name to report and the bytes of a FILE argument, ``-`` being standard input."""
    if source == "-":
        return "<stdin>", sys.stdin.buffer.read()
    return source, Path(source).read_bytes()
