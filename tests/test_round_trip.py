"""Nothing is stored that would not read back identically (DESIGN §2, "What can be stored").

Each refusal comes when the document is built, as a ``ValidationError``, and a
document broken after validation is refused by every store before anything
is written; what is accepted reads back byte for byte, from either store.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from pydantic import ValidationError

from strategystore import Section, Status, StrategyDocument
from strategystore.models import MAX_INT_DIGITS, MAX_METADATA_DEPTH
from strategystore.store import BaseStore
from tests.conftest import T0, make_doc


def _nested(depth: int) -> Any:
    """A metadata value that makes ``metadata`` ``depth`` levels deep."""
    value: Any = 1
    for _ in range(depth - 1):
        value = [value]
    return value


_BEHIND = timezone(timedelta(hours=-1))
_AHEAD = timezone(timedelta(hours=1))
_LAST = datetime(9999, 12, 31, 23, 59, 59, tzinfo=_BEHIND)
_FIRST = datetime(1, 1, 1, 0, 30, tzinfo=_AHEAD)

UNREADABLE: dict[str, dict[str, Any]] = {
    "a surrogate in a metadata key": {"metadata": {"a" + chr(0xD800): 1, "a" + chr(0xDC00): 2}},
    "a surrogate in a metadata value": {"metadata": {"a": "x\udfff"}},
    "a surrogate in a nested value": {"metadata": {"a": [{"b": "\ud83d"}]}},
    "a surrogate in a section body": {
        "sections": [Section.model_construct(key="k", title="t", body="\ud800")]
    },
    "a surrogate in a status reason": {
        "status": Status.REJECTED,
        "status_reason": "no\udc80",
    },
    "metadata nested too deep": {"metadata": {"x": _nested(MAX_METADATA_DEPTH + 1)}},
    "metadata nested as deep as the reader allows": {"metadata": {"x": _nested(199)}},
    "an integer with too many digits": {"metadata": {"x": 10**MAX_INT_DIGITS}},
    "a negative integer with too many digits": {"metadata": {"x": -(10**MAX_INT_DIGITS)}},
    "a timestamp past year 9999 in UTC": {"created_at": _LAST, "updated_at": _LAST},
    "an updated_at past year 9999 in UTC": {"updated_at": _LAST},
    "a timestamp before year 1 in UTC": {"created_at": _FIRST, "updated_at": _FIRST},
}


@pytest.mark.parametrize("kind", list(UNREADABLE))
def test_a_document_that_would_not_read_back_is_refused_when_built(kind: str) -> None:
    fields = {
        "brief_id": "acme",
        "version": 1,
        "created_at": T0,
        **UNREADABLE[kind],
    }
    if "sections" in fields:
        fields["sections"] = [dict(s.__dict__) for s in fields["sections"]]
    with pytest.raises(ValidationError) as refused:
        StrategyDocument.model_validate(fields)
    # The message says what is wrong, never with pydantic's internals.
    assert "Error serializing" not in str(refused.value)


@pytest.mark.parametrize("kind", list(UNREADABLE))
def test_a_document_built_without_validation_that_would_not_read_back_is_not_stored(
    store: BaseStore, kind: str
) -> None:
    valid = make_doc("acme", 1)
    fields = {**dict(valid), **UNREADABLE[kind]}
    broken = StrategyDocument.model_construct(**fields)
    with pytest.raises(ValidationError):
        store.save(broken)
    with pytest.raises(ValidationError):
        store.create(broken)
    with pytest.raises(ValidationError):
        store.import_documents([broken])
    assert store.list_briefs() == []


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(lambda m: m.__setitem__("a\ud800", 1), id="a surrogate key added in place"),
        pytest.param(lambda m: m.__setitem__("model", "\udc00"), id="a surrogate value in place"),
        pytest.param(lambda m: m.__setitem__("n", 10**MAX_INT_DIGITS), id="a huge integer"),
        pytest.param(lambda m: m.__setitem__("x", _nested(150)), id="nesting in place"),
    ],
)
def test_a_validated_document_changed_in_place_so_it_would_not_read_back_is_refused(
    store: BaseStore, change: Any
) -> None:
    doc = make_doc("acme", 1)
    change(doc.metadata)
    with pytest.raises(ValidationError):
        store.save(doc)
    assert store.get_strategy("acme", 1) is None


def test_create_next_refuses_metadata_that_would_not_read_back(store: BaseStore) -> None:
    with pytest.raises(ValidationError, match="surrogate"):
        store.create_next("acme", [], {"a" + chr(0xD800): 1, "a" + chr(0xDC00): 2})
    with pytest.raises(ValidationError, match="digits"):
        store.create_next("acme", [], {"big": 10**MAX_INT_DIGITS})
    assert store.list_briefs() == []


def test_values_at_the_limits_read_back_identically(store: BaseStore) -> None:
    doc = make_doc(
        "acme",
        1,
        metadata={
            "deep": _nested(MAX_METADATA_DEPTH),
            "big": 10**MAX_INT_DIGITS - 1,
            "small": -(10**MAX_INT_DIGITS) + 1,
            "text": "emoji \U0001f600 and \u00e9",
        },
        created_at="9999-12-31T22:59:59-01:00",
        updated_at="9999-12-31T23:59:59Z",
    )
    store.save(doc)
    stored = store.get_strategy("acme", 1)
    assert stored is not None
    assert stored.to_json_bytes() == doc.to_json_bytes()
    assert store.create_next("acme", doc.sections, doc.metadata).metadata == doc.metadata


NUL_FIELDS: dict[str, dict[str, Any]] = {
    "a status reason": {"status": Status.REJECTED, "status_reason": "no\x00way"},
    "a section title and body": {"sections": [Section(key="k", title="t\x00", body="\x00b")]},
    "a metadata key and value": {"metadata": {"a\x00": "b\x00"}},
}


@pytest.mark.parametrize("where", list(NUL_FIELDS))
def test_a_nul_character_reads_back_identically(store: BaseStore, where: str) -> None:
    doc = make_doc("acme", 1, **NUL_FIELDS[where])
    store.save(doc)
    stored = store.get_strategy("acme", 1)
    assert stored is not None
    assert stored.to_json_bytes() == doc.to_json_bytes()


def test_a_status_reason_with_a_nul_character_is_kept(store: BaseStore) -> None:
    store.create(make_doc("acme", 1))
    rejected = store.reject("acme", 1, reason="no\x00way", now=T0)
    assert rejected.status_reason == "no\x00way"
    assert store.get_strategy("acme", 1) == rejected
