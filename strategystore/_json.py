"""JSON values a document holds, and the rules that make them read back identically.

A value is stored only if the JSON reader gives it back as it was: finite
numbers, integers of at most ``MAX_INT_DIGITS`` digits, text with a UTF-8 form,
nesting at most ``MAX_METADATA_DEPTH`` deep, and objects with text keys,
kept sorted so that equal values give equal bytes.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from pydantic import JsonValue

__all__ = [
    "MAX_INT_DIGITS",
    "MAX_METADATA_DEPTH",
    "all_text",
    "canonical_json_value",
    "check_text",
    "is_canonical_json",
    "is_text",
    "plain_json",
    "sorted_text_keys",
]

#: How deep ``metadata`` may nest, counting the metadata object itself as 1.
#: The JSON reader stops at 200 levels in a whole file; a document is only
#: stored if it reads back, so the limit keeps well inside that.
MAX_METADATA_DEPTH = 100
#: Integers in ``metadata`` have at most this many digits: the JSON reader
#: (like Python's own int parsing) refuses longer ones.
MAX_INT_DIGITS = 4300
_INT_LIMIT = 10**MAX_INT_DIGITS


def check_text(value: str, where: str) -> str:
    """Refuse text that is not valid Unicode: a lone surrogate has no UTF-8 form."""
    if not value.isascii():
        try:
            value.encode()
        except UnicodeEncodeError as exc:
            raise ValueError(
                f"{where} holds the lone surrogate {value[exc.start]!r} at position "
                f"{exc.start}, which is not text and cannot be written as UTF-8"
            ) from None
    return value


def canonical_json_value(value: JsonValue, where: str, depth: int = 1) -> JsonValue:
    """Sort object keys at every depth and refuse what would not read back identically.

    That is a non-finite number, an integer of more than ``MAX_INT_DIGITS``
    digits, text with a lone surrogate (in a key too), and nesting deeper
    than ``MAX_METADATA_DEPTH``.
    """
    if isinstance(value, dict | list):
        if depth > MAX_METADATA_DEPTH:
            raise ValueError(
                f"{where} nests deeper than metadata may ({MAX_METADATA_DEPTH} levels)"
            )
        if isinstance(value, list):
            return [
                canonical_json_value(v, f"{where}[{i}]", depth + 1) for i, v in enumerate(value)
            ]
        strange = [k for k in value if not isinstance(k, str)]
        if strange:
            raise ValueError(f"{where} has the key {strange[0]!r}, which is not text")
        return {
            check_text(k, f"the key {where}.{k!r}"): canonical_json_value(
                value[k], f"{where}.{k}", depth + 1
            )
            for k in sorted(value)
        }
    if isinstance(value, str):
        return check_text(value, where)
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} is {value!r}, which JSON cannot hold")
    if isinstance(value, int) and not -_INT_LIMIT < value < _INT_LIMIT:
        raise ValueError(
            f"{where} is an integer of more than {MAX_INT_DIGITS} digits, "
            "which the JSON reader cannot read back"
        )
    return value


_JSON_SCALARS = frozenset([bool, type(None)])


def is_text(value: str) -> bool:
    """Whether ``value`` has a UTF-8 form (no lone surrogate)."""
    if value.isascii():
        return True
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return True


#: Deeper metadata is left to full validation, which has its own limits.
_MAX_JSON_DEPTH = 64


def is_canonical_json(value: object) -> bool:
    """Whether ``value`` is JSON as validation leaves it: plain types, sorted keys, finite.

    A container met twice (a cycle, or one shared by two places) or nested
    deeper than ``_MAX_JSON_DEPTH`` is not proven: full validation decides.
    """
    texts: list[str] = []
    return plain_json(value, texts) and all_text(texts)


def plain_json(value: object, texts: list[str]) -> bool:
    """``is_canonical_json`` but for text: every key and string is added to ``texts``.

    ``all_text(texts)`` then completes the proof; one check of all the text
    at once costs far less than one for each string.
    """
    kind = type(value)
    if kind is dict or kind is list:
        return _plain_container(value, 0, texts, set())  # type: ignore[arg-type]
    if kind is str:
        texts.append(value)  # type: ignore[arg-type]
        return True
    return _plain_scalar(value, kind)


def all_text(texts: list[str]) -> bool:
    """Whether every one of ``texts`` (each exactly a ``str``) has a UTF-8 form."""
    # Joining keeps each lone surrogate lone (a str holds code points, so a
    # high and a low one side by side stay two), and an all-ASCII join is
    # known ASCII without a scan.
    return is_text("".join(texts))


def _plain_scalar(value: Any, kind: type) -> bool:
    if kind is int:
        return bool(-_INT_LIMIT < value < _INT_LIMIT)
    if kind is float:
        return math.isfinite(value)
    return kind in _JSON_SCALARS


def _plain_container(
    value: dict[object, object] | list[object], depth: int, texts: list[str], seen: set[int]
) -> bool:
    if depth >= _MAX_JSON_DEPTH or id(value) in seen:
        return False
    seen.add(id(value))
    items: Iterable[object]
    if type(value) is dict:
        keys = list(value)
        for key in keys:
            if type(key) is not str:
                return False
        if keys != sorted(keys):  # type: ignore[type-var]
            return False
        texts += keys  # type: ignore[arg-type]
        items = value.values()
    else:
        items = value
    for item in items:
        kind = type(item)
        if kind is str:
            texts.append(item)  # type: ignore[arg-type]
        elif kind is int:
            if not -_INT_LIMIT < item < _INT_LIMIT:
                return False
        elif kind is float:
            if not math.isfinite(item):  # type: ignore[arg-type]
                return False
        elif kind is dict or kind is list:
            if not _plain_container(item, depth + 1, texts, seen):  # type: ignore[arg-type]
                return False
        elif kind not in _JSON_SCALARS:
            return False
    return True


def sorted_text_keys(value: object) -> bool:
    """Whether every object in ``value`` has text keys in sorted order."""
    if type(value) is dict:
        keys = list(value)
        return (
            all(type(k) is str for k in keys)
            and keys == sorted(keys)
            and all(sorted_text_keys(v) for v in value.values())
        )
    if type(value) is list:
        return all(sorted_text_keys(v) for v in value)
    return True
