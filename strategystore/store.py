"""The ``Store`` protocol and the behaviour every store shares.

The rules of the contract (validation, immutability, status transitions,
compare-and-swap, version allocation) are written once, in ``BaseStore``.
A store supplies only a handful of primitives: read one document, list
versions and briefs, write one document atomically, remove one, and hold a
brief's lock. ``MemoryStore`` and ``FileStore`` therefore agree by
construction, and the parity tests check that they do.
"""

from __future__ import annotations

import abc
import contextlib
import itertools
import time
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, TypeVar, runtime_checkable

from pydantic import JsonValue

from strategystore.errors import (
    ConcurrentUpdateError,
    DuplicateVersionError,
    ImmutableVersionError,
    InvalidBriefIdError,
    LockTimeoutError,
    StrategyStoreError,
    VersionNotFoundError,
)
from strategystore.models import (
    Section,
    Status,
    StrategyDocument,
    check_brief_id,
    check_version,
    utc_now,
)

__all__ = [
    "BaseStore",
    "ImportOutcome",
    "ImportSummary",
    "Store",
]

ImportOutcome = Literal["written", "skipped", "refused"]
_T = TypeVar("_T")
_Loader = Callable[[int], "StrategyDocument | None"]

#: Tries a listing read makes without the brief's lock before it tries the lock.
_LOCK_FREE_TRIES = 8
#: How long such a read waits for the lock before it tries without it again.
_READER_LOCK_WAIT = 0.05

#: How many documents an import prepares and makes durable at a time.
IMPORT_BATCH = 256


@dataclass
class ImportSummary:
    """What ``import_documents`` did: documents written, skipped as identical, refused."""

    written: int = 0
    skipped: int = 0
    refused: int = 0


@runtime_checkable
class Store(Protocol):
    """Every method a strategy store offers; ``FileStore`` and ``MemoryStore`` both satisfy it."""

    def save(self, doc: StrategyDocument) -> None: ...

    def get_strategy(self, brief_id: str, version: int) -> StrategyDocument | None: ...

    def list_versions_by_brief(self, brief_id: str) -> list[StrategyDocument]: ...

    def create(self, doc: StrategyDocument) -> None: ...

    def create_next(
        self,
        brief_id: str,
        sections: Iterable[Section | Mapping[str, str]] = (),
        metadata: Mapping[str, JsonValue] | None = None,
        *,
        status: Status = Status.DRAFT,
        now: datetime | None = None,
    ) -> StrategyDocument: ...

    def get_latest(
        self, brief_id: str, *, status: Status | None = None
    ) -> StrategyDocument | None: ...

    def list_briefs(self) -> list[str]: ...

    def list_version_numbers(self, brief_id: str) -> list[int]: ...

    def update(self, doc: StrategyDocument, *, expected: StrategyDocument) -> None: ...

    def approve(
        self, brief_id: str, version: int, *, now: datetime | None = None
    ) -> StrategyDocument: ...

    def reject(
        self,
        brief_id: str,
        version: int,
        *,
        reason: str | None = None,
        now: datetime | None = None,
    ) -> StrategyDocument: ...

    def withdraw(
        self,
        brief_id: str,
        version: int,
        *,
        reason: str | None = None,
        now: datetime | None = None,
    ) -> StrategyDocument: ...

    def delete(self, brief_id: str, version: int) -> bool: ...


class BaseStore(abc.ABC):
    """The contract of DESIGN.md section 3 over a few storage primitives.

    Subclasses implement the ``_``-prefixed abstract methods. Every write runs
    its check and its write inside ``_locked(brief_id)``; reads take no lock.
    """

    # -- primitives --------------------------------------------------------

    @abc.abstractmethod
    def _load(self, brief_id: str, version: int) -> tuple[StrategyDocument, bytes] | None:
        """The stored document and the bytes it was read from, or ``None``.

        The document is a fresh object every call. The bytes are what is
        stored, which is the canonical form unless someone edited it by hand.
        """

    @abc.abstractmethod
    def _versions(self, brief_id: str) -> list[int]:
        """The stored version numbers of a brief, in any order."""

    @abc.abstractmethod
    def _briefs(self) -> list[str]:
        """The briefs with at least one version, in any order."""

    @abc.abstractmethod
    def _write(
        self,
        doc: StrategyDocument,
        data: bytes,
        *,
        exclusive: bool,
        sync: bool = True,
        staged: object = None,
    ) -> None:
        """Store ``data`` (the canonical bytes of ``doc``) atomically.

        With ``exclusive`` the key must not exist (``FileExistsError``);
        otherwise it is replaced. With ``sync=False`` the write need not be
        durable until ``_flush`` is called with its key. ``staged`` is what
        ``_stage`` prepared for this document, if anything.
        """

    def _stage(self, items: list[tuple[StrategyDocument, bytes]]) -> list[object]:
        """Prepare documents for ``_write(..., staged=token)``; one token (or ``None``) each.

        A file store writes each to a temporary file and makes their data
        durable together, so an import never publishes a name whose data a
        power cut could lose.
        """
        return [None] * len(items)

    def _unstage(self, tokens: list[object], *, locked: bool = False) -> None:  # noqa: B027
        """Discard prepared documents that were not written (``locked``: under their lock)."""

    @abc.abstractmethod
    def _stamp(self, brief_id: str, version: int) -> Hashable:
        """A value that changes whenever the version is written or removed; ``None`` if absent.

        Two equal values, taken one after the other, prove the version was
        neither rewritten nor removed in between.
        """

    def _flush(self, keys: list[tuple[str, int]]) -> None:  # noqa: B027 - optional primitive
        """Make the writes of ``keys``, made with ``sync=False``, durable.

        Stores whose writes are durable at once (or never) need not override it.
        """

    @abc.abstractmethod
    def _remove(self, brief_id: str, version: int) -> None:
        """Remove a stored document (and the brief, when it was the last)."""

    @abc.abstractmethod
    def _locked(self, brief_id: str, timeout: float | None = None) -> AbstractContextManager[None]:
        """Hold the brief's write lock (keyed on the case-folded id).

        ``timeout`` overrides the store's own wait for the lock, if it has one.
        """

    @abc.abstractmethod
    def _case_variant(self, brief_id: str) -> str | None:
        """Another stored brief whose id differs from ``brief_id`` only by case."""

    # -- the repository port ------------------------------------------------

    def save(self, doc: StrategyDocument) -> None:
        """Insert or replace the version ``(doc.brief_id, doc.version)``.

        Saving a document equal to the stored one changes nothing.

        Raises:
            ImmutableVersionError: the stored version is not a draft and ``doc`` differs.
            InvalidBriefIdError: a brief differing only by case already exists.
        """
        data = _valid_bytes(doc)[1]
        with self._locked(doc.brief_id):
            self._put(doc, data, overwrite=True, sync=True)

    def get_strategy(self, brief_id: str, version: int) -> StrategyDocument | None:
        """The stored version, or ``None`` when it does not exist."""
        check_brief_id(brief_id)
        check_version(version)
        return self._read(brief_id, version)

    def list_versions_by_brief(self, brief_id: str) -> list[StrategyDocument]:
        """Every version of a brief, newest first; ``[]`` for an unknown brief."""
        check_brief_id(brief_id)

        def every(versions: list[int], load: _Loader) -> list[StrategyDocument]:
            return [doc for doc in map(load, versions) if doc is not None]

        return self._at_one_instant(brief_id, every)

    def get_stored_bytes(self, brief_id: str, version: int) -> bytes | None:
        """The version's bytes exactly as stored (a hand-edited file as it is), or ``None``.

        Raises:
            CorruptDocumentError: what is stored is not a valid document.
        """
        check_brief_id(brief_id)
        check_version(version)
        loaded = self._load(brief_id, version)
        return None if loaded is None else loaded[1]

    # -- the rest of the contract ------------------------------------------

    def create(self, doc: StrategyDocument) -> None:
        """Insert a version that must not exist yet: the unique constraint.

        Raises:
            DuplicateVersionError: the key exists, whatever its content (``.existing``).
            InvalidBriefIdError: a brief differing only by case already exists.
        """
        data = _valid_bytes(doc)[1]
        with self._locked(doc.brief_id):
            current = self._read(doc.brief_id, doc.version)
            if current is not None:
                raise DuplicateVersionError(current)
            self._refuse_case_variant(doc.brief_id)
            self._write(doc, data, exclusive=True)

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
            created_at=_check_now(now),
            sections=[_section(s) for s in sections],
            metadata=dict(metadata or {}),
        )
        with self._locked(brief_id):
            versions = self._versions(brief_id)
            if not versions:
                self._refuse_case_variant(brief_id)
            version = check_version(max(versions, default=0) + 1)
            doc = draft if version == 1 else draft._renumbered(version)
            self._write(doc, doc.to_json_bytes(), exclusive=True)
        # Validation built the draft's containers, sections and timestamps
        # afresh: it shares nothing with the caller's arguments, nor the store.
        return doc

    def get_latest(self, brief_id: str, *, status: Status | None = None) -> StrategyDocument | None:
        """The highest version, or the highest with ``status``; ``None`` if there is none."""
        check_brief_id(brief_id)
        wanted = None if status is None else Status(status)

        def latest(versions: list[int], load: _Loader) -> StrategyDocument | None:
            for version in versions:
                doc = load(version)
                if doc is not None and (wanted is None or doc.status is wanted):
                    return doc
            return None

        return self._at_one_instant(brief_id, latest)

    def list_briefs(self) -> list[str]:
        """Ids of the briefs with at least one version, ascending by code point."""
        return sorted(self._briefs())

    def list_version_numbers(self, brief_id: str) -> list[int]:
        """A brief's version numbers, newest first, without reading any document."""
        check_brief_id(brief_id)
        return sorted(self._versions(brief_id), reverse=True)

    def update(self, doc: StrategyDocument, *, expected: StrategyDocument) -> None:
        """Compare-and-swap: replace the stored draft only if it still equals ``expected``.

        Raises:
            ValueError: ``doc`` and ``expected`` have different keys.
            VersionNotFoundError: the version does not exist.
            ConcurrentUpdateError: the stored document is not ``expected`` (``.current``).
            ImmutableVersionError: the stored version is not a draft and ``doc`` differs.
        """
        data = _valid_bytes(doc)[1]
        expected_data = _expected(expected).to_json_bytes()
        if doc.key != expected.key:
            raise ValueError(
                f"update of {doc.key} expects a document with the same key, not {expected.key}"
            )
        with self._locked(doc.brief_id):
            loaded = self._load(doc.brief_id, doc.version)
            if loaded is None:
                raise VersionNotFoundError(doc.brief_id, doc.version)
            current, stored = loaded
            if not _same(current, stored, expected_data):
                raise ConcurrentUpdateError(current)
            if _same(current, stored, data):
                return
            if current.status is not Status.DRAFT:
                raise ImmutableVersionError(doc.brief_id, doc.version, current.status, "update")
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
        with self._locked(brief_id):
            current = self._read(brief_id, version)
            if current is None:
                return False
            if current.status is not Status.DRAFT:
                raise ImmutableVersionError(
                    brief_id, version, current.status, "delete", _KEEP_RULES[current.status]
                )
            self._remove(brief_id, version)
        return True

    def import_documents(
        self,
        docs: Iterable[StrategyDocument],
        *,
        upsert: bool = False,
        on_result: Callable[[StrategyDocument, ImportOutcome, StrategyStoreError | None], None]
        | None = None,
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
        summary = ImportSummary()
        written: list[tuple[str, int]] = []
        try:
            for batch in _batched(docs, IMPORT_BATCH):
                prepared = [_valid_bytes(doc) for doc in batch]
                staged = self._stage(prepared)
                try:
                    for i, (original, (doc, data)) in enumerate(zip(batch, prepared, strict=True)):
                        token, staged[i] = staged[i], None  # consumed or discarded below
                        outcome, error = self._import_one(doc, data, token, upsert=upsert)
                        if outcome == "written":
                            written.append(doc.key)
                        setattr(summary, outcome, getattr(summary, outcome) + 1)
                        if on_result is not None:
                            on_result(original, outcome, error)
                finally:
                    self._unstage([t for t in staged if t is not None])
        finally:
            self._flush(written)
        return summary

    def _import_one(
        self, doc: StrategyDocument, data: bytes, token: object, *, upsert: bool
    ) -> tuple[ImportOutcome, StrategyStoreError | None]:
        try:
            with self._locked(doc.brief_id):
                # Unless it is published, the staged copy goes while the brief
                # is still locked.
                try:
                    outcome = self._put(doc, data, overwrite=upsert, sync=False, staged=token)
                except BaseException:
                    if token is not None:
                        self._unstage([token], locked=True)
                    raise
                if token is not None and outcome != "written":
                    self._unstage([token], locked=True)
        except StrategyStoreError as exc:
            if isinstance(exc, LockTimeoutError):
                raise
            return "refused", exc
        return outcome, None

    # -- shared helpers -----------------------------------------------------

    def _read(self, brief_id: str, version: int) -> StrategyDocument | None:
        loaded = self._load(brief_id, version)
        return None if loaded is None else loaded[0]

    def _put(
        self,
        doc: StrategyDocument,
        data: bytes,
        *,
        overwrite: bool,
        sync: bool,
        staged: object = None,
    ) -> ImportOutcome:
        """Insert ``doc``, or replace a differing draft when ``overwrite``; under the lock."""
        loaded = self._load(doc.brief_id, doc.version)
        if loaded is None:
            self._refuse_case_variant(doc.brief_id)
        else:
            current, stored = loaded
            if _same(current, stored, data):
                return "skipped"
            if not overwrite:
                raise DuplicateVersionError(current)
            if current.status is not Status.DRAFT:
                raise ImmutableVersionError(doc.brief_id, doc.version, current.status, "change")
        self._write(doc, data, exclusive=False, sync=sync, staged=staged)
        return "written"

    def _at_one_instant(self, brief_id: str, pick: Callable[[list[int], _Loader], _T]) -> _T:
        """``pick(versions, load)`` over the brief as it stood at one instant.

        ``versions`` is the brief's listing, newest first, and ``load`` reads
        one of them. A read that lists a brief and then reads documents must
        answer with what the store held at one instant, and readers never wait
        for writers: the answer is kept when, listed again afterwards, the
        brief has the same versions and every document read is still the one
        read (so the answer was the store's at that second listing); it is
        made again otherwise. Only after several tries in a row spoilt by
        writers is it made under the brief's lock.
        """
        tries = 0
        while True:
            tries += 1
            found = self._lock_free_read(brief_id, pick)
            if found is not None:
                return found[0]
            if tries % _LOCK_FREE_TRIES:
                continue
            with contextlib.ExitStack() as held:
                try:
                    # Briefly: a reader slips in between writers, never queues behind them.
                    held.enter_context(self._locked(brief_id, timeout=_READER_LOCK_WAIT))
                except (StrategyStoreError, OSError):
                    # No lock to be had (a read-only directory, a stuck
                    # writer): go on without it, as a reader must still
                    # answer, leaving the writers a moment first.
                    time.sleep(min(0.001 * tries, 0.05))
                    continue
                versions = sorted(self._versions(brief_id), reverse=True)
                return pick(versions, lambda version: self._read(brief_id, version))

    def _lock_free_read(
        self, brief_id: str, pick: Callable[[list[int], _Loader], _T]
    ) -> tuple[_T] | None:
        """``(pick's answer,)`` if nothing it read changed before the brief was listed again."""
        versions = sorted(self._versions(brief_id), reverse=True)
        stamps: dict[int, Hashable] = {}

        def load(version: int) -> StrategyDocument | None:
            stamps[version] = self._stamp(brief_id, version)
            return self._read(brief_id, version)

        result = pick(versions, load)
        # Listed first, stamped after: the answer is the store's at that listing.
        if sorted(self._versions(brief_id), reverse=True) != versions:
            return None
        if any(self._stamp(brief_id, version) != stamp for version, stamp in stamps.items()):
            return None
        return (result,)

    def _refuse_case_variant(self, brief_id: str) -> None:
        other = self._case_variant(brief_id)
        if other is not None:
            raise InvalidBriefIdError(
                brief_id,
                f"brief {other!r} already exists and differs only by letter case; "
                "the two would collide on a case-insensitive file system",
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
        when = _check_now(now)
        with self._locked(brief_id):
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


def _batched(items: Iterable[StrategyDocument], size: int) -> Iterator[list[StrategyDocument]]:
    iterator = iter(items)
    while batch := list(itertools.islice(iterator, size)):
        yield batch


def _same(current: StrategyDocument, stored: bytes, data: bytes) -> bool:
    """Whether the stored document equals the one whose canonical bytes are ``data``."""
    # Files the store wrote are canonical, so comparing the bytes as stored
    # settles it at once; a hand-edited file is compared by its canonical form.
    return stored == data or current.to_json_bytes() == data


def _valid_bytes(doc: object) -> tuple[StrategyDocument, bytes]:
    """``doc`` and its canonical bytes, proven valid: what a store writes always is.

    ``model_construct``, ``model_copy(update=...)`` and changing ``sections``
    or ``metadata`` in place all bypass validation, and the key names files.
    A document that validation made and that has not changed since is taken
    as it is; any other is validated again in full, and the valid document
    that validation returns is the one written.
    """
    if not isinstance(doc, StrategyDocument):
        raise TypeError(f"expected a StrategyDocument, not {type(doc).__name__}")
    check_brief_id(doc.brief_id)
    check_version(doc.version)
    data = doc._trusted_json_bytes()
    if data is None:
        doc = StrategyDocument.model_validate(doc.model_dump())
        data = doc.to_json_bytes()
    return doc, data


def _expected(doc: object) -> StrategyDocument:
    if not isinstance(doc, StrategyDocument):
        raise TypeError(f"expected a StrategyDocument, not {type(doc).__name__}")
    return doc


def _section(value: Section | Mapping[str, str]) -> Section:
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


def _check_now(now: datetime | None) -> datetime:
    if now is None:
        return utc_now()
    if not isinstance(now, datetime):
        raise TypeError(f"now must be a datetime, not {type(now).__name__}")
    if now.tzinfo is None or now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, not the naive {now.isoformat()}")
    return now
