"""The ``Store`` protocol, and ``BaseStore``: every rule of the contract, once.

A store supplies only the primitives of ``_primitives``, so every store
agrees by construction; the parity tests check that they do.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Self, TypeVar

from pydantic import JsonValue

from strategystore._arguments import (
    as_document,
    check_brief_id,
    check_now,
    same,
    section,
    valid_bytes,
)
from strategystore._importing import run_import
from strategystore._instant import READER_LOCK_WAIT, at_one_instant
from strategystore._primitives import Loader, Primitives
from strategystore._protocol import ImportOutcome, ImportSummary, OnResult, Store
from strategystore.errors import (
    ConcurrentUpdateError,
    CorruptDocumentError,
    DuplicateVersionError,
    ImmutableVersionError,
    InvalidBriefIdError,
    StatusChangeError,
    VersionNotFoundError,
)
from strategystore.models import (
    Section,
    Status,
    StrategyDocument,
    check_version,
    renumbered,
)

__all__ = [
    "BaseStore",
    "ImportOutcome",
    "ImportSummary",
    "Store",
]

_T = TypeVar("_T")


class BaseStore(Primitives):
    """The contract of DESIGN.md section 3, stated once over a store's primitives.

    A store implements the primitives of ``Primitives``; every rule is here.
    Every write runs its check and its write inside ``_locked(brief_id)``;
    reads take no lock. A store is a context manager, and ``close()`` ends
    its use.
    """

    def __init__(self) -> None:
        self._closed = False

    # -- using and closing a store -------------------------------------------

    def close(self) -> None:
        """End the use of this store, releasing what it holds; closing again does nothing.

        Any later call of its methods raises ``ValueError``.
        """
        if not self._closed:
            self._closed = True
            self._close()

    @property
    def closed(self) -> bool:
        """Whether ``close()`` was called."""
        return self._closed

    def __enter__(self) -> Self:
        self._check_open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise ValueError(f"{self!r} is closed")

    def _hold(self, brief_id: str, timeout: float | None = None) -> AbstractContextManager[None]:
        self._check_open()
        return self._locked(brief_id, timeout)

    # -- the repository port ------------------------------------------------

    def save(self, doc: StrategyDocument) -> None:
        """Insert or replace the version ``(doc.brief_id, doc.version)``.

        Saving a document equal to the stored one changes nothing.

        Raises:
            ImmutableVersionError: the stored version is not a draft and ``doc`` differs.
            StatusChangeError: (a ``ValueError``) the stored version is a draft and
                ``doc`` has another status; use ``approve``, ``reject`` or ``withdraw``.
            InvalidBriefIdError: a brief differing only by case already exists.
        """
        data = valid_bytes(doc)[1]
        with self._hold(doc.brief_id):
            self._put(doc, data, overwrite=True)

    def get_strategy(self, brief_id: str, version: int) -> StrategyDocument | None:
        """The stored version, or ``None`` when it does not exist."""
        check_brief_id(brief_id)
        check_version(version)
        return self._read(brief_id, version)

    def list_versions_by_brief(self, brief_id: str) -> list[StrategyDocument]:
        """Every version of a brief, newest first; ``[]`` for an unknown brief."""
        check_brief_id(brief_id)

        def every(versions: list[int], load: Loader) -> list[StrategyDocument]:
            return [doc for doc in map(load, versions) if doc is not None]

        return self._at_one_instant(brief_id, every)

    def get_stored_bytes(self, brief_id: str, version: int) -> bytes | None:
        """The version's bytes exactly as stored (a hand-edited file as it is), or ``None``.

        Raises:
            CorruptDocumentError: what is stored is not a valid document.
        """
        check_brief_id(brief_id)
        check_version(version)
        self._check_open()
        loaded = self._load(brief_id, version)
        return None if loaded is None else loaded[1]

    # -- the rest of the contract ------------------------------------------

    def create(self, doc: StrategyDocument) -> None:
        """Insert a version that must not exist yet: the unique constraint.

        Raises:
            DuplicateVersionError: the key exists, whatever its content (``.existing``).
            InvalidBriefIdError: a brief differing only by case already exists.
        """
        data = valid_bytes(doc)[1]
        with self._hold(doc.brief_id):
            current = self._read(doc.brief_id, doc.version)
            if current is not None:
                raise DuplicateVersionError(current)
            _refuse_case_variant(doc.brief_id, self._case_variant(doc.brief_id))
            if not self._write(doc, data, exclusive=True):
                raise DuplicateVersionError(self._read(doc.brief_id, doc.version) or doc)

    def create_next(
        self,
        brief_id: str,
        sections: Iterable[Section | Mapping[str, str]] = (),
        metadata: Mapping[str, JsonValue] | None = None,
        *,
        status: Status = Status.DRAFT,
        now: datetime | None = None,
    ) -> StrategyDocument:
        """Store a new version numbered one above the highest (1 for a new brief).

        The number is allocated under the brief's lock, so racing callers in
        any thread or process get distinct, contiguous versions.

        Returns:
            The document as stored.

        Raises:
            InvalidBriefIdError: a bad id, or a brief differing only by case exists.
            pydantic.ValidationError: the sections or metadata are invalid.
            TypeError: ``sections`` is a mapping or text, or holds something
                that is neither a ``Section`` nor a mapping.
        """
        check_brief_id(brief_id)
        if isinstance(sections, Mapping | str | bytes):
            raise TypeError(
                f"sections must be a list of Section objects or of mappings with key, title "
                f"and body, not a {type(sections).__name__}; metadata is the next argument "
                "(create_next(brief_id, sections, metadata))"
            )
        # Validated before the lock is taken, so racing writers wait only for
        # the version number to be chosen and the file to be written.
        draft = StrategyDocument(
            brief_id=brief_id,
            version=1,
            status=status,
            created_at=check_now(now),
            sections=[section(s) for s in sections],
            metadata=dict(metadata or {}),
        )
        self._check_open()
        with self._locked_highest(brief_id) as highest:
            if not highest:
                _refuse_case_variant(brief_id, self._case_variant(brief_id))
            version = check_version(highest + 1)
            doc = draft if version == 1 else renumbered(draft, version)
            if not self._write(doc, doc.to_json_bytes(), exclusive=True):
                raise DuplicateVersionError(self._read(brief_id, version) or doc)
        # Validation built the draft's containers, sections and timestamps
        # afresh: it shares nothing with the caller's arguments, nor the store.
        return doc

    def get_latest(
        self, brief_id: str, *, status: Status | str | None = None
    ) -> StrategyDocument | None:
        """The highest version, or the highest with ``status``; ``None`` if there is none.

        ``status`` is a ``Status`` or its value (``"approved"``).

        Raises:
            ValueError: ``status`` names no status.
        """
        check_brief_id(brief_id)
        wanted = None if status is None else _status(status)

        def latest(versions: list[int], load: Loader) -> StrategyDocument | None:
            for version in versions:
                doc = load(version)
                if doc is not None and (wanted is None or doc.status is wanted):
                    return doc
            return None

        return self._at_one_instant(brief_id, latest)

    def list_briefs(self) -> list[str]:
        """Ids of the briefs with at least one version, ascending by code point."""
        self._check_open()
        return sorted(self._briefs())

    def list_version_numbers(self, brief_id: str) -> list[int]:
        """A brief's version numbers, newest first, without reading any document."""
        check_brief_id(brief_id)
        self._check_open()
        return sorted(self._versions(brief_id), reverse=True)

    def iter_documents(self, brief_ids: Iterable[str] | None = None) -> Iterator[StrategyDocument]:
        """Every document (of ``brief_ids``, else of every brief), briefs and versions ascending.

        It streams: one brief is held in memory at a time, read as it stood at
        one instant. Unknown briefs yield nothing.

        Raises:
            InvalidBriefIdError: one of ``brief_ids`` is not a valid id (before anything is read).
            CorruptDocumentError: when it reaches a damaged document, after the
                versions before it.
        """
        if brief_ids is None:
            briefs = self.list_briefs()
        else:
            if isinstance(brief_ids, str):
                raise TypeError("brief_ids must be a collection of ids, not one string")
            briefs = sorted({check_brief_id(brief) for brief in brief_ids})
        return self._iter_briefs(briefs)

    def _iter_briefs(self, briefs: list[str]) -> Iterator[StrategyDocument]:
        for brief in briefs:
            docs, damage = self._at_one_instant(brief, _upward_until_damaged)
            yield from docs
            if damage is not None:
                raise damage

    def update(self, doc: StrategyDocument, *, expected: StrategyDocument) -> None:
        """Compare-and-swap: replace the stored draft only if it still equals ``expected``.

        Raises:
            ValueError: ``doc`` and ``expected`` have different keys.
            VersionNotFoundError: the version does not exist.
            ConcurrentUpdateError: the stored document is not ``expected`` (``.current``).
            ImmutableVersionError: the stored version is not a draft and ``doc`` differs.
            StatusChangeError: (a ``ValueError``) ``doc`` has another status than the
                stored draft; use ``approve``, ``reject`` or ``withdraw``.
        """
        data = valid_bytes(doc)[1]
        expected_data = as_document(expected).to_json_bytes()
        if doc.key != expected.key:
            raise ValueError(
                f"update of {doc.key} expects a document with the same key, not {expected.key}"
            )
        with self._hold(doc.brief_id):
            loaded = self._load(doc.brief_id, doc.version)
            if loaded is None:
                raise VersionNotFoundError(doc.brief_id, doc.version)
            current, stored = loaded
            if not same(current, stored, expected_data):
                raise ConcurrentUpdateError(current)
            if same(current, stored, data):
                return
            _refuse_unless_draft(current, "update")
            _refuse_status_change(doc)
            self._write(doc, data, exclusive=False)

    def approve(
        self, brief_id: str, version: int, *, now: datetime | None = None
    ) -> StrategyDocument:
        """Move a draft to ``approved``; an approved version is returned unchanged.

        Raises:
            VersionNotFoundError: the version does not exist.
            ImmutableVersionError: it is rejected or withdrawn.
            ValueError: ``now`` is naive or before the document's ``created_at``.
        """
        return self._transition(
            brief_id, version, target=Status.APPROVED, source=Status.DRAFT, reason=None, now=now
        )

    def reject(
        self,
        brief_id: str,
        version: int,
        *,
        reason: str | None = None,
        now: datetime | None = None,
    ) -> StrategyDocument:
        """Move a draft to ``rejected``; a rejected version is returned unchanged.

        Raises:
            VersionNotFoundError: the version does not exist.
            ImmutableVersionError: it is approved or withdrawn.
            ValueError: ``now`` is naive or before the document's ``created_at``.
        """
        return self._transition(
            brief_id, version, target=Status.REJECTED, source=Status.DRAFT, reason=reason, now=now
        )

    def withdraw(
        self,
        brief_id: str,
        version: int,
        *,
        reason: str | None = None,
        now: datetime | None = None,
    ) -> StrategyDocument:
        """Move an approved version to ``withdrawn``, the soft delete; idempotent.

        Raises:
            VersionNotFoundError: the version does not exist.
            ImmutableVersionError: it is a draft or rejected.
            ValueError: ``now`` is naive or before the document's ``created_at``.
        """
        return self._transition(
            brief_id,
            version,
            target=Status.WITHDRAWN,
            source=Status.APPROVED,
            reason=reason,
            now=now,
        )

    def delete(self, brief_id: str, version: int) -> bool:
        """Delete a draft; deleting a brief's last version removes the brief.

        Returns:
            ``False`` when the version does not exist.

        Raises:
            ImmutableVersionError: the version is not a draft.
        """
        check_brief_id(brief_id)
        check_version(version)
        with self._hold(brief_id):
            current = self._read(brief_id, version)
            if current is None:
                return False
            _refuse_unless_draft(current, "delete", _KEEP_RULES)
            self._remove(brief_id, version)
        return True

    def import_documents(
        self,
        docs: Iterable[StrategyDocument],
        *,
        upsert: bool = False,
        on_result: OnResult | None = None,
    ) -> ImportSummary:
        """Store many documents, each on its own, and make them durable together.

        A document whose key is absent is written; one identical to the stored
        document is skipped; one that differs is refused
        (``DuplicateVersionError``) unless ``upsert``, and even then refused
        when the stored version is not a draft (``ImmutableVersionError``).
        Nothing refused stops the import. Every written document is durable
        when this returns (with ``durable=True``): files are fsynced, then each
        directory once, which is far cheaper than one durable ``save`` each.

        Args:
            docs: the documents, consumed one at a time (a generator is fine).
            upsert: replace differing drafts instead of refusing them.
            on_result: called after each document with its outcome
                (``"written"``, ``"skipped"`` or ``"refused"``) and the error
                that refused it.

        Returns:
            How many documents were written, skipped and refused.
        """
        self._check_open()
        return run_import(
            docs,
            bulk=self._bulk_writer(),
            hold=self._hold,
            put=lambda doc, data, write: self._put(doc, data, overwrite=upsert, write=write),
            on_result=on_result,
        )

    # -- shared helpers -----------------------------------------------------

    def _read(self, brief_id: str, version: int) -> StrategyDocument | None:
        self._check_open()
        loaded = self._load(brief_id, version)
        return None if loaded is None else loaded[0]

    def _put(
        self,
        doc: StrategyDocument,
        data: bytes,
        *,
        overwrite: bool,
        write: Callable[[StrategyDocument, bytes], object] | None = None,
    ) -> ImportOutcome:
        """Insert ``doc``, or replace a differing draft when ``overwrite``; under the lock.

        ``write`` stores it (by default ``_write``, replacing).
        """
        loaded = self._load(doc.brief_id, doc.version)
        if loaded is None:
            _refuse_case_variant(doc.brief_id, self._case_variant(doc.brief_id))
        else:
            current, stored = loaded
            if same(current, stored, data):
                return "skipped"
            if not overwrite:
                raise DuplicateVersionError(current)
            _refuse_unless_draft(current, "change")
            _refuse_status_change(doc)
        if write is None:
            self._write(doc, data, exclusive=False)
        else:
            write(doc, data)
        return "written"

    def _at_one_instant(self, brief_id: str, pick: Callable[[list[int], Loader], _T]) -> _T:
        """``pick(versions, load)`` over the brief as it stood at one instant (see ``_instant``)."""
        self._check_open()
        if (snapshot := self._snapshot(brief_id)) is not None:
            return pick(*snapshot)
        return at_one_instant(
            versions=lambda: sorted(self._versions(brief_id), reverse=True),
            read=lambda version: self._read(brief_id, version),
            stamp=lambda version: self._stamp(brief_id, version),
            lock=lambda: self._locked(brief_id, timeout=READER_LOCK_WAIT),
            pick=pick,
        )

    def _transition(
        self,
        brief_id: str,
        version: int,
        *,
        target: Status,
        source: Status,
        reason: str | None,
        now: datetime | None,
    ) -> StrategyDocument:
        check_brief_id(brief_id)
        check_version(version)
        when = check_now(now)
        with self._hold(brief_id):
            current = self._read(brief_id, version)
            if current is None:
                raise VersionNotFoundError(brief_id, version)
            if current.status is target:
                return current
            if current.status is not source:
                raise ImmutableVersionError(
                    brief_id,
                    version,
                    current.status,
                    _VERBS[target],
                    f"only {source.value} versions can be {target.value}",
                )
            if when < current.created_at:
                raise ValueError(
                    f"now ({when.isoformat()}) is before version {version} of brief "
                    f"{brief_id!r} was created ({current.created_at.isoformat()})"
                )
            changed = StrategyDocument.model_validate(
                {
                    **dict(current),
                    "status": target,
                    "status_reason": reason,
                    "updated_at": when,
                }
            )
            data = changed.to_json_bytes()
            self._write(changed, data, exclusive=False)
        return StrategyDocument.from_json_bytes(data)


_VERBS = {Status.APPROVED: "approve", Status.REJECTED: "reject", Status.WITHDRAWN: "withdraw"}

#: Why a version that is not a draft stays, and what to do instead of deleting it.
_KEEP_RULES = {
    Status.APPROVED: "only drafts can be deleted; withdraw it instead (the soft delete, "
    "which keeps the approval in the record)",
    Status.REJECTED: "only drafts can be deleted; a rejected version stays as the record "
    "of the decision",
    Status.WITHDRAWN: "only drafts can be deleted; it is withdrawn already, which is "
    "the soft delete",
}


def _upward_until_damaged(
    versions: list[int], load: Loader
) -> tuple[list[StrategyDocument], CorruptDocumentError | None]:
    """The versions, ascending, up to the first damaged one, and its error."""
    docs: list[StrategyDocument] = []
    for version in reversed(versions):
        try:
            doc = load(version)
        except CorruptDocumentError as exc:
            return docs, exc
        if doc is not None:
            docs.append(doc)
    return docs, None


def _refuse_case_variant(brief_id: str, other: str | None) -> None:
    """A brief ``other`` that differs from ``brief_id`` only by case refuses the write."""
    if other is not None:
        raise InvalidBriefIdError(
            brief_id,
            f"brief {other!r} already exists and differs only by letter case; "
            "the two would collide on a case-insensitive file system",
        )


def _status(value: Status | str) -> Status:
    try:
        return Status(value)
    except ValueError:
        names = ", ".join(s.value for s in Status)
        raise ValueError(f"status must be one of {names}, not {value!r}") from None


def _refuse_status_change(doc: StrategyDocument) -> None:
    """Only ``approve``, ``reject`` and ``withdraw`` take a stored draft out of ``draft``."""
    if doc.status != Status.DRAFT:
        raise StatusChangeError(doc.brief_id, doc.version, Status(doc.status))


def _refuse_unless_draft(
    current: StrategyDocument, action: str, rules: Mapping[Status, str] | None = None
) -> None:
    """Only drafts change: ``ImmutableVersionError`` for any other stored version.

    ``rules`` says, per status, why it stays and what to do instead.
    """
    if current.status is not Status.DRAFT:
        rule = {} if rules is None else {"rule": rules[current.status]}
        raise ImmutableVersionError(
            current.brief_id, current.version, current.status, action, **rule
        )
