"""``diff()`` and ``DocumentDiff``: each kind of change in its field, truthiness, and the text."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import strategystore
from strategystore import FileStore, Section, Status, StrategyDocument
from strategystore._diff import DocumentDiff, Revision, SectionChange, diff
from strategystore.cli import main
from tests.conftest import T0, make_doc

_FIELDS = ("brief_id", "version", "status", "status_reason", "created_at", "updated_at")


def _with(doc: StrategyDocument, **changes: object) -> StrategyDocument:
    """A new, validated document: ``doc`` with ``changes``."""
    values: dict[str, object] = {name: getattr(doc, name) for name in _FIELDS}
    values["sections"] = list(doc.sections)
    values["metadata"] = dict(doc.metadata)
    values.update(changes)
    return StrategyDocument.model_validate(values)


def _changes(change: DocumentDiff) -> dict[str, object]:
    """The change fields that are set, by name (``old`` and ``new`` left out)."""
    return {
        f.name: getattr(change, f.name)
        for f in dataclasses.fields(change)
        if f.name not in {"old", "new"} and getattr(change, f.name)
    }


A = Section(key="a", title="A", body="one\ntwo\nthree")
B = Section(key="b", title="B", body="bee")
C = Section(key="c", title="C", body="sea")


# -- each kind of change in its field ------------------------------------------


def test_a_status_change_and_its_reason_are_reported_in_their_fields() -> None:
    old = make_doc("acme", 1)
    new = _with(old, status=Status.REJECTED, status_reason="off brief")
    change = diff(old, new)
    assert change.status == (Status.DRAFT, Status.REJECTED)
    assert change.reason == (None, "off brief")
    assert set(_changes(change)) == {"status", "reason"}
    assert 'status: draft -> rejected\nreason: null -> "off brief"' in str(change)


def test_metadata_keys_added_removed_and_changed_are_reported_apart() -> None:
    old = make_doc("acme", 1, metadata={"tone": "friendly", "old": 1, "same": [1, 2]})
    new = make_doc("acme", 1, metadata={"tone": "bold", "new": True, "same": [1, 2]})
    change = diff(old, new)
    assert change.metadata_added == {"new": True}
    assert change.metadata_removed == {"old": 1}
    assert change.metadata_changed == {"tone": ("friendly", "bold")}
    assert set(_changes(change)) == {"metadata_added", "metadata_removed", "metadata_changed"}
    assert str(change).endswith(
        '\nmetadata:\n  + new: true\n  - old: 1\n  ~ tone: "friendly" -> "bold"'
    )


def test_metadata_1_and_1_0_differ_because_their_canonical_bytes_do() -> None:
    old = make_doc("acme", 1, metadata={"n": 1})
    new = make_doc("acme", 1, metadata={"n": 1.0})
    assert old.to_json_bytes() != new.to_json_bytes()
    change = diff(old, new)
    assert change
    assert set(_changes(change)) == {"metadata_changed"}
    assert change.metadata_changed["n"] == (1, 1.0)
    assert type(change.metadata_changed["n"][1]) is float
    assert "  ~ n: 1 -> 1.0" in str(change)


def test_metadata_true_and_1_differ_too() -> None:
    change = diff(make_doc(metadata={"n": True}), make_doc(metadata={"n": 1}))
    assert change.metadata_changed == {"n": (True, 1)}


def test_sections_added_removed_and_changed_carry_the_sections_and_a_body_diff() -> None:
    old = make_doc("acme", 1, sections=[A, B])
    changed_a = Section(key="a", title="Aye", body="one\n2\nthree")
    new = make_doc("acme", 1, sections=[changed_a, C])
    change = diff(old, new)
    assert change.sections_added == (C,)
    assert change.sections_removed == (B,)
    assert change.sections_changed == (
        SectionChange(A, changed_a, ("@@ -1,3 +1,3 @@", " one", "-two", "+2", " three")),
    )
    (only,) = change.sections_changed
    assert (only.key, only.title_changed, only.body_changed) == ("a", True, True)
    assert change.order is None
    assert set(_changes(change)) == {"sections_added", "sections_removed", "sections_changed"}
    assert str(change).endswith(
        "\nsections:\n"
        '  ~ a "Aye" (changed)\n'
        '      title: "A" -> "Aye"\n'
        "      @@ -1,3 +1,3 @@\n"
        "       one\n"
        "      -two\n"
        "      +2\n"
        "       three\n"
        '  + c "C" (added)\n'
        "      @@ -0,0 +1 @@\n"
        "      +sea\n"
        '  - b "B" (removed)\n'
        "      @@ -1 +0,0 @@\n"
        "      -bee"
    )


def test_a_title_change_alone_has_no_body_diff() -> None:
    change = diff(make_doc(sections=[A]), make_doc(sections=[A.model_copy(update={"title": "Z"})]))
    (only,) = change.sections_changed
    assert (only.title_changed, only.body_changed, only.body_diff) == (True, False, ())
    assert str(change).endswith('  ~ a "Z" (changed)\n      title: "A" -> "Z"')


def test_reordered_sections_are_reported_as_an_order_not_as_changes() -> None:
    change = diff(make_doc(sections=[A, B, C]), make_doc(sections=[C, A, B]))
    assert change.order == (("a", "b", "c"), ("c", "a", "b"))
    assert set(_changes(change)) == {"order"}
    assert str(change).endswith("\nsections:\n  order: a, b, c -> c, a, b")


def test_the_order_compares_only_the_sections_both_documents_hold() -> None:
    change = diff(make_doc(sections=[A, B]), make_doc(sections=[C, A, B]))
    assert change.order is None
    assert change.sections_added == (C,)


def test_a_body_differing_only_in_its_final_newline_is_changed_with_an_empty_body_diff() -> None:
    old = make_doc(sections=[Section(key="a", title="A", body="x")])
    new = make_doc(sections=[Section(key="a", title="A", body="x\n")])
    change = diff(old, new)
    (only,) = change.sections_changed
    assert (only.body_changed, only.body_diff) == (True, ())
    assert "      (only line endings or the final newline differ)" in str(change)


# -- truthiness ------------------------------------------------------------------


def test_equal_documents_give_a_falsy_diff_that_says_so() -> None:
    doc = make_doc("acme", 1, sections=[A, B], metadata={"n": 1.0})
    change = diff(doc, _with(doc))
    assert not change
    assert _changes(change) == {}
    assert str(change).endswith("\n\nno differences in status, metadata or sections")


def test_two_versions_with_the_same_content_differ_only_in_which_document_they_are() -> None:
    old = make_doc("acme", 1)
    new = make_doc("acme", 2)
    change = diff(old, new)
    assert change
    assert _changes(change) == {}
    assert (change.old.version, change.new.version) == (1, 2)
    assert str(change).endswith("\n\nno differences in status, metadata or sections")


@pytest.mark.parametrize(
    "changes",
    [
        {"brief_id": "other"},
        {"created_at": T0 - timedelta(seconds=1)},
        {"updated_at": T0 + timedelta(microseconds=1)},
    ],
    ids=lambda changes: next(iter(changes)),
)
def test_a_change_of_key_or_timestamp_alone_makes_the_diff_truthy(
    changes: dict[str, object],
) -> None:
    old = make_doc("acme", 1)
    change = diff(old, _with(old, **changes))
    assert change
    assert _changes(change) == {}


# -- the object itself --------------------------------------------------------------


def test_the_sides_say_which_documents_were_compared() -> None:
    old = make_doc("acme", 1, status=Status.APPROVED, sections=[A, B])
    new = make_doc("acme", 2, updated_at=T0 + timedelta(hours=1))
    change = diff(old, new)
    assert change.old == Revision("acme", 1, Status.APPROVED, T0, T0, ("a", "b"))
    assert change.new == Revision("acme", 2, Status.DRAFT, T0, T0 + timedelta(hours=1), ("goal",))


def test_a_diff_is_immutable_and_shares_nothing_with_the_documents() -> None:
    old = make_doc(metadata={"list": [1]})
    new = make_doc(metadata={"list": [2], "added": {"deep": [1]}})
    change = diff(old, new)
    with pytest.raises(dataclasses.FrozenInstanceError):
        change.status = None  # type: ignore[misc]
    with pytest.raises(TypeError):
        change.metadata_added["x"] = 1  # type: ignore[index]
    text = str(change)
    added, listed = new.metadata["added"], new.metadata["list"]
    assert isinstance(added, dict) and isinstance(listed, list)
    added["deep"] = None
    listed.append(3)
    assert change.metadata_added == {"added": {"deep": [1]}}
    assert change.metadata_changed == {"list": ([1], [2])}
    assert str(change) == text


def test_a_diff_built_by_hand_holds_a_copy_of_its_mappings() -> None:
    side = Revision.of(make_doc())
    given = {"k": 1}
    change = DocumentDiff(side, side, metadata_added=given)
    given["k"] = 2
    assert change.metadata_added == {"k": 1}
    assert change


def test_the_repr_names_what_changed() -> None:
    old = make_doc("acme", 1, sections=[A, B], metadata={"tone": "a", "old": 1})
    new = make_doc(
        "acme", 2, status=Status.APPROVED, sections=[C, B], metadata={"tone": "b", "new": 1}
    )
    assert repr(diff(old, new)) == (
        "<DocumentDiff acme v1 -> v2: status draft -> approved, "
        "metadata +new -old ~tone, sections +c -a>"
    )
    assert repr(diff(old, old)) == "<DocumentDiff acme v1 -> v1: equal>"


# -- the text is what the command line prints ----------------------------------------


def test_str_is_exactly_what_the_diff_command_prints(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = FileStore(tmp_path / "data")
    store.create(make_doc("acme", 1, sections=[A, B], metadata={"tone": "a", "n": 1}))
    store.approve("acme", 1, now=T0 + timedelta(minutes=5))
    store.create(
        make_doc(
            "acme",
            2,
            sections=[C, Section(key="a", title="A", body="one\nthree\n")],
            metadata={"tone": "b", "n": 1.0, "new": {"x": [None]}},
        )
    )
    old, new = store.get_strategy("acme", 1), store.get_strategy("acme", 2)
    assert old is not None and new is not None
    assert (
        main(["--dir", str(tmp_path / "data"), "diff", "acme", "1", "2"]) == 1
    )  # they differ, as diff(1) says
    out = capsys.readouterr().out
    assert out == str(diff(old, new)) + "\n"
    assert out.startswith(
        "--- acme version 1 (approved, updated 2026-01-15 09:35 UTC)\n"
        "+++ acme version 2 (draft, updated 2026-01-15 09:30 UTC)\n"
    )


# -- properties --------------------------------------------------------------------

_text = st.text(alphabet="ab \n\r", max_size=6)
_json_leaf = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-2, 2),
    st.sampled_from([0.0, -0.0, 1.0, 2.5, 1e16]),
    st.text(alphabet="xé", max_size=2),
)
_json_value = st.recursive(
    _json_leaf,
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.sampled_from("pq"), inner),
    max_leaves=4,
)
_sections = st.lists(
    st.builds(Section, key=st.sampled_from("abc"), title=st.sampled_from(["", "T"]), body=_text),
    max_size=3,
    unique_by=lambda section: section.key,
)


@st.composite
def _documents(draw: st.DrawFn) -> StrategyDocument:
    created = T0 + timedelta(seconds=draw(st.integers(0, 1)))
    return StrategyDocument(
        brief_id=draw(st.sampled_from(["acme", "beta"])),
        version=draw(st.integers(1, 2)),
        status=draw(st.sampled_from(Status)),
        status_reason=draw(st.sampled_from([None, "", "why"])),
        created_at=created,
        updated_at=created + timedelta(seconds=draw(st.integers(0, 61))),
        sections=draw(_sections),
        metadata=draw(st.dictionaries(st.sampled_from("klm"), _json_value, max_size=3)),
    )


@st.composite
def _pairs(draw: st.DrawFn) -> tuple[StrategyDocument, StrategyDocument]:
    """Two documents, often nearly the same: the second is the first with a few fields redrawn."""
    old = draw(_documents())
    other = draw(_documents())
    names = draw(st.sets(st.sampled_from([*_FIELDS, "sections", "metadata"]), max_size=2))
    if names & {"created_at", "updated_at"}:
        names |= {"created_at", "updated_at"}  # redrawn together, so never updated before created
    new = _with(old, **{name: getattr(other, name) for name in names})
    if draw(st.booleans()):
        new = _with(new, sections=draw(st.permutations(new.sections)))
    return old, new


@settings(max_examples=300, deadline=None)
@given(_pairs())
def test_a_diff_is_truthy_exactly_when_the_canonical_bytes_differ(
    pair: tuple[StrategyDocument, StrategyDocument],
) -> None:
    old, new = pair
    assert bool(diff(old, new)) == (old.to_json_bytes() != new.to_json_bytes())
    assert bool(diff(new, old)) == bool(diff(old, new))


@settings(max_examples=100, deadline=None)
@given(_documents())
def test_a_document_does_not_differ_from_itself(doc: StrategyDocument) -> None:
    assert not diff(doc, doc)
    assert not diff(doc, StrategyDocument.from_json_bytes(doc.to_json_bytes()))


@settings(max_examples=200, deadline=None)
@given(_pairs())
def test_the_changes_reported_rebuild_the_new_documents_sections_and_metadata(
    pair: tuple[StrategyDocument, StrategyDocument],
) -> None:
    old, new = pair
    change = diff(old, new)
    metadata = {k: v for k, v in old.metadata.items() if k not in change.metadata_removed}
    metadata.update(change.metadata_added)
    metadata.update({k: after for k, (_, after) in change.metadata_changed.items()})
    assert _with(old, metadata=metadata) == _with(old, metadata=new.metadata)
    by_key = {s.key: s for s in old.sections if s not in change.sections_removed}
    by_key.update({s.key: s for s in change.sections_added})
    by_key.update({c.key: c.new for c in change.sections_changed})
    assert [by_key[key] for key in change.new.section_keys] == new.sections


def test_versions_differing_only_in_number_and_time_differ_but_nothing_changed() -> None:
    old = make_doc("acme", 1)
    new = make_doc("acme", 2, created_at=T0 + timedelta(hours=1))
    changes = diff(old, new)
    assert changes and not changes.changed
    assert diff(old, old.model_copy(update={"metadata": {"n": 2}})).changed
    assert diff(old, old.model_copy(update={"status": Status.APPROVED})).changed


def test_the_public_diff_is_the_function_whatever_was_imported_before() -> None:
    # This module imported strategystore._diff first, as the command line does.
    assert strategystore.diff is diff and strategystore.DocumentDiff is DocumentDiff
    assert strategystore.diff(make_doc(), make_doc()).changed is False
