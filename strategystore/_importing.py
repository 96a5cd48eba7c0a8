"""Many documents into a store: each written on its own under its brief's lock, durable together."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager

from strategystore._arguments import valid_bytes
from strategystore._primitives import BulkWriter, batches
from strategystore._protocol import ImportOutcome, ImportSummary, OnResult
from strategystore.errors import LockTimeoutError, StoreUnavailableError, StrategyStoreError
from strategystore.models import StrategyDocument, trusted_key

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

    Nothing of a batch is written unless every document of it is valid:
    each is validated before the batch begins or, for a writer that
    ``validates_in_batch``, just before it is written, the batch abandoned at
    the first that fails. ``docs`` is read from only between batches. A refusal (any
    ``StrategyStoreError`` but a lock timeout or an unavailable
    server) is counted and reported, and the import goes on.
    """
    summary = ImportSummary()
    try:
        for batch in batches(docs):
            # A writer whose server inserts a batch's rows as they arrive
            # validates each just before it goes, overlapping the two.
            within = bulk.validates_in_batch and all(map(trusted_key, batch))
            prepared: list[tuple[StrategyDocument, bytes]] = []
            if within:
                bulk.prepare_keys(batch)
            else:
                prepared = [valid_bytes(doc) for doc in batch]
                bulk.prepare(prepared)
            try:
                for i, original in enumerate(batch):
                    doc, data = _validated(original, bulk) if within else prepared[i]
                    outcome, error = _import_one(doc, data, bulk, hold, put)
                    setattr(summary, outcome, getattr(summary, outcome) + 1)
                    if on_result is not None:
                        on_result(original, outcome, error)
            finally:
                bulk.end_batch()
    finally:
        bulk.finish()
    return summary


def _validated(doc: StrategyDocument, bulk: BulkWriter) -> tuple[StrategyDocument, bytes]:
    """``valid_bytes(doc)``; a document that fails abandons the batch under way first."""
    try:
        return valid_bytes(doc)
    except Exception:
        bulk.abandon()
        raise


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
