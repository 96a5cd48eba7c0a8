"""A MemoryStore, two FileStores on one directory and two PostgresStores on one table agree.

Each write runs on the ``MemoryStore``, on one of the two ``FileStore``s and
on one of the two ``PostgresStore``s (drawn: the same one of each pair);
reads run on both file stores and on the postgres stores in turn. Results
are compared by canonical bytes and exceptions by type and payload. Brief
ids come from arbitrary text as well as a small pool, so invalid ids are
exercised next to colliding ones. Each run has a table of its own, dropped
when it ends. Set ``STRATEGYSTORE_STRESS=1`` for a longer run.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, ClassVar

import psycopg
import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from strategystore import (
    ConcurrentUpdateError,
    DuplicateVersionError,
    FileStore,
    ImmutableVersionError,
    MemoryStore,
    Section,
    Status,
    StatusChangeError,
    StrategyDocument,
    StrategyStoreError,
    VersionNotFoundError,
)
from strategystore.postgres import PostgresStore
from strategystore.store import BaseStore, ImportSummary

STRESS = os.environ.get("STRATEGYSTORE_STRESS") == "1"
#: Operations compared so far in this process (read by the stress run's report).
STEPS_RUN = [0]
T0 = datetime(2026, 3, 1, tzinfo=UTC)

valid_briefs = st.sampled_from(["acme", "Acme", "ACME", "beta", "b.2", "z_9"])
any_briefs = valid_briefs | st.text(max_size=12) | st.sampled_from(["..", "CON", "a.", "/x"])
versions = st.integers(min_value=1, max_value=4)
any_versions: st.SearchStrategy[Any] = versions | st.sampled_from([0, -1, 2**31, True, 1.5])
instants = st.integers(min_value=-2, max_value=6).map(lambda h: T0 + timedelta(hours=h))
metadata: st.SearchStrategy[dict[str, Any]] = st.sampled_from(
    [{}, {"n": 1}, {"n": 1.0}, {"n": True}, {"b": [1, {"z": 2, "a": 1}]}]
)
section_lists = st.lists(
    st.builds(
        Section,
        key=st.sampled_from(["goal", "audience", "é"]),
        title=st.sampled_from(["Goal", ""]),
        body=st.text(max_size=20),
    ),
    max_size=2,
    unique_by=lambda s: s.key,
)


@st.composite
def documents(draw: st.DrawFn) -> StrategyDocument:
    created = draw(instants)
    return StrategyDocument(
        brief_id=draw(valid_briefs),
        version=draw(versions),
        status=draw(st.sampled_from(Status)),
        status_reason=draw(st.none() | st.just("why")),
        created_at=created,
        updated_at=created + timedelta(minutes=draw(st.integers(0, 3))),
        sections=draw(section_lists),
        metadata=draw(metadata),
    )


def _result(value: object) -> object:
    """A comparable form of a store's answer."""
    if isinstance(value, StrategyDocument):
        return value.to_json_bytes()
    if isinstance(value, list):
        return [_result(v) for v in value]
    if isinstance(value, ImportSummary):
        return (value.written, value.skipped, value.refused)
    return value


def _error(exc: Exception) -> object:
    payload: object = None
    if isinstance(exc, DuplicateVersionError):
        payload = exc.existing.to_json_bytes()
    elif isinstance(exc, ConcurrentUpdateError):
        payload = exc.current.to_json_bytes()
    elif isinstance(exc, ImmutableVersionError | VersionNotFoundError):
        payload = (exc.brief_id, exc.version)
    elif isinstance(exc, StatusChangeError):
        payload = (exc.brief_id, exc.version, exc.status)
    return (type(exc), payload)


def _outcome(call: Callable[[BaseStore], object], store: BaseStore) -> tuple[str, object]:
    try:
        return ("ok", _result(call(store)))
    except (StrategyStoreError, ValueError, TypeError) as exc:
        return ("error", _error(exc))


class StoresAgree(RuleBasedStateMachine):
    #: The PostgreSQL server's DSN, and a connection to it that drops each
    #: run's table, set for the module's tests by ``_server``.
    dsn: ClassVar[str | None] = None
    admin: ClassVar[psycopg.Connection[Any] | None] = None

    def __init__(self) -> None:
        super().__init__()
        self.root = Path(tempfile.mkdtemp(prefix="parity-"))
        self.table = f"parity_{uuid.uuid4().hex[:16]}"
        self.memory = MemoryStore()
        self.files = [self._open(), self._open()]
        self.tables = [self._open_table(), self._open_table()]
        self.steps = 0
        self.reads = 0

    def _open(self) -> FileStore:
        return FileStore(self.root / "data", durable=False, lock_timeout=5)

    def _open_table(self) -> PostgresStore:
        assert self.dsn is not None, "the parity tests run with the _server fixture"
        return PostgresStore(self.dsn, table=self.table, lock_timeout=5, pool_size=1)

    def teardown(self) -> None:
        for store in self.tables:
            store.close()
        shutil.rmtree(self.root, ignore_errors=True)
        assert self.admin is not None
        self.admin.execute(f"DROP TABLE IF EXISTS {self.table}")

    def _write(self, which: int, call: Callable[[BaseStore], object]) -> None:
        expected = _outcome(call, self.memory)
        assert _outcome(call, self.files[which]) == expected
        assert _outcome(call, self.tables[which]) == expected
        self.steps += 1
        STEPS_RUN[0] += 1

    def _read(self, call: Callable[[BaseStore], object]) -> None:
        expected = _outcome(call, self.memory)
        # The PostgresStores take turns: a round trip to the server is most of
        # a run's time, and each still reads what the other wrote.
        self.reads += 1
        for store in (*self.files, self.tables[self.reads % 2]):
            assert _outcome(call, store) == expected
        STEPS_RUN[0] += 1

    # -- writes

    @rule(which=st.integers(0, 1), doc=documents())
    def save(self, which: int, doc: StrategyDocument) -> None:
        self._write(which, lambda s: s.save(doc))

    @rule(which=st.integers(0, 1), doc=documents())
    def create(self, which: int, doc: StrategyDocument) -> None:
        self._write(which, lambda s: s.create(doc))

    @rule(
        which=st.integers(0, 1),
        brief=any_briefs,
        sections=section_lists,
        meta=metadata,
        status=st.sampled_from(Status),
        now=instants,
    )
    def create_next(
        self,
        which: int,
        brief: str,
        sections: list[Section],
        meta: dict[str, Any],
        status: Status,
        now: datetime,
    ) -> None:
        self._write(which, lambda s: s.create_next(brief, sections, meta, status=status, now=now))

    @rule(which=st.integers(0, 1), doc=documents(), use_stored=st.booleans(), other=documents())
    def update(
        self, which: int, doc: StrategyDocument, use_stored: bool, other: StrategyDocument
    ) -> None:
        stored = self.memory.get_strategy(doc.brief_id, doc.version)
        expected = stored if use_stored and stored is not None else other
        if use_stored and stored is not None and stored.status is not Status.DRAFT:
            doc = stored  # an identical update of a frozen version is a no-op
        self._write(which, lambda s: s.update(doc, expected=expected))

    @rule(
        which=st.integers(0, 1),
        brief=valid_briefs,
        version=versions,
        status=st.sampled_from(Status),
        through_update=st.booleans(),
    )
    def change_status_by_writing(
        self, which: int, brief: str, version: int, status: Status, through_update: bool
    ) -> None:
        # A stored version written back with another status: only the status
        # methods may change it.
        stored = self.memory.get_strategy(brief, version)
        if stored is None:
            return
        changed = stored.model_copy(update={"status": status})
        if through_update:
            self._write(which, lambda s: s.update(changed, expected=stored))
        else:
            self._write(which, lambda s: s.save(changed))

    @rule(
        which=st.integers(0, 1),
        action=st.sampled_from(["approve", "reject", "withdraw"]),
        brief=any_briefs,
        version=any_versions,
        reason=st.none() | st.just("because"),
        now=instants,
    )
    def change_status(
        self,
        which: int,
        action: str,
        brief: str,
        version: int,
        reason: str | None,
        now: datetime,
    ) -> None:
        def call(store: BaseStore) -> object:
            if action == "approve":
                return store.approve(brief, version, now=now)
            method = store.reject if action == "reject" else store.withdraw
            return method(brief, version, reason=reason, now=now)

        self._write(which, call)

    @rule(which=st.integers(0, 1), brief=any_briefs, version=any_versions)
    def delete(self, which: int, brief: str, version: int) -> None:
        self._write(which, lambda s: s.delete(brief, version))

    @rule(
        which=st.integers(0, 1),
        docs=st.lists(documents(), max_size=4),
        upsert=st.booleans(),
    )
    def import_documents(self, which: int, docs: list[StrategyDocument], upsert: bool) -> None:
        self._write(which, lambda s: s.import_documents(docs, upsert=upsert))

    @precondition(lambda self: self.steps > 0)
    @rule(which=st.integers(0, 1))
    def reopen(self, which: int) -> None:
        self.files[which] = self._open()
        self.tables[which].close()
        self.tables[which] = self._open_table()

    # -- reads

    @rule(brief=any_briefs, version=any_versions)
    def get_strategy(self, brief: str, version: int) -> None:
        self._read(lambda s: s.get_strategy(brief, version))

    @rule(brief=any_briefs)
    def list_versions_by_brief(self, brief: str) -> None:
        self._read(lambda s: s.list_versions_by_brief(brief))

    @rule(brief=any_briefs, status=st.none() | st.sampled_from(Status))
    def get_latest(self, brief: str, status: Status | None) -> None:
        self._read(lambda s: s.get_latest(brief, status=status))

    @rule(brief=any_briefs)
    def list_version_numbers(self, brief: str) -> None:
        self._read(lambda s: s.list_version_numbers(brief))

    @rule(briefs=st.none() | st.lists(any_briefs, max_size=3))
    def iter_documents(self, briefs: list[str] | None) -> None:
        self._read(lambda s: list(s.iter_documents(briefs)))

    @invariant()
    def the_same_briefs_everywhere(self) -> None:
        self._read(lambda s: s.list_briefs())


@pytest.fixture(autouse=True, scope="module")
def _server(pg_dsn: str) -> Iterator[None]:
    """Hand the session's PostgreSQL server to the state machine, which pytest does not call."""
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        StoresAgree.dsn, StoresAgree.admin = pg_dsn, admin
        try:
            yield
        finally:
            StoresAgree.dsn, StoresAgree.admin = None, None


StoresAgree.TestCase.settings = settings(
    max_examples=400 if STRESS else 40,
    stateful_step_count=60 if STRESS else 30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestStoresAgree = StoresAgree.TestCase
