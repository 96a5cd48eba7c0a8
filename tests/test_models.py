"""The document model of DESIGN.md section 2: fields, rules and canonical bytes."""

from __future__ import annotations

import json
import re
import warnings
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from strategystore import InvalidBriefIdError, MemoryStore, Section, Status, StrategyDocument
from strategystore._arguments import check_brief_id
from strategystore.models import check_version, trusted_json_bytes
from tests.conftest import T0, make_doc

FIELD_ORDER = [
    "brief_id",
    "version",
    "status",
    "status_reason",
    "created_at",
    "updated_at",
    "sections",
    "metadata",
    "content_digest",
]


def test_fields_are_in_the_documented_order_in_the_model_and_on_disk() -> None:
    # content_digest is derived from the content (a computed field), and last.
    assert [*StrategyDocument.model_fields, *StrategyDocument.model_computed_fields] == FIELD_ORDER
    assert list(json.loads(make_doc().to_json_bytes())) == FIELD_ORDER


def test_defaults_are_draft_no_reason_now_and_updated_equal_to_created() -> None:
    before = datetime.now(UTC)
    doc = StrategyDocument(brief_id="acme", version=1)
    assert doc.status is Status.DRAFT
    assert doc.status_reason is None
    assert before <= doc.created_at <= datetime.now(UTC)
    assert doc.updated_at == doc.created_at
    assert (doc.sections, doc.metadata) == ([], {})


def test_timestamps_are_normalised_to_utc() -> None:
    plus_two = timezone(timedelta(hours=2))
    doc = make_doc(created_at=datetime(2026, 1, 1, 12, tzinfo=plus_two))
    assert doc.created_at == datetime(2026, 1, 1, 10, tzinfo=UTC)
    assert doc.created_at.utcoffset() == timedelta(0)
    assert b'"created_at": "2026-01-01T10:00:00Z"' in doc.to_json_bytes()


def test_naive_timestamps_are_refused_with_a_clear_error() -> None:
    with pytest.raises(ValidationError, match="timezone"):
        make_doc(created_at=datetime(2026, 1, 1))
    with pytest.raises(ValidationError, match="timezone"):
        StrategyDocument.from_json_bytes(
            b'{"brief_id": "a", "version": 1, "created_at": "2026-01-01T00:00:00"}'
        )


@pytest.mark.parametrize("value", [b"0", b'"1700000000"', b'"2026-01-01"', b'"yesterday"'])
def test_only_rfc_3339_text_is_a_timestamp(value: bytes) -> None:
    with pytest.raises(ValidationError, match="RFC 3339"):
        StrategyDocument.from_json_bytes(
            b'{"brief_id": "a", "version": 1, "created_at": ' + value + b"}"
        )


def test_updated_at_is_never_before_created_at() -> None:
    with pytest.raises(ValidationError, match="before created_at"):
        make_doc(updated_at=T0 - timedelta(microseconds=1))
    assert make_doc(updated_at=T0).updated_at == T0


def test_section_keys_are_unique_within_a_document() -> None:
    sections = [Section(key="a", title="A", body=""), Section(key="a", title="B", body="")]
    with pytest.raises(ValidationError, match="more than once"):
        make_doc(sections=sections)


@pytest.mark.parametrize("key", ["", "k" * 101])
def test_section_keys_are_one_to_a_hundred_characters(key: str) -> None:
    with pytest.raises(ValidationError):
        Section(key=key, title="", body="")
    assert Section(key="k" * 100, title="", body="").key == "k" * 100


def test_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError, match="Extra inputs"):
        StrategyDocument.model_validate({"brief_id": "a", "version": 1, "owner": "me"})
    with pytest.raises(ValidationError, match="Extra inputs"):
        Section.model_validate({"key": "a", "title": "", "body": "", "extra": 1})


@pytest.mark.parametrize("version", [0, -1, 2**31, True, 1.0, "1"])
def test_versions_are_ints_from_one_below_two_to_the_thirty_one(version: object) -> None:
    with pytest.raises(ValidationError):
        StrategyDocument.model_validate({"brief_id": "a", "version": version})
    with pytest.raises(ValueError, match="version"):
        check_version(version)


def test_the_largest_version_is_accepted() -> None:
    assert make_doc(version=2**31 - 1).version == 2**31 - 1


def test_documents_are_frozen() -> None:
    doc = make_doc()
    with pytest.raises(ValidationError):
        doc.version = 2  # type: ignore[misc]


def test_non_finite_numbers_in_metadata_are_refused() -> None:
    for bad in (float("nan"), float("inf"), [float("-inf")], {"x": float("nan")}):
        with pytest.raises(ValidationError, match="JSON cannot hold"):
            make_doc(metadata={"value": bad})


VALID_IDS = [
    "a",
    "0",
    "acme-q3-launch",
    "A.b_c-d",
    "x" * 100,
    "con-ference",
    "com10",
    "nul_",
    "COM",
]
INVALID_IDS = [
    "",
    "-a",
    "_a",
    ".a",
    "a.",
    "a..",
    "x" * 101,
    "a b",
    "a/b",
    "a\\b",
    "..",
    "../etc",
    "/etc",
    "a\n",
    "a\x00",
    "é",
    "CON",
    "con",
    "Con.txt",
    "nul.tar.gz",
    "COM0",
    "com9",
    "LPT1",
    "lpt0.json",
    "aux",
    "PRN",
    "strategystore.json",
    "StrategyStore.JSON",
]


@pytest.mark.parametrize("brief_id", VALID_IDS)
def test_valid_brief_ids_are_accepted(brief_id: str) -> None:
    assert check_brief_id(brief_id) == brief_id
    assert make_doc(brief_id=brief_id).brief_id == brief_id


@pytest.mark.parametrize("brief_id", INVALID_IDS)
def test_invalid_brief_ids_are_refused_never_sanitised(brief_id: str) -> None:
    with pytest.raises(InvalidBriefIdError) as info:
        check_brief_id(brief_id)
    assert repr(brief_id) in str(info.value)
    with pytest.raises(ValidationError):
        make_doc(brief_id=brief_id)


def test_a_brief_id_that_is_not_a_string_is_refused() -> None:
    with pytest.raises(InvalidBriefIdError, match="string"):
        check_brief_id(5)


def test_canonical_bytes_are_two_space_json_with_non_ascii_and_a_trailing_newline() -> None:
    doc = make_doc(
        sections=[Section(key="ü", title="Zürich", body="“quoted”\nline")],
        metadata={"b": 1, "a": {"d": 1, "c": 2}},
    )
    data = doc.to_json_bytes()
    text = data.decode()
    assert text.endswith("}\n") and not text.endswith("\n\n")
    assert "Zürich" in text and "\\u" not in text
    assert '\n  "brief_id": "acme-q3",\n' in text
    assert list(json.loads(data)["metadata"]) == ["a", "b"]
    assert list(json.loads(data)["metadata"]["a"]) == ["c", "d"]
    assert list(json.loads(data)["sections"][0]) == ["key", "title", "body"]


def test_documents_compare_by_canonical_bytes_not_by_python_equality() -> None:
    assert make_doc(metadata={"x": 1}) != make_doc(metadata={"x": 1.0})
    assert make_doc(metadata={"x": 1}) != make_doc(metadata={"x": True})
    assert make_doc(metadata={"a": 1, "b": 2}) == make_doc(metadata={"b": 2, "a": 1})
    assert hash(make_doc(metadata={"a": 1, "b": 2})) == hash(make_doc(metadata={"b": 2, "a": 1}))


def test_canonical_bytes_stay_canonical_after_metadata_is_changed_in_place() -> None:
    doc = make_doc(metadata={"b": 1})
    doc.metadata["a"] = 2
    assert list(json.loads(doc.to_json_bytes())["metadata"]) == ["a", "b"]


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
timestamps = st.datetimes(
    min_value=datetime(1970, 1, 1), max_value=datetime(2200, 1, 1), timezones=st.timezones()
)


def _is_brief_id(value: str) -> bool:
    try:
        check_brief_id(value)
    except InvalidBriefIdError:
        return False
    return True


# Device names such as "prn" match the pattern, so the rules have the last word.
brief_ids = st.from_regex(r"[a-z0-9][a-z0-9._-]{0,20}[a-z0-9_-]", fullmatch=True).filter(
    _is_brief_id
)


@st.composite
def documents(draw: st.DrawFn) -> StrategyDocument:
    created = draw(timestamps)
    keys = draw(st.lists(st.text(min_size=1, max_size=100), unique=True, max_size=4))
    return StrategyDocument(
        brief_id=draw(brief_ids),
        version=draw(st.integers(min_value=1, max_value=2**31 - 1)),
        status=draw(st.sampled_from(Status)),
        status_reason=draw(st.none() | st.text()),
        created_at=created,
        # Added in UTC: wall-clock arithmetic across a DST change can go backwards.
        updated_at=created.astimezone(UTC)
        + draw(st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3650))),
        sections=[Section(key=k, title=draw(st.text()), body=draw(st.text())) for k in keys],
        metadata=draw(st.dictionaries(st.text(), json_values, max_size=5)),
    )


@given(documents())
def test_json_round_trip_is_exact_and_bytes_are_deterministic(doc: StrategyDocument) -> None:
    data = doc.to_json_bytes()
    again = StrategyDocument.from_json_bytes(data)
    assert again.to_json_bytes() == data
    assert again == doc
    assert again.model_dump() == doc.model_dump()
    assert json.loads(data) == json.loads(again.to_json_bytes())


def test_the_json_schema_carries_the_brief_id_pattern_for_editors() -> None:
    pattern = StrategyDocument.model_json_schema()["properties"]["brief_id"]["pattern"]
    for brief_id in VALID_IDS:
        assert re.search(pattern, brief_id), brief_id
    for brief_id in ["", "-a", ".a", "a.", "a b", "a/b", "..", "x" * 101, "é"]:
        assert not re.search(pattern, brief_id), brief_id


# -- the store's fast path for documents validation made --------------------

_SECTION_BYPASSES = st.sampled_from(
    [
        Section(key="extra", title="Extra", body=""),
        Section.model_construct(key="", title="Empty key", body=""),
        Section.model_construct(key="k" * 101, title="Long key", body=""),
        Section.model_construct(key="t", title=1, body=""),  # type: ignore[arg-type]
        {"key": "as-dict", "title": "Dict", "body": ""},
    ]
)
_ODD_VALUES = st.sampled_from(
    [float("nan"), float("inf"), {1, 2}, (1, 2), b"x", {1: "int key"}, Status.DRAFT, 2**70]
)
_FIELD_VALUES = {
    "brief_id": st.sampled_from(["acme", "Other-brief", "../outside", "nul", ""]),
    "version": st.sampled_from([1, 7, 0, -1, True, 2**31, 1.0]),
    "status": st.sampled_from([*Status, "approved", "bogus"]),
    "status_reason": st.sampled_from([None, "why", 3]),
    "created_at": timestamps | st.just(datetime(2030, 1, 1)),
    "updated_at": timestamps | st.just(datetime(2030, 1, 1)),
}


@st.composite
def bypassed(draw: st.DrawFn) -> tuple[StrategyDocument, bool]:
    """A valid document changed in ways that skip validation, and whether it was changed."""
    doc = draw(documents())
    changes = draw(
        st.lists(
            st.sampled_from(
                ["metadata", "nested", "section", "pop", "copy", "setattr", "construct"]
            ),
            max_size=3,
        )
    )
    for change in changes:
        metadata: dict[str, Any] = doc.metadata
        if change == "metadata":
            metadata[draw(st.text(max_size=3))] = draw(json_values | _ODD_VALUES)
        elif change == "nested":
            for value in metadata.values():
                if isinstance(value, list):
                    value.append(draw(json_values | _ODD_VALUES))
                elif isinstance(value, dict):
                    value[draw(st.text(max_size=3))] = draw(json_values | _ODD_VALUES)
        elif change == "section":
            doc.sections.append(draw(_SECTION_BYPASSES))  # type: ignore[arg-type]
        elif change == "pop" and doc.sections:
            doc.sections.pop()
        elif change in ("copy", "setattr"):
            name = draw(st.sampled_from(sorted(_FIELD_VALUES)))
            value = draw(_FIELD_VALUES[name])
            if change == "copy":
                doc = doc.model_copy(update={name: value})
            else:
                object.__setattr__(doc, name, value)
        elif change == "construct":
            doc = StrategyDocument.model_construct(**doc.__dict__)
    return doc, bool(changes)


@settings(max_examples=300)
@given(bypassed())
def test_a_store_writes_exactly_what_validating_again_would(
    case: tuple[StrategyDocument, bool],
) -> None:
    # A document validation made and left alone is written without validating
    # it again; that shortcut must write the same bytes as the full check, and
    # refuse exactly what it refuses.
    doc, changed = case
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # serialising a section given as a dict warns
        try:
            expected: bytes | None = StrategyDocument.model_validate(
                doc.model_dump()
            ).to_json_bytes()
        except (ValidationError, ValueError):
            expected = None
        store = MemoryStore()
        try:
            store.save(doc)
        except (ValidationError, ValueError, TypeError):
            written = None
        else:
            loaded = store._load(doc.brief_id, doc.version)
            written = None if loaded is None else loaded[1]  # the bytes as stored
    assert written == expected
    if not changed:
        assert trusted_json_bytes(doc) == expected  # the shortcut is taken
