"""The three-way merge of a draft changed on both sides: by section key and metadata key.

A change on one side applies; the same item changed differently on both
sides, removed on one and changed on the other, or added on both with
different content stays a conflict, named. The section order is merged too:
the order of the sections all three hold is that of the side that changed it
(both changing it differently is a conflict), and each section a side added
follows the section it follows on that side (its *anchor*). Sections the two
sides added after one anchor come as two runs, the run whose keys sort first
first; a section both added alike keeps its place, and one they placed
differently is a conflict. The merged draft takes the later ``updated_at`` of
the two.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Final, cast

import pydantic_core
from pydantic import JsonValue

from strategystore._render import iso
from strategystore.models import (
    Section,
    Status,
    StrategyDocument,
)

__all__ = ["DraftMerge", "Sides", "and_list", "merge_drafts", "other_document"]


# -- the sides ---------------------------------------------------------------------


@dataclass(frozen=True)
class Sides:
    """How the two sides of a conflict are named, and which is the current branch.

    Attributes:
        ours: stage 2 as a person reads it in an account ("ours", "upstream").
        theirs: stage 3 likewise ("theirs", "your branch").
        ours_is_current: whether stage 2 is the current branch, which keeps
            the number when both sides added a version at the same moment.
    """

    ours: str = "ours"
    theirs: str = "theirs"
    ours_is_current: bool = True

    @classmethod
    def of(cls, operation: str) -> Sides:
        """The sides of a ``"merge"``, ``"cherry-pick"`` or ``"rebase"``.

        In a rebase git's stage 2 is the upstream being rebased onto and stage
        3 the commit of the branch being rebased, which is the current branch.
        """
        if operation == "rebase":
            return cls("upstream", "your branch", ours_is_current=False)
        return cls()

    def swapped(self) -> Sides:
        """The same sides with stages 2 and 3 exchanged."""
        return Sides(self.theirs, self.ours, not self.ours_is_current)


# -- the three-way merge of a draft -----------------------------------------------

_ABSENT: Final = object()


@dataclass(frozen=True, repr=False)
class DraftMerge:
    """The three-way merge of a draft both sides changed; see ``merge_drafts``.

    Attributes:
        document: the merged draft, or ``None`` when anything conflicts.
        conflicts: what conflicts, each named for a person.
        sections_in_conflict: keys of the sections that conflict.
        metadata_in_conflict: metadata keys that conflict.
        order_in_conflict: both sides reordered the sections differently.
        reason_in_conflict: both sides changed ``status_reason`` differently.
        ours_changes: what ours changed that the merge holds, for a person.
        theirs_changes: likewise for theirs.
    """

    document: StrategyDocument | None
    conflicts: tuple[str, ...] = ()
    sections_in_conflict: frozenset[str] = frozenset()
    metadata_in_conflict: frozenset[str] = frozenset()
    order_in_conflict: bool = False
    reason_in_conflict: bool = False
    ours_changes: tuple[str, ...] = ()
    theirs_changes: tuple[str, ...] = ()

    def __repr__(self) -> str:
        if self.document is None:
            return f"<DraftMerge conflicts: {'; '.join(self.conflicts)}>"
        doc = self.document
        ours = ", ".join(self.ours_changes) or "nothing"
        theirs = ", ".join(self.theirs_changes) or "nothing"
        return f"<DraftMerge of {doc.brief_id} v{doc.version}: ours {ours}; theirs {theirs}>"


class _Changes:
    """What each side changed, gathered while merging: sections, metadata keys, the rest."""

    def __init__(self) -> None:
        self._by_side: dict[str, dict[str, list[str]]] = {
            side: {"sections": [], "metadata": [], "other": []} for side in ("ours", "theirs")
        }

    def note(self, kind: str, name: str, ours: bool, theirs: bool) -> None:
        for side, changed in (("ours", ours), ("theirs", theirs)):
            if changed:
                self._by_side[side][kind].append(name)

    def described(self, side: str) -> tuple[str, ...]:
        found = self._by_side[side]
        sections, metadata = found["sections"], found["metadata"]
        parts = []
        if sections:
            parts.append(f"{'section' if len(sections) == 1 else 'sections'} {and_list(sections)}")
        if metadata:
            parts.append(f"metadata {'key' if len(metadata) == 1 else 'keys'} {and_list(metadata)}")
        return (*parts, *found["other"])


def merge_drafts(
    base: StrategyDocument,
    ours: StrategyDocument,
    theirs: StrategyDocument,
    sides: Sides | None = None,
) -> DraftMerge:
    """Merge two drafts changed from one base, by section key and by metadata key.

    A change on one side applies; the same item changed differently on both
    sides conflicts, as does an item removed on one side and changed on the
    other, or added on both with different content. A section's title and
    body merge on their own. The order of the sections is merged as the
    module docstring says, and the result takes the later ``updated_at``.
    The result is the same whichever side is called ours.

    Args:
        base: the common ancestor, a draft.
        ours: one side's draft.
        theirs: the other side's draft.
        sides: how the sides are named in a conflict's account.

    Returns:
        The merged draft, or every conflict, named.
    """
    sides = sides or Sides()
    if not base.created_at == ours.created_at == theirs.created_at:
        odd, name = (
            (ours, sides.ours) if ours.created_at != base.created_at else (theirs, sides.theirs)
        )
        return DraftMerge(None, (other_document(odd, base, name),))
    conflicts: list[str] = []
    changes = _Changes()

    reason, ours_moved, theirs_moved, clash = _three_way(
        base.status_reason, ours.status_reason, theirs.status_reason
    )
    if clash:
        conflicts.append("the status reason changed on both sides")
    changes.note("other", "status reason", ours_moved, theirs_moved)

    metadata, metadata_clashes = _merge_metadata(base, ours, theirs, changes)
    conflicts += [f"metadata key {key} {why}" for key, why in metadata_clashes]

    sections, section_clashes = _merge_sections(base, ours, theirs, changes)
    conflicts += [f"section {key} {why}" for key, why in section_clashes]

    order = _merge_order(base, ours, theirs, sections, changes)
    if isinstance(order, str):
        conflicts.append(order)

    if conflicts or isinstance(order, str):
        return DraftMerge(
            None,
            tuple(conflicts),
            sections_in_conflict=frozenset(key for key, _ in section_clashes),
            metadata_in_conflict=frozenset(key for key, _ in metadata_clashes),
            order_in_conflict=isinstance(order, str),
            reason_in_conflict=clash,
        )
    merged = StrategyDocument.model_validate(
        {
            "brief_id": base.brief_id,
            "version": base.version,
            "status": Status.DRAFT,
            "status_reason": reason,
            "created_at": base.created_at,
            "updated_at": max(ours.updated_at, theirs.updated_at),
            "sections": [sections[key] for key in order],
            "metadata": metadata,
        }
    )
    return DraftMerge(
        merged, ours_changes=changes.described("ours"), theirs_changes=changes.described("theirs")
    )


def _three_way(
    base: object, ours: object, theirs: object, same: Callable[[object, object], bool] | None = None
) -> tuple[object, bool, bool, bool]:
    """The merged value, whether ours and theirs changed it, and whether they clash."""
    equal = same or (lambda a, b: a == b)
    ours_moved = not equal(base, ours)
    theirs_moved = not equal(base, theirs)
    clash = ours_moved and theirs_moved and not equal(ours, theirs)
    return (ours if ours_moved else theirs), ours_moved, theirs_moved, clash


def _json_text(value: object) -> object:
    # Python's == calls 1, 1.0 and true equal; the canonical bytes do not.
    return value if value is _ABSENT else pydantic_core.to_json(value)


def _same_json(a: object, b: object) -> bool:
    return _json_text(a) == _json_text(b)


def _merge_metadata(
    base: StrategyDocument, ours: StrategyDocument, theirs: StrategyDocument, changes: _Changes
) -> tuple[dict[str, JsonValue], list[tuple[str, str]]]:
    merged: dict[str, JsonValue] = {}
    clashes: list[tuple[str, str]] = []
    for key in sorted(base.metadata.keys() | ours.metadata.keys() | theirs.metadata.keys()):
        b, o, t = (doc.metadata.get(key, _ABSENT) for doc in (base, ours, theirs))
        value, ours_moved, theirs_moved, clash = _three_way(b, o, t, _same_json)
        changes.note("metadata", key, ours_moved, theirs_moved)
        if clash:
            clashes.append((key, _clash_kind(b, o, t)))
        elif value is not _ABSENT:
            merged[key] = cast(JsonValue, value)
    return merged, clashes


def _clash_kind(base: object, ours: object, theirs: object) -> str:
    if base is _ABSENT:
        return "added on both sides with different content"
    if ours is _ABSENT or theirs is _ABSENT:
        return "removed on one side and changed on the other"
    return "changed on both sides"


def _merge_sections(
    base: StrategyDocument, ours: StrategyDocument, theirs: StrategyDocument, changes: _Changes
) -> tuple[dict[str, Section], list[tuple[str, str]]]:
    by_key = [{s.key: s for s in doc.sections} for doc in (base, ours, theirs)]
    keys = dict.fromkeys(s.key for doc in (base, ours, theirs) for s in doc.sections)
    merged: dict[str, Section] = {}
    clashes: list[tuple[str, str]] = []
    for key in keys:
        b, o, t = (sections.get(key) for sections in by_key)
        if b is None or o is None or t is None:
            # Added or removed on a side: the section merges as a whole.
            value, ours_moved, theirs_moved, clash = _three_way(b, o, t)
            if clash:
                clashes.append((key, _clash_kind(_absent(b), _absent(o), _absent(t))))
            elif isinstance(value, Section):
                merged[key] = value
        else:
            title, ours_title, theirs_title, title_clash = _three_way(b.title, o.title, t.title)
            body, ours_body, theirs_body, body_clash = _three_way(b.body, o.body, t.body)
            ours_moved, theirs_moved = ours_title or ours_body, theirs_title or theirs_body
            if title_clash or body_clash:
                parts = [p for p, c in (("title", title_clash), ("body", body_clash)) if c]
                clashes.append((key, f"changed on both sides (its {' and '.join(parts)})"))
            else:
                merged[key] = Section(key=key, title=str(title), body=str(body))
        changes.note("sections", key, ours_moved, theirs_moved)
    return merged, clashes


def _absent(section: Section | None) -> object:
    return _ABSENT if section is None else section


def _merge_order(
    base: StrategyDocument,
    ours: StrategyDocument,
    theirs: StrategyDocument,
    merged: Mapping[str, Section],
    changes: _Changes,
) -> list[str] | str:
    """The merged order of the sections in ``merged``, or why the two orders clash."""
    base_keys = [s.key for s in base.sections]
    ours_keys = [s.key for s in ours.sections]
    theirs_keys = [s.key for s in theirs.sections]
    common = set(base_keys) & set(ours_keys) & set(theirs_keys) & merged.keys()
    chosen, ours_moved, theirs_moved, clash = _three_way(
        tuple(k for k in base_keys if k in common),
        tuple(k for k in ours_keys if k in common),
        tuple(k for k in theirs_keys if k in common),
    )
    changes.note("other", "the section order", ours_moved, theirs_moved)
    if clash:
        return "the sections were reordered differently on both sides"
    assert isinstance(chosen, tuple)
    added = merged.keys() - set(base_keys)
    ours_runs = _runs(ours_keys, common, added)
    theirs_runs = _runs(theirs_keys, common, added)
    both = set(ours_keys) & set(theirs_keys) & added
    misplaced: set[str] = set()
    for anchor in ours_runs.keys() | theirs_runs.keys():
        mine = [k for k in ours_runs.get(anchor, ()) if k in both]
        yours = [k for k in theirs_runs.get(anchor, ()) if k in both]
        if mine != yours:
            misplaced.update(mine, yours)
    if misplaced:
        return (
            f"{'section' if len(misplaced) == 1 else 'sections'} {and_list(sorted(misplaced))} "
            "added on both sides in different places"
        )
    order: list[str] = []
    for anchor in (None, *chosen):
        if anchor is not None:
            order.append(anchor)
        order += _interleave(ours_runs.get(anchor, ()), theirs_runs.get(anchor, ()), both)
    assert sorted(order) == sorted(merged), (order, merged.keys())
    return order


def _runs(
    keys: Sequence[str], common: Collection[str], added: Collection[str]
) -> dict[str | None, tuple[str, ...]]:
    """The sections a side added, as runs after the section of ``common`` each follows."""
    runs: dict[str | None, tuple[str, ...]] = {}
    anchor: str | None = None
    for key in keys:
        if key in common:
            anchor = key
        elif key in added:
            runs[anchor] = (*runs.get(anchor, ()), key)
    return runs


def _interleave(one: Sequence[str], other: Sequence[str], both: Collection[str]) -> list[str]:
    """Two sides' runs after one section, as one run.

    Sections both sides added (in the same order) keep their places; before
    each of them, and at the end, the two sides' own additions come as two
    runs, the run whose keys sort first first.
    """
    order: list[str] = []
    one_rest, other_rest = list(one), list(other)
    while one_rest or other_rest:
        one_part = _until_shared(one_rest, both)
        other_part = _until_shared(other_rest, both)
        order += [k for part in sorted((one_part, other_part)) for k in part]
        if one_rest:  # both now start with the same shared section
            order.append(one_rest.pop(0))
            other_rest.pop(0)
    return order


def _until_shared(keys: list[str], both: Collection[str]) -> tuple[str, ...]:
    """Take from ``keys`` the sections before the first one both sides added."""
    taken: list[str] = []
    while keys and keys[0] not in both:
        taken.append(keys.pop(0))
    return tuple(taken)


def and_list(items: Sequence[str]) -> str:
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} and {items[-1]}"


def other_document(side: StrategyDocument, base: StrategyDocument, name: str) -> str:
    return (
        f"{name} holds another document at version {base.version} (created "
        f"{iso(side.created_at)}, the base's {iso(base.created_at)}): was one renumbered?"
    )
