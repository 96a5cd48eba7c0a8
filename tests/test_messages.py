"""Messages a new user meets: each says what is wrong and what to do instead."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from strategystore import (
    CorruptDocumentError,
    FileStore,
    ImmutableVersionError,
    Section,
    Status,
    StrategyDocument,
)
from strategystore.check import DataDirCheck
from strategystore.cli import main
from strategystore.models import describe_validation_error
from strategystore.store import BaseStore
from tests.conftest import make_doc


def test_deleting_an_approved_version_points_to_withdraw(store: BaseStore) -> None:
    store.create(make_doc("acme", 1, status=Status.APPROVED))
    with pytest.raises(ImmutableVersionError, match="withdraw it instead"):
        store.delete("acme", 1)


@pytest.mark.parametrize("status", [Status.REJECTED, Status.WITHDRAWN])
def test_deleting_a_rejected_or_withdrawn_version_says_why_it_stays(
    store: BaseStore, status: Status
) -> None:
    store.create(make_doc("acme", 1, status=status))
    with pytest.raises(ImmutableVersionError, match="only drafts can be deleted"):
        store.delete("acme", 1)


@pytest.mark.parametrize("kind", ["file", "postgres"])
def test_the_command_line_delete_of_an_approved_version_points_to_withdraw(
    kind: str, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> None:
    if kind == "file":
        store: BaseStore = request.getfixturevalue("file_store")
        where = str(request.getfixturevalue("tmp_path") / "data")
    else:
        store = request.getfixturevalue("pg_store")
        dsn: str = request.getfixturevalue("pg_dsn")
        if not dsn.startswith("postgresql://"):
            pytest.skip("the command line needs $STRATEGYSTORE_TEST_DSN as a postgresql:// URL")
        where = f"{dsn}{'&' if '?' in dsn else '?'}table={request.getfixturevalue('pg_table')}"
    store.create(make_doc("acme", 1, status=Status.APPROVED))
    assert main(["--store", where, "delete", "acme", "1"]) == 1
    assert "withdraw it instead" in capsys.readouterr().err


def test_metadata_passed_where_sections_go_says_so(store: BaseStore) -> None:
    with pytest.raises(TypeError, match="metadata is the next argument"):
        store.create_next("acme", {"generator": "x"})  # type: ignore[dict-item]
    assert store.list_briefs() == []


@pytest.mark.parametrize("section", ["audience", 3, None])
def test_a_section_that_is_no_mapping_says_what_a_section_is(
    store: BaseStore, section: Any
) -> None:
    with pytest.raises(TypeError, match="a Section or a mapping with key, title and body"):
        store.create_next("acme", [section])


def test_a_stored_file_with_a_byte_order_mark_is_named_as_such(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "data")
    store.create(make_doc("acme", 1))
    path = tmp_path / "data" / "acme" / "1.json"
    path.write_bytes(b"\xef\xbb\xbf" + path.read_bytes())
    with pytest.raises(CorruptDocumentError, match="byte order mark"):
        store.get_strategy("acme", 1)
    [finding] = DataDirCheck(tmp_path / "data").findings()
    assert "byte order mark" in finding.message


def test_check_of_a_missing_directory_names_it_as_every_command_does(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["--dir", "missing", "check"]) == 1
    check_err = capsys.readouterr().err
    assert main(["--dir", "missing", "briefs"]) == 1
    briefs_err = capsys.readouterr().err
    assert str(tmp_path / "missing") in check_err
    assert str(tmp_path / "missing") in briefs_err


def test_validation_messages_carry_no_pydantic_prefix() -> None:
    with pytest.raises(ValidationError) as refused:
        StrategyDocument(
            brief_id="acme",
            version=1,
            sections=[Section(key="a", title="", body=""), Section(key="a", title="", body="")],
        )
    message = describe_validation_error(refused.value)
    assert message == "sections: section key 'a' appears more than once"


def test_a_problem_deep_in_nested_metadata_is_named_briefly() -> None:
    value: Any = 1
    for _ in range(400):
        value = [value]
    with pytest.raises(ValidationError) as refused:
        StrategyDocument(brief_id="acme", version=1, metadata={"x": value})
    message = describe_validation_error(refused.value)
    assert message.startswith("metadata.x.")
    assert len(message) < 200
