"""``strategystore import-sql``: rows of the original SQL table become documents."""

from __future__ import annotations

import json
import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from strategystore import FileStore, Section, Status, sql
from strategystore.cli import main
from strategystore.models import describe_validation_error
from strategystore.sql import UnmappableRowError, read_documents, row_to_document
from tests.conftest import run_module

SCHEMA = """
CREATE TABLE strategy_document (
    id INTEGER PRIMARY KEY,
    brief_id VARCHAR(100) NOT NULL,
    version INTEGER NOT NULL,
    status VARCHAR(20) NOT NULL,
    created_at DATETIME NOT NULL,
    updated_at DATETIME,
    sections TEXT,
    metadata TEXT,
    UNIQUE (brief_id, version)
)
"""

LIST_SECTIONS = json.dumps([{"key": "goal", "title": "Goal", "body": "Grow."}])


def row(
    id: int = 1,
    brief_id: str = "acme",
    version: object = 1,
    status: object = "draft",
    created_at: object = "2024-05-02 09:15:00",
    updated_at: object = None,
    sections: object = LIST_SECTIONS,
    metadata: object = '{"model": "gpt-4"}',
) -> dict[str, object]:
    return {
        "id": id,
        "brief_id": brief_id,
        "version": version,
        "status": status,
        "created_at": created_at,
        "updated_at": updated_at,
        "sections": sections,
        "metadata": metadata,
    }


def make_database(path: Path, *rows: dict[str, object]) -> Path:
    with sqlite3.connect(path) as connection:
        connection.execute(SCHEMA)
        connection.executemany(
            "INSERT INTO strategy_document VALUES "
            "(:id, :brief_id, :version, :status, :created_at, :updated_at, :sections, :metadata)",
            rows,
        )
    connection.close()
    return path


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    FileStore(path)
    return path


def import_sql(
    data_dir: Path, database: Path, capsys: pytest.CaptureFixture[str], *options: str
) -> tuple[int, list[str]]:
    status = main(["--dir", str(data_dir), "import-sql", str(database), *options])
    captured = capsys.readouterr()
    assert captured.out == ""
    return status, captured.err.splitlines()


# -- mapping one row ------------------------------------------------------------


def test_a_row_with_list_sections_maps_field_for_field() -> None:
    doc = row_to_document(
        row(status="approved", updated_at="2024-05-03 16:40:12.482913", metadata='{"t": 0.7}')
    )
    assert doc.key == ("acme", 1)
    assert doc.status is Status.APPROVED
    assert doc.created_at == datetime(2024, 5, 2, 9, 15, tzinfo=UTC)
    assert doc.updated_at == datetime(2024, 5, 3, 16, 40, 12, 482913, tzinfo=UTC)
    assert doc.sections == [Section(key="goal", title="Goal", body="Grow.")]
    assert doc.metadata == {"t": 0.7}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-05-02 09:15:00", datetime(2024, 5, 2, 9, 15, tzinfo=UTC)),
        ("2024-05-02T09:15:00", datetime(2024, 5, 2, 9, 15, tzinfo=UTC)),
        ("2024-05-02 09:15:00.5", datetime(2024, 5, 2, 9, 15, 0, 500000, tzinfo=UTC)),
        ("2024-05-02T09:15:00.123456", datetime(2024, 5, 2, 9, 15, 0, 123456, tzinfo=UTC)),
        ("2024-05-02 11:15:00+02:00", datetime(2024, 5, 2, 9, 15, tzinfo=UTC)),
    ],
)
def test_naive_timestamps_are_read_as_utc_in_every_form_an_orm_writes(
    text: str, expected: datetime
) -> None:
    doc = row_to_document(row(created_at=text))
    assert doc.created_at == expected
    assert doc.created_at.utcoffset() is not None


def test_a_missing_updated_at_defaults_to_created_at() -> None:
    doc = row_to_document(row(updated_at=None))
    assert doc.updated_at == doc.created_at


@pytest.mark.parametrize("stored", ["APPROVED", "Approved", "approved"])
def test_a_status_stored_by_enum_name_or_value_maps(stored: str) -> None:
    assert row_to_document(row(status=stored)).status is Status.APPROVED


def test_list_sections_may_use_id_and_content() -> None:
    sections = json.dumps([{"id": "tone", "title": "Tone", "content": "Warm."}, {"id": 7}])
    doc = row_to_document(row(sections=sections))
    assert doc.sections == [
        Section(key="tone", title="Tone", body="Warm."),
        Section(key="7", title="7", body=""),
    ]


def test_sections_may_be_an_object_of_texts_or_of_objects() -> None:
    sections = json.dumps(
        {
            "audience": "Cyclists.",
            "message": {"title": "Key message", "content": "Arrive fresh."},
            "budget": {"key": "budget", "body": "10k"},
        }
    )
    doc = row_to_document(row(sections=sections))
    assert doc.sections == [
        Section(key="audience", title="audience", body="Cyclists."),
        Section(key="message", title="Key message", body="Arrive fresh."),
        Section(key="budget", title="budget", body="10k"),
    ]


@pytest.mark.parametrize("empty", [None, "", "  ", "[]", "{}"])
def test_no_sections_or_metadata_map_to_empty_ones(empty: str | None) -> None:
    doc = row_to_document(row(sections=empty, metadata=None if empty == "[]" else empty))
    assert doc.sections == []
    assert doc.metadata == {}


def test_json_encoded_twice_is_decoded() -> None:
    doc = row_to_document(row(sections=json.dumps(LIST_SECTIONS), metadata=json.dumps('{"a": 1}')))
    assert doc.sections == [Section(key="goal", title="Goal", body="Grow.")]
    assert doc.metadata == {"a": 1}


def test_json_stored_as_bytes_is_decoded() -> None:
    doc = row_to_document(row(sections=LIST_SECTIONS.encode(), metadata=b'{"a": 1}'))
    assert doc.metadata == {"a": 1}


def test_a_version_stored_as_digits_maps() -> None:
    assert row_to_document(row(version="12")).version == 12


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"brief_id": "../etc"}, "invalid brief id"),
        ({"version": 0}, "version"),
        ({"version": "two"}, "version"),
        ({"status": "archived"}, "status 'archived' is not one of draft, approved"),
        ({"status": None}, "status is None"),
        ({"created_at": "yesterday"}, "created_at 'yesterday' is not a date"),
        ({"created_at": 1714640100}, "created_at is 1714640100"),
        ({"updated_at": "2024-05-01 00:00:00"}, "before created_at"),
        ({"sections": "[{"}, "sections is not valid JSON"),
        ({"sections": '"just text"'}, "sections is a JSON string"),
        ({"sections": "[1]"}, "section 1 is a JSON number"),
        ({"sections": '[{"title": "No key"}]'}, "section 1 has no key or id"),
        ({"sections": '[{"key": "a", "id": "b"}]'}, "both key and id, and they differ"),
        ({"sections": '[{"key": "a", "order": 2}]'}, "no place for: order"),
        ({"sections": '[{"key": "a", "body": 5}]'}, "number body"),
        ({"sections": '{"a": {"key": "b"}}'}, "says its key is 'b'"),
        ({"sections": '[{"key": "a"}, {"key": "a"}]'}, "appears more than once"),
        ({"metadata": "[1, 2]"}, "metadata is a JSON list"),
        ({"metadata": '{"x": NaN}'}, "metadata.x"),
    ],
    ids=lambda value: str(value) if isinstance(value, dict) else None,
)
def test_a_row_that_does_not_fit_is_unmappable_with_its_reason(
    fields: dict[str, object], reason: str
) -> None:
    with pytest.raises(UnmappableRowError) as caught:
        row_to_document(row(id=42, **fields))  # type: ignore[arg-type]
    assert caught.value.row_id == 42
    assert reason in caught.value.reason


@pytest.mark.parametrize(
    ("column", "text", "key"),
    [
        ("sections", '{"audience": "a", "audience": "b"}', "audience"),
        ("sections", '[{"key": "a", "body": "x", "body": "y"}]', "body"),
        ("sections", '{"a": {"body": "x", "body": "x"}}', "body"),
        ("metadata", '{"budget": 100, "budget": 200}', "budget"),
        ("metadata", '{"plan": {"tv": {"spend": 1, "spend": 2}}}', "spend"),
        ("metadata", '{"channels": [{"name": "tv", "name": "tv"}]}', "name"),
    ],
)
def test_a_repeated_json_key_makes_the_row_unmappable(column: str, text: str, key: str) -> None:
    with pytest.raises(UnmappableRowError) as caught:
        row_to_document(row(id=42, **{column: text}))
    assert caught.value.row_id == 42
    assert caught.value.reason == f"{column} repeats the key {key!r}"


@pytest.mark.parametrize(
    ("column", "text", "key"),
    [
        ("sections", '{"audience": "a", "audience": "b"}', "audience"),
        ("metadata", '{"budget": {"q1": 100, "q1": 200}}', "q1"),
    ],
)
def test_a_repeated_json_key_in_json_encoded_twice_makes_the_row_unmappable(
    column: str, text: str, key: str
) -> None:
    with pytest.raises(UnmappableRowError) as caught:
        row_to_document(row(**{column: json.dumps(text)}))  # type: ignore[arg-type]
    assert caught.value.reason == f"{column} repeats the key {key!r}"


DEEP_JSON = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize(
    ("column", "text"),
    [
        ("sections", DEEP_JSON),
        ("metadata", DEEP_JSON),
        ("metadata", '{"plan": ' + DEEP_JSON + "}"),
        ("metadata", json.dumps('{"plan": ' + DEEP_JSON + "}")),
    ],
    ids=["sections", "metadata", "a metadata value", "metadata encoded twice"],
)
def test_json_nested_deeper_than_python_reads_makes_the_row_unmappable(
    column: str, text: str
) -> None:
    with pytest.raises(UnmappableRowError) as caught:
        row_to_document(row(id=42, **{column: text}))
    assert caught.value.row_id == 42
    assert caught.value.reason == f"{column} is nested too deeply"


def test_a_recursion_error_in_validation_makes_the_row_unmappable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Validation walks nested values recursively: a value the JSON reader
    # managed, read with less stack to spare, can still exhaust it there.
    class TooDeep:
        @staticmethod
        def model_validate(values: object) -> None:
            raise RecursionError("maximum recursion depth exceeded")

    monkeypatch.setattr(sql, "StrategyDocument", TooDeep)
    with pytest.raises(UnmappableRowError) as caught:
        row_to_document(row(id=42))
    assert caught.value.row_id == 42
    assert caught.value.reason == "a value is nested too deeply"


@pytest.mark.parametrize(
    "fields",
    [
        {"updated_at": "2024-05-01 00:00:00"},
        {
            "brief_id": "../etc",
            "version": 0,
            "sections": json.dumps([{"key": "k" * 101}]),
            "metadata": '{"x": NaN}',
        },
    ],
    ids=["a document problem", "more problems than shown"],
)
def test_validation_problems_read_as_in_every_other_command(fields: dict[str, object]) -> None:
    with pytest.raises(UnmappableRowError) as caught:
        row_to_document(row(**fields))  # type: ignore[arg-type]
    cause = caught.value.__cause__
    assert isinstance(cause, ValidationError)
    assert caught.value.reason == describe_validation_error(cause, limit=3)


def test_rows_are_read_in_brief_and_version_order(tmp_path: Path) -> None:
    database = make_database(
        tmp_path / "legacy.sqlite",
        row(id=1, brief_id="zeta", version=1),
        row(id=2, brief_id="acme", version=2),
        row(id=3, brief_id="acme", version=1),
    )
    assert [row_id for row_id, _ in read_documents(database)] == [3, 2, 1]


# -- the command ----------------------------------------------------------------


def test_import_sql_writes_every_mappable_row_and_reports_the_others_by_id(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = make_database(
        tmp_path / "legacy.sqlite",
        row(id=1, version=1, status="APPROVED"),
        row(id=2, version=2, sections='{"goal": "Grow more."}'),
        row(id=3, version=3, status="archived"),
        row(id=4, brief_id="zeta", version=1, sections="[{"),
    )
    status, err = import_sql(data_dir, database, capsys)
    assert status == 1
    assert err == [
        f"strategystore: {database}: row id 3: cannot map: status 'archived' is not one of "
        "draft, approved, rejected, withdrawn",
        f"strategystore: {database}: row id 4: cannot map: sections is not valid JSON: "
        "Expecting property name enclosed in double quotes: line 1 column 3 (char 2)",
        "2 written, 0 skipped, 2 refused",
    ]
    store = FileStore(data_dir)
    assert store.list_version_numbers("acme") == [2, 1]
    assert store.list_briefs() == ["acme"]


def test_import_sql_writes_the_rows_around_one_nested_too_deeply(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = make_database(
        tmp_path / "legacy.sqlite",
        row(id=1, version=1),
        row(id=2, version=2, metadata='{"plan": ' + DEEP_JSON + "}"),
        row(id=3, version=3),
    )
    status, err = import_sql(data_dir, database, capsys)
    assert status == 1
    assert err == [
        f"strategystore: {database}: row id 2: cannot map: metadata is nested too deeply",
        "2 written, 0 skipped, 1 refused",
    ]
    assert FileStore(data_dir).list_version_numbers("acme") == [3, 1]


def test_import_sql_writes_the_rows_around_one_with_a_repeated_key(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = make_database(
        tmp_path / "legacy.sqlite",
        row(id=1, version=1),
        row(id=2, version=2, metadata='{"budget": 100, "budget": 200}'),
    )
    status, err = import_sql(data_dir, database, capsys)
    assert status == 1
    assert err == [
        f"strategystore: {database}: row id 2: cannot map: metadata repeats the key 'budget'",
        "1 written, 0 skipped, 1 refused",
    ]
    assert FileStore(data_dir).list_version_numbers("acme") == [1]


def test_a_rerun_skips_identical_documents(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = make_database(tmp_path / "legacy.sqlite", row(id=1), row(id=2, version=2))
    assert import_sql(data_dir, database, capsys) == (0, ["2 written, 0 skipped, 0 refused"])
    before = (data_dir / "acme" / "1.json").stat()
    assert import_sql(data_dir, database, capsys) == (0, ["0 written, 2 skipped, 0 refused"])
    after = (data_dir / "acme" / "1.json").stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_a_rerun_refuses_a_changed_row_unless_upsert(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = make_database(tmp_path / "legacy.sqlite", row(id=1))
    import_sql(data_dir, database, capsys)
    with sqlite3.connect(database) as connection:
        connection.execute('UPDATE strategy_document SET metadata = \'{"model": "o1"}\'')
    connection.close()
    status, err = import_sql(data_dir, database, capsys)
    assert status == 1
    assert err[0].startswith(f"strategystore: {database}: row id 1: refused: version 1")
    assert "--upsert" in err[0]
    assert err[1] == "0 written, 0 skipped, 1 refused"

    assert import_sql(data_dir, database, capsys, "--upsert") == (
        0,
        ["1 written, 0 skipped, 0 refused"],
    )
    doc = FileStore(data_dir).get_strategy("acme", 1)
    assert doc is not None
    assert doc.metadata == {"model": "o1"}


def test_upsert_never_changes_an_approved_version(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = make_database(tmp_path / "legacy.sqlite", row(id=1, status="approved"))
    import_sql(data_dir, database, capsys)
    with sqlite3.connect(database) as connection:
        connection.execute("UPDATE strategy_document SET metadata = '{}'")
    connection.close()
    status, err = import_sql(data_dir, database, capsys, "--upsert")
    assert status == 1
    assert "it is approved" in err[0]


def test_a_table_without_an_id_column_names_rows_by_rowid(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "noid.sqlite"
    with sqlite3.connect(database) as connection:
        connection.execute(
            "CREATE TABLE strategy_document (brief_id, version, status, created_at, "
            "updated_at, sections, metadata)"
        )
        connection.execute(
            "INSERT INTO strategy_document VALUES ('acme', 1, 'lost', '2024-01-01', "
            "NULL, NULL, NULL)"
        )
    connection.close()
    status, err = import_sql(data_dir, database, capsys)
    assert status == 1
    assert "row id 1: cannot map: status 'lost'" in err[0]


def test_a_missing_database_is_one_line(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, err = import_sql(data_dir, tmp_path / "absent.sqlite", capsys)
    assert status == 1
    assert err == [f"strategystore: {tmp_path / 'absent.sqlite'}: no such database file"]


def test_a_directory_is_said_to_be_one_not_a_missing_database(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(IsADirectoryError) as caught:
        next(read_documents(tmp_path))
    assert caught.value.filename == str(tmp_path)
    status, err = import_sql(data_dir, tmp_path, capsys)
    assert status == 1
    assert err == [f"strategystore: {tmp_path}: is a directory, not a SQLite database file"]


def test_a_missing_database_raises_file_not_found_with_its_path(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError) as caught:
        next(read_documents(tmp_path / "absent.sqlite"))
    assert caught.value.filename == str(tmp_path / "absent.sqlite")


def test_a_file_that_is_not_a_database_is_one_line(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = tmp_path / "notes.txt"
    database.write_text("hello, this is not SQLite " * 10)
    status, err = import_sql(data_dir, database, capsys)
    assert status == 1
    assert err == [f"strategystore: {database}: file is not a database"]


def test_a_database_without_the_table_or_its_columns_is_one_line(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.sqlite"
    with sqlite3.connect(other) as connection:
        connection.execute("CREATE TABLE campaign (id)")
    connection.close()
    assert import_sql(data_dir, other, capsys) == (
        1,
        [f"strategystore: {other}: has no table 'strategy_document'"],
    )
    partial = tmp_path / "partial.sqlite"
    with sqlite3.connect(partial) as connection:
        connection.execute("CREATE TABLE strategy_document (id, brief_id, version)")
    connection.close()
    status, err = import_sql(data_dir, partial, capsys)
    assert status == 1
    assert "has no column status, created_at, updated_at, sections, metadata" in err[0]


def test_the_database_is_opened_read_only(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = make_database(tmp_path / "legacy.sqlite", row(id=1))
    before = database.read_bytes()
    import_sql(data_dir, database, capsys)
    assert database.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "legacy.sqlite"]


def test_the_real_program_imports_a_database(tmp_path: Path, data_dir: Path) -> None:
    database = make_database(
        tmp_path / "legacy.sqlite", row(id=1), row(id=2, version=2, status="nope")
    )
    result = run_module("--dir", str(data_dir), "import-sql", str(database), cwd=tmp_path)
    assert result.returncode == 1
    assert "row id 2: cannot map: status 'nope'" in result.stderr
    assert result.stderr.endswith("1 written, 0 skipped, 1 refused\n")
    assert FileStore(data_dir).list_version_numbers("acme") == [1]


def test_import_sql_writes_the_rows_around_one_whose_timestamp_leaves_the_range(
    tmp_path: Path, data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    database = make_database(
        tmp_path / "legacy.sqlite",
        row(id=1, version=1),
        row(id=2, version=2, created_at="9999-12-31T23:59:59-01:00"),
        row(id=3, version=3),
    )
    status, err = import_sql(data_dir, database, capsys)
    assert status == 1
    assert err[0].startswith(f"strategystore: {database}: row id 2: cannot map: created_at")
    assert "years 1 to 9999" in err[0]
    assert err[1:] == ["2 written, 0 skipped, 1 refused"]
    assert FileStore(data_dir).list_version_numbers("acme") == [3, 1]
