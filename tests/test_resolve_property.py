"""Properties of ``resolve``: the pure rules on many random conflicts, then a few in real git.

Whatever the two sides did, every change either made is in the result or the
document is left in conflict with the clash named; no sealed version changes;
the result is the same whichever side is ours (but for the tie-break); and
after a real merge, rebase or cherry-pick the versions of each brief stay
unique and contiguous.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pydantic_core
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from pydantic import JsonValue

from strategystore import FileStore, Status, StrategyDocument, diff
from strategystore._layout import decode_document_file
from strategystore.models import seal_of
from strategystore.resolve import Conflict, DraftMerge, Resolution, Sides, merge_drafts, plan
from tests.conftest import T0
from tests.test_resolve import (
    HOUR,
    GitRepo,
    changed,
    doc,
    finish,
    git_env,
    raw,
    run_cli,
    sealed,
    written,
)

SECTION_KEYS = ["a", "b", "c", "d", "e", "f"]
METADATA_KEYS = ["k1", "k2", "k3", "k4"]
TEXT = st.sampled_from(["", "x", "y", "z"])
VALUES: st.SearchStrategy[JsonValue] = st.sampled_from(
    [1, 1.0, True, "x", "y", [1], {"z": 1}, None]
)


# -- random documents and random edits --------------------------------------------


@st.composite
def drafts(draw: st.DrawFn, created: datetime = T0, version: int = 1) -> StrategyDocument:
    """A random draft of acme."""
    keys = draw(st.lists(st.sampled_from(SECTION_KEYS[:4]), unique=True, max_size=4))
    return doc(
        version,
        sections=tuple((k, draw(TEXT), draw(TEXT)) for k in keys),
        metadata=draw(st.dictionaries(st.sampled_from(METADATA_KEYS[:3]), VALUES, max_size=3)),
        reason=draw(st.sampled_from([None, "r"])),
        created=created,
        updated=created + HOUR,
    )


@st.composite
def edits(draw: st.DrawFn, base: StrategyDocument) -> StrategyDocument:
    """``base`` edited as a person might: sections and metadata changed, added, removed, moved."""
    sections: list[tuple[str, str, str]] = []
    for s in base.sections:
        what = draw(st.sampled_from(["keep", "keep", "title", "body", "remove"]))
        if what == "title":
            sections.append((s.key, draw(TEXT), s.body))
        elif what == "body":
            sections.append((s.key, s.title, draw(TEXT)))
        elif what == "keep":
            sections.append((s.key, s.title, s.body))
    if draw(st.integers(0, 3)) == 0:
        sections = draw(st.permutations(sections))
    free = [k for k in SECTION_KEYS if base.section(k) is None]
    for key in draw(st.lists(st.sampled_from(free), unique=True, max_size=2)) if free else []:
        sections.insert(draw(st.integers(0, len(sections))), (key, draw(TEXT), draw(TEXT)))
    metadata: dict[str, JsonValue] = {}
    for key, value in base.metadata.items():
        what = draw(st.sampled_from(["keep", "keep", "change", "remove"]))
        if what == "keep":
            metadata[key] = value
        elif what == "change":
            metadata[key] = draw(VALUES)
    for key in draw(st.lists(st.sampled_from(METADATA_KEYS), unique=True, max_size=2)):
        if key not in base.metadata:
            metadata[key] = draw(VALUES)
    return changed(
        base,
        sections=tuple(sections),
        metadata=metadata,
        status_reason=draw(st.sampled_from([base.status_reason, base.status_reason, "s", None])),
        updated_at=base.updated_at + draw(st.integers(0, 4)) * HOUR,
    )


def json_text(value: object) -> bytes:
    return pydantic_core.to_json(value)


def common_keys(*docs: StrategyDocument) -> set[str]:
    keys = [{s.key for s in d.sections} for d in docs]
    return set.intersection(*keys)


def order_of(doc_: StrategyDocument, keys: set[str]) -> list[str]:
    return [s.key for s in doc_.sections if s.key in keys]


def section_state(d: StrategyDocument, key: str) -> tuple[str, str] | None:
    s = d.section(key)
    return None if s is None else (s.title, s.body)


def clashes(base: object, ours: object, theirs: object) -> bool:
    return ours != base != theirs != ours


def expected_section_clashes(
    base: StrategyDocument, ours: StrategyDocument, theirs: StrategyDocument
) -> set[str]:
    """Keys of the sections both sides changed differently: a title or a body, or presence."""
    found = set()
    for key in {s.key for d in (base, ours, theirs) for s in d.sections}:
        b, o, t = (section_state(d, key) for d in (base, ours, theirs))
        if b is not None and o is not None and t is not None:
            if clashes(b[0], o[0], t[0]) or clashes(b[1], o[1], t[1]):
                found.add(key)
        elif clashes(b, o, t):
            found.add(key)
    return found


def expected_metadata_clashes(
    base: StrategyDocument, ours: StrategyDocument, theirs: StrategyDocument
) -> set[str]:
    found = set()
    for key in base.metadata.keys() | ours.metadata.keys() | theirs.metadata.keys():
        b, o, t = (
            json_text(d.metadata[key]) if key in d.metadata else None for d in (base, ours, theirs)
        )
        if clashes(b, o, t):
            found.add(key)
    return found


def placed_apart(
    base: StrategyDocument, ours: StrategyDocument, theirs: StrategyDocument, common: set[str]
) -> bool:
    """Whether a section both sides added alike follows another section, or another such
    section, on one side than on the other."""
    alike = [
        s.key for s in ours.sections if base.section(s.key) is None and theirs.section(s.key) == s
    ]

    def placing(d: StrategyDocument) -> dict[str, tuple[str | None, int]]:
        keys = [s.key for s in d.sections]
        found = {}
        for key in alike:
            before = [k for k in keys[: keys.index(key)] if k in common]
            found[key] = (before[-1] if before else None, keys.index(key))
        return found

    mine, yours = placing(ours), placing(theirs)
    for one in alike:
        if mine[one][0] != yours[one][0]:
            return True
        for two in alike:
            if mine[two][0] == mine[one][0] and (mine[one][1] < mine[two][1]) != (
                yours[one][1] < yours[two][1]
            ):
                return True
    return False


def assert_side_kept(
    base: StrategyDocument,
    side: StrategyDocument,
    other: StrategyDocument,
    merged: StrategyDocument,
) -> None:
    """Every change ``side`` made to ``base`` is in ``merged``."""
    change = diff(base, side)
    for key in [*change.metadata_added, *change.metadata_changed]:
        assert json_text(merged.metadata[key]) == json_text(side.metadata[key]), key
    for key in change.metadata_removed:
        assert key not in merged.metadata, key
    for section in change.sections_added:
        assert merged.section(section.key) == section
    for section in change.sections_removed:
        assert merged.section(section.key) is None
    for section_change in change.sections_changed:
        now = merged.section(section_change.key)
        assert now is not None
        if section_change.title_changed:
            assert now.title == section_change.new.title
        if section_change.body_changed:
            assert now.body == section_change.new.body
    if change.reason is not None:
        assert merged.status_reason == side.status_reason
    common = common_keys(base, side, other)
    if order_of(side, common) != order_of(base, common):
        assert order_of(merged, common) == order_of(side, common)
    merged_keys = [s.key for s in merged.sections]
    for section in change.sections_added:
        # It follows the section it follows on its side, with no section of all three between.
        side_keys = [s.key for s in side.sections]
        before = [k for k in side_keys[: side_keys.index(section.key)] if k in common]
        at = merged_keys.index(section.key)
        if before:
            assert merged_keys.index(before[-1]) < at, (section.key, merged_keys)
        between = (
            merged_keys[merged_keys.index(before[-1]) + 1 : at] if before else merged_keys[:at]
        )
        assert not set(between) & common, (section.key, merged_keys)
    # Sections a side added after one section keep their order.
    added = {s.key for s in change.sections_added}
    anchor: str | None = None
    runs: dict[str | None, list[str]] = {}
    for key in (s.key for s in side.sections):
        if key in common:
            anchor = key
        elif key in added:
            runs.setdefault(anchor, []).append(key)
    for run in runs.values():
        assert [k for k in merged_keys if k in run] == run, (run, merged_keys)


def assert_unchanged_items_kept(
    base: StrategyDocument,
    ours: StrategyDocument,
    theirs: StrategyDocument,
    merged: StrategyDocument,
) -> None:
    """What neither side changed is as the base has it."""
    for key, value in base.metadata.items():
        if all(
            key in d.metadata and json_text(d.metadata[key]) == json_text(value)
            for d in (ours, theirs)
        ):
            assert json_text(merged.metadata[key]) == json_text(value)
    for section in base.sections:
        if ours.section(section.key) == section == theirs.section(section.key):
            assert merged.section(section.key) == section
    extra = {s.key for s in merged.sections} - {
        s.key for d in (base, ours, theirs) for s in d.sections
    }
    assert not extra


# -- the pure rules, many examples ------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_a_merge_keeps_every_change_of_either_side_or_names_the_clash(data: st.DataObject) -> None:
    base = data.draw(drafts(), "base")
    ours = data.draw(edits(base), "ours")
    theirs = data.draw(edits(base), "theirs")
    merge = merge_drafts(base, ours, theirs)
    mirror = merge_drafts(base, theirs, ours)
    assert raw(merge.document) == raw(mirror.document)
    assert conflict_sets(merge) == conflict_sets(mirror)

    sections = expected_section_clashes(base, ours, theirs)
    assert merge.sections_in_conflict == sections
    assert merge.metadata_in_conflict == expected_metadata_clashes(base, ours, theirs)
    assert merge.reason_in_conflict == clashes(
        base.status_reason, ours.status_reason, theirs.status_reason
    )
    common = common_keys(base, ours, theirs) - sections
    orders = [order_of(d, common) for d in (base, ours, theirs)]
    assert merge.order_in_conflict == (clashes(*orders) or placed_apart(base, ours, theirs, common))

    if merge.document is None:
        assert merge.conflicts
        return
    merged = merge.document
    assert not merge.conflicts
    assert merged.status is Status.DRAFT and merged.key == base.key
    assert merged.created_at == base.created_at
    assert merged.updated_at == max(ours.updated_at, theirs.updated_at)
    assert_side_kept(base, ours, theirs, merged)
    assert_side_kept(base, theirs, ours, merged)
    assert_unchanged_items_kept(base, ours, theirs, merged)


def conflict_sets(merge: DraftMerge) -> tuple[object, ...]:
    return (
        merge.sections_in_conflict,
        merge.metadata_in_conflict,
        merge.order_in_conflict,
        merge.reason_in_conflict,
    )


@st.composite
def stages(draw: st.DrawFn) -> Conflict:
    """A random conflict of acme version 1; the base absent, a draft or sealed."""
    base_kind = draw(st.sampled_from(["absent", "draft", "draft", "approved"]))
    base: StrategyDocument | None = None
    if base_kind != "absent":
        base = draw(drafts())
        if base_kind == "approved":
            base = sealed(base)

    def side() -> StrategyDocument | None:
        if base is None:
            created = T0 + draw(st.integers(0, 2)) * HOUR
            fresh = draw(drafts(created))
            return sealed(fresh) if draw(st.integers(0, 3)) == 0 else fresh
        kind = draw(
            st.sampled_from(["absent", "same", "edit", "edit", "seal", "seal edit", "withdraw"])
        )
        if kind == "absent":
            return None
        if kind == "same":
            return base
        if base.status is not Status.DRAFT:
            if kind == "withdraw":
                return changed(base, status=Status.WITHDRAWN, status_reason=draw(TEXT))
            if kind == "edit":
                return changed(base, status=Status.DRAFT)  # put back to draft by hand
            return sealed(changed(base, status=Status.DRAFT, metadata={"odd": 1}))
        edit = draw(edits(base))
        if kind == "seal":
            return sealed(base, draw(st.sampled_from([Status.APPROVED, Status.REJECTED])))
        if kind in ("seal edit", "withdraw"):
            return sealed(edit)
        return edit

    return Conflict("acme", 1, raw(base), raw(side()), raw(side()))


def decode(data: bytes | None) -> StrategyDocument | None:
    return None if data is None else StrategyDocument.from_json_bytes(data)


def content(d: StrategyDocument) -> tuple[object, ...]:
    return (d.created_at, seal_of(d.model_copy(update={"version": 1})))


TAKEN = {"acme": {1, 2, 3}}


@settings(max_examples=300, deadline=None)
@given(stages(), st.booleans())
def test_the_rules_keep_seals_lose_no_edit_and_ignore_which_side_is_which(
    c: Conflict, ours_is_current: bool
) -> None:
    sides = Sides("ours", "theirs", ours_is_current)
    resolution = resolve(c, sides)
    swapped = resolve(c.swapped(), sides.swapped())
    assert written(resolution) == written(swapped)
    assert resolution.resolved == swapped.resolved and resolution.remove == swapped.remove
    base, ours, theirs = decode(c.base), decode(c.ours), decode(c.theirs)
    tie = (
        base is None
        and ours is not None
        and theirs is not None
        and ours.created_at == theirs.created_at
    )
    if not tie:
        assert written(resolve(c.swapped(), sides)) == written(resolution)

    if not resolution.resolved:
        assert resolution.left and not resolution.documents and not resolution.remove
        return
    files = {(d.brief_id, d.version): d for d in resolution.documents}
    here = files.get(("acme", 1))
    for stage in (base, ours, theirs):
        if stage is not None and stage.status is not Status.DRAFT:
            assert here is not None and here.status is not Status.DRAFT
            assert seal_of(here) == seal_of(stage)
    moved = [d for key, d in files.items() if key != ("acme", 1)]
    assert [d.version for d in moved] in ([], [4])
    assert all(d.status is Status.DRAFT for d in moved)
    if base is None and moved and here is not None and here.status is Status.DRAFT:
        assert here.created_at <= moved[0].created_at  # the one created earlier keeps the number
    if resolution.remove:
        assert base is not None and base.status is Status.DRAFT and not files
        assert ours is None or theirs is None
        assert (ours or theirs) in (None, base)
    for stage in (ours, theirs):
        if stage is None or stage.status is not Status.DRAFT:
            continue
        if base is not None and content(stage) == content(base):
            continue
        kept = any(content(d) == content(stage) for d in files.values())
        assert kept or resolution.account.startswith("merged"), resolution


def resolve(c: Conflict, sides: Sides) -> Resolution:
    (resolution,) = plan([c], TAKEN, sides)
    return resolution


# -- in real git repositories, a few examples ---------------------------------------


@pytest.fixture(scope="module", autouse=True)
def git_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    with git_env(tmp_path_factory.mktemp("home")):
        yield


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("repos")


class Counter:
    value = 0


@st.composite
def side_changes(draw: st.DrawFn, base: list[StrategyDocument]) -> list[tuple[str, object]]:
    """What one branch does: edit drafts, approve drafts, add new versions."""
    steps: list[tuple[str, object]] = []
    for d in base:
        if d.status is Status.DRAFT:
            what = draw(st.sampled_from(["keep", "edit", "edit", "approve"]))
            if what == "edit":
                steps.append(("save", draw(edits(d))))
            elif what == "approve":
                steps.append(
                    ("approve", (d.version, d.updated_at + draw(st.integers(1, 3)) * HOUR))
                )
    for _ in range(draw(st.integers(0, 2))):
        fresh = draw(drafts(T0 + draw(st.integers(5, 7)) * HOUR))
        steps.append(("new", fresh))
    return steps


def apply(store: FileStore, steps: list[tuple[str, object]]) -> None:
    for what, value in steps:
        if what == "save":
            assert isinstance(value, StrategyDocument)
            store.save(value)
        elif what == "approve":
            assert isinstance(value, tuple)
            store.approve("acme", value[0], now=value[1])
        else:
            assert isinstance(value, StrategyDocument)
            store.create_next(
                "acme",
                value.sections,
                value.metadata,
                now=value.created_at,
            )


def tree_documents(repo: GitRepo, revision: str) -> dict[int, StrategyDocument]:
    names = repo.git("ls-tree", "-r", "--name-only", revision, "--", "data/acme").split()
    return {
        int(Path(name).stem): decode_document_file(repo.git("show", f"{revision}:{name}").encode())
        for name in names
    }


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(st.data())
def test_after_a_real_operation_every_change_is_kept_or_named(
    workspace: Path, data: st.DataObject
) -> None:
    Counter.value += 1
    repo = GitRepo(workspace / f"r{Counter.value}")
    operation = data.draw(st.sampled_from(["merge", "rebase", "cherry-pick"]), "operation")
    base = make_branches(repo, data)
    sides = {name: tree_documents(repo, name) for name in ("main", "topic")}
    if operation == "rebase":
        repo.git("checkout", "--quiet", "topic")
        repo.git("rebase", "main", expect=None)
    else:
        repo.git(operation, "topic", expect=None)
    if not repo.unmerged():
        event("git settled it alone")
        return
    conflicted = {line.split("\t")[1] for line in repo.unmerged().splitlines()}
    result = repo.resolve()
    lines = result.out.splitlines()
    accounts = {
        "data/" + line.split(": ", 1)[0]: line for line in lines if line.startswith("acme/")
    }
    assert accounts.keys() == conflicted
    left = {path for path, line in accounts.items() if ": left in conflict: " in line}
    assert {line.split("\t")[1] for line in repo.unmerged().splitlines()} == left
    assert result.status == (1 if left else 0)
    event(f"{operation}: {'something left' if left else 'all resolved'}")
    if left:
        return
    finish(repo, operation)
    final = tree_documents(repo, "HEAD")
    assert sorted(final) == list(range(1, len(final) + 1))
    check = run_cli("--dir", str(repo.data), "check")
    assert check.status == 0, check.out
    assert_every_change_kept(base, sides, final)


def make_branches(repo: GitRepo, data: st.DataObject) -> list[StrategyDocument]:
    """A base of one or two versions on main, then random changes on topic and on main."""
    base = [data.draw(drafts(), "v1")]
    if data.draw(st.booleans(), "approved v1"):
        base[0] = sealed(base[0])
    if data.draw(st.booleans(), "a second version"):
        base.append(data.draw(drafts(T0 + 2 * HOUR, version=2), "v2"))
    ours_steps = data.draw(side_changes(base), "ours")
    theirs_steps = data.draw(side_changes(base), "theirs")

    def put_base(store: FileStore) -> None:
        for d in base:
            store.create(d)

    repo.change("base", put_base)
    repo.git("branch", "topic")
    repo.git("checkout", "--quiet", "topic")
    repo.change("theirs", lambda s: apply(s, theirs_steps))
    repo.git("checkout", "--quiet", "main")
    repo.change("ours", lambda s: apply(s, ours_steps))
    return base


def assert_every_change_kept(
    base: list[StrategyDocument],
    sides: dict[str, dict[int, StrategyDocument]],
    final: dict[int, StrategyDocument],
) -> None:
    """Each side's sealed versions are in ``final`` as sealed, and each of its edits is too."""
    for name, documents in sides.items():
        for version, d in documents.items():
            if d.status is not Status.DRAFT:
                assert final[version].status is not Status.DRAFT, (name, version)
                assert seal_of(final[version]) == seal_of(d), (name, version)
                continue
            if base_has(base, d) or any(content(f) == content(d) for f in final.values()):
                continue
            # Not kept whole: then merged into its version with the other side's edit.
            here = final[version]
            assert here.status is Status.DRAFT and here.created_at == d.created_at, (name, version)
            assert_side_kept(base_of(base, version), d, other_side(sides, name, version), here)


def base_has(base: list[StrategyDocument], d: StrategyDocument) -> bool:
    return any(b == d for b in base)


def base_of(base: list[StrategyDocument], version: int) -> StrategyDocument:
    (found,) = [b for b in base if b.version == version]
    return found


def other_side(
    sides: dict[str, dict[int, StrategyDocument]], name: str, version: int
) -> StrategyDocument:
    other = sides["topic" if name == "main" else "main"]
    return other[version]
