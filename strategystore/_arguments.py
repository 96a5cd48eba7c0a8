"""What callers hand a store, checked before any primitive sees it.

Documents, sections and moments are validated here, so that a store writes
only what it could read back identically.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from strategystore.errors import InvalidBriefIdError
from strategystore.models import (
    Section,
    StrategyDocument,
    brief_id_problem,
    check_version,
    trusted_json_bytes,
    utc_now,
)

__all__ = ["as_document", "check_brief_id", "check_now", "same", "section", "valid_bytes"]


def same(current: StrategyDocument, stored: bytes, data: bytes) -> bool:
    """Whether the stored document equals the one whose canonical bytes are ``data``."""
    # Files the store wrote are canonical, so comparing the bytes as stored
    # settles it at once; a hand-edited file is compared by its canonical form.
    return stored == data or current.to_json_bytes() == data


def valid_bytes(doc: object) -> tuple[StrategyDocument, bytes]:
    """``doc`` and its canonical bytes, proven valid: what a store writes always is.

    ``model_construct``, ``model_copy(update=...)`` and changing ``sections``
    or ``metadata`` in place all bypass validation, and the key names files.
    A document that validation made and that has not changed since is taken
    as it is; any other is validated again in full, and the valid document
    that validation returns is the one written.
    """
    if not isinstance(doc, StrategyDocument):
        raise TypeError(f"expected a StrategyDocument, not {type(doc).__name__}")
    data = trusted_json_bytes(doc)
    if data is None:
        # A trusted document's id and version are the very objects
        # validation checked, with these same rules; any other is checked
        # here first, for these errors rather than validation's.
        check_brief_id(doc.brief_id)
        check_version(doc.version)
        # The seal is derived from the content, so it is not carried over.
        doc = StrategyDocument.model_validate(doc.model_dump(exclude={"content_digest"}))
        data = doc.to_json_bytes()
    return doc, data


def as_document(doc: object) -> StrategyDocument:
    if not isinstance(doc, StrategyDocument):
        raise TypeError(f"expected a StrategyDocument, not {type(doc).__name__}")
    return doc


def section(value: Section | Mapping[str, str]) -> Section:
    # A new, validated Section even from a Section: one made with
    # model_construct may be invalid, and the result shares nothing with it.
    if isinstance(value, Section):
        return Section.model_validate(dict(value.__dict__))
    if not isinstance(value, Mapping):
        raise TypeError(
            "each section must be a Section or a mapping with key, title and body, "
            f"not {type(value).__name__} {value!r:.60}"
        )
    return Section.model_validate(dict(value))


def check_now(now: datetime | None) -> datetime:
    if now is None:
        return utc_now()
    if not isinstance(now, datetime):
        raise TypeError(f"now must be a datetime, not {type(now).__name__}")
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, not the naive {now.isoformat()}")
    return now


def check_brief_id(brief_id: object) -> str:
    """Return ``brief_id`` if it can safely name a brief directory.

    Raises:
        InvalidBriefIdError: it is not a string, does not fully match
            ``[A-Za-z0-9][A-Za-z0-9._-]{0,99}``, ends in ``.``, is a Windows
            device name (with or without an extension) or the marker file's name.
    """
    problem = brief_id_problem(brief_id)
    if problem is not None:
        raise InvalidBriefIdError(brief_id, problem)
    assert isinstance(brief_id, str)
    return brief_id
