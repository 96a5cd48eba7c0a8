"""The proof that a document is still as validation made it, which lets a write skip validation.

Each case changes a validated document past validation and checks that the
proof fails, so the store validates it again and refuses or rewrites it.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import pytest
from pydantic import ValidationError

from strategystore._arguments import valid_bytes
from strategystore._json import is_canonical_json
from strategystore.memory import MemoryStore
from strategystore.models import Section, StrategyDocument, trusted_json_bytes


def _document() -> StrategyDocument:
    return StrategyDocument(
        brief_id="acme",
        version=1,
        sections=[
            Section(key="summary", title="Résumé", body="Grüße ☕"),
            Section(key="audience", title="Audience", body="Home baristas"),
        ],
        metadata={"author": "planning", "nested": {"list": ["a", 1, 2.5, None, True]}},
    )


def test_a_document_validation_made_is_trusted_with_its_non_ascii_text() -> None:
    doc = _document()
    assert trusted_json_bytes(doc) == doc.to_json_bytes()
    assert valid_bytes(doc) == (doc, doc.to_json_bytes())


def _set_section_field(name: str, value: str) -> Callable[[StrategyDocument], None]:
    def change(doc: StrategyDocument) -> None:
        doc.sections[1].__dict__[name] = value

    return change


def _set_metadata(
    path: tuple[str, ...], key: str, value: Any
) -> Callable[[StrategyDocument], None]:
    def change(doc: StrategyDocument) -> None:
        target: Any = doc.metadata
        for step in path:
            target = target[step]
        if isinstance(target, list):
            target.append(value)
        else:
            target[key] = value

    return change


_LONE_SURROGATES = {
    "section key": _set_section_field("key", "a\ud800"),
    "section title": _set_section_field("title", "T\udc00"),
    "section body": _set_section_field("body", "body \ud800"),
    "metadata value": _set_metadata((), "other", "\udc00"),
    # The serializer writes a lone surrogate in a top-level metadata key as
    # replacement characters instead of refusing it.
    "metadata key": _set_metadata((), "k\udc00", 1),
    "nested key": _set_metadata(("nested",), "\ud800", 1),
    "nested list item": _set_metadata(("nested", "list"), "", "x\ud800"),
}


@pytest.mark.parametrize("change", _LONE_SURROGATES.values(), ids=list(_LONE_SURROGATES))
def test_a_lone_surrogate_put_in_after_validation_is_refused(
    change: Callable[[StrategyDocument], None],
) -> None:
    doc = _document()
    change(doc)
    assert trusted_json_bytes(doc) is None
    with pytest.raises(ValidationError):
        MemoryStore().save(doc)


def test_the_two_halves_of_a_pair_in_two_strings_are_each_refused() -> None:
    # Side by side, a high and a low surrogate from two strings are still two
    # lone surrogates, not a pair.
    doc = _document()
    doc.sections[0].__dict__["body"] = "end \ud83d"
    doc.sections[1].__dict__["key"] = "\ude00start"
    assert trusted_json_bytes(doc) is None
    with pytest.raises(ValidationError):
        valid_bytes(doc)


@pytest.mark.parametrize("metadata", [[1], "text", None, 3, []])
def test_metadata_replaced_by_a_copy_with_another_json_value_is_refused(metadata: Any) -> None:
    doc = _document().model_copy(update={"metadata": metadata})
    assert trusted_json_bytes(doc) is None
    store = MemoryStore()
    # Dumping it for validation warns that metadata is not a mapping.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValidationError, match="metadata"):
            store.save(doc)
    assert store.list_briefs() == []


def test_sections_given_a_repeated_key_in_place_are_refused() -> None:
    doc = _document()
    doc.sections.append(Section(key="summary", title="Again", body=""))
    assert trusted_json_bytes(doc) is None
    with pytest.raises(ValidationError, match="more than once"):
        valid_bytes(doc)


def test_a_section_missing_a_field_is_refused() -> None:
    doc = _document()
    del doc.sections[0].__dict__["title"]
    assert trusted_json_bytes(doc) is None


def test_a_str_subclass_in_place_of_text_is_not_trusted() -> None:
    class Text(str):
        pass

    doc = _document()
    nested: Any = doc.metadata["nested"]
    nested["list"].append(Text("x"))
    assert trusted_json_bytes(doc) is None
    doc = _document()
    doc.metadata[Text("zz")] = 1
    assert trusted_json_bytes(doc) is None
    doc = _document()
    doc.sections[0].__dict__["body"] = Text("x")
    assert trusted_json_bytes(doc) is None


def test_metadata_changed_in_place_to_other_valid_json_is_written_as_it_now_is() -> None:
    doc = _document()
    doc.metadata["zz"] = {"b": [1, "é"], "a": 2}
    expected = StrategyDocument.model_validate(doc.model_dump()).to_json_bytes()
    assert valid_bytes(doc)[1] == expected


@pytest.mark.parametrize(
    ("value", "canonical"),
    [
        ({"a": 1, "b": [1.5, "x", None, False]}, True),
        ({"b": 1, "a": 2}, False),
        ({"a": float("nan")}, False),
        ({"a": 10**4300}, False),
        ({"a": -(10**4299)}, True),
        ({1: "a"}, False),
        ({"a": (1, 2)}, False),
        ({"a\ud800": 1}, False),
        (["\udfff"], False),
        ("text", True),
        ("\ud800", False),
        (float("inf"), False),
        (7, True),
        (None, True),
        ({1, 2}, False),
    ],
)
def test_is_canonical_json_accepts_only_json_as_validation_leaves_it(
    value: object, canonical: bool
) -> None:
    assert is_canonical_json(value) is canonical


def test_is_canonical_json_does_not_prove_shared_cyclic_or_deep_containers() -> None:
    shared: list[object] = [1]
    assert not is_canonical_json({"a": shared, "b": shared})
    cycle: list[object] = []
    cycle.append(cycle)
    assert not is_canonical_json(cycle)
    deep: list[object] = []
    for _ in range(70):
        deep = [deep]
    assert not is_canonical_json(deep)
    shallow: list[object] = []
    for _ in range(60):
        shallow = [shallow]
    assert is_canonical_json(shallow)
