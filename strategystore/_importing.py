"""Many documents into a store: each written on its own under its brief's lock, durable together."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager

from strategystore._arguments import valid_bytes
from strategystore._primitives import BulkWriter, batches
from strategystore._protocol import ImportOutcome, ImportSummary, OnResult
from strategystore.errors import LockTimeoutError, StoreUnavailableError, StrategyStoreError
from strategystore.models import StrategyDocument

__all__ = ["run_import"]

#: Writes one document whose brief is locked: its outcome (see ``BaseStore._put``).
Put = Callable[
    [StrategyDocument, bytes, Callable[[StrategyDocument, bytes], object]], ImportOutcome
]


def run_import(
    docs: Iterable[StrategyDocument],
    *,
    bulk: BulkWriter,
    hold: Callable[[str], AbstractContextManager[None]],
    put: Put,
    on_result: OnResult | None,
) -> ImportSummary:
    """Import ``docs`` in batches through ``bulk``, each under ``hold(brief_id)``.

    Every document of a batch is validated before the batch begins. A
    refusal (any ``StrategyStoreError`` but a lock timeout or an unavailable
    server) is counted and reported, and the import goes on.
    """
    summary = ImportSummary()
    upcoming = batches(docs)
    try:
        batch = next(upcoming, [])
        prepared = [valid_bytes(doc) for doc in batch]
        while batch:
            ahead = _Ahead(upcoming) if bulk.validates_ahead else None
            bulk.prepare(prepared)
            try:
                for original, (doc, data) in zip(batch, prepared, strict=True):
                    outcome, error = _import_one(doc, data, bulk, hold, put)
                    setattr(summary, outcome, getattr(summary, outcome) + 1)
                    if on_result is not None:
                        on_result(original, outcome, error)
                    if ahead is not None:
                        ahead.step()
            finally:
                bulk.end_batch()
            if ahead is not None:
                batch, prepared = ahead.take()
            else:
                batch = next(upcoming, [])
                prepared = [valid_bytes(doc) for doc in batch]
    finally:
        bulk.finish()
    return summary


class _Ahead:
    """The next batch, read and validated a document at a time while the current one is written.

    For a bulk writer whose writes the server works through while the client
    goes on (``BulkWriter.validates_ahead``): the client's validation then
    overlaps the server's work instead of following it. What reading or
    validating raises is raised by ``take``, where it would have been raised
    without reading ahead: after the batch before has ended, before the next begins.
    """

    def __init__(self, upcoming: Iterator[list[StrategyDocument]]) -> None:
        self._upcoming = upcoming
        self._batch: list[StrategyDocument] | None = None
        self._prepared: list[tuple[StrategyDocument, bytes]] = []
        self._error: Exception | None = None

    def step(self) -> None:
        """Validate one more document of the next batch, reading the batch first."""
        if self._error is not None:
            return
        try:
            if self._batch is None:
                self._batch = next(self._upcoming, [])
            done = len(self._prepared)
            if done < len(self._batch):
                self._prepared.append(valid_bytes(self._batch[done]))
        except Exception as exc:
            self._error = exc

    def take(self) -> tuple[list[StrategyDocument], list[tuple[StrategyDocument, bytes]]]:
        """The next batch and its documents validated; raise what reading or validating raised."""
        if self._error is not None:
            raise self._error
        batch = next(self._upcoming, []) if self._batch is None else self._batch
        prepared = self._prepared
        prepared += [valid_bytes(doc) for doc in batch[len(prepared) :]]
        return batch, prepared


def _import_one(
    doc: StrategyDocument,
    data: bytes,
    bulk: BulkWriter,
    hold: Callable[[str], AbstractContextManager[None]],
    put: Put,
) -> tuple[ImportOutcome, StrategyStoreError | None]:
    try:
        with hold(doc.brief_id):
            # Unless it is written, what the bulk writer prepared for it goes
            # while the brief is still locked.
            try:
                outcome = put(doc, data, bulk.write)
            except BaseException:
                bulk.release(doc)
                raise
            if outcome != "written":
                bulk.release(doc)
    except StrategyStoreError as exc:
        # A lock not had in time or a server gone says nothing of the document.
        if isinstance(exc, LockTimeoutError | StoreUnavailableError):
            raise
        return "refused", exc
    return outcome, None
