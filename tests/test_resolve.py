"""``resolve``: the document rules as pure functions, then in real git repositories."""

from __future__ import annotations

import contextlib
import io
import subprocess
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from strategystore import FileStore, Section, Status, StrategyDocument, _git
from strategystore import resolve as resolve_module
from strategystore._layout import decode_document_file
from strategystore._rules import content_key
from strategystore.cli import main
from strategystore.models import renumbered
from strategystore.resolve import (
    Conflict,
    Resolution,
    ResolveReport,
    Sides,
    merge_drafts,
    plan,
    resolve_work_tree,
)
from tests.conftest import T0, run_module

HOUR = timedelta(hours=1)

# -- building documents ---------------------------------------------------------------


def doc(
    version: int = 1,
    *,
    sections: tuple[tuple[str, str, str], ...] = (("goal", "Goal", "Grow."),),
    metadata: Mapping[str, object] | None = None,
    created: datetime = T0,
    updated: datetime | None = None,
    status: Status = Status.DRAFT,
    reason: str | None = None,
    brief_id: str = "acme",
) -> StrategyDocument:
    """A document of brief acme; ``sections`` as (key, title, body)."""
    return StrategyDocument.model_validate(
        {
            "brief_id": brief_id,
            "version": version,
            "status": status,
            "status_reason": reason,
            "created_at": created,
            "updated_at": updated or created,
            "sections": [Section(key=k, title=t, body=b) for k, t, b in sections],
            "metadata": {"model": "gpt"} if metadata is None else metadata,
        }
    )


def changed(base: StrategyDocument, **fields: object) -> StrategyDocument:
    """``base`` with ``fields`` replaced (sections as (key, title, body)), validated again."""
    values = base.model_dump(exclude={"content_digest"})
    if "sections" in fields:
        sections = fields.pop("sections")
        assert isinstance(sections, tuple)
        values["sections"] = [{"key": k, "title": t, "body": b} for k, t, b in sections]
    values.update(fields)
    return StrategyDocument.model_validate(values)


def sealed(base: StrategyDocument, status: Status = Status.APPROVED) -> StrategyDocument:
    """``base`` approved (or rejected) an hour after its last update."""
    return changed(base, status=status, updated_at=base.updated_at + HOUR)


def raw(document: StrategyDocument | None) -> bytes | None:
    return None if document is None else document.to_json_bytes()


def conflict(
    base: StrategyDocument | None,
    ours: StrategyDocument | None,
    theirs: StrategyDocument | None,
    version: int = 1,
) -> Conflict:
    return Conflict("acme", version, raw(base), raw(ours), raw(theirs))


def decide(
    c: Conflict, taken: dict[str, set[int]] | None = None, sides: Sides | None = None
) -> Resolution:
    (resolution,) = plan([c], taken or {}, sides)
    return resolution


def written(resolution: Resolution) -> dict[str, bytes]:
    """The files a resolution writes, by path."""
    return {f"{d.brief_id}/{d.version}.json": d.to_json_bytes() for d in resolution.documents}


# -- rule 1: both sides added a version ---------------------------------------------


def test_both_added_the_one_created_earlier_keeps_the_number() -> None:
    early = doc(2, created=T0, sections=(("a", "A", "early"),))
    late = doc(2, created=T0 + HOUR, sections=(("b", "B", "late"),))
    resolution = decide(conflict(None, late, early, version=2), {"acme": {1, 2, 3}})
    assert resolution.resolved
    assert written(resolution) == {
        "acme/2.json": early.to_json_bytes(),
        "acme/4.json": renumbered(late, 4).to_json_bytes(),
    }
    assert str(resolution) == (
        "acme/2.json: both sides added version 2; kept theirs (created earlier) "
        "and renumbered ours 2 → 4"
    )


def test_a_draft_the_brief_holds_already_at_another_number_is_not_added_again() -> None:
    early = doc(2, created=T0, sections=(("a", "A", "early"),))
    late = doc(2, created=T0 + HOUR, sections=(("b", "B", "late"),))
    # Brought over before (a cherry-pick renumbered it to 3): not a new version.
    present = {"acme": {content_key(renumbered(late, 3)): 3}}
    (resolution,) = plan(
        [conflict(None, late, early, version=2)], {"acme": {1, 2, 3}}, None, present
    )
    assert written(resolution) == {"acme/2.json": early.to_json_bytes()}
    assert str(resolution) == (
        "acme/2.json: both sides added version 2; kept theirs (created earlier); ours's is "
        "version 3 already (the same draft, brought over before), so it is not added again"
    )


def test_a_cherry_picked_draft_is_not_duplicated_by_a_later_merge(repo: GitRepo) -> None:
    build(
        repo,
        first,
        lambda s: new(s, T0 + HOUR, "ours, earlier"),
        lambda s: new(s, T0 + 2 * HOUR, "theirs, later"),
    )
    repo.git("cherry-pick", "topic", expect=1)
    assert repo.resolve().status == 0
    repo.git("commit", "--quiet", "--no-edit")
    repo.git("merge", "topic", expect=1)
    result = repo.resolve()
    assert result.status == 0, result
    assert "not added again" in result.out
    finish(repo, "merge")
    bodies = sorted(d.sections[0].body for d in repo.documents().values())
    assert bodies == ["Grow.", "ours, earlier", "theirs, later"]
    assert_sound(repo)


def test_a_renumbered_draft_keeps_its_timestamps() -> None:
    early = doc(2, created=T0)
    late = doc(2, created=T0 + HOUR, updated=T0 + 5 * HOUR, sections=(("b", "B", "late"),))
    moved = decide(conflict(None, early, late, version=2)).documents[1]
    assert (moved.version, moved.created_at, moved.updated_at) == (
        3,
        late.created_at,
        late.updated_at,
    )
    assert moved.sections == late.sections and moved.metadata == late.metadata


@pytest.mark.parametrize(
    ("sides", "kept"),
    [
        (Sides.of("merge"), "ours"),
        (Sides.of("cherry-pick"), "ours"),
        (Sides.of("rebase"), "theirs"),
    ],
)
def test_both_added_at_the_same_moment_the_current_branch_keeps_the_number(
    sides: Sides, kept: str
) -> None:
    ours = doc(2, sections=(("a", "A", "ours"),))
    theirs = doc(2, sections=(("b", "B", "theirs"),))
    resolution = decide(conflict(None, ours, theirs, version=2), sides=sides)
    keeper, mover = (ours, theirs) if kept == "ours" else (theirs, ours)
    assert written(resolution) == {
        "acme/2.json": keeper.to_json_bytes(),
        "acme/3.json": renumbered(mover, 3).to_json_bytes(),
    }
    assert "the current branch keeps the number" in resolution.account


def test_the_rebased_branch_is_named_as_such() -> None:
    ours = doc(2, sections=(("a", "A", "upstream"),), created=T0)
    theirs = doc(2, sections=(("b", "B", "mine"),), created=T0 + HOUR)
    resolution = decide(conflict(None, ours, theirs, version=2), sides=Sides.of("rebase"))
    assert resolution.account == (
        "both sides added version 2; kept upstream (created earlier) "
        "and renumbered your branch 2 → 3"
    )


def test_only_drafts_are_renumbered_so_a_later_sealed_version_keeps_the_number() -> None:
    early_draft = doc(2, created=T0, sections=(("a", "A", "draft"),))
    late_approved = sealed(doc(2, created=T0 + HOUR, sections=(("b", "B", "approved"),)))
    resolution = decide(conflict(None, late_approved, early_draft, version=2))
    assert written(resolution) == {
        "acme/2.json": late_approved.to_json_bytes(),
        "acme/3.json": renumbered(early_draft, 3).to_json_bytes(),
    }
    assert "kept ours (approved; only drafts are renumbered)" in resolution.account


def test_two_different_sealed_additions_stay_a_conflict() -> None:
    ours = sealed(doc(2, created=T0, sections=(("a", "A", "x"),)))
    theirs = sealed(doc(2, created=T0 + HOUR, sections=(("b", "B", "y"),)), Status.REJECTED)
    resolution = decide(conflict(None, ours, theirs, version=2))
    assert not resolution.resolved and not resolution.documents
    assert resolution.left == (
        "both sides added version 2 and both sealed it (approved on ours, rejected on theirs); "
        "only drafts are renumbered",
    )


def test_identical_additions_are_taken() -> None:
    same = doc(2)
    resolution = decide(conflict(None, same, same, version=2))
    assert written(resolution) == {"acme/2.json": same.to_json_bytes()}
    assert resolution.account == "both sides added the same version; took it"


def test_the_same_addition_approved_on_one_side_gives_the_approved_one() -> None:
    draft = doc(2)
    approved = sealed(draft)
    for ours, theirs in ((draft, approved), (approved, draft)):
        resolution = decide(conflict(None, ours, theirs, version=2))
        assert written(resolution) == {"acme/2.json": approved.to_json_bytes()}
        assert "with the same content; kept the approved one" in resolution.account


def test_new_numbers_are_above_every_taken_version_and_each_other() -> None:
    conflicts = [
        conflict(None, doc(v, created=T0), doc(v, created=T0 + HOUR, metadata={"v": v}), v)
        for v in (3, 2)
    ]
    resolutions = plan(conflicts, {"acme": {1, 2, 3, 7}})
    assert [r.path for r in resolutions] == ["acme/2.json", "acme/3.json"]
    assert [sorted(written(r)) for r in resolutions] == [
        ["acme/2.json", "acme/8.json"],
        ["acme/3.json", "acme/9.json"],
    ]


def test_each_brief_counts_its_own_versions() -> None:
    conflicts = [
        Conflict(b, 1, None, raw(doc(brief_id=b)), raw(doc(brief_id=b, created=T0 + HOUR)))
        for b in ("beta", "acme")
    ]
    resolutions = plan(conflicts, {"acme": {1, 5}})
    assert [sorted(written(r)) for r in resolutions] == [
        ["acme/1.json", "acme/6.json"],
        ["beta/1.json", "beta/2.json"],
    ]


# -- rule 2: both sides changed one draft -------------------------------------------

BASE = doc(
    sections=(("goal", "Goal", "Grow."), ("plan", "Plan", "Ads."), ("risk", "Risks", "None.")),
    metadata={"model": "gpt", "score": 1},
    updated=T0 + HOUR,
)


def arranged(*items: str | tuple[str, str, str], **fields: object) -> StrategyDocument:
    """BASE with these sections: a key keeps BASE's section, a (key, title, body) is new."""
    sections = []
    for item in items:
        if isinstance(item, str):
            section = BASE.section(item)
            assert section is not None
            sections.append((section.key, section.title, section.body))
        else:
            sections.append(item)
    return changed(BASE, sections=tuple(sections), **fields)


def test_changes_on_one_side_apply_and_the_later_update_time_wins() -> None:
    ours = arranged(
        ("goal", "Goal", "Grow fast."),
        "plan",
        "risk",
        metadata={"model": "gpt", "score": 1, "owner": "ann"},
        updated_at=T0 + 3 * HOUR,
    )
    theirs = arranged(
        "goal",
        ("plan", "The plan", "Ads."),
        metadata={"model": "claude", "score": 1},
        updated_at=T0 + 2 * HOUR,
    )
    resolution = decide(conflict(BASE, ours, theirs))
    (merged,) = resolution.documents
    assert [(s.key, s.title, s.body) for s in merged.sections] == [
        ("goal", "Goal", "Grow fast."),
        ("plan", "The plan", "Ads."),
    ]
    assert merged.metadata == {"model": "claude", "owner": "ann", "score": 1}
    assert merged.updated_at == T0 + 3 * HOUR
    assert merged.status is Status.DRAFT and merged.content_digest is None
    assert resolution.account == (
        "merged ours (section goal, metadata key owner) with theirs "
        "(sections plan and risk, metadata key model)"
    )


def test_a_title_and_a_body_changed_on_different_sides_merge() -> None:
    ours = arranged(("goal", "Aim", "Grow."), "plan", "risk")
    theirs = arranged(("goal", "Goal", "Grow more."), "plan", "risk")
    (merged,) = decide(conflict(BASE, ours, theirs)).documents
    assert merged.section("goal") == Section(key="goal", title="Aim", body="Grow more.")


def test_the_same_section_changed_differently_on_both_sides_stays_a_conflict() -> None:
    ours = arranged(("goal", "Goal", "Grow fast."), "plan", "risk")
    theirs = arranged(("goal", "Goal", "Grow slowly."), "plan", "risk")
    resolution = decide(conflict(BASE, ours, theirs))
    assert not resolution.resolved and not resolution.documents
    assert str(resolution) == (
        "acme/1.json: left in conflict: section goal changed on both sides (its body)"
    )


def test_the_same_change_on_both_sides_is_no_conflict() -> None:
    ours = arranged(("goal", "Goal", "Grow fast."), "plan", "risk", updated_at=T0 + 2 * HOUR)
    theirs = arranged(("goal", "Goal", "Grow fast."), "plan", "risk")
    (merged,) = decide(conflict(BASE, ours, theirs)).documents
    assert merged.section("goal") == Section(key="goal", title="Goal", body="Grow fast.")


def test_every_conflict_of_a_draft_is_named() -> None:
    ours = arranged(
        ("goal", "Goal", "A"),
        ("plan", "Plan", "Ads!"),
        ("new", "New", "ours"),
        metadata={"score": 2, "model": "gpt", "tag": "x"},
        status_reason="ours",
    )
    theirs = arranged(
        ("goal", "Goal", "B"),
        "risk",
        ("new", "New", "theirs"),
        metadata={"score": 3, "tag": "y"},
        status_reason="theirs",
    )
    merge = merge_drafts(BASE, ours, theirs)
    assert merge.document is None
    assert merge.sections_in_conflict == {"goal", "plan", "new"}
    assert merge.metadata_in_conflict == {"score", "tag"}
    assert merge.reason_in_conflict
    assert merge.conflicts == (
        "the status reason changed on both sides",
        "metadata key score changed on both sides",
        "metadata key tag added on both sides with different content",
        "section goal changed on both sides (its body)",
        "section plan removed on one side and changed on the other",
        "section new added on both sides with different content",
    )


def test_metadata_one_and_one_point_zero_and_true_differ() -> None:
    base = changed(BASE, metadata={"n": 1})
    clash = merge_drafts(
        base, changed(base, metadata={"n": 1.0}), changed(base, metadata={"n": True})
    )
    assert clash.metadata_in_conflict == {"n"}
    same = merge_drafts(
        base, changed(base, metadata={"n": 1.0}), changed(base, metadata={"n": 1.0})
    )
    assert same.document is not None
    one_side = merge_drafts(base, changed(base, metadata={"n": 1.0}), base)
    assert one_side.document is not None
    assert b'"n": 1.0' in one_side.document.to_json_bytes()


def test_sections_added_on_a_side_follow_their_predecessor() -> None:
    ours = arranged("goal", ("o1", "O", ""), "plan", "risk")
    theirs = arranged(("t0", "T", ""), "goal", "plan", ("t2", "T", ""), ("t3", "T", ""), "risk")
    (merged,) = decide(conflict(BASE, ours, theirs)).documents
    assert [s.key for s in merged.sections] == ["t0", "goal", "o1", "plan", "t2", "t3", "risk"]


def test_additions_after_one_section_on_both_sides_come_in_key_order() -> None:
    ours = arranged("goal", ("zed", "Z", ""), ("ann", "A", ""), "plan", "risk")
    theirs = arranged("goal", ("bob", "B", ""), "plan", "risk")
    for a, b in ((ours, theirs), (theirs, ours)):
        (merged,) = decide(conflict(BASE, a, b)).documents
        assert [s.key for s in merged.sections] == ["goal", "bob", "zed", "ann", "plan", "risk"]


def test_a_section_both_sides_added_alike_keeps_its_place_on_both() -> None:
    x = ("x", "X", "same")
    ours = arranged("goal", x, "plan", "risk")
    theirs = arranged("goal", ("w", "W", ""), x, ("y", "Y", ""), "plan", "risk")
    for a, b in ((ours, theirs), (theirs, ours)):
        (merged,) = decide(conflict(BASE, a, b)).documents
        assert [s.key for s in merged.sections] == ["goal", "w", "x", "y", "plan", "risk"]


def test_a_section_both_sides_added_alike_in_different_places_stays_a_conflict() -> None:
    x = ("x", "X", "same")
    ours = arranged("goal", x, "plan", "risk")
    theirs = arranged("goal", "plan", x, "risk")
    merge = merge_drafts(BASE, ours, theirs)
    assert merge.document is None and merge.order_in_conflict
    assert merge.conflicts == ("section x added on both sides in different places",)


def test_an_addition_after_a_removed_section_follows_the_section_before_it() -> None:
    ours = arranged("goal", "risk")
    theirs = arranged("goal", "plan", ("new", "N", ""), "risk")
    (merged,) = decide(conflict(BASE, ours, theirs)).documents
    assert [s.key for s in merged.sections] == ["goal", "new", "risk"]


def test_a_reorder_on_one_side_applies_with_the_other_sides_edits() -> None:
    ours = arranged("risk", "goal", "plan")
    theirs = arranged(("goal", "Goal", "Grow!"), "plan", ("new", "N", ""), "risk")
    resolution = decide(conflict(BASE, ours, theirs))
    (merged,) = resolution.documents
    assert [(s.key, s.body) for s in merged.sections] == [
        ("risk", "None."),
        ("goal", "Grow!"),
        ("plan", "Ads."),
        ("new", ""),
    ]
    assert "ours (the section order)" in resolution.account


def test_two_different_reorders_stay_a_conflict() -> None:
    resolution = decide(
        conflict(BASE, arranged("risk", "goal", "plan"), arranged("goal", "risk", "plan"))
    )
    assert resolution.left == ("the sections were reordered differently on both sides",)


def test_the_status_reason_merges_three_ways() -> None:
    ours = changed(BASE, status_reason="needs numbers")
    theirs = changed(BASE, metadata={"model": "gpt", "score": 2})
    (merged,) = decide(conflict(BASE, ours, theirs)).documents
    assert merged.status_reason == "needs numbers"


def test_drafts_created_at_different_moments_are_not_one_draft() -> None:
    other = changed(BASE, created_at=T0 + HOUR, updated_at=T0 + 2 * HOUR)
    theirs = changed(BASE, metadata={})
    resolution = decide(conflict(BASE, other, theirs))
    assert resolution.left == (
        "ours holds another document at version 1 (created 2026-01-15T10:30:00Z, "
        "the base's 2026-01-15T09:30:00Z): was one renumbered?",
    )


# -- rule 3: one side sealed, the other edited --------------------------------------


@pytest.mark.parametrize("status", [Status.APPROVED, Status.REJECTED])
def test_a_sealed_version_stays_and_the_edit_becomes_the_next_draft(status: Status) -> None:
    approved = sealed(BASE, status)
    edit = changed(BASE, metadata={"model": "gpt", "score": 9}, updated_at=T0 + 5 * HOUR)
    for ours, theirs in ((approved, edit), (edit, approved)):
        resolution = decide(conflict(BASE, ours, theirs), {"acme": {1, 2, 3}})
        assert written(resolution) == {
            "acme/1.json": approved.to_json_bytes(),
            "acme/4.json": renumbered(edit, 4).to_json_bytes(),
        }
        assert resolution.account.startswith(f"kept the {status.value} version (")
        assert resolution.account.endswith(") as version 4")


def test_a_withdrawn_version_is_sealed_too() -> None:
    withdrawn = changed(sealed(BASE), status=Status.WITHDRAWN, status_reason="old")
    edit = changed(BASE, metadata={})
    resolution = decide(conflict(BASE, edit, withdrawn))
    assert sorted(written(resolution)) == ["acme/1.json", "acme/2.json"]
    assert resolution.documents[0] == withdrawn


def test_an_edit_that_changed_no_content_gives_way_to_the_seal() -> None:
    approved = sealed(BASE)
    touched = changed(BASE, updated_at=T0 + 7 * HOUR, status_reason="looked at it")
    resolution = decide(conflict(BASE, touched, approved))
    assert written(resolution) == {"acme/1.json": approved.to_json_bytes()}
    assert resolution.account == "kept the approved version (theirs); ours changed no content"


def test_content_changed_and_sealed_on_one_side_and_edited_on_the_other_stays_a_conflict() -> None:
    approved = sealed(changed(BASE, metadata={"model": "x"}))
    edit = changed(BASE, metadata={"model": "y"})
    resolution = decide(conflict(BASE, approved, edit))
    assert resolution.left == ("ours changed version 1 and approved it, while theirs edited it",)


def test_sealed_on_both_sides_differently_stays_a_conflict() -> None:
    resolution = decide(conflict(BASE, sealed(BASE), sealed(BASE, Status.REJECTED)))
    assert resolution.left == (
        "version 1 was sealed on both sides (approved on ours, rejected on theirs)",
    )
    later = changed(sealed(BASE), updated_at=T0 + 9 * HOUR)
    resolution = decide(conflict(BASE, sealed(BASE), later))
    assert resolution.left == (
        "version 1 was sealed on both sides (approved on both sides, differently)",
    )


def test_a_version_sealed_at_the_base_changed_on_both_sides_stays_a_conflict() -> None:
    base = sealed(BASE)
    withdrawn = changed(base, status=Status.WITHDRAWN, status_reason="a")
    other = changed(base, status=Status.WITHDRAWN, status_reason="b")
    resolution = decide(conflict(base, withdrawn, other))
    assert resolution.left == (
        "version 1 is approved at the base and both sides changed its status differently "
        "(ours: withdrawn at 2026-01-15T11:30:00Z, reason 'a'; "
        "theirs: withdrawn at 2026-01-15T11:30:00Z, reason 'b')",
    )


# -- rule 4 and deletions --------------------------------------------------------------


def test_a_draft_deleted_on_one_side_and_edited_on_the_other_stays_a_conflict() -> None:
    edit = changed(BASE, metadata={})
    assert decide(conflict(BASE, None, edit)).left == (
        "the draft was deleted on ours and edited on theirs",
    )
    assert decide(conflict(BASE, edit, None)).left == (
        "the draft was deleted on theirs and edited on ours",
    )


def test_a_draft_deleted_on_one_side_and_approved_on_the_other_stays_a_conflict() -> None:
    assert decide(conflict(BASE, sealed(BASE), None)).left == (
        "the draft was deleted on theirs and approved on ours",
    )


def test_a_sealed_version_deleted_on_one_side_stays_a_conflict() -> None:
    base = sealed(BASE)
    withdrawn = changed(base, status=Status.WITHDRAWN)
    assert decide(conflict(base, None, withdrawn)).left == (
        "version 1 is approved at the base and ours deleted it: "
        "a sealed version is never changed or deleted, only withdrawn",
    )


def test_a_sealed_version_is_never_taken_back_to_draft_or_changed() -> None:
    base = sealed(BASE)
    for side, change in (
        (changed(BASE, updated_at=T0 + 9 * HOUR), "put it back to draft"),
        (sealed(changed(BASE, metadata={})), "changed its sealed content"),
        (changed(base, status=Status.REJECTED), "made it rejected"),
    ):
        for ours, theirs, name in (
            (base, side, "theirs"),
            (side, base, "ours"),
            (side, side, "ours"),
        ):
            (reason,) = decide(conflict(base, ours, theirs)).left
            assert reason.startswith(f"version 1 is approved at the base and {name} {change}")


def test_a_withdrawal_of_a_version_sealed_at_the_base_is_taken() -> None:
    base = sealed(BASE)
    withdrawn = changed(base, status=Status.WITHDRAWN, status_reason="old")
    for ours, theirs in ((base, withdrawn), (withdrawn, base)):
        assert written(decide(conflict(base, ours, theirs))) == {
            "acme/1.json": withdrawn.to_json_bytes()
        }


def test_a_deletion_wins_over_no_change() -> None:
    resolution = decide(conflict(BASE, None, BASE))
    assert resolution.resolved and resolution.remove and not resolution.documents
    assert resolution.paths == ("acme/1.json",)


# -- stages that are not documents --------------------------------------------------


def test_a_stage_that_is_not_a_valid_document_stays_a_conflict() -> None:
    broken = b"<<<<<<< ours\n{}\n"
    c = Conflict("acme", 1, raw(BASE), broken, raw(changed(BASE, metadata={})))
    (reason,) = decide(c).left
    assert reason.startswith("ours is not a valid document: ")
    assert "merge-conflict marker at line 1" in reason


def test_a_stage_whose_seal_is_broken_stays_a_conflict() -> None:
    data = sealed(BASE).to_json_bytes().replace(b"Grow.", b"Shrink.")
    c = Conflict("acme", 1, raw(BASE), data, raw(changed(BASE, metadata={})))
    (reason,) = decide(c).left
    assert "content changed after it was sealed" in reason


def test_a_stage_at_the_wrong_path_stays_a_conflict() -> None:
    c = Conflict("acme", 2, None, raw(doc(3)), raw(doc(2)))
    assert decide(c).left == (
        "ours holds version 3 of brief 'acme', which belongs at acme/3.json; "
        "move it there or fix its fields",
    )


def test_a_stage_is_held_to_the_rules_of_a_stored_file() -> None:
    repeated = raw(changed(BASE, metadata={}))
    assert repeated is not None
    repeated = repeated.replace(
        b'  "status": "draft",\n', b'  "status": "draft",\n  "status": "draft",\n'
    )
    c = Conflict("acme", 1, raw(BASE), repeated, raw(changed(BASE, status_reason="x")))
    (reason,) = decide(c).left
    assert reason.startswith("ours is not a valid document: the key 'status' appears twice")


def test_a_format_one_base_is_read_for_comparison() -> None:
    old_base = BASE.to_json_bytes().replace(b',\n  "content_digest": null', b"")
    assert old_base != BASE.to_json_bytes()
    ours = changed(BASE, metadata={})
    theirs = changed(BASE, status_reason="x")
    c = Conflict("acme", 1, old_base, raw(ours), raw(theirs))
    (merged,) = decide(c).documents
    assert merged.metadata == {} and merged.status_reason == "x"


# -- the sides do not matter ---------------------------------------------------------

SIDE_CASES = {
    "added": conflict(None, doc(2, created=T0), doc(2, created=T0 + HOUR, metadata={}), 2),
    "added at once": conflict(None, doc(2), doc(2, metadata={}), 2),
    "merged": conflict(BASE, changed(BASE, status_reason="r"), changed(BASE, metadata={})),
    "sealed": conflict(BASE, sealed(BASE), changed(BASE, metadata={})),
    "deleted": conflict(BASE, None, changed(BASE, metadata={})),
}


@pytest.mark.parametrize("name", sorted(SIDE_CASES))
def test_swapping_the_sides_gives_the_same_files(name: str) -> None:
    c = SIDE_CASES[name]
    taken = {"acme": {1, 2}}
    # The tie-break follows the current branch, wherever it is.
    straight = decide(c, taken, Sides.of("merge"))
    swapped = decide(c.swapped(), taken, Sides.of("merge").swapped())
    assert written(straight) == written(swapped)
    assert straight.left == swapped.left or name == "deleted"
    assert bool(straight.left) == bool(swapped.left)
    if name != "added at once":
        assert written(decide(c.swapped(), taken, Sides.of("merge"))) == written(straight)


# -- reprs --------------------------------------------------------------------------


def test_the_result_types_say_what_they_hold() -> None:
    c = conflict(None, doc(2), doc(2, created=T0 + HOUR, metadata={}), 2)
    assert repr(c).startswith("Conflict('acme', 2, base=None, ours=<")
    assert repr(decide(c)) == "<Resolution acme/2.json writes acme/2.json, acme/3.json>"
    left = decide(conflict(BASE, None, changed(BASE, metadata={})))
    assert (
        repr(left)
        == "<Resolution acme/1.json left: the draft was deleted on ours and edited on theirs>"
    )
    assert repr(decide(conflict(BASE, None, BASE))) == "<Resolution acme/1.json removed>"
    merge = merge_drafts(BASE, changed(BASE, status_reason="r"), changed(BASE, metadata={}))
    assert repr(merge) == (
        "<DraftMerge of acme v1: ours status reason; theirs metadata keys model and score>"
    )
    report = ResolveReport(Path("/d"), "merge", (decide(c), left), ("README.md",), dry_run=True)
    assert repr(report) == "<ResolveReport merge in '/d': 1 resolved, 1 left, 1 elsewhere, dry run>"
    assert (
        repr(Sides.of("rebase"))
        == "Sides(ours='upstream', theirs='your branch', ours_is_current=False)"
    )


# -- in real git repositories -------------------------------------------------------


@pytest.fixture(autouse=True)
def git_environment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """git with no configuration but a name, a home of its own and no editor."""
    with git_env(tmp_path_factory.mktemp("home")):
        yield


@contextlib.contextmanager
def git_env(home: Path) -> Iterator[None]:
    """Run git as a fresh user would in CI: no system or global configuration."""
    with pytest.MonkeyPatch.context() as patch:
        for name in ("AUTHOR", "COMMITTER"):
            patch.setenv(f"GIT_{name}_NAME", "Test")
            patch.setenv(f"GIT_{name}_EMAIL", "test@example.com")
        patch.setenv("HOME", str(home))
        patch.setenv("GIT_CONFIG_NOSYSTEM", "1")
        patch.setenv("GIT_EDITOR", "true")
        patch.setenv("GIT_MERGE_AUTOEDIT", "no")
        for name in ("GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "STRATEGYSTORE_DIR"):
            patch.delenv(name, raising=False)
        yield


@dataclass
class Ran:
    """What a command line run printed and returned."""

    status: int
    out: str
    err: str


class GitRepo:
    """A git repository with the data directory ``data/`` and the branches main and topic."""

    def __init__(self, top: Path) -> None:
        self.top = top
        self.data = top / "data"
        top.mkdir(parents=True)
        self.git("init", "--quiet", "-b", "main")
        FileStore(self.data).close()
        attributes = self.data / ".gitattributes"
        if not attributes.exists() or b"-merge" not in attributes.read_bytes():
            attributes.write_bytes(b"*.json text eol=lf -merge\n")
        self.commit("start")

    def __repr__(self) -> str:
        return f"GitRepo({str(self.top)!r})"

    def git(self, *args: str, expect: int | None = 0) -> str:
        done = subprocess.run(
            ["git", *args], cwd=self.top, capture_output=True, text=True, check=False
        )
        if expect is not None and done.returncode != expect:
            raise AssertionError(
                f"git {' '.join(args)}: {done.returncode}\n{done.stdout}{done.stderr}"
            )
        return done.stdout

    def store(self) -> FileStore:
        return FileStore(self.data, create=False, durable=False)

    def commit(self, message: str) -> None:
        self.git("add", "--all")
        self.git("commit", "--quiet", "--allow-empty", "-m", message)

    def change(self, message: str, edit: Callable[[FileStore], object]) -> None:
        with self.store() as store:
            edit(store)
        self.commit(message)

    def files(self) -> dict[str, bytes]:
        """Every file of the data directory but lock files, by path."""
        found = {}
        for path in sorted(self.data.rglob("*")):
            relative = path.relative_to(self.data).as_posix()
            if path.is_file() and not relative.startswith(".locks/"):
                found[relative] = path.read_bytes()
        return found

    def documents(self) -> dict[str, StrategyDocument]:
        return {
            name: decode_document_file(data)
            for name, data in self.files().items()
            if name.endswith(".json") and "/" in name
        }

    def unmerged(self) -> str:
        return self.git("ls-files", "--unmerged")

    def resolve(self, *args: str) -> Ran:
        return run_cli("--dir", str(self.data), "resolve", *args)

    def in_progress(self) -> bool:
        git_dir = self.top / ".git"
        return any(
            (git_dir / name).exists()
            for name in ("MERGE_HEAD", "CHERRY_PICK_HEAD", "rebase-merge", "rebase-apply")
        )


def run_cli(*args: str) -> Ran:
    """``main(args)`` in this process, its output captured."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        status = main(list(args))
    return Ran(status, out.getvalue(), err.getvalue())


Edit = Callable[[FileStore], object]


def build(repo: GitRepo, base: Edit, ours: Edit, theirs: Edit) -> None:
    """``base`` on main, then ``theirs`` on a new branch topic and ``ours`` on main."""
    repo.change("base", base)
    repo.git("branch", "topic")
    repo.git("checkout", "--quiet", "topic")
    repo.change("theirs", theirs)
    repo.git("checkout", "--quiet", "main")
    repo.change("ours", ours)


OPERATIONS = ["merge", "rebase", "cherry-pick"]


def start(repo: GitRepo, operation: str) -> None:
    """Bring topic and main together with ``operation``, which stops at a conflict."""
    if operation == "merge":
        repo.git("merge", "topic", expect=1)
    elif operation == "rebase":
        repo.git("checkout", "--quiet", "topic")
        repo.git("rebase", "main", expect=None)
    else:
        repo.git("cherry-pick", "topic", expect=1)
    assert repo.in_progress() and repo.unmerged()


def finish(repo: GitRepo, operation: str) -> None:
    """Complete ``operation`` after resolve; it must succeed."""
    if operation == "merge":
        repo.git("commit", "--no-edit", "--quiet")
    elif operation == "cherry-pick" and not repo.git("diff", "--cached", "--name-only", "HEAD"):
        repo.git("cherry-pick", "--skip")  # the resolution is what the branch holds already
    else:
        repo.git(operation, "--continue")
    assert not repo.in_progress()
    assert repo.git("status", "--porcelain", "--untracked-files=all") == ""


def assert_sound(repo: GitRepo) -> None:
    """Every file is canonical, versions are contiguous and ``check`` passes."""
    by_brief: dict[str, list[int]] = {}
    for name, document in repo.documents().items():
        assert (repo.data / name).read_bytes() == document.to_json_bytes(), name
        by_brief.setdefault(document.brief_id, []).append(document.version)
    for versions in by_brief.values():
        assert sorted(versions) == list(range(1, len(versions) + 1))
    result = run_cli("--dir", str(repo.data), "check")
    assert result.status == 0, result.out + result.err


@pytest.fixture
def repo(tmp_path: Path) -> GitRepo:
    return GitRepo(tmp_path / "repo")


def new(store: FileStore, at: datetime, body: str) -> None:
    store.create_next("acme", [Section(key="goal", title="Goal", body=body)], now=at)


def edit_goal(body: str, at: datetime) -> Edit:
    def edit(store: FileStore) -> None:
        current = store.get_strategy("acme", 1)
        assert current is not None
        store.save(changed(current, sections=(("goal", "Goal", body),), updated_at=at))

    return edit


def set_metadata(at: datetime, **values: object) -> Edit:
    def edit(store: FileStore) -> None:
        current = store.get_strategy("acme", 1)
        assert current is not None
        store.save(changed(current, metadata={**current.metadata, **values}, updated_at=at))

    return edit


def resave(store: FileStore, brief_id: str, version: int, **fields: object) -> None:
    """Save a stored draft again with ``fields`` changed."""
    current = store.get_strategy(brief_id, version)
    assert current is not None
    store.save(changed(current, **fields))


def first(store: FileStore) -> None:
    new(store, T0, "Grow.")


@pytest.mark.parametrize("operation", OPERATIONS)
def test_after_each_operation_both_added_versions_are_kept(repo: GitRepo, operation: str) -> None:
    build(
        repo,
        first,
        lambda s: new(s, T0 + 2 * HOUR, "ours, later"),
        lambda s: new(s, T0 + HOUR, "theirs, earlier"),
    )
    start(repo, operation)
    result = repo.resolve()
    assert result.status == 0, result
    upstream, mine = ("upstream", "your branch") if operation == "rebase" else ("ours", "theirs")
    assert result.out.splitlines()[0] == (
        f"acme/2.json: both sides added version 2; kept {mine} (created earlier) "
        f"and renumbered {upstream} 2 → 3"
    )
    assert repo.unmerged() == ""
    finish(repo, operation)
    docs = repo.documents()
    assert [docs[f"acme/{v}.json"].sections[0].body for v in (1, 2, 3)] == [
        "Grow.",
        "theirs, earlier",
        "ours, later",
    ]
    assert docs["acme/3.json"].created_at == T0 + 2 * HOUR
    assert_sound(repo)


@pytest.mark.parametrize("operation", OPERATIONS)
def test_after_each_operation_the_current_branch_keeps_a_number_added_at_once(
    repo: GitRepo, operation: str
) -> None:
    build(repo, first, lambda s: new(s, T0 + HOUR, "main"), lambda s: new(s, T0 + HOUR, "topic"))
    start(repo, operation)
    assert repo.resolve().status == 0
    finish(repo, operation)
    docs = repo.documents()
    current, other = ("topic", "main") if operation == "rebase" else ("main", "topic")
    assert docs["acme/2.json"].sections[0].body == current
    assert docs["acme/3.json"].sections[0].body == other


@pytest.mark.parametrize("operation", OPERATIONS)
def test_after_each_operation_a_draft_changed_on_both_sides_is_merged(
    repo: GitRepo, operation: str
) -> None:
    build(repo, first, set_metadata(T0 + 2 * HOUR, owner="ann"), edit_goal("Grow fast.", T0 + HOUR))
    start(repo, operation)
    result = repo.resolve()
    assert result.status == 0
    assert result.out.splitlines()[0].startswith("acme/1.json: merged ")
    finish(repo, operation)
    (merged,) = repo.documents().values()
    assert merged.sections[0].body == "Grow fast."
    assert merged.metadata == {"owner": "ann"}
    assert merged.updated_at == T0 + 2 * HOUR
    assert_sound(repo)


@pytest.mark.parametrize("operation", OPERATIONS)
def test_after_each_operation_an_approval_stays_and_the_edit_becomes_a_new_draft(
    repo: GitRepo, operation: str
) -> None:
    build(
        repo,
        first,
        lambda s: s.approve("acme", 1, now=T0 + HOUR),
        edit_goal("Grow fast.", T0 + 2 * HOUR),
    )
    start(repo, operation)
    result = repo.resolve()
    assert result.status == 0
    assert result.out.splitlines()[0].startswith(
        "acme/1.json: kept the approved version (ours"
        if operation != "rebase"
        else "acme/1.json: kept the approved version (upstream"
    )
    assert result.out.splitlines()[0].endswith("as version 2")
    finish(repo, operation)
    docs = repo.documents()
    approved = docs["acme/1.json"]
    assert approved.status is Status.APPROVED and approved.sections[0].body == "Grow."
    edit = docs["acme/2.json"]
    assert edit.status is Status.DRAFT and edit.sections[0].body == "Grow fast."
    assert (edit.created_at, edit.updated_at) == (T0, T0 + 2 * HOUR)
    assert_sound(repo)


@pytest.mark.parametrize("operation", OPERATIONS)
def test_after_each_operation_a_draft_deleted_and_edited_stays_in_conflict(
    repo: GitRepo, operation: str
) -> None:
    def second(store: FileStore) -> None:
        first(store)
        new(store, T0 + HOUR, "second")

    build(
        repo,
        second,
        lambda s: s.delete("acme", 2),
        lambda s: resave(s, "acme", 2, metadata={"x": 1}),
    )
    start(repo, operation)
    before = (repo.files(), repo.unmerged())
    result = repo.resolve()
    assert result.status == 1
    deleter, editor = ("upstream", "your branch") if operation == "rebase" else ("ours", "theirs")
    assert result.out.splitlines() == [
        f"acme/2.json: left in conflict: the draft was deleted on {deleter} and edited on {editor}",
        "resolved 0 documents; 1 document left in conflict",
    ]
    assert (repo.files(), repo.unmerged()) == before


def test_outside_an_operation_it_refuses(repo: GitRepo) -> None:
    result = repo.resolve()
    assert (result.status, result.out) == (2, "")
    assert result.err == (
        f"strategystore: no merge, rebase, cherry-pick or revert is in progress in {repo.top}; "
        "there is nothing to resolve\n"
    )


def test_outside_a_git_work_tree_it_refuses(tmp_path: Path) -> None:
    FileStore(tmp_path / "data").close()
    result = run_cli("--dir", str(tmp_path / "data"), "resolve")
    assert result.status == 2
    assert result.err.startswith("strategystore: ")
    assert "is not in a git work tree" in result.err and result.err.count("\n") == 1
    missing = run_cli("--dir", str(tmp_path / "nowhere"), "resolve")
    assert missing.status == 1
    assert missing.err == (
        f"strategystore: there is no data directory at {tmp_path / 'nowhere'}; "
        "create one with `strategystore init`\n"
    )


def test_without_git_it_says_so_in_one_line(repo: GitRepo, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(repo.top / "no-bin"))
    result = repo.resolve()
    assert (result.status, result.err) == (
        1,
        "strategystore: git is not installed (or not on PATH)\n",
    )


def test_conflicts_outside_the_documents_are_named_and_left(repo: GitRepo) -> None:
    def readme(text: str) -> Edit:
        return lambda _store: (repo.top / "README.md").write_text(text)

    build(repo, readme("base\n"), readme("ours\n"), readme("theirs\n"))
    start(repo, "merge")
    result = repo.resolve()
    assert result.status == 0
    assert result.out.splitlines() == [
        "not a document of data, left to you: README.md",
        f"no conflicted document in {repo.data} (merge in progress)",
    ]
    assert "README.md" in repo.unmerged()


def test_what_is_resolved_is_staged_and_what_is_left_stays(repo: GitRepo) -> None:
    def base(store: FileStore) -> None:
        first(store)
        store.create_next("beta", [Section(key="goal", title="Goal", body="b")], now=T0)
        (repo.top / "README.md").write_text("base\n")

    def ours(store: FileStore) -> None:
        edit_goal("ours", T0 + HOUR)(store)
        new(store, T0 + 3 * HOUR, "ours v2")
        resave(store, "beta", 1, metadata={"o": 1})
        (repo.top / "README.md").write_text("ours\n")

    def theirs(store: FileStore) -> None:
        edit_goal("theirs", T0 + HOUR)(store)
        new(store, T0 + 2 * HOUR, "theirs v2")
        resave(store, "beta", 1, metadata={"t": 1})
        (repo.top / "README.md").write_text("theirs\n")

    build(repo, base, ours, theirs)
    start(repo, "merge")
    left_bytes = (repo.data / "acme" / "1.json").read_bytes()
    result = repo.resolve()
    assert result.status == 1
    assert result.out.splitlines() == [
        "acme/1.json: left in conflict: section goal changed on both sides (its body)",
        "acme/2.json: both sides added version 2; kept theirs (created earlier) "
        "and renumbered ours 2 → 3",
        "beta/1.json: merged ours (metadata key o) with theirs (metadata key t)",
        "not a document of data, left to you: README.md",
        "resolved 2 documents; 1 document left in conflict",
    ]
    unmerged = {line.split("\t")[1] for line in repo.unmerged().splitlines()}
    assert unmerged == {"data/acme/1.json", "README.md"}
    assert (repo.data / "acme" / "1.json").read_bytes() == left_bytes
    staged = repo.git("diff", "--cached", "--name-status", "--", "data/acme/3.json", "data/beta")
    assert staged.splitlines() == ["A\tdata/acme/3.json", "M\tdata/beta/1.json"]
    assert repo.git("status", "--porcelain", "--", "data/acme/2.json") == "M  data/acme/2.json\n"


def test_a_dry_run_writes_and_stages_nothing(repo: GitRepo) -> None:
    build(
        repo,
        first,
        lambda s: new(s, T0 + 2 * HOUR, "ours"),
        lambda s: new(s, T0 + HOUR, "theirs"),
    )
    start(repo, "merge")
    before = (repo.files(), repo.git("ls-files", "--stage"), repo.git("status", "--porcelain"))
    result = repo.resolve("--dry-run")
    assert result.status == 0
    assert result.out.splitlines()[1:] == [
        "would resolve 1 document",
        "dry run: nothing was written or staged",
    ]
    after = (repo.files(), repo.git("ls-files", "--stage"), repo.git("status", "--porcelain"))
    assert after == before
    assert repo.resolve().out.splitlines()[0] == result.out.splitlines()[0]


def test_a_dry_run_exits_one_when_something_would_be_left(repo: GitRepo) -> None:
    build(repo, first, edit_goal("ours", T0 + HOUR), edit_goal("theirs", T0 + HOUR))
    start(repo, "merge")
    before = repo.git("ls-files", "--stage")
    result = repo.resolve("--dry-run")
    assert result.status == 1
    assert "would resolve 0 documents; 1 document left in conflict" in result.out
    assert repo.git("ls-files", "--stage") == before


SWAPPABLE: dict[str, tuple[Edit, Edit, Edit]] = {
    "added": (first, lambda s: new(s, T0 + 2 * HOUR, "a"), lambda s: new(s, T0 + HOUR, "b")),
    "merged": (first, set_metadata(T0 + 2 * HOUR, owner="ann"), edit_goal("Grow!", T0 + HOUR)),
    "sealed": (first, lambda s: s.approve("acme", 1, now=T0 + HOUR), edit_goal("x", T0 + HOUR)),
}


@pytest.mark.parametrize("name", sorted(SWAPPABLE))
def test_merging_either_way_gives_the_same_files(tmp_path: Path, name: str) -> None:
    base, one, other = SWAPPABLE[name]
    results = []
    for first_side, second_side, where in ((one, other, "a"), (other, one, "b")):
        repo = GitRepo(tmp_path / where)
        build(repo, base, first_side, second_side)
        start(repo, "merge")
        assert repo.resolve().status == 0
        finish(repo, "merge")
        results.append(repo.files())
    assert results[0] == results[1]


def test_the_installed_command_resolves_and_check_passes(repo: GitRepo) -> None:
    build(
        repo,
        first,
        lambda s: new(s, T0 + 2 * HOUR, "ours"),
        lambda s: new(s, T0 + HOUR, "theirs"),
    )
    start(repo, "merge")
    done = run_module("--dir", "data", "resolve", cwd=repo.top)
    assert (done.returncode, done.stderr) == (0, "")
    assert "renumbered ours 2 → 3" in done.stdout
    finish(repo, "merge")
    checked = run_module("--dir", "data", "check", cwd=repo.top)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_the_library_call_reports_what_it_did(repo: GitRepo) -> None:
    build(repo, first, edit_goal("ours", T0 + HOUR), set_metadata(T0 + HOUR, k=1))
    start(repo, "cherry-pick")
    report = resolve_work_tree(repo.data)
    assert report.operation == "cherry-pick" and not report.left and not report.dry_run
    assert [r.path for r in report.resolutions] == ["acme/1.json"]


def test_a_new_number_skips_versions_only_in_the_work_tree_or_only_in_the_index(
    repo: GitRepo,
) -> None:
    build(
        repo,
        first,
        lambda s: new(s, T0 + 2 * HOUR, "ours"),
        lambda s: new(s, T0 + HOUR, "theirs"),
    )
    repo.change("three", lambda s: new(s, T0 + 3 * HOUR, "three"))
    start(repo, "merge")
    (repo.data / "acme" / "3.json").unlink()  # still in the index
    assert "renumbered ours 2 → 4" in repo.resolve("--dry-run").out
    untracked = doc(4, created=T0 + 4 * HOUR).to_json_bytes()
    (repo.data / "acme" / "4.json").write_bytes(untracked)
    assert "renumbered ours 2 → 5" in repo.resolve().out
    assert (repo.data / "acme" / "4.json").read_bytes() == untracked


def test_a_deletion_wins_when_the_other_side_only_rewrote_the_same_document(
    repo: GitRepo,
) -> None:
    def hand_laid(store: FileStore) -> None:
        first(store)
        new(store, T0 + HOUR, "second")
        path = repo.data / "acme" / "2.json"
        path.write_bytes(path.read_bytes().replace(b"  ", b" "))

    def canonical(store: FileStore) -> None:
        path = repo.data / "acme" / "2.json"
        path.write_bytes(decode_document_file(path.read_bytes()).to_json_bytes())

    build(repo, hand_laid, lambda s: s.delete("acme", 2), canonical)
    start(repo, "merge")
    result = repo.resolve()
    assert result.out.splitlines()[0] == ("acme/2.json: deleted on ours; theirs had not changed it")
    assert result.status == 0
    assert not (repo.data / "acme" / "2.json").exists()
    finish(repo, "merge")
    assert sorted(repo.documents()) == ["acme/1.json"]


def test_a_stage_git_cannot_read_stays_a_conflict(
    repo: GitRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    build(repo, first, edit_goal("ours", T0 + HOUR), set_metadata(T0 + HOUR, k=1))
    start(repo, "merge")

    def nothing(top: Path, ids: Iterable[str]) -> Iterator[tuple[str, bytes | None]]:
        return ((object_id, None) for object_id in ids)

    monkeypatch.setattr(_git, "read_objects", nothing)
    result = repo.resolve()
    assert result.status == 1
    assert result.out.splitlines()[0] == (
        "acme/1.json: left in conflict: the base cannot be read from git; "
        "ours cannot be read from git; theirs cannot be read from git"
    )


def test_a_later_commit_editing_a_draft_renumbered_earlier_in_a_rebase_is_left_named(
    repo: GitRepo,
) -> None:
    repo.change("base", first)
    repo.git("checkout", "--quiet", "-b", "topic")
    repo.change("add", lambda s: new(s, T0 + 2 * HOUR, "mine"))
    repo.change("edit", lambda s: resave(s, "acme", 2, metadata={"x": 1}))
    repo.git("checkout", "--quiet", "main")
    repo.change("theirs", lambda s: new(s, T0 + HOUR, "upstream"))
    repo.git("checkout", "--quiet", "topic")
    repo.git("rebase", "main", expect=1)
    assert repo.resolve().status == 0
    repo.git("rebase", "--continue", expect=1)  # the edit of version 2 meets upstream's
    result = repo.resolve()
    assert result.status == 1
    assert result.out.splitlines()[0] == (
        "acme/2.json: left in conflict: upstream holds another document at version 2 "
        "(created 2026-01-15T10:30:00Z, the base's 2026-01-15T11:30:00Z): was one renumbered?"
    )


def test_a_failure_to_stage_is_one_line_naming_what_to_stage(repo: GitRepo) -> None:
    build(repo, first, edit_goal("ours", T0 + HOUR), set_metadata(T0 + HOUR, k=1))
    start(repo, "merge")
    (repo.top / ".git" / "index.lock").write_bytes(b"")
    result = repo.resolve()
    assert (result.status, result.out) == (1, "")
    assert result.err.count("\n") == 1 and "index.lock" in result.err
    assert result.err.endswith(
        "nothing was staged and the new versions were removed: "
        "run `strategystore resolve` again once git can stage\n"
    )
    # Once git can stage again, running it again finishes the job.
    (repo.top / ".git" / "index.lock").unlink()
    assert repo.resolve().status == 0
    assert not repo.unmerged()


def test_a_failed_run_again_after_a_renumbering_adds_no_duplicate(repo: GitRepo) -> None:
    build(
        repo,
        first,
        lambda s: new(s, T0 + 2 * HOUR, "ours, later"),
        lambda s: new(s, T0 + HOUR, "theirs, earlier"),
    )
    start(repo, "merge")
    (repo.top / ".git" / "index.lock").write_bytes(b"")
    assert repo.resolve().status == 1
    assert not (repo.data / "acme" / "3.json").exists()  # taken back
    (repo.top / ".git" / "index.lock").unlink()
    assert repo.resolve().status == 0
    finish(repo, "merge")
    assert sorted(repo.documents()) == ["acme/1.json", "acme/2.json", "acme/3.json"]
    assert_sound(repo)


def test_a_resolution_by_hand_not_yet_staged_is_never_overwritten(repo: GitRepo) -> None:
    build(repo, first, edit_goal("ours", T0 + HOUR), set_metadata(T0 + HOUR, k=1))
    start(repo, "merge")
    path = repo.data / "acme" / "1.json"
    by_hand = path.read_bytes().replace(b'"body": "ours"', b'"body": "HAND WRITTEN"')
    path.write_bytes(by_hand)
    result = repo.resolve()
    assert result.status == 1
    assert "acme/1.json: left in conflict: the file was changed since git left it" in result.out
    assert path.read_bytes() == by_hand
    # Taking one side with git is what git left: resolve may go on from there.
    repo.git("checkout", "--ours", "--", "data/acme/1.json")
    assert repo.resolve().status == 0


def test_a_path_with_glob_characters_stages_only_its_own_files(tmp_path: Path) -> None:
    repo = GitRepo(tmp_path / "repo")
    other = FileStore(repo.top / "d1")
    other.create_next("acme")
    other.close()
    target = repo.top / "d[12]"
    FileStore(target).close()
    repo.commit("two stores")
    saved = repo.data
    repo.data = target
    build(repo, first, edit_goal("ours", T0 + HOUR), set_metadata(T0 + HOUR, k=1))
    start(repo, "merge")
    # An unrelated change in the other store, not to be staged by resolve.
    with FileStore(repo.top / "d1") as elsewhere:
        elsewhere.save(changed(elsewhere.get_strategy("acme", 1), metadata={"n": 1}))  # type: ignore[arg-type]
    assert repo.resolve().status == 0
    repo.data = saved
    assert "d1/" not in repo.git("diff", "--cached", "--name-only")
    assert (repo.top / "d1" / "acme" / "1.json").exists()


def test_a_conflict_outside_any_operation_is_named_by_check(repo: GitRepo) -> None:
    build(repo, first, edit_goal("ours", T0 + HOUR), set_metadata(T0 + HOUR, k=1))
    repo.git("merge", "topic", expect=1)
    (repo.top / ".git" / "MERGE_HEAD").unlink()  # as a `git stash pop` leaves the index
    refused = repo.resolve()
    assert refused.status == 2 and "git holds 1 path in conflict all the same" in refused.err
    checked = run_cli("--dir", str(repo.data), "check")
    assert checked.status == 1
    assert "unresolved: git holds this document in conflict, and the file" in checked.out


def test_a_directory_that_is_no_data_directory_is_refused(repo: GitRepo) -> None:
    build(repo, first, edit_goal("ours", T0 + HOUR), set_metadata(T0 + HOUR, k=1))
    start(repo, "merge")
    result = run_cli("--dir", str(repo.top), "resolve")
    assert result.status == 1
    assert "is not a data directory" in result.err


def test_a_version_a_writer_adds_while_resolving_is_never_written_over(
    repo: GitRepo, monkeypatch: pytest.MonkeyPatch
) -> None:
    build(
        repo,
        first,
        lambda s: new(s, T0 + 2 * HOUR, "ours, later"),
        lambda s: new(s, T0 + HOUR, "theirs, earlier"),
    )
    start(repo, "merge")
    real = resolve_module._taken_versions
    worker = doc(3, created=T0 + 3 * HOUR, sections=(("w", "W", "the worker's"),))

    def numbers_then_a_worker_writes(*args: object) -> dict[str, set[int]]:
        taken = real(*args)  # type: ignore[arg-type]
        (repo.data / "acme" / "3.json").write_bytes(worker.to_json_bytes())
        return taken

    monkeypatch.setattr(resolve_module, "_taken_versions", numbers_then_a_worker_writes)
    result = repo.resolve()
    assert result.status == 2
    assert "acme/3.json appeared while resolving" in result.err
    assert (repo.data / "acme" / "3.json").read_bytes() == worker.to_json_bytes()
    assert repo.unmerged()  # nothing was staged
