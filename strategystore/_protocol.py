"""``Store``: every public method a store offers, as a ``typing.Protocol``; what an import did."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol, runtime_checkable

from pydantic import JsonValue

from strategystore.errors import StrategyStoreError
from strategystore.models import Section, Status, StrategyDocument

__all__ = ["ImportOutcome", "ImportSummary", "OnResult", "Store"]

ImportOutcome = Literal["written", "skipped", "refused"]
#: Called by an import after each document with its outcome and the error that refused it.
OnResult = Callable[[StrategyDocument, ImportOutcome, StrategyStoreError | None], None]


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
        self, brief_id: str, *, status: Status | str | None = None
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

    def iter_documents(
        self, brief_ids: Iterable[str] | None = None
    ) -> Iterator[StrategyDocument]: ...

    def import_documents(
        self,
        docs: Iterable[StrategyDocument],
        *,
        upsert: bool = False,
        on_result: OnResult | None = None,
    ) -> ImportSummary: ...

    def get_stored_bytes(self, brief_id: str, version: int) -> bytes | None: ...

    def close(self) -> None: ...
