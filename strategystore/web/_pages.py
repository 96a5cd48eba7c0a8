"""What each page shows, read from the store on every request (the disk is the truth).

Each function returns the plain values a template renders; none of them
builds markup, so every value reaches the page through Jinja2's escaping.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pydantic import JsonValue

from strategystore import _render
from strategystore._console import describe
from strategystore._diff import DocumentDiff, SectionChange, diff
from strategystore._listing import Lister
from strategystore.errors import CorruptDocumentError, StrategyStoreError
from strategystore.files import FileStore
from strategystore.models import Section, Status, StrategyDocument
from strategystore.store import BaseStore
from strategystore.web._history import Commit, last_commits

__all__ = [
    "PAGE_SIZE",
    "BriefRow",
    "Cell",
    "DiffRow",
    "Entry",
    "NotFound",
    "actions_for",
    "brief_rows",
    "check_findings",
    "diff_rows",
    "document",
    "location_of",
    "metadata_rows",
    "neighbours",
    "timeline",
]

#: Briefs on one page of the front page.
PAGE_SIZE = 100


class NotFound(Exception):
    """What a page names does not exist; the message says what."""


@dataclass(frozen=True)
class BriefRow:
    """One brief on the front page; ``problem`` set when a version cannot be read."""

    brief_id: str
    versions: int
    latest_version: int | None = None
    latest_status: str | None = None
    latest_approved: int | None = None
    last_change: datetime | None = None
    problem: str | None = None


def brief_rows(store: BaseStore, page: int) -> tuple[list[BriefRow], int, int]:
    """The briefs of one page, the number of pages and of briefs.

    Raises:
        NotFound: there is no such page.
    """
    with Lister(store) as lister:
        briefs = lister.briefs()
        pages = max(1, -(-len(briefs) // PAGE_SIZE))
        if page > pages:
            raise NotFound(f"there is no page {page}: the briefs fill {pages}")
        shown = briefs[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        if lister.index is None:
            return [_brief_row(store, brief) for brief in shown], pages, len(briefs)
        return [_indexed_row(lister, brief) for brief in shown], pages, len(briefs)


def _indexed_row(lister: Lister, brief: str) -> BriefRow:
    """``_brief_row`` from the listing index: the same row, without reading unchanged files."""
    try:
        numbers = lister.numbers(brief)
    except (StrategyStoreError, OSError) as exc:
        return BriefRow(brief, 0, problem=describe(exc))
    rows = list(lister.rows(brief, numbers))
    problem = next((row.problem for row in rows if row.problem is not None), None)
    if problem is not None:
        return BriefRow(brief, len(numbers), problem=problem)
    if not rows:  # deleted since it was listed
        return BriefRow(brief, 0)
    approved = next((row.version for row in rows if row.status is Status.APPROVED), None)
    return BriefRow(
        brief,
        len(rows),
        latest_version=rows[0].version,
        latest_status=None if rows[0].status is None else rows[0].status.value,
        latest_approved=approved,
        last_change=max(row.updated for row in rows),
    )


def _brief_row(store: BaseStore, brief: str) -> BriefRow:
    try:
        docs = store.list_versions_by_brief(brief)
    except (StrategyStoreError, OSError) as exc:
        try:
            count = len(store.list_version_numbers(brief))
        except (StrategyStoreError, OSError):
            count = 0
        return BriefRow(brief, count, problem=describe(exc))
    if not docs:  # deleted since it was listed
        return BriefRow(brief, 0)
    approved = next((d.version for d in docs if d.status is Status.APPROVED), None)
    return BriefRow(
        brief,
        len(docs),
        latest_version=docs[0].version,
        latest_status=docs[0].status.value,
        latest_approved=approved,
        last_change=max(d.updated_at for d in docs),
    )


@dataclass(frozen=True)
class Entry:
    """One version on a brief's timeline: its document, or why it cannot be read."""

    version: int
    doc: StrategyDocument | None
    problem: str | None = None
    commit: Commit | None = None


def timeline(store: BaseStore, brief: str) -> list[Entry]:
    """Every version of ``brief``, newest first, with git's last commit of each file.

    Raises:
        NotFound: the brief has no versions.
    """
    numbers = store.list_version_numbers(brief)
    if not numbers:
        raise NotFound(f"there is no brief {brief!r}")
    commits = last_commits(store.data_dir, brief) if isinstance(store, FileStore) else {}
    entries = []
    for version in numbers:
        try:
            doc = store.get_strategy(brief, version)
        except (CorruptDocumentError, OSError) as exc:
            entries.append(Entry(version, None, describe(exc), commits.get(version)))
            continue
        if doc is not None:
            entries.append(Entry(version, doc, None, commits.get(version)))
    return entries


def document(store: BaseStore, brief: str, version: int) -> StrategyDocument:
    """The version named.

    Raises:
        NotFound: the brief or the version does not exist.
    """
    doc = store.get_strategy(brief, version)
    if doc is None:
        if not store.list_version_numbers(brief):
            raise NotFound(f"there is no brief {brief!r}")
        raise NotFound(f"version {version} of brief {brief!r} does not exist")
    return doc


def neighbours(store: BaseStore, doc: StrategyDocument) -> tuple[int | None, int | None]:
    """The versions before and after ``doc`` in its brief, when there are."""
    numbers = store.list_version_numbers(doc.brief_id)
    older = [n for n in numbers if n < doc.version]
    newer = [n for n in numbers if n > doc.version]
    return (older[0] if older else None), (newer[-1] if newer else None)


def location_of(store: BaseStore, doc: StrategyDocument) -> str:
    """Where the store keeps ``doc``: its file, or its table and row."""
    if isinstance(store, FileStore):
        return str(store.document_path(doc.brief_id, doc.version))
    table = getattr(store, "table", None)
    if isinstance(table, str):
        return f"table {table}, row (brief_id={doc.brief_id!r}, version={doc.version})"
    return f"{type(store).__name__}, key ({doc.brief_id!r}, {doc.version})"


def metadata_rows(doc: StrategyDocument) -> list[tuple[str, str]]:
    """The metadata as ``(key, value as JSON)`` rows, keys sorted."""
    return [(key, _json(value)) for key, value in sorted(doc.metadata.items())]


def actions_for(status: Status) -> list[str]:
    """The actions a page offers for a version of ``status``; the store still decides."""
    if status is Status.DRAFT:
        return ["approve", "reject", "new-draft"]
    if status is Status.APPROVED:
        return ["withdraw", "new-draft"]
    return ["new-draft"]


# -- the diff ----------------------------------------------------------------

#: One side of a diff row: ``(mark, text)``, mark ``""``, ``"del"`` or ``"ins"``.
Cell = tuple[str, str]


@dataclass(frozen=True)
class DiffRow:
    """One row of the side-by-side table.

    ``heading`` rows name what the rows below show; the others hold the old
    side (left) and the new side (right), either of which may be empty.
    """

    kind: str
    heading: str | None = None
    left: Cell | None = None
    right: Cell | None = None
    cells: list[Cell | None] = field(default_factory=list)


def diff_rows(old: StrategyDocument, new: StrategyDocument) -> tuple[DocumentDiff, list[DiffRow]]:
    """``diff(old, new)`` and the rows that show it side by side."""
    change = diff(old, new)
    rows: list[DiffRow] = []
    if change.status is not None:
        rows.append(DiffRow("heading", "Status"))
        rows.append(_pair(change.status[0].value, change.status[1].value))
    if change.reason is not None:
        rows.append(DiffRow("heading", "Reason"))
        before, after = change.reason
        rows.append(_pair(before or "(none)", after or "(none)"))
    rows += _metadata_rows(change)
    rows += _section_rows(change, old, new)
    if change.order is not None:
        rows.append(DiffRow("heading", "Order of sections"))
        rows.append(_pair(", ".join(change.order[0]), ", ".join(change.order[1])))
    return change, rows


def _pair(before: str, after: str) -> DiffRow:
    return DiffRow("changed", left=("del", before), right=("ins", after))


def _metadata_rows(change: DocumentDiff) -> Iterator[DiffRow]:
    added, removed, changed = (
        change.metadata_added,
        change.metadata_removed,
        change.metadata_changed,
    )
    for key in sorted(added.keys() | removed.keys() | changed.keys()):
        if key in removed:
            yield DiffRow("heading", f"Metadata {key} (removed)")
            yield DiffRow("removed", left=("del", _json(removed[key])))
        elif key in added:
            yield DiffRow("heading", f"Metadata {key} (added)")
            yield DiffRow("added", right=("ins", _json(added[key])))
        else:
            yield DiffRow("heading", f"Metadata {key} (changed)")
            yield _pair(_json(changed[key][0]), _json(changed[key][1]))


def _section_rows(
    change: DocumentDiff, old: StrategyDocument, new: StrategyDocument
) -> Iterator[DiffRow]:
    added = {s.key: s for s in change.sections_added}
    changed = {c.key: c for c in change.sections_changed}
    old_by_key = {s.key: s for s in old.sections}
    for section in new.sections:
        if section.key in added:
            yield DiffRow("heading", f"Section {_name(section)} (added)")
            yield from (DiffRow("added", right=("ins", line)) for line in _lines(section.body))
        elif section.key in changed:
            yield DiffRow("heading", f"Section {_name(section)} (changed)")
            yield from _changed_section(changed[section.key])
        elif section.key in old_by_key:
            yield DiffRow("unchanged", f"Section {_name(section)} is the same in both")
    for section in change.sections_removed:
        yield DiffRow("heading", f"Section {_name(section)} (removed)")
        yield from (DiffRow("removed", left=("del", line)) for line in _lines(section.body))


def _changed_section(change: SectionChange) -> Iterator[DiffRow]:
    if change.title_changed:
        yield _pair(f"Title: {change.old.title}", f"Title: {change.new.title}")
    if not change.body_changed:
        return
    if not change.body_diff:
        yield DiffRow("unchanged", "Only line endings or the final newline differ")
        return
    removed: list[str] = []
    added: list[str] = []

    def flush() -> Iterator[DiffRow]:
        for index in range(max(len(removed), len(added))):
            left = ("del", removed[index]) if index < len(removed) else None
            right = ("ins", added[index]) if index < len(added) else None
            yield DiffRow("changed", left=left, right=right)
        removed.clear()
        added.clear()

    for number, line in enumerate(change.body_diff):
        mark, text = line[:1], line[1:]
        if mark == "-":
            removed.append(text)
        elif mark == "+":
            added.append(text)
        else:
            yield from flush()
            if line.startswith("@@"):
                if number:  # the first hunk needs no gap before it
                    yield DiffRow("gap", "…")
            else:
                yield DiffRow("context", left=("", text), right=("", text))
    yield from flush()


def _name(section: Section) -> str:
    return f"“{section.title or section.key}”"


def _lines(body: str) -> list[str]:
    return body.splitlines() or [""]


# -- check -------------------------------------------------------------------


def check_findings(data_dir: Path) -> list[tuple[str, str, int | None, bool]]:
    """What ``check`` finds in a data directory: ``(path, message, line, note)`` each."""
    from strategystore.check import DataDirCheck  # noqa: PLC0415 (only this page walks)

    return [
        (str(finding.path), finding.message, finding.line, finding.note)
        for finding in DataDirCheck(data_dir).findings()
    ]


def _json(value: JsonValue) -> str:
    return _render.json_value(value)
