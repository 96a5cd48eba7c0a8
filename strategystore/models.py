"""The strategy document, its sections and statuses, brief-id rules and the JSON codec.

A document's *canonical bytes* are what its file holds: fields in declaration
order, ``metadata`` keys sorted at every depth, two-space indent, non-ASCII
kept as is, timestamps as RFC 3339 UTC with ``Z`` and one trailing newline.
Documents compare by those bytes, so ``1``, ``1.0`` and ``true`` in metadata
differ while key order does not.

A version that is not a draft is *sealed*: its ``content_digest`` is the
SHA-256 of its content (see ``seal_of``), derived from what it holds, so an
approval can never cover content nobody approved.
"""

from __future__ import annotations

import contextlib
import contextvars
import hashlib
import operator
import re
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Self

import pydantic_core
from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    PrivateAttr,
    ValidationError,
    ValidatorFunctionWrapHandler,
    computed_field,
    field_validator,
    model_validator,
)

from strategystore._json import (
    MAX_INT_DIGITS,
    MAX_METADATA_DEPTH,
    all_text,
    canonical_json_value,
    check_text,
    plain_json,
    sorted_text_keys,
)

__all__ = [
    "MAX_INT_DIGITS",
    "MAX_METADATA_DEPTH",
    "MAX_VERSION",
    "Section",
    "Status",
    "StrategyDocument",
    "brief_id_problem",
    "check_version",
    "describe_validation_error",
    "dump_validated",
    "renumbered",
    "seal_of",
    "trusted_json_bytes",
    "trusted_key",
    "utc_now",
]

#: Versions are ``1 <= version < MAX_VERSION`` (a signed 32-bit column).
MAX_VERSION = 2**31

_BRIEF_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_WINDOWS_DEVICES = frozenset(
    ["con", "prn", "aux", "nul"] + [f"com{i}" for i in range(10)] + [f"lpt{i}" for i in range(10)]
)
_MARKER_NAME = "strategystore.json"
_SECTION_KEY_MAX = 100


def brief_id_problem(brief_id: object) -> str | None:
    """Why ``brief_id`` cannot safely name a brief directory, or ``None`` when it can.

    An id must be a string that fully matches ``[A-Za-z0-9][A-Za-z0-9._-]{0,99}``,
    does not end in ``.``, and is neither a Windows device name (with or without
    an extension) nor the marker file's name.
    """
    if not isinstance(brief_id, str):
        return f"must be a string, not {type(brief_id).__name__}"
    if _BRIEF_ID.fullmatch(brief_id) is None:
        return "use 1 to 100 characters from A-Z a-z 0-9 . _ -, starting with a letter or digit"
    if brief_id.endswith("."):
        return "must not end with '.' (Windows drops it)"
    if brief_id.split(".", 1)[0].lower() in _WINDOWS_DEVICES:
        return "is a Windows device name"
    if brief_id.lower() == _MARKER_NAME:
        return "is the name of the data directory's marker file"
    return None


def check_version(version: object) -> int:
    """Return ``version`` if it is an int in ``1 <= version < 2**31``.

    Raises:
        ValueError: anything else, ``True`` and ``False`` included.
    """
    if isinstance(version, bool) or not isinstance(version, int):
        raise ValueError(f"version must be an int, not {type(version).__name__} {version!r}")
    if not 1 <= version < MAX_VERSION:
        raise ValueError(f"version must be between 1 and {MAX_VERSION - 1}, not {version}")
    return version


def describe_validation_error(error: ValidationError, *, limit: int = 5) -> str:
    """Say, in one line for a person, what a validation error found.

    The one formatter behind every message that reports an invalid document,
    section or row: each problem as ``where: what`` (at most ``limit`` of
    them), without pydantic's ``Value error, `` prefix, and JSON that does
    not parse as ``not valid JSON: ...``.
    """
    problems = error.errors(include_url=False, include_input=False)
    if problems and problems[0]["type"] == "json_invalid":
        detail = problems[0].get("ctx", {}).get("error", problems[0]["msg"])
        return f"not valid JSON: {detail}"
    parts = []
    for problem in problems[:limit]:
        loc = [str(p) for p in problem["loc"]]
        if len(loc) > 8:  # a path through deep nesting says nothing more past its start
            loc = [*loc[:4], f"… ({len(loc) - 4} more levels)"]
        where = ".".join(loc)
        # pydantic prefixes the message of a validator's ValueError with its type.
        message = problem["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}" if where else message)
    more = f" (and {len(problems) - limit} more)" if len(problems) > limit else ""
    return "; ".join(parts) + more


def utc_now() -> datetime:
    """The current time, timezone-aware, in UTC."""
    return datetime.now(UTC)


class Status(StrEnum):
    """Where a version stands. Only ``draft`` content can change."""

    DRAFT = "draft"
    APPROVED = "approved"
    REJECTED = "rejected"
    WITHDRAWN = "withdrawn"


_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})?")


def _timestamp_input(value: object) -> object:
    # pydantic would read a number, or a string of digits, as a Unix time; a
    # file should say what it means, so only RFC 3339 text and datetime
    # objects are timestamps here (a missing offset is refused later, by
    # AwareDatetime, with its own message).
    if isinstance(value, datetime):
        return value
    if isinstance(value, str) and _RFC3339.fullmatch(value):
        return value
    shown = repr(value) if isinstance(value, str) else type(value).__name__
    raise ValueError(
        f"a timestamp must be an RFC 3339 string like 2026-01-15T09:30:00Z, not {shown}"
    )


def _to_utc(value: datetime) -> datetime:
    if type(value) is not datetime:
        # A subclass may override anything, and its tzinfo may change later:
        # keep only the moment it names, as a plain datetime.
        value = datetime(
            value.year,
            value.month,
            value.day,
            value.hour,
            value.minute,
            value.second,
            value.microsecond,
            tzinfo=value.tzinfo,
            fold=value.fold,
        )
    try:
        return value.astimezone(UTC)
    except OverflowError:
        raise ValueError(
            f"{value.isoformat()} is outside the timestamps a document can hold "
            "(years 1 to 9999 in UTC)"
        ) from None


_Timestamp = Annotated[AwareDatetime, BeforeValidator(_timestamp_input)]


class Section(BaseModel):
    """One section of a strategy: a unique ``key``, a ``title`` and a Markdown ``body``."""

    # defer_build: the validators are built on first use, not on import.
    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    key: Annotated[str, Field(min_length=1, max_length=_SECTION_KEY_MAX)]
    title: str
    body: str

    @model_validator(mode="after")
    def _valid_text(self) -> Self:
        for name in ("key", "title", "body"):
            check_text(getattr(self, name), name)
        return self


class StrategyDocument(BaseModel):
    """One version of the strategy written for a client brief.

    Frozen and strict about its shape: unknown fields are refused, timestamps
    must carry a timezone (they are stored in UTC), section keys are unique and
    ``updated_at`` is never before ``created_at``. ``updated_at`` defaults to
    ``created_at``, which defaults to now.

    Two documents are equal when their canonical bytes are equal.
    """

    model_config = ConfigDict(frozen=True, extra="forbid", defer_build=True)

    brief_id: Annotated[
        str,
        Field(
            description="The client brief; also the name of the document's directory.",
            json_schema_extra={"pattern": f"^{_BRIEF_ID.pattern}(?<!\\.)$", "maxLength": 100},
        ),
    ]
    version: Annotated[int, Field(strict=True, ge=1, lt=MAX_VERSION)]
    status: Status = Status.DRAFT
    status_reason: str | None = None
    created_at: _Timestamp = Field(default_factory=utc_now)
    updated_at: _Timestamp = Field(default_factory=utc_now)
    sections: list[Section] = Field(default_factory=list)
    metadata: dict[str, JsonValue] = Field(default_factory=dict)

    # The fields that cannot change in place, as validation left them (see
    # ``_trusted_json_bytes``). ``model_construct`` leaves it unset, and a copy
    # made with ``model_copy(update=...)`` no longer matches what it holds.
    _validated: tuple[object, ...] | None = PrivateAttr(default=None)
    # The seal validation computed to check a given one; only ``dump_validated``
    # reads it, right after validation, so it is never stale when read.
    _fresh_seal: str | None = PrivateAttr(default=None)

    @model_validator(mode="wrap")
    @classmethod
    def _given_seal_must_match(cls, data: Any, handler: ValidatorFunctionWrapHandler) -> Any:
        # content_digest is derived from the content; a value given (every
        # file states one) is checked against it, never taken.
        if not isinstance(data, dict) or "content_digest" not in data:
            return handler(data)
        data = dict(data)
        given = data.pop("content_digest")
        doc = handler(data)
        problem = _seal_problem(doc, given)
        if problem is not None:
            raise ValueError(problem)
        if isinstance(doc, StrategyDocument) and given is not None:
            doc.__pydantic_private__["_fresh_seal"] = given  # type: ignore[index]
        return doc

    @model_validator(mode="before")
    @classmethod
    def _updated_at_defaults_to_created_at(cls, data: Any) -> Any:
        if isinstance(data, dict) and "updated_at" not in data:
            data = dict(data)
            data["updated_at"] = data.setdefault("created_at", utc_now())
        return data

    @field_validator("brief_id")
    @classmethod
    def _valid_brief_id(cls, value: str) -> str:
        problem = brief_id_problem(value)
        if problem is not None:
            raise ValueError(f"invalid brief id {value!r}: {problem}")
        return value

    @field_validator("status_reason")
    @classmethod
    def _valid_reason(cls, value: str | None) -> str | None:
        return None if value is None else check_text(value, "status_reason")

    @field_validator("created_at", "updated_at")
    @classmethod
    def _in_utc(cls, value: datetime) -> datetime:
        return _to_utc(value)

    @field_validator("sections")
    @classmethod
    def _unique_section_keys(cls, sections: list[Section]) -> list[Section]:
        seen: set[str] = set()
        for section in sections:
            if section.key in seen:
                raise ValueError(f"section key {section.key!r} appears more than once")
            seen.add(section.key)
        return sections

    @field_validator("metadata")
    @classmethod
    def _canonical_metadata(cls, metadata: dict[str, JsonValue]) -> dict[str, JsonValue]:
        canonical = canonical_json_value(metadata, "metadata")
        assert isinstance(canonical, dict)
        return canonical

    @model_validator(mode="after")
    def _updated_not_before_created(self) -> Self:
        if self.updated_at < self.created_at:
            raise ValueError(
                f"updated_at {self.updated_at.isoformat()} is before "
                f"created_at {self.created_at.isoformat()}"
            )
        if type(self) is StrategyDocument:  # a subclass validates in its own way
            self.__pydantic_private__["_validated"] = self._immutable_fields()  # type: ignore[index]
        return self

    def _immutable_fields(self) -> tuple[object, ...]:
        return (
            self.brief_id,
            self.version,
            self.status,
            self.status_reason,
            self.created_at,
            self.updated_at,
        )

    def _trusted_json_bytes(self) -> bytes | None:
        """See ``trusted_json_bytes``."""
        return self._dump() if self._still_as_validated() else None

    def _still_as_validated(self) -> bool:
        private = self.__pydantic_private__
        validated = private.get("_validated") if private else None
        if (
            validated is None
            or type(self) is not StrategyDocument
            or not all(map(operator.is_, validated, self._immutable_fields()))
        ):
            return False
        # Every text of the sections and metadata, checked at once at the end.
        texts: list[str] = []
        metadata = self.metadata
        return (
            _sections_still_valid(self.sections, texts)
            # model_copy(update=...) may have put any JSON value in its place.
            and type(metadata) is dict
            and plain_json(metadata, texts)
            and all_text(texts)
        )

    def _renumbered(self, version: int) -> StrategyDocument:
        """A copy under another version, still known valid if this one is."""
        copy = self.model_copy(update={"version": check_version(version)})
        if self._still_as_validated():
            copy.__pydantic_private__["_validated"] = copy._immutable_fields()  # type: ignore[index]
        return copy

    @computed_field(  # type: ignore[prop-decorator]
        repr=False,  # a long hash says nothing to a reader, and repr must never fail
        description="The seal of a version that is not a draft: sha256 of its content; "
        "null for a draft.",
    )
    @property
    def content_digest(self) -> str | None:
        """The seal of the content (``"sha256:…"``) when not a draft; ``None`` for a draft."""
        if self.status == Status.DRAFT:
            return None
        fresh = _SEAL_BEING_DUMPED.get()
        if fresh is not None and fresh[0] is self:
            return fresh[1]
        return seal_of(self)

    @property
    def key(self) -> tuple[str, int]:
        """The unique key ``(brief_id, version)``."""
        return (self.brief_id, self.version)

    def section(self, key: str) -> Section | None:
        """The section with this ``key``, or ``None``."""
        return next((s for s in self.sections if s.key == key), None)

    def to_json_bytes(self) -> bytes:
        """The canonical bytes: exactly what the document's file holds."""
        # metadata may have been changed in place after validation; sorting it
        # again keeps the bytes canonical whatever was done to the dict.
        if self.metadata and not sorted_text_keys(self.metadata):
            copy = self.model_copy(update={"metadata": self._canonical_metadata(self.metadata)})
            return copy._dump()
        return self._dump()

    def _dump(self) -> bytes:
        # model_dump_json(indent=2) without its decode to str and encode back.
        return self.__pydantic_serializer__.to_json(self, indent=2) + b"\n"

    @classmethod
    def from_json_bytes(cls, data: bytes | str) -> StrategyDocument:
        """Parse and validate a document from JSON text.

        Raises:
            pydantic.ValidationError: the text is not JSON or not a valid document.
        """
        return cls.model_validate_json(data)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StrategyDocument):
            return NotImplemented
        return self.to_json_bytes() == other.to_json_bytes()

    def __hash__(self) -> int:
        return hash(self.to_json_bytes())


def seal_of(doc: StrategyDocument) -> str:
    """The seal of ``doc``'s content, whatever its status: ``"sha256:"`` and 64 hex digits.

    It is the SHA-256 of the UTF-8 bytes of the compact JSON array
    ``[brief_id, version, created_at, sections, metadata]``: no whitespace,
    non-ASCII as is, ``created_at`` as the file's RFC 3339 text, each section
    as ``{"key", "title", "body"}``, metadata keys sorted at every depth, and
    every number spelled as the document's file spells it. Status, reason and
    ``updated_at`` are outside it, so ``withdraw`` keeps the seal.
    """
    metadata: JsonValue = doc.metadata
    if not sorted_text_keys(metadata):  # changed in place, or never validated
        metadata = canonical_json_value(metadata, "metadata")
    created: object = doc.created_at
    if type(created) is not datetime or created.tzinfo is not UTC:
        # As the file spells it: in UTC (a copy may hold another offset).
        with contextlib.suppress(ValueError, TypeError, AttributeError):
            created = _to_utc(created)  # type: ignore[arg-type]
    sections = doc.sections
    if type(sections) is list and all(type(s) is Section for s in sections):
        try:
            content = pydantic_core.to_json(
                [doc.brief_id, doc.version, created, sections, metadata]
            )
        except pydantic_core.PydanticSerializationError:
            pass  # a section made with model_construct may lack a field
        else:
            return "sha256:" + hashlib.sha256(content).hexdigest()
    fields = [_section_content(section) for section in sections]
    content = pydantic_core.to_json([doc.brief_id, doc.version, created, fields, metadata])
    return "sha256:" + hashlib.sha256(content).hexdigest()


def _section_content(section: object) -> object:
    # model_construct may have left a mapping where a Section belongs.
    fields = section.__dict__ if isinstance(section, Section) else section
    if isinstance(fields, dict):
        return {name: fields.get(name) for name in ("key", "title", "body")}
    return section


def _seal_problem(doc: StrategyDocument, given: object) -> str | None:
    """Why ``given`` is not the ``content_digest`` ``doc`` must state, or ``None``."""
    expected = doc.content_digest
    if given == expected:
        return None
    where = f"version {doc.version} of brief {doc.brief_id!r}"
    if expected is None:
        return (
            f"content_digest must be null for a draft, and {where} is a draft with a seal: "
            "its status was put back to draft by hand; restore the file from git"
        )
    status = doc.status.value
    if given is None:
        return (
            f"{where} is {status} but has no seal (content_digest is null): "
            "a version that is not a draft carries the seal of its content; "
            "restore the file from git, or store the content as a new draft version"
        )
    return (
        f"{status} content changed after it was sealed: the content_digest of {where} "
        "does not match what it holds; restore the file from git, "
        "or save the change as a new version"
    )


def trusted_key(doc: object) -> bool:
    """Whether ``doc`` is a document whose id and version are the very ones validation checked.

    Its other fields may still have changed since: ``trusted_json_bytes`` tells.
    """
    if type(doc) is not StrategyDocument:
        return False
    private = doc.__pydantic_private__
    validated = private.get("_validated") if private else None
    fields = doc.__dict__
    return (
        validated is not None
        and validated[0] is fields.get("brief_id")
        and validated[1] is fields.get("version")
    )


def trusted_json_bytes(doc: StrategyDocument) -> bytes | None:
    """``doc``'s canonical bytes, if it provably still is what validation made; else ``None``.

    That holds when the fields that cannot change in place are the very
    objects validation left, and ``sections`` and ``metadata``, which can be
    changed in place, still pass the checks validation applied to them.
    ``None`` means it is not proven (the document was built with
    ``model_construct`` or ``model_copy(update=...)``, is of a subclass, or
    changed in place): validate it again to find out.
    """
    return doc._trusted_json_bytes()


def dump_validated(doc: StrategyDocument) -> bytes:
    """The canonical bytes of a document validation has just made (its metadata sorted).

    The seal that validation computed to check the one given is used again,
    not computed a second time.
    """
    private = doc.__pydantic_private__ or {}
    fresh = private.pop("_fresh_seal", None)
    if fresh is None:
        return doc._dump()
    token = _SEAL_BEING_DUMPED.set((doc, fresh))
    try:
        return doc._dump()
    finally:
        _SEAL_BEING_DUMPED.reset(token)


#: The document ``dump_validated`` is dumping, with the seal validation computed.
_SEAL_BEING_DUMPED: contextvars.ContextVar[tuple[StrategyDocument, str] | None] = (
    contextvars.ContextVar("seal_being_dumped", default=None)
)


def renumbered(doc: StrategyDocument, version: int) -> StrategyDocument:
    """A copy of ``doc`` under another version, still known valid if ``doc`` is."""
    return doc._renumbered(version)


def _sections_still_valid(sections: object, texts: list[str]) -> bool:
    """Whether ``sections`` is a list of ``Section`` objects with unique keys, but for text.

    Every key, title and body is added to ``texts``, for ``all_text`` to check.
    """
    if type(sections) is not list:
        return False
    start = len(texts)
    for section in sections:
        if type(section) is not Section:
            return False
        # model_construct may have left a field out: read the values as stored.
        fields = section.__dict__
        key, title, body = fields.get("key"), fields.get("title"), fields.get("body")
        if type(key) is not str or type(title) is not str or type(body) is not str:
            return False
        if not 1 <= len(key) <= _SECTION_KEY_MAX:
            return False
        texts += (key, title, body)
    keys = texts[start::3]
    return len(set(keys)) == len(keys)
