"""What changed between two strategy documents: ``diff()`` and ``DocumentDiff``.

The one comparison behind the command line's ``diff``, ``resolve`` and the
review page: each renders the same object, and ``str()`` of it is the text the
command line prints::

    change = diff(store.get_strategy("acme", 1), store.get_strategy("acme", 2))
    if change.status is not None:
        before, after = change.status
    print(change)  # --- acme version 1 (approved, updated 2026-01-15 09:30 UTC) ...

A diff is falsy exactly when the two documents are equal by canonical bytes
(DESIGN §3), so two versions of one brief always differ: their versions do,
even when status, metadata and sections are the same.
"""

from __future__ import annotations

import copy
import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from types import MappingProxyType
from typing import TypeVar

from pydantic import JsonValue

from strategystore import _render
from strategystore.models import Section, Status, StrategyDocument

__all__ = ["DocumentDiff", "Revision", "SectionChange", "diff"]

#: Context lines around each change in a body's unified diff.
_CONTEXT_LINES = 2
#: Indentation of a body diff under its section's line.
_BODY_INDENT = " " * 6


@dataclass(frozen=True)
class Revision:
    """Which document one side of a diff is: its key, status, timestamps and outline.

    Attributes:
        brief_id: the document's brief.
        version: its version.
        status: its status, changed or not.
        created_at: when it was created (UTC).
        updated_at: when it was last updated (UTC).
        section_keys: the keys of its sections, in order.
    """

    brief_id: str
    version: int
    status: Status
    created_at: datetime
    updated_at: datetime
    section_keys: tuple[str, ...]

    @classmethod
    def of(cls, doc: StrategyDocument) -> Revision:
        """The revision ``doc`` is."""
        return cls(
            brief_id=doc.brief_id,
            version=doc.version,
            status=doc.status,
            created_at=doc.created_at,
            updated_at=doc.updated_at,
            section_keys=tuple(s.key for s in doc.sections),
        )

    def __str__(self) -> str:
        return f"{self.brief_id} v{self.version}"


@dataclass(frozen=True)
class SectionChange:
    """A section both documents hold, with another title or body in the new one.

    Attributes:
        old: the section as the old document holds it.
        new: the section as the new document holds it (same ``key``).
        body_diff: the unified diff of the bodies, line by line (hunk headers
            ``@@ … @@`` and lines starting with `` ``, ``-`` or ``+``, without
            the two file-name lines); empty when the bodies are equal or
            differ only in line endings or the final newline.
    """

    old: Section
    new: Section
    body_diff: tuple[str, ...]

    @property
    def key(self) -> str:
        """The section's key."""
        return self.new.key

    @property
    def title_changed(self) -> bool:
        """Whether the title differs."""
        return self.old.title != self.new.title

    @property
    def body_changed(self) -> bool:
        """Whether the body differs, if only in line endings."""
        return self.old.body != self.new.body


_V = TypeVar("_V")


def _read_only(mapping: Mapping[str, _V]) -> Mapping[str, _V]:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class DocumentDiff:
    """What changed from one document to another; build it with ``diff(old, new)``.

    Falsy when the two are equal by canonical bytes. ``str()`` is the text the
    command line's ``diff`` prints. Metadata values are compared as JSON
    text, so ``1``, ``1.0`` and ``true`` differ.

    Attributes:
        old: which document the old side is.
        new: which document the new side is.
        status: ``(old, new)`` when the status changed, else ``None``.
        reason: ``(old, new)`` status reasons when they differ, else ``None``.
        metadata_added: keys only the new document has, with their values.
        metadata_removed: keys only the old document has, with their values.
        metadata_changed: keys both have with different values, ``(old, new)``.
        sections_added: sections only the new document has, in its order.
        sections_removed: sections only the old document has, in its order.
        sections_changed: sections both have that differ, in the new order.
        order: ``(old, new)`` orders of the section keys both documents have,
            when they differ, else ``None``.
    """

    old: Revision
    new: Revision
    status: tuple[Status, Status] | None = None
    reason: tuple[str | None, str | None] | None = None
    metadata_added: Mapping[str, JsonValue] = field(default_factory=dict)
    metadata_removed: Mapping[str, JsonValue] = field(default_factory=dict)
    metadata_changed: Mapping[str, tuple[JsonValue, JsonValue]] = field(default_factory=dict)
    sections_added: tuple[Section, ...] = ()
    sections_removed: tuple[Section, ...] = ()
    sections_changed: tuple[SectionChange, ...] = ()
    order: tuple[tuple[str, ...], tuple[str, ...]] | None = None

    def __post_init__(self) -> None:
        # A frozen dataclass still holds whatever dict it was given; a copy
        # behind a read-only view makes the diff immutable all the way down.
        for name in ("metadata_added", "metadata_removed", "metadata_changed"):
            object.__setattr__(self, name, _read_only(getattr(self, name)))

    def __bool__(self) -> bool:
        return self.old != self.new or self.changed

    @property
    def changed(self) -> bool:
        """Whether status, reason, metadata or sections changed: what the text lists.

        Two versions whose content is the same differ only in their numbers
        and timestamps: the diff is truthy, but nothing ``changed``.
        """
        return any(
            (
                self.status,
                self.reason,
                self.metadata_added,
                self.metadata_removed,
                self.metadata_changed,
                self.sections_added,
                self.sections_removed,
                self.sections_changed,
                self.order,
            )
        )

    def __repr__(self) -> str:
        old, new = self.old, self.new
        target = str(new) if new.brief_id != old.brief_id else f"v{new.version}"
        changes = []
        if old.created_at != new.created_at:
            changes.append("created_at")
        if old.updated_at != new.updated_at:
            changes.append("updated_at")
        if self.status is not None:
            changes.append(f"status {self.status[0].value} -> {self.status[1].value}")
        if self.reason is not None:
            changes.append("reason")
        metadata = [
            *(f"+{key}" for key in self.metadata_added),
            *(f"-{key}" for key in self.metadata_removed),
            *(f"~{key}" for key in self.metadata_changed),
        ]
        if metadata:
            changes.append(f"metadata {' '.join(metadata)}")
        sections = [
            *(f"+{s.key}" for s in self.sections_added),
            *(f"-{s.key}" for s in self.sections_removed),
            *(f"~{c.key}" for c in self.sections_changed),
        ]
        if sections:
            changes.append(f"sections {' '.join(sections)}")
        if self.order is not None:
            changes.append("order")
        return f"<DocumentDiff {old} -> {target}: {', '.join(changes) or 'equal'}>"

    def __str__(self) -> str:
        return "\n".join(self._lines())

    def _lines(self) -> list[str]:
        lines = [_header("---", self.old), _header("+++", self.new)]

        if self.status is not None or self.reason is not None:
            lines.append("")
            if self.status is not None:
                lines.append(f"status: {self.status[0].value} -> {self.status[1].value}")
            if self.reason is not None:
                before, after = (_render.json_value(r) for r in self.reason)
                lines.append(f"reason: {before} -> {after}")

        metadata = []
        added, removed, changed = self.metadata_added, self.metadata_removed, self.metadata_changed
        for key in sorted(added.keys() | removed.keys() | changed.keys()):
            if key in removed:
                metadata.append(f"  - {key}: {_render.json_value(removed[key])}")
            elif key in added:
                metadata.append(f"  + {key}: {_render.json_value(added[key])}")
            else:
                before, after = (_render.json_value(v) for v in changed[key])
                metadata.append(f"  ~ {key}: {before} -> {after}")
        if metadata:
            lines += ["", "metadata:", *metadata]

        sections = []
        new_sections = {s.key: s for s in self.sections_added}
        changes = {c.key: c for c in self.sections_changed}
        for key in self.new.section_keys:
            if key in new_sections:
                section = new_sections[key]
                sections.append(f'  + {key} "{section.title}" (added)')
                sections += _body_lines("", section.body)
            elif key in changes:
                change = changes[key]
                sections.append(f'  ~ {key} "{change.new.title}" (changed)')
                if change.title_changed:
                    sections.append(f'      title: "{change.old.title}" -> "{change.new.title}"')
                if change.body_changed:
                    sections += _indented(change.body_diff)
        for section in self.sections_removed:
            sections.append(f'  - {section.key} "{section.title}" (removed)')
            sections += _body_lines(section.body, "")
        if self.order is not None:
            sections.append(f"  order: {', '.join(self.order[0])} -> {', '.join(self.order[1])}")
        if sections:
            lines += ["", "sections:", *sections]

        if not self.changed:
            lines += ["", "no differences in status, metadata or sections"]
        return lines


def diff(old: StrategyDocument, new: StrategyDocument) -> DocumentDiff:
    """Compare two documents section by section.

    Args:
        old: the document before.
        new: the document after; usually a later version of the same brief,
            though any two documents can be compared.

    Returns:
        What changed, falsy when the two are equal by canonical bytes.
    """
    status = (old.status, new.status) if old.status is not new.status else None
    reason = None
    if old.status_reason != new.status_reason:
        reason = (old.status_reason, new.status_reason)

    added: dict[str, JsonValue] = {}
    removed: dict[str, JsonValue] = {}
    changed: dict[str, tuple[JsonValue, JsonValue]] = {}
    for key in sorted(old.metadata.keys() | new.metadata.keys()):
        if key not in new.metadata:
            removed[key] = copy.deepcopy(old.metadata[key])
        elif key not in old.metadata:
            added[key] = copy.deepcopy(new.metadata[key])
        elif _render.json_value(old.metadata[key]) != _render.json_value(new.metadata[key]):
            # Python's == would call 1, 1.0 and true equal; the canonical bytes do not.
            changed[key] = copy.deepcopy((old.metadata[key], new.metadata[key]))

    old_by_key = {s.key: s for s in old.sections}
    new_by_key = {s.key: s for s in new.sections}
    section_changes = tuple(
        SectionChange(old_by_key[s.key], s, _unified(old_by_key[s.key].body, s.body))
        for s in new.sections
        if s.key in old_by_key and old_by_key[s.key] != s
    )
    old_order = tuple(s.key for s in old.sections if s.key in new_by_key)
    new_order = tuple(s.key for s in new.sections if s.key in old_by_key)

    return DocumentDiff(
        old=Revision.of(old),
        new=Revision.of(new),
        status=status,
        reason=reason,
        metadata_added=added,
        metadata_removed=removed,
        metadata_changed=changed,
        sections_added=tuple(s for s in new.sections if s.key not in old_by_key),
        sections_removed=tuple(s for s in old.sections if s.key not in new_by_key),
        sections_changed=section_changes,
        order=(old_order, new_order) if old_order != new_order else None,
    )


def _header(mark: str, side: Revision) -> str:
    return (
        f"{mark} {side.brief_id} version {side.version} "
        f"({side.status.value}, updated {_render.minute(side.updated_at)} UTC)"
    )


def _unified(before: str, after: str) -> tuple[str, ...]:
    lines = difflib.unified_diff(
        before.splitlines(), after.splitlines(), lineterm="", n=_CONTEXT_LINES
    )
    # The first two lines name the files; the section's own line already does.
    return tuple(lines)[2:]


def _body_lines(before: str, after: str) -> list[str]:
    """The indented lines showing how a body changed; none when it did not."""
    if before == after:
        return []
    return _indented(_unified(before, after))


def _indented(body_diff: tuple[str, ...]) -> list[str]:
    if not body_diff:
        # Only possible when the bodies differ: splitlines() hid the difference.
        return [f"{_BODY_INDENT}(only line endings or the final newline differ)"]
    return [f"{_BODY_INDENT}{line}" for line in body_diff]
