"""``PostgresStore`` only: bytes as stored, rows edited by hand, table formats, opening a store."""

from __future__ import annotations

import contextlib
import signal
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from typing import Any

import psycopg
import pytest
from pydantic import ValidationError

from strategystore import (
    ConcurrentUpdateError,
    ConfigurationError,
    CorruptDocumentError,
    DuplicateVersionError,
    LockTimeoutError,
    Section,
    Status,
    StoreFormatError,
    StoreUnavailableError,
    StrategyDocument,
    StrategyStoreError,
    _pgwire,
    open_store,
)
from strategystore._dsn import split_table
from strategystore.postgres import PostgresStore
from tests.conftest import T0, make_doc

Sql = Callable[..., list[Any]]


@pytest.fixture
def sql(pg_dsn: str) -> Sql:
    """Runs one statement on the test server, as a person at ``psql`` would; returns its rows."""

    def run(statement: str, params: tuple[object, ...] = ()) -> list[Any]:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            cursor = conn.execute(statement.encode(), params)
            return cursor.fetchall() if cursor.description else []

    return run


def _with_table(dsn: str, table: str) -> str:
    return f"{dsn}{'&' if '?' in dsn else '?'}table={table}"


def _needs_url(dsn: str) -> None:
    if not dsn.startswith(("postgresql://", "postgres://")):
        pytest.skip("the test server's DSN is not a URL")


# -- canonical bytes -------------------------------------------------------------


def test_canonical_bytes_survive_as_written(pg_store: PostgresStore, sql: Sql) -> None:
    doc = make_doc(
        "acme",
        1,
        sections=[Section(key="goal", title="Ziel ✓", body="Grüße, 東京 — “quoted” \\ \t")],
        metadata={"score": 1.0, "big": 1e300, "zeta": {"b": 2, "a": [1.50, "ü"]}, "alpha": None},
    )
    pg_store.save(doc)
    data = doc.to_json_bytes()
    assert pg_store.get_stored_bytes("acme", 1) == data
    [(raw, kind)] = sql(f"SELECT data, pg_typeof(data)::text FROM {pg_store.table}")
    assert kind == "text"
    assert raw.encode() == data
    assert '"score": 1.0' in raw and "東京" in raw and "\\u" not in raw
    # Keys stay in the canonical order; jsonb would put the shortest key first.
    fields = ['"brief_id"', '"version"', '"status"', '"sections"', '"metadata"']
    assert [raw.index(f) for f in fields] == sorted(raw.index(f) for f in fields)
    read = pg_store.get_strategy("acme", 1)
    assert read == doc
    assert read is not None and read.metadata["score"] == 1.0
    assert isinstance(read.metadata["score"], float)


def test_the_typed_columns_follow_the_document(pg_store: PostgresStore, sql: Sql) -> None:
    pg_store.save(make_doc("acme", 1))
    approved = pg_store.approve("acme", 1, now=T0)
    [row] = sql(
        f"SELECT status, status_reason, created_at, updated_at, content_digest "
        f"FROM {pg_store.table} WHERE brief_id = 'acme' AND version = 1"
    )
    assert row == ("approved", None, T0, T0, approved.content_digest)


def test_an_import_writes_the_same_rows_as_one_write_at_a_time(
    pg_store: PostgresStore, sql: Sql
) -> None:
    """The import's rows (text COPY) hold what ``save`` writes, column for column, whatever
    the text holds of COPY's own escapes."""
    later = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=timezone(timedelta(hours=-5)))
    docs = [
        make_doc("acme", 1),
        make_doc("acme", 2, status=Status.REJECTED, status_reason="no\0pe 東京", updated_at=later),
        make_doc("acme", 3, sections=[Section(key="k", title="T", body='a "q" \\ b\n\tc')]),
        make_doc(
            "acme",
            4,
            status=Status.REJECTED,
            status_reason="\\N\ttab\r\nline \\. back\\slash",
            updated_at=later,
            metadata={"\\N": "\t\\", "end": "\\."},
        ),
    ]
    for doc in docs:
        pg_store.save(doc)
    columns = (
        "brief_id, version, status, status_reason, created_at, updated_at, content_digest, data"
    )
    saved = sql(f"SELECT {columns} FROM {pg_store.table} ORDER BY version")
    sql(f"DELETE FROM {pg_store.table}")
    assert pg_store.import_documents(docs).written == 4
    assert sql(f"SELECT {columns} FROM {pg_store.table} ORDER BY version") == saved
    assert saved[1][3] == "no\ufffdpe 東京" and saved[1][5] == later
    assert saved[3][3] == "\\N\ttab\r\nline \\. back\\slash"
    assert pg_store.get_strategy("acme", 4) == docs[3]


def test_a_key_imported_twice_in_one_batch_keeps_the_last(pg_store: PostgresStore) -> None:
    """The first goes in by COPY, the second replaces it in the same transaction."""
    first = make_doc("acme", 1)
    changed = make_doc("acme", 1, metadata={"tone": "bold"})
    summary = pg_store.import_documents([first, changed, make_doc("acme", 2)], upsert=True)
    assert (summary.written, summary.refused) == (3, 0)
    assert pg_store.get_strategy("acme", 1) == changed
    refused = pg_store.import_documents([make_doc("b", 1), make_doc("b", 1, metadata={})])
    assert (refused.written, refused.refused) == (1, 1)
    assert pg_store.get_strategy("b", 1) == make_doc("b", 1)


def test_a_statement_in_the_middle_of_an_import_batch_ends_its_copy_first(
    pg_store: PostgresStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows already sent by COPY while the batch runs: any other statement still runs."""
    from strategystore import _pgbatch  # noqa: PLC0415

    write = _pgbatch.BatchWriter.write
    seen: list[list[int]] = []

    def write_then_ask(self: Any, doc: StrategyDocument, data: bytes) -> None:
        write(self, doc, data)
        if doc.version in (150, 151):  # past the first send of rows
            seen.append(sorted(pg_store._versions("acme")))

    monkeypatch.setattr(_pgbatch.BatchWriter, "write", write_then_ask)
    docs = [make_doc("acme", v, metadata={"pad": "x" * 400}) for v in range(1, 201)]
    assert pg_store.import_documents(docs).written == 200
    # The first statement ended the COPY, so it saw every row written before it;
    # the next row began another COPY, whose rows (like any row still held)
    # are there by the commit.
    assert seen == [list(range(1, 151)), list(range(1, 151))]
    assert pg_store.list_version_numbers("acme") == list(range(200, 0, -1))


# -- rows edited by hand -----------------------------------------------------------


def _set_data(sql: Sql, table: str, brief: str, version: int, data: str) -> None:
    statement = f"UPDATE {table} SET data = %s WHERE brief_id = %s AND version = %s"
    sql(statement, (data, brief, version))


def test_a_valid_hand_edit_of_a_draft_reads_back(pg_store: PostgresStore, sql: Sql) -> None:
    pg_store.save(make_doc("acme", 1))
    sql(f"UPDATE {pg_store.table} SET data = replace(data, 'Grow', 'Shrink')")
    read = pg_store.get_strategy("acme", 1)
    assert read is not None and read.sections[0].body == "Shrink **fast**."
    # Stored bytes are what the person wrote, not re-encoded.
    [(raw,)] = sql(f"SELECT data FROM {pg_store.table}")
    assert pg_store.get_stored_bytes("acme", 1) == raw.encode()


def _approved_with_another_body(data: str) -> str:
    return data.replace("Grow", "Shrink")


def _repeated_key(data: str) -> str:
    return data.replace('"version": 1,', '"version": 1,\n  "version": 1,', 1)


def _broken(data: str) -> str:
    return data[: len(data) // 2]


def _another_key(data: str) -> str:
    return make_doc("acme", 2).to_json_bytes().decode()


@pytest.mark.parametrize(
    ("edit", "status", "reason"),
    [
        (_broken, Status.DRAFT, "json"),
        (_repeated_key, Status.DRAFT, "version"),
        (_approved_with_another_body, Status.APPROVED, "seal"),
        (_another_key, Status.DRAFT, "version 2"),
    ],
    ids=["broken-json", "repeated-key", "wrong-seal", "another-key"],
)
def test_a_broken_hand_edit_is_corrupt_naming_table_and_key(
    pg_store: PostgresStore, sql: Sql, edit: Callable[[str], str], status: Status, reason: str
) -> None:
    pg_store.save(make_doc("acme", 1))
    if status is Status.APPROVED:
        pg_store.approve("acme", 1, now=T0)
    pg_store.save(make_doc("other", 1))
    [(raw,)] = sql(f"SELECT data FROM {pg_store.table} WHERE brief_id = 'acme'")
    _set_data(sql, pg_store.table, "acme", 1, edit(raw))
    reads: list[Callable[[], object]] = [
        lambda: pg_store.get_strategy("acme", 1),
        lambda: pg_store.get_latest("acme"),
        lambda: pg_store.list_versions_by_brief("acme"),
        lambda: list(pg_store.iter_documents()),
        lambda: pg_store.save(make_doc("acme", 1)),
        lambda: pg_store.delete("acme", 1),
    ]
    for read in reads:
        with pytest.raises(CorruptDocumentError) as raised:
            read()
        message = str(raised.value)
        assert pg_store.table in message and "'acme'" in message and "version=1" in message
        assert reason in message.lower(), message
    # What need not read the row is not stopped by it, and nothing was overwritten.
    assert pg_store.list_version_numbers("acme") == [1]
    assert pg_store.list_briefs() == ["acme", "other"]
    assert pg_store.get_strategy("other", 1) == make_doc("other", 1)
    assert sql(f"SELECT data FROM {pg_store.table} WHERE brief_id = 'acme'") == [(edit(raw),)]


# -- the table and its format --------------------------------------------------------


def test_a_table_of_a_newer_format_is_refused(
    pg_dsn: str, pg_store: PostgresStore, sql: Sql
) -> None:
    sql(f"COMMENT ON TABLE {pg_store.table} IS 'strategystore format 99'")
    with pytest.raises(StoreFormatError, match=r"format 99.*upgrade strategystore"):
        PostgresStore(pg_dsn, table=pg_store.table)


def test_a_table_that_is_not_ours_is_refused(pg_dsn: str, pg_table: str, sql: Sql) -> None:
    sql(f"CREATE TABLE {pg_table} (id int)")
    with pytest.raises(StoreFormatError, match="not a strategystore table"):
        PostgresStore(pg_dsn, table=pg_table)
    sql(f"COMMENT ON TABLE {pg_table} IS 'orders of the shop'")
    with pytest.raises(StoreFormatError, match=rf"{pg_table}.*not a strategystore table"):
        PostgresStore(pg_dsn, table=pg_table)


def test_a_missing_table_is_refused_without_create(pg_dsn: str, pg_table: str, sql: Sql) -> None:
    with pytest.raises(StoreFormatError, match=rf"{pg_table}.*does not exist.*create=True"):
        PostgresStore(pg_dsn, table=pg_table, create=False)
    assert sql("SELECT to_regclass(%s)", (pg_table,)) == [(None,)]


def test_a_created_table_records_its_format(pg_dsn: str, pg_table: str, sql: Sql) -> None:
    with PostgresStore(pg_dsn, table=pg_table):
        pass
    assert sql("SELECT obj_description(to_regclass(%s), 'pg_class')", (pg_table,)) == [
        ("strategystore format 1",)
    ]
    with PostgresStore(pg_dsn, table=pg_table, create=False) as again:
        assert again.list_briefs() == []


@pytest.fixture
def quoted_table(pg_dsn: str, sql: Sql) -> Iterator[str]:
    """A table name that needs quoting, dropped afterwards."""
    name = f"Docs_{uuid.uuid4().hex[:8]}"
    yield name
    sql(f'DROP TABLE IF EXISTS "{name}"')


def test_a_mixed_case_table_name_is_the_table_of_that_name(
    pg_dsn: str, quoted_table: str, sql: Sql
) -> None:
    with PostgresStore(pg_dsn, table=quoted_table) as store:
        store.save(make_doc("acme", 1))
    with PostgresStore(pg_dsn, table=quoted_table, create=False) as store:
        assert store.list_briefs() == ["acme"]
    assert sql(f'SELECT count(*) FROM "{quoted_table}"') == [(1,)]


def test_a_table_in_a_schema_is_created_there(pg_dsn: str, sql: Sql) -> None:
    schema = f"s_{uuid.uuid4().hex[:8]}"
    sql(f"CREATE SCHEMA {schema}")
    try:
        with PostgresStore(pg_dsn, table=f"{schema}.docs") as store:
            store.save(make_doc("acme", 1))
        assert sql(f"SELECT brief_id FROM {schema}.docs") == [("acme",)]
    finally:
        sql(f"DROP SCHEMA {schema} CASCADE")


def test_a_table_in_a_missing_schema_is_a_store_format_error(pg_dsn: str) -> None:
    with pytest.raises(StoreFormatError, match="no_such_schema"):
        PostgresStore(pg_dsn, table="no_such_schema.docs")


def test_stores_opening_one_missing_table_at_once_all_work(
    pg_dsn: str, pg_table: str, sql: Sql
) -> None:
    n = 4
    barrier = threading.Barrier(n)
    errors: list[BaseException] = []
    stores: list[PostgresStore] = []

    def open_one(index: int) -> None:
        try:
            barrier.wait(timeout=30)
            store = PostgresStore(pg_dsn, table=pg_table)
            stores.append(store)
            store.create_next("acme", metadata={"opener": index})
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=open_one, args=(i,)) for i in range(n)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    for store in stores:
        store.close()
    assert errors == []
    assert sql(
        "SELECT count(*) FROM pg_class WHERE relname = %s AND relkind = 'r'", (pg_table,)
    ) == [(1,)]
    assert sql(f"SELECT version FROM {pg_table} ORDER BY version") == [(v,) for v in range(1, 5)]


# -- naming the store ------------------------------------------------------------------


def test_the_table_named_in_a_url_is_used_and_removed(pg_dsn: str, pg_table: str) -> None:
    _needs_url(pg_dsn)
    url = _with_table(pg_dsn, pg_table)
    assert split_table(url) == (pg_dsn, pg_table)
    # libpq refuses a query parameter it does not know: connecting proves it is gone.
    with PostgresStore(url) as store:
        assert store.table == pg_table
        store.save(make_doc("acme", 1))
    with PostgresStore(pg_dsn, table=pg_table, create=False) as store:
        assert store.list_briefs() == ["acme"]
    with pytest.raises(ConfigurationError, match="names table"):
        PostgresStore(url, table="another")
    with pytest.raises(ConfigurationError, match="more than once"):
        PostgresStore(_with_table(url, "again"))


@pytest.mark.parametrize(
    "table", ["bad-name", "docs; DROP TABLE x", "", "a.b.c", "1docs", '"quoted"', "x" * 64, 7]
)
def test_a_bad_table_name_is_a_configuration_error(pg_dsn: str, table: Any) -> None:
    with pytest.raises(ConfigurationError, match="table must be an identifier"):
        PostgresStore(pg_dsn, table=table)


def test_open_store_opens_postgres_from_arguments_or_the_environment(
    pg_dsn: str, pg_table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _needs_url(pg_dsn)
    store = open_store("postgres", dsn=pg_dsn, table=pg_table, lock_timeout=2.0)
    assert isinstance(store, PostgresStore)
    with store:
        assert (store.table, store.lock_timeout) == (pg_table, 2.0)
        store.save(make_doc("acme", 1))
    monkeypatch.setenv("STRATEGYSTORE_MODE", "postgres")
    monkeypatch.setenv("STRATEGYSTORE_DSN", _with_table(pg_dsn, pg_table))
    opened = open_store()
    assert isinstance(opened, PostgresStore)
    with opened:
        assert opened.table == pg_table
        assert opened.get_strategy("acme", 1) == make_doc("acme", 1)
    monkeypatch.delenv("STRATEGYSTORE_DSN")
    with pytest.raises(ConfigurationError, match="STRATEGYSTORE_DSN"):
        open_store()


def test_repr_names_the_store_but_never_the_password(pg_dsn: str, pg_table: str) -> None:
    _needs_url(pg_dsn)
    # The test server trusts local connections, so any password is accepted.
    with_password = pg_dsn.replace("postgres@", "postgres:pa55-w0rd@", 1)
    assert "pa55-w0rd" in with_password
    with PostgresStore(with_password, table=pg_table) as store:
        shown = repr(store)
        assert pg_table in shown and "postgres" in shown
        assert "pa55-w0rd" not in shown and "pa55-w0rd" not in str(vars(store).get("host"))


def test_two_spellings_of_one_table_share_its_brief_locks(pg_dsn: str, pg_table: str) -> None:
    """``t`` and ``public.t`` are one table, so a brief's writers exclude each other across both."""
    with (
        PostgresStore(pg_dsn, table=pg_table) as plain,
        PostgresStore(pg_dsn, table=f"public.{pg_table}", lock_timeout=0) as qualified,
    ):
        assert plain._lock_key("acme") == qualified._lock_key("acme")
        with plain._locked("acme"), pytest.raises(LockTimeoutError):
            qualified.create_next("acme")


# -- the statements prepared on each connection ------------------------------------------


def test_every_call_works_after_a_refused_write_rolled_back(pg_dsn: str, pg_table: str) -> None:
    """A rollback on a connection leaves the statements the store prepared on it in place."""
    with PostgresStore(pg_dsn, table=pg_table, pool_size=1) as store:
        first = make_doc("acme", 1)
        store.save(first)
        for _ in range(8):  # often enough for any statement cache to prepare these
            assert store.list_version_numbers("acme") == [1]
            assert store.get_strategy("acme", 1) == first
        stale = first.model_copy(update={"metadata": {"stale": True}})
        with pytest.raises(ConcurrentUpdateError):
            store.update(stale.model_copy(update={"metadata": {"x": 1}}), expected=stale)
        assert store.get_strategy("acme", 1) == first
        assert store.create_next("acme").version == 2
        assert store.list_version_numbers("acme") == [2, 1]


def test_statements_deallocated_under_the_store_are_prepared_again(
    pg_dsn: str, pg_table: str
) -> None:
    """``DEALLOCATE ALL`` (a pooler's reset, say): a read prepares again and runs at once,
    as does a write that meets it as its transaction begins; one that meets it
    mid-transaction changes nothing, and the next one works."""
    with PostgresStore(pg_dsn, table=pg_table, pool_size=1) as store:
        first = make_doc("acme", 1)
        store.save(first)
        assert store.get_strategy("acme", 1) == first

        def deallocate() -> None:
            with store._pool.connection() as conn:
                conn.execute("DEALLOCATE ALL")

        deallocate()
        assert store.get_strategy("acme", 1) == first
        assert store.create_next("acme").version == 2
        deallocate()
        assert store.create_next("acme").version == 3

        def write_deallocated_mid_transaction() -> None:
            with store._locked("acme"):
                store._local.tx.conn.execute("DEALLOCATE ALL")
                store.create_next("acme")

        with pytest.raises(StoreUnavailableError, match="changed nothing"):
            write_deallocated_mid_transaction()
        assert store.list_version_numbers("acme") == [3, 2, 1]
        assert store.create_next("acme").version == 4
        assert store.get_strategy("acme", 4) is not None


def test_create_next_reads_the_highest_version_with_its_lock(
    pg_dsn: str, pg_table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """BEGIN, the lock and max(version) go in one round trip; then the INSERT with the COMMIT."""
    with PostgresStore(pg_dsn, table=pg_table) as store:
        store.create_next("acme")
        trips: list[list[bytes]] = []
        pipelined, run = _pgwire._pipelined, store._wire.run

        def name(step: Any) -> bytes:
            return step if isinstance(step, bytes) else step[0].name

        def record_pipeline(conn: Any, steps: Any) -> Any:
            trips.append([name(step) for step in steps])
            return pipelined(conn, steps)

        def record_run(conn: Any, statement: Any, params: Any) -> Any:
            trips.append([statement.name])
            return run(conn, statement, params)

        monkeypatch.setattr(_pgwire, "_pipelined", record_pipeline)
        monkeypatch.setattr(store._wire, "run", record_run)
        assert store.create_next("acme").version == 2
        begin = [b"BEGIN", b"strategystore_lock", b"strategystore_highest"]
        assert trips == [begin, [b"strategystore_insert", b"COMMIT"]]
        assert store.create_next("ACME-other").version == 1
        assert trips[2:] == [begin, [b"strategystore_insert", b"COMMIT"]]
        with store._locked("acme"):  # already in a transaction: asked on its own
            assert store.create_next("acme").version == 3
        assert trips[4:] == [
            [b"BEGIN", b"strategystore_lock"],
            [b"strategystore_highest"],
            [b"strategystore_insert"],
        ]
        assert store.list_version_numbers("acme") == [3, 2, 1]


def test_create_next_that_finds_its_version_taken_commits_nothing_and_says_so(
    pg_store: PostgresStore, sql: Sql, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A row put in by hand, past the lock, at the version create_next chose."""
    pg_store.create_next("acme")
    intruder = make_doc("acme", 2, metadata={"by": "hand"})
    write = PostgresStore._write

    def insert_by_hand_first(
        self: PostgresStore, doc: Any, data: bytes, *, exclusive: bool
    ) -> bool:
        sql(
            f"INSERT INTO {pg_store.table} (brief_id, version, status, created_at, data) "
            "VALUES (%s, 2, 'draft', now(), %s)",
            ("acme", intruder.to_json_bytes().decode()),
        )
        return write(self, doc, data, exclusive=exclusive)

    monkeypatch.setattr(PostgresStore, "_write", insert_by_hand_first)
    with pytest.raises(DuplicateVersionError):
        pg_store.create_next("acme")
    monkeypatch.undo()
    assert pg_store.get_strategy("acme", 2) == intruder
    # The transaction ended cleanly: the next one takes the lock and writes.
    assert pg_store.create_next("acme").version == 3


def test_a_statement_the_server_already_holds_is_run(pg_dsn: str, pg_table: str) -> None:
    """A prepare cut short after the server took it (a Ctrl-C) leaves it there: it is used."""
    with PostgresStore(pg_dsn, table=pg_table, pool_size=1) as store:
        first = store.create_next("acme")  # prepares the insert, not the read
        load = store._sql.wire_load
        with store._pool.connection() as conn:
            prepared = conn.pgconn.prepare(load.name, load.text)  # behind the store's back
            assert prepared.status == psycopg.pq.ExecStatus.COMMAND_OK
        assert store.get_strategy("acme", 1) == first
        assert store.get_strategy("acme", 1) == first


def test_create_next_on_a_dropped_table_raises_as_any_call_does(
    pg_dsn: str, pg_table: str, sql: Sql
) -> None:
    with PostgresStore(pg_dsn, table=pg_table) as store:
        store.create_next("acme")
        sql(f"DROP TABLE {pg_table}")
        with pytest.raises(StrategyStoreError) as reading:
            store.list_version_numbers("acme")
        with pytest.raises(StrategyStoreError) as writing:
            store.create_next("acme")
        assert type(writing.value) is type(reading.value)
        assert pg_table in str(writing.value)


def test_a_transaction_the_server_rolled_back_is_not_reported_as_written(
    pg_dsn: str, pg_table: str
) -> None:
    """A failed statement aborts the transaction, even if its error was handled: COMMIT then
    answers ROLLBACK, and the write says so instead of returning."""
    with PostgresStore(pg_dsn, table=pg_table) as store:
        failed = pytest.raises(StoreUnavailableError, match="rolled the transaction back")
        with failed, store._locked("acme"):
            store.save(make_doc("acme", 1))
            with contextlib.suppress(psycopg.errors.DivisionByZero):
                store._local.tx.conn.execute("SELECT 1/0")
        assert store.list_version_numbers("acme") == []
        store.save(make_doc("acme", 1))
        assert store.list_version_numbers("acme") == [1]


def test_a_create_next_whose_insert_is_refused_stores_nothing(
    pg_store: PostgresStore, sql: Sql
) -> None:
    """The INSERT and the COMMIT go in one round trip: a refused INSERT skips the COMMIT, and
    the transaction is rolled back."""
    pg_store.create_next("acme")
    sql(f"ALTER TABLE {pg_store.table} ADD CONSTRAINT two_at_most CHECK (version <= 2)")
    assert pg_store.create_next("acme").version == 2
    with pytest.raises(StoreUnavailableError, match="two_at_most"):
        pg_store.create_next("acme")
    assert pg_store.list_version_numbers("acme") == [2, 1]
    sql(f"ALTER TABLE {pg_store.table} DROP CONSTRAINT two_at_most")
    assert pg_store.create_next("acme").version == 3


def test_a_create_next_whose_commit_fails_stores_nothing(pg_store: PostgresStore, sql: Sql) -> None:
    """A constraint checked at COMMIT refuses it: the write raises rather than returning."""
    sql(
        "CREATE FUNCTION refuse_third() RETURNS trigger LANGUAGE plpgsql AS "
        "$$ BEGIN IF NEW.version = 3 THEN RAISE EXCEPTION 'no third version'; END IF; "
        "RETURN NULL; END $$"
    )
    sql(
        f"CREATE CONSTRAINT TRIGGER refuse_third AFTER INSERT ON {pg_store.table} "
        "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_third()"
    )
    try:
        pg_store.create_next("acme")
        pg_store.create_next("acme")
        with pytest.raises(StoreUnavailableError, match="no third version"):
            pg_store.create_next("acme")
        assert pg_store.list_version_numbers("acme") == [2, 1]
        sql(f"DROP TRIGGER refuse_third ON {pg_store.table}")
        assert pg_store.create_next("acme").version == 3
    finally:
        sql(f"DROP TRIGGER IF EXISTS refuse_third ON {pg_store.table}")
        sql("DROP FUNCTION refuse_third()")


def test_ctrl_c_while_a_write_waits_for_its_lock_cancels_the_wait(
    pg_dsn: str, pg_table: str
) -> None:
    """The lock is asked for with BEGIN in one round trip; a Ctrl-C cancels it on the server,
    and the store's next write works at once."""
    with PostgresStore(pg_dsn, table=pg_table, pool_size=1, lock_timeout=30) as store:
        store.create_next("acme")
        key = store._lock_key("acme")
        with psycopg.connect(pg_dsn, autocommit=True) as holder:
            holder.execute("BEGIN")
            holder.execute("SELECT pg_advisory_xact_lock(%s)", (key,))
            main = threading.get_ident()
            timer = threading.Timer(0.5, signal.pthread_kill, (main, signal.SIGINT))
            timer.start()
            started = time.monotonic()
            try:
                with pytest.raises(KeyboardInterrupt):
                    store.create_next("acme")
            finally:
                timer.cancel()
            assert time.monotonic() - started < 10
            waiting = holder.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            ).fetchone()
            assert waiting == (0,)
            holder.execute("ROLLBACK")
        assert store.create_next("acme").version == 2
        assert store.list_version_numbers("acme") == [2, 1]


def test_an_import_inside_a_write_of_its_own_validates_each_batch_first(
    pg_store: PostgresStore,
) -> None:
    """Inside the caller's transaction the batch is no transaction of its own to roll back: an
    invalid document is found before anything of its batch goes into the caller's."""
    docs = [make_doc("a", v) for v in range(1, 4)]
    broken = docs[2].model_copy(update={"updated_at": datetime(2030, 1, 1)})  # naive
    with pg_store._locked("a"):
        with pytest.raises(ValidationError, match="timezone"):
            pg_store.import_documents([docs[0], docs[1], broken])
        pg_store.save(make_doc("a", 9))
    assert pg_store.list_version_numbers("a") == [9]


def test_a_ctrl_c_as_an_import_batch_takes_in_what_it_read_ends_its_transaction(
    pg_dsn: str, pg_table: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The batch's locks are held from its first round trip: an interruption right after it
    gives the connection back with its locks released."""
    from strategystore import _pgbatch  # noqa: PLC0415

    with PostgresStore(pg_dsn, table=pg_table, pool_size=1, lock_timeout=2) as store:
        store.save(make_doc("acme", 1))

        def interrupted(*args: Any) -> None:
            raise KeyboardInterrupt

        monkeypatch.setattr(_pgbatch.BatchWriter, "_take_read_ahead", interrupted)
        with pytest.raises(KeyboardInterrupt):
            store.import_documents([make_doc("acme", 2)])
        monkeypatch.undo()
        assert getattr(store._local, "tx", None) is None  # no transaction left to this thread
        # One connection in the pool: it is back, outside any transaction, the lock free.
        assert store.create_next("acme").version == 2
        assert store.list_version_numbers("acme") == [2, 1]
