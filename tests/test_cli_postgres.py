"""The command line over PostgreSQL (``--store URL``), and ``copy`` between any two stores."""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import pytest

from strategystore import FileStore, Status
from strategystore.cli import main
from strategystore.postgres import PostgresStore
from tests.conftest import Result, make_doc

pytestmark = pytest.mark.usefixtures("pg_dsn")


def _with_table(dsn: str, table: str) -> str:
    separator = "&" if "?" in dsn else "?"
    return f"{dsn}{separator}table={table}"


def _with_password(url: str, password: str) -> str:
    parts = urlsplit(url)
    user, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user or 'postgres'}:{password}@{host}"))


@pytest.fixture
def url(pg_dsn: str, pg_table: str) -> str:
    """The URL of a table of the test's own."""
    if not pg_dsn.startswith("postgresql://"):
        pytest.skip("these tests need $STRATEGYSTORE_TEST_DSN as a postgresql:// URL")
    return _with_table(pg_dsn, pg_table)


def run(capsys: pytest.CaptureFixture[str], *args: str) -> Result:
    status = main(list(args))
    captured = capsys.readouterr()
    return Result(status, captured.out, captured.err)


def test_a_reviewer_path_works_over_postgres(
    capsys: pytest.CaptureFixture[str], url: str, tmp_path: Path
) -> None:
    content = tmp_path / "content.json"
    content.write_text(
        json.dumps({"sections": [{"key": "goal", "title": "Goal", "body": "Grow."}]})
    )
    assert run(capsys, "--store", url, "init").status == 0
    assert run(capsys, "--store", url, "new", "acme", str(content)).status == 0
    assert run(capsys, "new", "acme", str(content), "--store", url).status == 0
    assert run(capsys, "--store", url, "approve", "acme", "1").status == 0
    assert run(capsys, "--store", url, "reject", "acme", "2", "--reason", "too vague").status == 0
    briefs = run(capsys, "--store", url, "briefs", "--json")
    assert briefs.status == 0
    [row] = json.loads(briefs.out)
    assert row["brief_id"] == "acme"
    assert row["versions"] == 2
    assert row["latest_approved_version"] == 1
    shown = run(capsys, "--store", url, "show", "acme", "--approved", "--json")
    with PostgresStore(url) as store:
        assert shown.out.encode() == store.get_stored_bytes("acme", 1)
        assert store.get_strategy("acme", 2).status_reason == "too vague"  # type: ignore[union-attr]
    versions = run(capsys, "--store", url, "versions", "acme")
    assert "rejected" in versions.out
    assert "too vague" in versions.out


def test_init_creates_the_table_and_other_commands_need_it(
    capsys: pytest.CaptureFixture[str], url: str
) -> None:
    missing = run(capsys, "--store", url, "briefs")
    assert missing.status == 1
    assert "does not exist" in missing.error_line
    assert "init" in missing.error_line
    assert run(capsys, "--store", url, "init").status == 0
    assert run(capsys, "--store", url, "init").status == 0
    assert run(capsys, "--store", url, "briefs").status == 0


@pytest.mark.parametrize("command", [["check"], ["resolve"], ["migrate"], ["check", "--repair"]])
def test_file_only_commands_refuse_a_database_and_say_so(
    capsys: pytest.CaptureFixture[str], url: str, command: list[str]
) -> None:
    secret = _with_password(url, "s3cret-pw")
    result = run(capsys, "--store", secret, *command)
    assert result.status == 1
    assert f"{command[0]} works on a data directory" in result.error_line
    assert "s3cret-pw" not in result.err


def test_the_environment_names_the_database(
    capsys: pytest.CaptureFixture[str], url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with PostgresStore(url) as store:
        store.create(make_doc("acme"))
    monkeypatch.setenv("STRATEGYSTORE_MODE", "postgres")
    monkeypatch.setenv("STRATEGYSTORE_DSN", url)
    result = run(capsys, "versions", "acme", "--json")
    assert result.status == 0
    assert [entry["version"] for entry in json.loads(result.out)] == [1]
    monkeypatch.delenv("STRATEGYSTORE_DSN")
    unset = run(capsys, "versions", "acme")
    assert unset.status == 1
    assert "STRATEGYSTORE_DSN is not set" in unset.error_line


def test_store_and_dir_together_are_refused(
    capsys: pytest.CaptureFixture[str], url: str, tmp_path: Path
) -> None:
    result = run(capsys, "--store", url, "--dir", str(tmp_path), "briefs")
    assert result.status == 1
    assert "not both" in result.error_line


def test_an_unreachable_server_is_one_line_without_the_password(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    url = f"postgresql://postgres:s3cret-pw@/postgres?host={tmp_path}&connect_timeout=2"
    result = run(capsys, "--store", url, "briefs")
    assert result.status == 1
    assert "is unavailable" in result.error_line
    assert str(tmp_path) in result.error_line
    assert "s3cret-pw" not in result.err


# -- copy -------------------------------------------------------------------------


def _fill(store: FileStore, briefs: int = 30, versions: int = 4) -> None:
    for number in range(briefs):
        brief = f"brief-{number:03d}"
        for version in range(1, versions + 1):
            store.create(
                make_doc(brief, version, metadata={"score": 1.0, "note": "café", "z": 1, "a": 2})
            )
        store.approve(brief, 1)
        store.withdraw(brief, 1, reason="superseded")
        store.approve(brief, 2)
        store.reject(brief, 3, reason="off-brief")


def _every_stored_bytes(store: FileStore | PostgresStore) -> dict[tuple[str, int], bytes]:
    return {doc.key: store.get_stored_bytes(*doc.key) or b"" for doc in store.iter_documents()}


def test_copy_there_and_back_keeps_every_byte(
    capsys: pytest.CaptureFixture[str], url: str, tmp_path: Path
) -> None:
    source = FileStore(tmp_path / "source")
    _fill(source)
    there = run(capsys, "copy", str(tmp_path / "source"), url)
    assert there.status == 0, there.err
    assert there.error_line.startswith("120 written, 0 skipped, 0 refused")
    back = run(capsys, "copy", url, str(tmp_path / "back"))
    assert back.status == 0, back.err
    with PostgresStore(url) as database:
        assert _every_stored_bytes(database) == _every_stored_bytes(source)
    assert _every_stored_bytes(FileStore(tmp_path / "back")) == _every_stored_bytes(source)
    again = run(capsys, "copy", str(tmp_path / "source"), url)
    assert again.error_line.startswith("0 written, 120 skipped, 0 refused")


def test_an_interrupted_copy_is_finished_by_running_it_again(
    capsys: pytest.CaptureFixture[str],
    url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from strategystore import _copy  # noqa: PLC0415
    from strategystore._bulk import readable_documents as reading  # noqa: PLC0415

    source = FileStore(tmp_path / "source")
    _fill(source, briefs=75)

    def interrupted(*args: object, **kwargs: object):  # type: ignore[no-untyped-def]
        for number, doc in enumerate(reading(*args, **kwargs), start=1):  # type: ignore[arg-type]
            if number > 280:
                raise KeyboardInterrupt
            yield doc

    monkeypatch.setattr(_copy, "readable_documents", interrupted)
    assert run(capsys, "copy", str(tmp_path / "source"), url).status == 130
    with PostgresStore(url) as database:
        copied = len(list(database.iter_documents()))
    assert 0 < copied < 300
    monkeypatch.setattr(_copy, "readable_documents", reading)
    rerun = run(capsys, "copy", str(tmp_path / "source"), url)
    assert rerun.status == 0
    assert rerun.error_line.startswith(f"{300 - copied} written, {copied} skipped, 0 refused")
    with PostgresStore(url) as database:
        assert _every_stored_bytes(database) == _every_stored_bytes(source)


def test_copy_names_what_the_target_refuses(
    capsys: pytest.CaptureFixture[str], url: str, tmp_path: Path
) -> None:
    source = FileStore(tmp_path / "source")
    source.create(make_doc("acme", 1))
    source.create(make_doc("acme", 2))
    with PostgresStore(url) as database:
        database.create(make_doc("acme", 1, metadata={"other": True}))
        database.approve("acme", 1)
    result = run(capsys, "copy", str(tmp_path / "source"), url)
    assert result.status == 1
    lines = result.err.splitlines()
    assert "acme version 1" in lines[0]
    assert "approved" in lines[0]
    assert lines[-1].startswith("1 written, 0 skipped, 1 refused")
    with PostgresStore(url) as database:
        assert database.get_strategy("acme", 1).status is Status.APPROVED  # type: ignore[union-attr]


def test_copy_between_directories_and_of_named_briefs(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    source = FileStore(tmp_path / "source")
    _fill(source, briefs=3)
    result = run(capsys, "copy", str(tmp_path / "source"), str(tmp_path / "target"), "brief-001")
    assert result.status == 0
    assert FileStore(tmp_path / "target").list_briefs() == ["brief-001"]


def test_copy_refuses_one_store_onto_itself_and_a_missing_source(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    FileStore(tmp_path / "source")
    same = run(capsys, "copy", str(tmp_path / "source"), str(tmp_path / "source" / "."))
    assert same.status == 1
    assert "the same store" in same.error_line
    missing = run(capsys, "copy", str(tmp_path / "nowhere"), str(tmp_path / "target"))
    assert missing.status == 1
    assert "nowhere" in missing.error_line
    assert not (tmp_path / "target").exists()
