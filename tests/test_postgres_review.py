"""``PostgresStore`` at its edges: imports whose callbacks write, forks, a full pool, settings."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import uuid
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from strategystore import (
    ConfigurationError,
    CorruptDocumentError,
    FileStore,
    Status,
    StoreUnavailableError,
    StrategyDocument,
)
from strategystore._console import without_password
from strategystore._pgerrors import libpq_connect_timeout, lock_setting
from strategystore.cli import main
from strategystore.postgres import PostgresStore
from strategystore.store import ImportOutcome
from tests.conftest import Result, make_doc

PASSWORD = "s3cr3t-pw"
#: A server nobody listens at: a socket directory that does not exist.
NOWHERE = "/nonexistent-strategystore-socket"


def _run(capsys: pytest.CaptureFixture[str], *args: str) -> Result:
    status = main(list(args))
    captured = capsys.readouterr()
    return Result(status, captured.out, captured.err)


def _sql(dsn: str, statement: str, params: tuple[object, ...] = ()) -> list[Any]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        cursor = conn.execute(statement.encode(), params)
        return cursor.fetchall() if cursor.description else []


def _conninfo(dsn: str, **changes: str) -> str:
    """The test server's DSN as ``key=value`` pairs, with ``changes``."""
    return make_conninfo(dsn, **changes)


# -- an import's callbacks --------------------------------------------------------


def test_a_callback_that_writes_writes_after_its_batch_commits(
    pg_store: PostgresStore, pg_dsn: str
) -> None:
    docs = [make_doc(f"brief-{n}", 1) for n in range(5)]
    committed: list[bool] = []

    def approve_each(doc: StrategyDocument, outcome: ImportOutcome, _: object) -> None:
        assert outcome == "written"
        rows = _sql(
            pg_dsn,
            f"SELECT 1 FROM {pg_store.table} WHERE brief_id = %s AND version = %s",
            doc.key,
        )
        committed.append(bool(rows))
        pg_store.approve(doc.brief_id, doc.version)

    summary = pg_store.import_documents(docs, on_result=approve_each)
    assert summary.written == 5
    # Each result was told once its write was there for any other connection to see.
    assert committed == [True] * 5
    for doc in docs:
        stored = pg_store.get_strategy(doc.brief_id, doc.version)
        assert stored is not None and stored.status is Status.APPROVED


def test_a_batch_that_fails_to_commit_reports_none_of_its_results(
    pg_store: PostgresStore, pg_dsn: str
) -> None:
    told: list[str] = []
    # The batch's one statement of writes fails at the server.
    _sql(pg_dsn, f"ALTER TABLE {pg_store.table} ADD CONSTRAINT refuse_b CHECK (brief_id <> 'b')")
    with pytest.raises(StoreUnavailableError):
        pg_store.import_documents(
            [make_doc("a", 1), make_doc("b", 1)],
            on_result=lambda doc, outcome, _: told.append(doc.brief_id),
        )
    assert told == []
    assert pg_store.list_briefs() == []


def test_a_row_put_in_by_hand_during_a_batch_rolls_the_batch_back(
    pg_store: PostgresStore, pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from strategystore import _pgbatch  # noqa: PLC0415

    prepare = _pgbatch.BatchWriter.prepare_keys
    intruder = make_doc("b", 1)

    def prepare_then_insert(self: Any, docs: Any) -> None:
        prepare(self, docs)
        # A writer without the brief's lock (SQL by hand) adds a row the batch read as absent.
        _sql(
            pg_dsn,
            f"INSERT INTO {pg_store.table} (brief_id, version, status, created_at, data) "
            "VALUES (%s, 1, 'draft', now(), %s)",
            ("b", intruder.to_json_bytes().decode()),
        )

    monkeypatch.setattr(_pgbatch.BatchWriter, "prepare_keys", prepare_then_insert)
    with pytest.raises(StoreUnavailableError, match=pg_store.table):
        pg_store.import_documents(
            [make_doc("a", 1), make_doc("b", 1, sections=[]), make_doc("c", 1)]
        )
    monkeypatch.undo()
    # Nothing of the batch was written; the row put in by hand is as it was.
    assert pg_store.list_briefs() == ["b"]
    assert pg_store.get_strategy("b", 1) == intruder


def test_an_import_replaces_a_stored_draft_and_adds_new_ones_in_one_batch(
    pg_store: PostgresStore,
) -> None:
    pg_store.create(make_doc("a", 1))
    changed = make_doc("a", 1, metadata={"tone": "bold"})
    summary = pg_store.import_documents([changed, make_doc("a", 2), make_doc("b", 1)], upsert=True)
    assert (summary.written, summary.refused) == (3, 0)
    assert pg_store.get_strategy("a", 1) == changed
    assert pg_store.list_version_numbers("a") == [2, 1]
    assert pg_store.list_briefs() == ["a", "b"]


# -- a fork -------------------------------------------------------------------------


def _in_child(job: Any) -> str:
    """What ``job()`` returned in a forked child, or the error it raised, as text."""
    read, write = os.pipe()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # fork with the pool's threads
        pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        try:
            os.close(read)
            try:
                answer = str(job())
            except BaseException as exc:  # reported to the parent
                answer = f"error: {type(exc).__name__}: {exc}"
            os.write(write, answer.encode())
        finally:
            os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as stream:
        answer = stream.read().decode()
    os.waitpid(pid, 0)
    return answer


def test_a_forked_child_opens_its_own_connections_and_leaves_the_parents(
    pg_store: PostgresStore,
) -> None:
    pg_store.save(make_doc("acme", 1))
    pool = pg_store._pool
    pool.wait()
    idle = list(pool._pool)  # the parent's pooled connections, idle now
    parents = {conn.info.backend_pid for conn in idle}

    def child() -> str:
        pg_store.save(make_doc("acme", 2))
        ((backend,),) = pg_store._fetch(b"SELECT pg_backend_pid()", ())
        pg_store.close()
        return str(backend)

    answer = _in_child(child)
    assert not answer.startswith("error"), answer
    assert int(answer) not in parents
    # The child's close() ended none of the parent's sessions.
    for conn in idle:
        assert conn.execute("SELECT pg_backend_pid()").fetchone() == (conn.info.backend_pid,)
    assert pg_store.list_version_numbers("acme") == [2, 1]


# -- the pool -----------------------------------------------------------------------


def test_an_exhausted_pool_is_named_with_its_size(pg_dsn: str, pg_table: str) -> None:
    with PostgresStore(pg_dsn, table=pg_table, pool_size=1, connect_timeout=0.5) as store:
        held = store._pool.getconn()
        try:
            with pytest.raises(StoreUnavailableError) as raised:
                store.get_strategy("acme", 1)
        finally:
            store._pool.putconn(held)
        message = str(raised.value)
        assert "pool 'strategystore " in message and "of 1 connections was exhausted" in message
        assert "pool_size" in message
        assert "check that the server is running" not in message
        assert store.get_strategy("acme", 1) is None


def test_an_interrupt_while_a_write_begins_gives_its_connection_back(
    pg_dsn: str, pg_table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import strategystore.postgres as module  # noqa: PLC0415

    with PostgresStore(pg_dsn, table=pg_table, pool_size=1, connect_timeout=0.5) as store:

        def interrupted(*args: object, **kwargs: object) -> None:
            raise KeyboardInterrupt

        with monkeypatch.context() as patch:
            patch.setattr(module, "Transaction", interrupted)
            with pytest.raises(KeyboardInterrupt):
                store.save(make_doc("acme", 1))
        # The one connection of the pool is free again.
        store.save(make_doc("acme", 1))
        assert store.list_version_numbers("acme") == [1]


# -- passwords ----------------------------------------------------------------------


def _nowhere_dsns() -> list[str]:
    return [
        f"postgresql://writer:{PASSWORD}@/strategies?host={NOWHERE}&connect_timeout=2",
        f"postgresql://writer@/strategies?host={NOWHERE}&password={PASSWORD}",
        f"host={NOWHERE} dbname=strategies user=writer password={PASSWORD} connect_timeout=2",
        f"host={NOWHERE} dbname=strategies user=writer password='{PASSWORD} x'",
    ]


@pytest.mark.parametrize("dsn", _nowhere_dsns())
def test_no_message_repr_or_error_holds_the_password(
    dsn: str, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert PASSWORD not in without_password(dsn)
    assert "***" in without_password(dsn)
    with pytest.raises(StoreUnavailableError) as raised:
        PostgresStore(dsn, connect_timeout=1.0)
    error = raised.value
    assert NOWHERE in str(error)
    for shown in (str(error), repr(error), repr(error.__dict__), repr(error.args)):
        assert PASSWORD not in shown
    monkeypatch.chdir(tmp_path)
    listed = _run(capsys, "--store", dsn, "briefs")
    assert listed.status == 1 and "is unavailable" in listed.error_line
    FileStore(tmp_path / "data").save(make_doc("acme", 1))
    copied = _run(capsys, "copy", str(tmp_path / "data"), dsn)
    assert copied.status == 1 and "is unavailable" in copied.error_line
    for said in (listed.err, listed.out, copied.err, copied.out):
        assert PASSWORD not in said
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]


def test_a_dsn_libpq_cannot_parse_is_refused_without_quoting_it() -> None:
    with pytest.raises(ConfigurationError) as raised:
        PostgresStore(f"host={NOWHERE} password={PASSWORD} zz9")
    assert PASSWORD not in str(raised.value) and "zz9" not in str(raised.value)
    assert without_password(f"host={NOWHERE} password={PASSWORD} zz9").count("zz9") == 0


def test_a_short_password_leaves_the_message_whole() -> None:
    with pytest.raises(StoreUnavailableError) as raised:
        PostgresStore(f"postgresql://writer:a@/strategies?host={NOWHERE}", connect_timeout=1.0)
    message = str(raised.value)
    assert "***" not in message
    assert f"socket directory {NOWHERE}" in message and "unavailable" in message


# -- settings -----------------------------------------------------------------------


def test_a_malformed_url_is_a_configuration_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ConfigurationError, match="not a PostgreSQL URL"):
        PostgresStore(f"postgresql://writer:{PASSWORD}@[bad/strategies")
    result = _run(capsys, "--store", f"postgresql://writer:{PASSWORD}@[bad/x", "briefs")
    assert result.status == 1 and "not a PostgreSQL URL" in result.error_line
    assert PASSWORD not in result.err


@pytest.mark.parametrize("seconds", [math.inf, 1e12, 2**31 / 1000])
def test_a_lock_timeout_beyond_the_servers_limit_waits_forever(
    pg_dsn: str, pg_table: str, seconds: float
) -> None:
    assert lock_setting(seconds) == "0"
    with PostgresStore(pg_dsn, table=pg_table, lock_timeout=seconds) as store:
        store.save(make_doc("acme", 1))
        store.import_documents([make_doc("acme", 2), make_doc("other", 1)])
        assert store.list_version_numbers("acme") == [2, 1]


def test_lock_and_connect_timeouts_become_the_settings_libpq_takes() -> None:
    assert lock_setting(0.0001) == "1ms" and lock_setting(2.5) == "2500ms"
    assert libpq_connect_timeout(0.5) == 2 and libpq_connect_timeout(7.2) == 8
    assert libpq_connect_timeout(math.inf) == 0 and libpq_connect_timeout(1e12) == 0


@pytest.mark.parametrize("seconds", [math.inf, 1e12])
def test_a_connect_timeout_without_limit_connects(
    pg_dsn: str, pg_table: str, seconds: float
) -> None:
    with PostgresStore(pg_dsn, table=pg_table, connect_timeout=seconds) as store:
        store.save(make_doc("acme", 1))
        assert store.list_briefs() == ["acme"]


@pytest.fixture
def reader_role(pg_dsn: str, pg_store: PostgresStore) -> Iterator[str]:
    """A role that may log in but holds no privilege on ``pg_store``'s table."""
    role = f"reader_{uuid.uuid4().hex[:8]}"
    _sql(pg_dsn, f"CREATE ROLE {role} LOGIN")
    try:
        yield role
    finally:
        _sql(pg_dsn, f"DROP ROLE {role}")


def test_a_missing_privilege_names_the_user_and_table(
    pg_dsn: str, pg_store: PostgresStore, reader_role: str
) -> None:
    dsn = _conninfo(pg_dsn, user=reader_role)
    with PostgresStore(dsn, table=pg_store.table, create=False) as store:
        calls: list[Callable[[], object]] = [
            lambda: store.get_strategy("acme", 1),
            lambda: store.save(make_doc("a", 1)),
        ]
        for call in calls:
            with pytest.raises(StoreUnavailableError) as raised:
                call()
            message = str(raised.value)
            assert f"user {reader_role!r} lacks a privilege on table {pg_store.table!r}" in message
            assert "retrying will not help" in message


def test_a_statement_the_server_refuses_is_a_typed_error_naming_the_table(
    pg_store: PostgresStore, pg_dsn: str
) -> None:
    _sql(pg_dsn, f"ALTER TABLE {pg_store.table} ADD CONSTRAINT refuse_x CHECK (brief_id <> 'x')")
    with pytest.raises(StoreUnavailableError) as raised:
        pg_store.save(make_doc("x", 1))
    assert f"refused a statement on table {pg_store.table!r}: SQLSTATE 23514" in str(raised.value)
    assert pg_store.list_briefs() == []


def test_an_unknown_database_says_so(pg_dsn: str) -> None:
    dsn = _conninfo(pg_dsn, dbname="no_such_database_xyz", password=PASSWORD)
    with pytest.raises(StoreUnavailableError) as raised:
        PostgresStore(dsn)
    message = str(raised.value)
    assert "database 'no_such_database_xyz' does not exist on " in message
    assert "retrying will not help" in message and "server is running" not in message
    assert PASSWORD not in message


def test_an_unknown_user_says_so(pg_dsn: str) -> None:
    with pytest.raises(StoreUnavailableError) as raised:
        PostgresStore(_conninfo(pg_dsn, user="no_such_user_xyz"))
    assert "user 'no_such_user_xyz' does not exist on " in str(raised.value)


def test_an_invalid_sslmode_says_so(pg_dsn: str) -> None:
    with pytest.raises(StoreUnavailableError) as raised:
        PostgresStore(_conninfo(pg_dsn, sslmode="bogus"))
    message = str(raised.value)
    assert "invalid sslmode 'bogus'" in message and "retrying will not help" in message


def test_a_refused_password_says_so_without_the_password(
    pg_dsn: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise psycopg.OperationalError(
            'connection failed: connection to server at "127.0.0.1", port 5432 failed: '
            'FATAL:  password authentication failed for user "writer"'
        )

    monkeypatch.setattr(psycopg, "connect", refuse)
    with pytest.raises(StoreUnavailableError) as raised:
        PostgresStore(f"postgresql://writer:{PASSWORD}@127.0.0.1:5432/strategies")
    message = str(raised.value)
    assert "password authentication failed for user 'writer'" in message
    assert "retrying will not help" in message and PASSWORD not in message


def test_a_hand_inserted_row_with_an_invalid_brief_id_is_corrupt(
    pg_store: PostgresStore, pg_dsn: str
) -> None:
    pg_store.save(make_doc("acme", 1))
    _sql(
        pg_dsn,
        f"INSERT INTO {pg_store.table} SELECT 'bad id', 3, status, status_reason, created_at, "
        f"updated_at, content_digest, data FROM {pg_store.table}",
    )
    for call in (pg_store.list_briefs, lambda: list(pg_store.iter_documents())):
        with pytest.raises(CorruptDocumentError) as raised:
            call()
        assert f"table {pg_store.table}, row (brief_id='bad id', version=3)" in str(raised.value)
        assert "brief id is invalid" in str(raised.value)


# -- the command line ----------------------------------------------------------------


@pytest.fixture
def schema_dsn(pg_dsn: str) -> Iterator[str]:
    """``key=value`` pairs naming the test server, whose default table lives in a fresh schema."""
    schema = f"copy_{uuid.uuid4().hex[:8]}"
    _sql(pg_dsn, f"CREATE SCHEMA {schema}")
    try:
        yield _conninfo(pg_dsn, options=f"-csearch_path={schema}", password=PASSWORD)
    finally:
        _sql(pg_dsn, f"DROP SCHEMA {schema} CASCADE")


def test_copy_to_key_value_pairs_goes_to_the_database(
    capsys: pytest.CaptureFixture[str],
    schema_dsn: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    source = FileStore(tmp_path / "data")
    source.save(make_doc("acme", 1))
    monkeypatch.chdir(tmp_path)
    result = _run(capsys, "copy", "data", schema_dsn)
    assert result.status == 0, result.err
    assert "1 written" in result.err and PASSWORD not in result.err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data"]
    with PostgresStore(schema_dsn, create=False) as target:
        assert target.list_briefs() == ["acme"]
    listed = _run(capsys, "--store", schema_dsn, "briefs", "--json")
    assert [row["brief_id"] for row in json.loads(listed.out)] == ["acme"]


def test_copy_onto_the_same_store_spelled_otherwise_is_refused(
    capsys: pytest.CaptureFixture[str], schema_dsn: str, tmp_path: Path
) -> None:
    params = conninfo_to_dict(schema_dsn)
    respelled = make_conninfo("", **dict(reversed(list(params.items()))), port="5432")
    refused = _run(capsys, "copy", schema_dsn, respelled)
    assert refused.status == 1 and "are the same store" in refused.error_line
    assert PASSWORD not in refused.err
    FileStore(tmp_path / "data")
    (tmp_path / "link").symlink_to(tmp_path / "data")
    onto_itself = _run(capsys, "copy", str(tmp_path / "data"), str(tmp_path / "link"))
    assert onto_itself.status == 1 and "are the same store" in onto_itself.error_line


def test_copy_between_two_tables_of_one_database_is_no_copy_onto_itself(
    capsys: pytest.CaptureFixture[str], pg_dsn: str, pg_table: str, tmp_path: Path
) -> None:
    if not pg_dsn.startswith("postgresql://"):
        pytest.skip("the test server's DSN is not a URL")
    source = f"{pg_dsn}{'&' if '?' in pg_dsn else '?'}table={pg_table}"
    with PostgresStore(source) as store:
        store.save(make_doc("acme", 1))
    other = f"{pg_table}_copy"
    try:
        result = _run(capsys, "copy", source, source.replace(pg_table, other))
        assert result.status == 0, result.err
    finally:
        _sql(pg_dsn, f"DROP TABLE IF EXISTS {other}")


_SERVER_GONE = """
import sys
from strategystore import postgres
from strategystore.cli import main

opened = postgres.PostgresStore._new_pool

def gone(self):
    # The server goes away once the store has checked its table.
    self._conninfo = sys.argv[2]
    self.connect_timeout = 1.0
    return opened(self)

postgres.PostgresStore._new_pool = gone
raise SystemExit(main(["--store", sys.argv[1], "briefs"]))
"""


def test_a_server_gone_after_opening_is_one_line_on_stderr(
    pg_dsn: str, pg_store: PostgresStore, tmp_path: Path
) -> None:
    if not pg_dsn.startswith("postgresql://"):
        pytest.skip("the test server's DSN is not a URL")
    store_dsn = f"{pg_dsn}{'&' if '?' in pg_dsn else '?'}table={pg_store.table}"
    gone = f"host={NOWHERE} dbname=postgres connect_timeout=2"
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATEGYSTORE_")}
    ran = subprocess.run(
        [sys.executable, "-c", _SERVER_GONE, store_dsn, gone],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**env, "PYTHONPATH": str(Path(__file__).parent.parent)},
        timeout=60,
        check=False,
    )
    assert ran.returncode == 1
    lines = ran.stderr.splitlines()
    assert len(lines) == 1, ran.stderr
    assert lines[0].startswith("strategystore: PostgreSQL database ")
    assert "is unavailable" in lines[0]


def test_store_errors_keep_their_hint_when_pickled() -> None:
    import pickle  # noqa: PLC0415

    error = StoreUnavailableError("h", "d", "r", "fix it")
    copy = pickle.loads(pickle.dumps(error))
    assert isinstance(copy, StoreUnavailableError) and str(copy) == str(error)
    assert copy.hint == "fix it"


# -- found in a later review -----------------------------------------------------------


@pytest.mark.parametrize("seconds", [0, 1e-300])
def test_a_connect_timeout_of_zero_still_gets_a_connection(
    pg_dsn: str, pg_table: str, seconds: float
) -> None:
    with PostgresStore(pg_dsn, table=pg_table, connect_timeout=seconds) as store:
        store.save(make_doc("acme", 1))
        assert store.list_briefs() == ["acme"]


@pytest.mark.parametrize(
    "dsn",
    [
        f"postgresql://writer:pw@/x?host={NOWHERE}&sslpassword={PASSWORD}",
        f"host={NOWHERE} user=writer sslpassword={PASSWORD}",
    ],
)
def test_the_ssl_key_password_is_hidden_too(dsn: str) -> None:
    shown = without_password(dsn)
    assert PASSWORD not in shown and "sslpassword=***" in shown


def test_an_unescaped_at_sign_in_a_url_password_is_refused_without_quoting_it() -> None:
    # libpq ends the password at the first "@": the rest of it would be the host.
    with pytest.raises(ConfigurationError) as raised:
        PostgresStore(f"postgresql://writer:pw@{PASSWORD}@localhost/strategies")
    assert PASSWORD not in str(raised.value) and "%40" in str(raised.value)
