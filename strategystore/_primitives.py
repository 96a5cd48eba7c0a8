"""The primitives a store supplies, stated store-neutrally: write a third store from these.

``BaseStore`` (in ``store``) holds every rule of the contract and calls only
these. They work on canonical bytes and know no rule: ``BaseStore``
validates every argument, checks every key and decides every refusal before
it calls them, so a store's primitives are a few lines of its own storage
each. ``MemoryStore`` is the smallest example.
"""

from __future__ import annotations

import abc
import itertools
from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager

from strategystore.models import StrategyDocument

#: Reads one version of a brief; ``None`` when it is absent.
Loader = Callable[[int], StrategyDocument | None]

__all__ = ["IMPORT_BATCH", "BulkWriter", "Loader", "Primitives", "batches"]

#: How many documents an import hands its bulk writer at a time.
IMPORT_BATCH = 256


class Primitives(abc.ABC):
    """What a store must supply: read, list, stamp, write, remove, lock; optionally bulk and close.

    Every write primitive is called with the brief's lock held; read
    primitives are called without it and must never return a partly
    written document.
    """

    @abc.abstractmethod
    def _load(self, brief_id: str, version: int) -> tuple[StrategyDocument, bytes] | None:
        """The stored document and the bytes exactly as stored, or ``None`` when absent.

        The bytes are never re-encoded: they are the canonical form unless
        someone edited the stored copy by hand. The document is a fresh object
        every call, sharing nothing with the store or an earlier call.

        Raises:
            CorruptDocumentError: what is stored at this key does not decode
                to a valid document of this key (naming where it is stored).
        """

    @abc.abstractmethod
    def _versions(self, brief_id: str) -> list[int]:
        """The stored version numbers of a brief, in any order; reads no document."""

    @abc.abstractmethod
    def _briefs(self) -> list[str]:
        """The briefs with at least one version, in any order; reads no document."""

    @abc.abstractmethod
    def _stamp(self, brief_id: str, version: int) -> Hashable:
        """A value that changes whenever the version is written or removed; ``None`` if absent.

        Two equal values, taken one after the other, prove the version was
        neither rewritten nor removed in between.
        """

    @abc.abstractmethod
    def _write(self, doc: StrategyDocument, data: bytes, *, exclusive: bool) -> bool:
        """Store ``data`` (the canonical bytes of ``doc``) atomically, under the brief's lock.

        A reader sees the old bytes or the new, never a mix. With
        ``exclusive`` the key must be absent: if it is present after all
        (stored by something that bypassed the lock), nothing is written and
        the result is ``False``. Otherwise what is stored is replaced and the
        result is ``True``. The write is durable, as far as the store
        promises durability, when this returns; a write that raises has
        changed nothing.
        """

    @abc.abstractmethod
    def _remove(self, brief_id: str, version: int) -> None:
        """Remove a stored document (and the brief, when it was the last); under the lock."""

    @abc.abstractmethod
    def _locked(self, brief_id: str, timeout: float | None = None) -> AbstractContextManager[None]:
        """Hold the brief's write lock for a ``with`` block.

        The lock is keyed on the case-folded id, excludes every other writer
        of the brief (other threads, processes, machines), and is re-entrant
        within a thread: holding it again, under any case of the id, holds
        at once. ``timeout`` overrides the store's own wait, if it has one;
        a lock not obtained in time raises ``LockTimeoutError``.
        """

    @abc.abstractmethod
    def _case_variant(self, brief_id: str) -> str | None:
        """Another stored brief whose id differs from ``brief_id`` only by case."""

    @contextmanager
    def _locked_highest(self, brief_id: str) -> Iterator[int]:
        """Hold the brief's write lock (``_locked``) and give its highest version, read under it.

        The default reads ``_highest_version`` once the lock is held; a store
        that can ask for both at once overrides it. The block's last write is
        one exclusive ``_write`` (only reads follow it, when it returns
        ``False``): a store with transactions may commit with that write.
        """
        with self._locked(brief_id):
            yield self._highest_version(brief_id)

    def _highest_version(self, brief_id: str) -> int:
        """The highest stored version of a brief, 0 when it has none; reads no document.

        The default takes the maximum of ``_versions``; a store that can ask
        its storage for the maximum alone overrides it.
        """
        return max(self._versions(brief_id), default=0)

    def _snapshot(self, brief_id: str) -> tuple[list[int], Loader] | None:
        """The brief's versions and a loader over them, read in one atomic step, if the store can.

        A store whose storage answers a query at one instant (a database
        statement) returns the versions, newest first, and a loader that
        reads the documents from that same instant. ``None``, the default,
        lets ``BaseStore`` assemble such a view from ``_versions``, ``_load``
        and ``_stamp``.
        """
        return None

    def _bulk_writer(self) -> BulkWriter:
        """How ``import_documents`` writes; the default writes each document on its own."""
        return BulkWriter(self)

    def _close(self) -> None:  # noqa: B027 - optional primitive
        """Release what the store holds; ``close()`` calls it once."""


class BulkWriter:
    """How a store writes the documents of an import.

    ``import_documents`` hands each batch to ``prepare`` before it takes any
    lock, then, for each document of the batch and under its brief's lock,
    calls ``write`` for a document to store or ``release`` for one it will
    not store; ``end_batch`` follows every batch and ``finish`` the whole
    import, both also after a failure. This default writes each document on
    its own, durably, at once; a store overrides ``BaseStore._bulk_writer``
    to do better (a file store writes a batch's data before it takes locks
    and makes every write durable with one flush at the end).
    """

    def __init__(self, store: Primitives) -> None:
        self._store = store

    def __repr__(self) -> str:
        return f"<{type(self).__name__} of {self._store!r}>"

    def prepare(self, items: Sequence[tuple[StrategyDocument, bytes]]) -> None:
        """Get ready to write these documents and canonical bytes; no lock is held."""

    @property
    def validates_in_batch(self) -> bool:
        """Whether the next batch can begin from its documents' keys alone (``prepare_keys``).

        ``import_documents`` then validates each document just before it is
        written, and at the first that fails abandons the batch (``abandon``),
        so that nothing of it is written, as if every one had been validated first.
        """
        return False

    def prepare_keys(self, docs: Sequence[StrategyDocument]) -> None:
        """As ``prepare``, for documents whose keys are proven valid and the rest not yet."""
        raise NotImplementedError("only a writer that validates_in_batch is given keys alone")

    def abandon(self) -> None:
        """Give up the batch under way: nothing of it is written (``end_batch`` follows)."""
        raise NotImplementedError("only a writer that validates_in_batch abandons a batch")

    def write(self, doc: StrategyDocument, data: bytes) -> None:
        """Store ``data`` for ``doc``, replacing what is stored; under the brief's lock.

        The write need not be durable before ``finish`` returns.
        """
        self._store._write(doc, data, exclusive=False)

    def release(self, doc: StrategyDocument) -> None:
        """``doc`` will not be written (or its write failed); under the brief's lock."""

    def end_batch(self) -> None:
        """The batch given to ``prepare`` is done, or failed part-way."""

    def finish(self) -> None:
        """Make every ``write`` durable; called once, also when the import failed."""


def batches(docs: Iterable[StrategyDocument]) -> Iterator[list[StrategyDocument]]:
    """``docs`` in lists of ``IMPORT_BATCH``, read from ``docs`` one batch at a time."""
    iterator = iter(docs)
    while batch := list(itertools.islice(iterator, IMPORT_BATCH)):
        yield batch
