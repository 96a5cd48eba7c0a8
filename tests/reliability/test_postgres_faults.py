"""Faults of a PostgreSQL server: stopped or its backend killed mid-write, locks held, no server.

Tests that stop the server use a private one of this module's own, never
the shared one of the session. A fault is injected inside the write's
transaction, after its lock is taken or just before its ``COMMIT``, so the
transaction never commits: the state read back afterwards must be the old
one, whole, and the next write through the same store object must work.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import psycopg
import pytest

from strategystore import (
    LockTimeoutError,
    MemoryStore,
    StoreUnavailableError,
)
from strategystore._pgbatch import Transaction
from strategystore.models import StrategyDocument
from strategystore.postgres import PostgresStore
from tests import pgserver
from tests.reliability._support import SCENARIOS, count, make_doc, seed_base, stress_factor

#: Where in a write's transaction the fault strikes.
POINTS = ("after-lock", "before-commit")

#: Rows of a table as ``{(brief_id, version): data}``.
Rows = dict[tuple[str, int], str]


@pytest.fixture(scope="module")
def server() -> Iterator[pgserver.Server]:
    """A server of this module's own, which its tests stop and start again."""
    try:
        started = pgserver.start()
    except (FileNotFoundError, RuntimeError, KeyError) as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"no PostgreSQL server binaries for the fault tests: {exc}")
        pytest.skip(f"no PostgreSQL server binaries for the fault tests: {exc}")
    try:
        # The tests' servers commit without waiting for the log to reach the
        # disk, so an immediate stop would lose what the seeding committed.
        with psycopg.connect(started.dsn, autocommit=True) as conn:
            conn.execute("ALTER SYSTEM SET synchronous_commit = on")
            conn.execute("SELECT pg_reload_conf()")
        yield started
    finally:
        started.remove()


@pytest.fixture
def running(server: pgserver.Server) -> pgserver.Server:
    """The private server, started again if a failed test left it stopped."""
    if not (server.data_dir / "postmaster.pid").exists():
        server.start()
    return server


class FaultyStore(PostgresStore):
    """A ``PostgresStore`` whose next write's transaction meets ``fault`` at ``point``.

    ``fault`` is given the server pid of the backend running the transaction.
    """

    def __init__(self, dsn: str, **options: Any) -> None:
        super().__init__(dsn, **options)
        self.point = ""
        self.fault: Callable[[int], None] | None = None
        self.struck = 0

    def arm(self, point: str, fault: Callable[[int], None]) -> None:
        self.point, self.fault = point, fault

    def _strike(self, conn: psycopg.Connection[Any]) -> None:
        fault, self.fault = self.fault, None
        if fault is not None:
            self.struck += 1
            fault(conn.info.backend_pid)

    def _begin(
        self, keys: Sequence[int], timeout: float | None, brief_id: str, **options: Any
    ) -> Transaction:
        tx = super()._begin(keys, timeout, brief_id, **options)
        if self.point == "after-lock":
            self._strike(tx.conn)
        return tx

    def _write(self, doc: StrategyDocument, data: bytes, *, exclusive: bool) -> bool:
        tx: Transaction = self._local.tx
        if exclusive and tx.commit_with_write and self.point == "before-commit":
            self._strike(tx.conn)  # the write that carries the COMMIT with it
        return super()._write(doc, data, exclusive=exclusive)

    def _end(self, conn: psycopg.Connection[Any], *, commit: bool) -> None:
        if commit and self.point == "before-commit":
            self._strike(conn)
        super()._end(conn, commit=commit)


def _rows(dsn: str, table: str) -> Rows:
    with psycopg.connect(dsn, autocommit=True) as conn:
        found = conn.execute(f"SELECT brief_id, version, data FROM {table}").fetchall()
    return {(brief, version): data for brief, version, data in found}


def _terminator(dsn: str) -> Callable[[int], None]:
    """A fault that kills the backend, from an admin connection, and waits until it is gone."""

    def kill(pid: int) -> None:
        with psycopg.connect(dsn, autocommit=True) as admin:
            row = admin.execute("SELECT pg_terminate_backend(%s, 10000)", (pid,)).fetchone()
        assert row == (True,), f"backend {pid} was not terminated"

    return kill


def _expected_after(scenario: str) -> Rows:
    """What the scenario leaves, applied to the seeded state of a ``MemoryStore``."""
    model = MemoryStore()
    seed_base(model)
    SCENARIOS[scenario].run(model)
    return {d.key: d.to_json_bytes().decode() for d in model.iter_documents()}


def _seeded(dsn: str) -> tuple[FaultyStore, str]:
    table = f"f_{uuid.uuid4().hex[:12]}"
    store = FaultyStore(dsn, table=table, lock_timeout=5.0, connect_timeout=5.0)
    seed_base(store)
    return store, table


def _fault_cases() -> list[tuple[str, str, str]]:
    cases = [
        (fault, point, scenario)
        for scenario in SCENARIOS
        for point in POINTS
        for fault in ("kill", "stop")
    ]
    if stress_factor() > 1:
        return cases
    # Each stop costs a restart of the server: without stress, stop the
    # server once per write, at the commit, the point where it matters most.
    return [c for c in cases if c[0] == "kill" or c[1] == "before-commit"]


@pytest.mark.parametrize(("fault", "point", "scenario"), _fault_cases())
def test_a_write_that_loses_its_server_raises_unavailable_and_leaves_the_old_state(
    running: pgserver.Server, fault: str, point: str, scenario: str
) -> None:
    dsn = running.dsn
    store, table = _seeded(dsn)
    try:
        before = _rows(dsn, table)

        def stop(pid: int) -> None:
            running.stop("immediate")

        store.arm(point, _terminator(dsn) if fault == "kill" else stop)
        with pytest.raises(StoreUnavailableError) as raised:
            SCENARIOS[scenario].run(store)
        assert store.struck == 1
        assert isinstance(raised.value, ConnectionError)
        assert raised.value.database == "postgres"
        if fault == "stop":
            running.start()
        assert _rows(dsn, table) == before, "a write that did not commit left something behind"
        # The same store object, whose pool held the connection that died.
        SCENARIOS[scenario].run(store)
        assert _rows(dsn, table) == _expected_after(scenario)
        assert {d.key: d.to_json_bytes().decode() for d in store.iter_documents()} == _rows(
            dsn, table
        )
        count(f"postgres fault: writes failed and redone ({fault})")
    finally:
        store.close()


def test_every_call_works_again_once_a_stopped_server_returns(running: pgserver.Server) -> None:
    store, _table = _seeded(running.dsn)
    try:
        # Every connection the pool holds dies with the server.
        running.stop("immediate")
        running.start()
        assert store.get_strategy("acme", 1) == make_doc("acme", 1)
        assert store.list_version_numbers("acme") == [3, 2, 1]
        assert store.list_briefs() == ["acme", "solo"]
        assert store.get_latest("acme") == make_doc("acme", 3)
        assert store.create_next("acme").version == 4
    finally:
        store.close()


def test_a_write_while_the_server_is_down_fails_within_the_connect_timeout(
    running: pgserver.Server,
) -> None:
    table = f"f_{uuid.uuid4().hex[:12]}"
    store = PostgresStore(running.dsn, table=table, connect_timeout=2.0)
    try:
        store.save(make_doc("acme", 1))
        running.stop("immediate")
        calls: list[Callable[[], object]] = [
            lambda: store.save(make_doc("acme", 2)),
            lambda: store.get_latest("acme"),
        ]
        for call in calls:
            started = time.monotonic()
            with pytest.raises(StoreUnavailableError) as raised:
                call()
            assert time.monotonic() - started < 2.0 + 1.5
            assert str(running.socket_dir) in str(raised.value)
        running.start()
        store.save(make_doc("acme", 2))
        assert store.list_version_numbers("acme") == [2, 1]
    finally:
        store.close()


# -- locks ---------------------------------------------------------------------


@pytest.fixture
def held(pg_dsn: str, pg_store: PostgresStore) -> Iterator[Callable[[str], None]]:
    """Holds the advisory lock of a brief of ``pg_store`` in another session's transaction."""
    with psycopg.connect(pg_dsn) as holder:

        def hold(brief_id: str) -> None:
            holder.execute("SELECT pg_advisory_xact_lock(%s)", (pg_store._lock_key(brief_id),))

        yield hold
        holder.rollback()


@pytest.mark.parametrize("timeout", [0.5, 0.0])
def test_a_lock_held_past_lock_timeout_raises_lock_timeout(
    pg_dsn: str, pg_table: str, pg_store: PostgresStore, held: Callable[[str], None], timeout: float
) -> None:
    pg_store.save(make_doc("acme", 1))
    held("acme")
    with PostgresStore(pg_dsn, table=pg_table, lock_timeout=timeout) as store:
        writes: list[Callable[[], object]] = [
            lambda: store.create_next("ACME"),
            lambda: store.save(make_doc("acme", 1, metadata={"tag": "x"})),
            lambda: store.import_documents([make_doc("acme", 2)]),
        ]
        for write in writes:
            started = time.monotonic()
            with pytest.raises(LockTimeoutError) as raised:
                write()
            elapsed = time.monotonic() - started
            assert timeout <= elapsed < timeout + 1.0
            assert isinstance(raised.value, TimeoutError)
            assert "acme" in str(raised.value).lower() and pg_table in str(raised.value)
        # Other briefs are not held, and nothing was written.
        assert store.create_next("other").version == 1
        assert store.list_version_numbers("acme") == [1]


def test_a_write_gets_the_lock_once_its_holder_lets_go(
    pg_dsn: str, pg_table: str, pg_store: PostgresStore
) -> None:
    with psycopg.connect(pg_dsn) as holder:
        holder.execute("SELECT pg_advisory_xact_lock(%s)", (pg_store._lock_key("acme"),))
        with PostgresStore(pg_dsn, table=pg_table, lock_timeout=0.3) as store:
            with pytest.raises(LockTimeoutError):
                store.create_next("acme")
            holder.commit()
            assert store.create_next("acme").version == 1


# -- no server at all ------------------------------------------------------------


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


def _nowhere(kind: str, tmp: str) -> tuple[str, str]:
    """A DSN with a password that reaches no server, and the host its message must name."""
    if kind == "socket":
        return f"postgresql://writer:s3cr3t-pw@/strategies?host={tmp}", f"socket directory {tmp}"
    port = _free_port()
    return f"postgresql://writer:s3cr3t-pw@127.0.0.1:{port}/strategies", f"127.0.0.1 port {port}"


@pytest.mark.parametrize("kind", ["socket", "tcp"])
def test_a_server_that_cannot_be_reached_raises_unavailable_naming_host_not_password(
    tmp_path: Any, kind: str
) -> None:
    dsn, host = _nowhere(kind, str(tmp_path))
    started = time.monotonic()
    with pytest.raises(StoreUnavailableError) as raised:
        PostgresStore(dsn, connect_timeout=1.0)
    assert time.monotonic() - started < 3.0
    error = raised.value
    assert isinstance(error, ConnectionError)
    assert host in str(error) and "strategies" in str(error)
    assert (error.host, error.database) == (host, "strategies")
    for shown in (str(error), repr(error), repr(error.__dict__)):
        assert "s3cr3t-pw" not in shown


def _cli_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("STRATEGYSTORE_")}


def test_a_command_whose_server_is_stopped_says_one_line(running: pgserver.Server) -> None:
    running.stop("immediate")
    ran = subprocess.run(
        [sys.executable, "-m", "strategystore", "--store", running.dsn, "briefs"],
        capture_output=True,
        text=True,
        env=_cli_env(),
        timeout=60,
        check=False,
    )
    assert ran.returncode == 1
    [line] = ran.stderr.splitlines()
    assert line.startswith("strategystore: PostgreSQL database ") and "is unavailable" in line


def test_a_command_whose_server_stops_midway_says_one_line(running: pgserver.Server) -> None:
    table = f"t_{uuid.uuid4().hex[:12]}"
    url = f"{running.dsn}{'&' if '?' in running.dsn else '?'}table={table}"
    PostgresStore(url).close()
    command = [sys.executable, "-m", "strategystore", "--store", url, "import", "-"]
    with subprocess.Popen(
        command,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=_cli_env(),
    ) as importing:
        # The command has opened its store, and its pool its connection.
        deadline = time.monotonic() + 30
        with psycopg.connect(running.dsn, autocommit=True) as conn:
            while time.monotonic() < deadline:
                found = conn.execute(
                    "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'strategystore'"
                ).fetchone()
                if found is not None and found[0] >= 1:
                    break
                time.sleep(0.05)
        running.stop("immediate")
        _out, err = importing.communicate(make_doc("acme", 1).model_dump_json() + "\n", timeout=60)
    assert importing.returncode == 1
    assert len(err.splitlines()) == 1, err
    [line] = err.splitlines()
    assert line.startswith("strategystore: PostgreSQL database ") and "is unavailable" in line
