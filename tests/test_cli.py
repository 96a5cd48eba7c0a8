"""The command line: every command's success and failure paths, through ``main([...])``.

A few tests per command family also run ``python -m strategystore`` for real.
"""

from __future__ import annotations

import argparse
import io
import json
import subprocess
import sys
import types
from collections.abc import Iterable, Iterator
from pathlib import Path

import pytest

from strategystore import FileStore, Section, Status, StrategyDocument
from strategystore._listing import Lister
from strategystore.cli import main
from tests.conftest import T0, Cli, feed_stdin, make_doc, run_module


@pytest.fixture
def store(data_dir: Path) -> FileStore:
    return FileStore(data_dir, create=False)


def write_json(path: Path, value: object) -> Path:
    path.write_text(json.dumps(value), encoding="utf-8")
    return path


# -- the data directory -------------------------------------------------------


def test_init_creates_a_data_directory_and_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    target = tmp_path / "fresh"
    assert main(["--dir", str(target), "init"]) == 0
    assert (target / "strategystore.json").is_file()
    assert f"initialised data directory {target}" in capsys.readouterr().out


def test_init_on_an_existing_data_directory_changes_nothing(cli: Cli, store: FileStore) -> None:
    store.create(make_doc())
    result = cli("init")
    assert result.status == 0
    assert "already a data directory" in result.out
    assert store.list_briefs() == ["acme-q3"]


def test_init_on_an_existing_data_directory_adds_the_git_lines_it_lacks(
    cli: Cli, store: FileStore
) -> None:
    attributes = store.data_dir / ".gitattributes"
    attributes.write_text("*.png binary\n")
    result = cli("init")
    assert result.status == 0
    assert f"added the lines strategystore needs to {attributes}" in result.out
    assert attributes.read_text().splitlines()[0] == "*.png binary"
    assert "*.json text eol=lf -merge" in attributes.read_text().splitlines()
    assert "added" not in cli("init").out  # nothing more to add


def test_init_refuses_a_directory_holding_other_files(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "report.docx").write_text("not ours")
    assert main(["--dir", str(tmp_path), "init"]) == 1
    err = capsys.readouterr().err
    assert "not a strategystore data directory" in err
    assert "report.docx" in err


@pytest.mark.parametrize(
    "command",
    [
        ["briefs"],
        ["versions", "acme"],
        ["show", "acme"],
        ["put", "doc.json"],
        ["new", "acme", "doc.json"],
        ["approve", "acme", "1"],
        ["reject", "acme", "1"],
        ["withdraw", "acme", "1"],
        ["delete", "acme", "1"],
        ["diff", "acme", "1", "2"],
        ["check"],
        ["export"],
        ["import", "docs.jsonl"],
        ["import-sql", "legacy.sqlite"],
    ],
    ids=lambda command: command[0],
)
def test_every_command_but_init_refuses_a_missing_data_directory_and_suggests_init(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], command: list[str]
) -> None:
    missing = tmp_path / "nowhere"
    assert main(["--dir", str(missing), *command]) == 1
    err = capsys.readouterr().err
    assert "does not exist" in err
    assert "init" in err
    assert len(err.splitlines()) == 1
    assert not missing.exists()


def test_the_data_directory_comes_from_the_environment_then_strategy_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STRATEGYSTORE_DIR", raising=False)
    assert main(["init"]) == 0
    assert (tmp_path / "strategy-data" / "strategystore.json").is_file()

    monkeypatch.setenv("STRATEGYSTORE_DIR", str(tmp_path / "from-env"))
    assert main(["init"]) == 0
    assert (tmp_path / "from-env" / "strategystore.json").is_file()
    capsys.readouterr()


def test_dir_is_also_accepted_after_the_command(
    data_dir: Path, store: FileStore, capsys: pytest.CaptureFixture[str]
) -> None:
    store.create(make_doc())
    assert main(["briefs", "--dir", str(data_dir)]) == 0
    assert "acme-q3" in capsys.readouterr().out


def test_an_unknown_command_is_a_usage_error(cli: Cli) -> None:
    result = cli("frobnicate")
    assert result.status == 2
    assert "invalid choice" in result.err


def test_an_extra_argument_is_a_usage_error(cli: Cli) -> None:
    result = cli("show", "acme", "1", "2")
    assert result.status == 2
    assert "unrecognized arguments: 2" in result.err


def test_help_exits_zero_and_lists_every_command(cli: Cli) -> None:
    result = cli("--help")
    assert result.status == 0
    for command in ["init", "briefs", "show", "diff", "check", "import-sql", "schema", "bench"]:
        assert command in result.out


def test_a_closed_output_pipe_ends_the_command_quietly(
    cli: Cli, store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create(make_doc())

    class ClosedPipe(io.StringIO):
        def write(self, text: str) -> int:
            raise BrokenPipeError(32, "Broken pipe")

    monkeypatch.setattr(sys, "stdout", ClosedPipe())
    result = cli("export")
    assert result.status == 1
    assert result.err == ""


def test_an_interrupt_ends_the_command_in_one_line_with_status_130(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    def interrupted(self: Lister) -> list[str]:
        raise KeyboardInterrupt

    monkeypatch.setattr(Lister, "briefs", interrupted)
    result = cli("briefs")
    assert result.status == 130
    assert result.error_line == "strategystore: interrupted"


# -- briefs, versions, show ---------------------------------------------------


def test_briefs_lists_each_brief_with_its_count_and_latest_status_in_columns(
    cli: Cli, store: FileStore
) -> None:
    store.create(make_doc("acme-q3-launch", 1))
    store.approve("acme-q3-launch", 1, now=T0)
    store.create(make_doc("acme-q3-launch", 2))
    store.create(make_doc("zeta", 1))
    result = cli("briefs")
    assert result.status == 0
    lines = result.out.splitlines()
    assert lines[0].split() == [
        "BRIEF",
        "VERSIONS",
        "LATEST",
        "STATUS",
        "APPROVED",
        "UPDATED",
        "(UTC)",
    ]
    assert lines[1].split()[:5] == ["acme-q3-launch", "2", "2", "draft", "1"]
    assert lines[2].split()[:5] == ["zeta", "1", "1", "draft", "-"]
    # Aligned: every column starts at the same place on every line.
    assert lines[1].index("draft") == lines[2].index("draft") == lines[0].index("STATUS")


def test_briefs_json_is_a_list_a_script_can_read(cli: Cli, store: FileStore) -> None:
    store.create(make_doc("acme", 1))
    store.approve("acme", 1, now=T0)
    result = cli("briefs", "--json")
    assert result.status == 0
    assert json.loads(result.out) == [
        {
            "brief_id": "acme",
            "versions": 1,
            "latest_version": 1,
            "latest_status": "approved",
            "latest_approved_version": 1,
            "updated_at": "2026-01-15T09:30:00Z",
        }
    ]


def test_briefs_of_an_empty_data_directory_prints_nothing_and_a_hint(cli: Cli) -> None:
    result = cli("briefs")
    assert result.status == 0
    assert result.out == ""
    assert "no briefs yet" in result.error_line
    assert json.loads(cli("briefs", "--json").out) == []


def test_briefs_names_an_unreadable_document_and_exits_1(
    cli: Cli, store: FileStore, data_dir: Path
) -> None:
    store.create(make_doc("acme", 1))
    (data_dir / "acme" / "2.json").write_text("{ broken")
    result = cli("briefs")
    assert result.status == 1
    assert "acme" in result.out
    assert "damaged" in result.out
    assert str(data_dir / "acme" / "2.json") in result.error_line


def test_versions_lists_newest_first_with_status_dates_and_reason(
    cli: Cli, store: FileStore
) -> None:
    store.create(make_doc("acme", 1))
    store.create(make_doc("acme", 2))
    store.reject("acme", 2, reason="off brand", now=T0)
    result = cli("versions", "acme")
    assert result.status == 0
    header, newest, oldest = result.out.splitlines()
    assert header.split()[:2] == ["VERSION", "STATUS"]
    assert newest.split() == [
        "2",
        "rejected",
        "2026-01-15",
        "09:30",
        "2026-01-15",
        "09:30",
        "1",
        "off",
        "brand",
    ]
    assert oldest.split()[:2] == ["1", "draft"]


def test_versions_json_carries_every_version(cli: Cli, store: FileStore) -> None:
    store.create(make_doc("acme", 1))
    store.create(make_doc("acme", 2))
    result = cli("versions", "acme", "--json")
    assert [v["version"] for v in json.loads(result.out)] == [2, 1]
    assert json.loads(result.out)[0]["section_count"] == 1


def test_versions_of_an_unknown_brief_is_not_found(cli: Cli) -> None:
    result = cli("versions", "nobody")
    assert result.status == 1
    assert "'nobody' has no versions" in result.error_line


def test_show_prints_the_latest_version_with_its_section_titles(cli: Cli, store: FileStore) -> None:
    store.create(make_doc("acme", 1))
    store.create(
        make_doc(
            "acme",
            2,
            sections=[
                Section(key="audience", title="Audience", body="Urban cyclists."),
                Section(key="message", title="Key message", body="Arrive fresh."),
            ],
            metadata={"tone": "friendly"},
        )
    )
    result = cli("show", "acme")
    assert result.status == 0
    assert result.out.startswith("# acme, version 2 (draft)\n")
    assert "## Audience  [audience]\n\nUrban cyclists." in result.out
    assert "## Key message  [message]\n\nArrive fresh." in result.out
    assert 'tone: "friendly"' in result.out
    assert "created   2026-01-15 09:30:00 UTC" in result.out


def test_show_of_a_given_version_and_its_reason(cli: Cli, store: FileStore) -> None:
    store.create(make_doc("acme", 1))
    store.create(make_doc("acme", 2))
    store.reject("acme", 1, reason="too long", now=T0)
    result = cli("show", "acme", "1")
    assert result.out.startswith("# acme, version 1 (rejected)")
    assert "reason    too long" in result.out


def test_show_json_prints_the_file_exactly_as_it_is(
    cli: Cli, store: FileStore, data_dir: Path
) -> None:
    store.create(make_doc("acme", 1, metadata={"ünïcode": "ja", "b": [1, 2]}))
    result = cli("show", "acme", "1", "--json")
    assert result.status == 0
    assert result.out.encode() == (data_dir / "acme" / "1.json").read_bytes()


def test_show_of_a_missing_version_or_brief_is_not_found(cli: Cli, store: FileStore) -> None:
    store.create(make_doc("acme", 1))
    missing = cli("show", "acme", "7")
    assert missing.status == 1
    assert "version 7 of brief 'acme' does not exist" in missing.error_line
    unknown = cli("show", "nobody")
    assert unknown.status == 1
    assert "'nobody' has no versions" in unknown.error_line


@pytest.mark.parametrize("brief", ["../etc", "/etc", "a/b", "CON", ".hidden", ""])
def test_a_hostile_brief_id_is_an_error_not_a_path(cli: Cli, brief: str) -> None:
    result = cli("show", brief)
    assert result.status == 1
    assert "invalid brief id" in result.error_line


@pytest.mark.parametrize("version", ["0", "-1", "abc", "1.5", str(2**31)])
def test_a_bad_version_number_is_a_usage_error(cli: Cli, version: str) -> None:
    result = cli("show", "acme", version)
    assert result.status == 2
    assert "is not a version number" in result.err


def test_show_names_the_file_and_line_of_a_merge_conflict(
    cli: Cli, store: FileStore, data_dir: Path
) -> None:
    store.create(make_doc("acme", 1))
    path = data_dir / "acme" / "1.json"
    lines = path.read_text().splitlines()
    lines[3:3] = ["<<<<<<< HEAD", "=======", ">>>>>>> theirs"]
    path.write_text("\n".join(lines))
    result = cli("show", "acme", "1")
    assert result.status == 1
    assert str(path) in result.error_line
    assert "line 4" in result.error_line


# -- put and new -------------------------------------------------------------


def test_put_creates_a_document_then_reports_it_unchanged(
    cli: Cli, store: FileStore, tmp_path: Path
) -> None:
    source = tmp_path / "doc.json"
    source.write_bytes(make_doc("acme", 3).to_json_bytes())
    first = cli("put", str(source))
    assert first.status == 0
    assert "created version 3 of acme" in first.out
    assert store.get_strategy("acme", 3) == make_doc("acme", 3)
    again = cli("put", str(source))
    assert again.status == 0
    assert "unchanged" in again.out


def test_put_replaces_a_differing_draft(cli: Cli, store: FileStore, tmp_path: Path) -> None:
    store.create(make_doc("acme", 1))
    changed = make_doc("acme", 1, metadata={"model": "other"})
    result = cli("put", str(write_json(tmp_path / "d.json", changed.model_dump(mode="json"))))
    assert result.status == 0
    assert "replaced draft version 1 of acme" in result.out
    assert store.get_strategy("acme", 1) == changed


def test_put_create_refuses_an_existing_version(cli: Cli, store: FileStore, tmp_path: Path) -> None:
    store.create(make_doc("acme", 1))
    changed = make_doc("acme", 1, metadata={"model": "other"})
    path = write_json(tmp_path / "d.json", changed.model_dump(mode="json"))
    result = cli("put", "--create", str(path))
    assert result.status == 1
    assert "version 1 of brief 'acme' already exists (status draft)" in result.error_line
    assert store.get_strategy("acme", 1) == make_doc("acme", 1)


def test_put_refuses_to_change_an_approved_version(
    cli: Cli, store: FileStore, tmp_path: Path
) -> None:
    store.create(make_doc("acme", 1))
    approved = store.approve("acme", 1, now=T0)
    changed = approved.model_dump(mode="json") | {"metadata": {"late": True}}
    # The file still carries the seal of the approved content: it breaks it.
    result = cli("put", str(write_json(tmp_path / "d.json", changed)))
    assert result.status == 1
    assert "approved content changed after it was sealed" in result.error_line
    # Without a seal, the change is sealed anew and meets the approved version.
    del changed["content_digest"]
    result = cli("put", str(write_json(tmp_path / "d.json", changed)))
    assert result.status == 1
    assert "it is approved" in result.error_line
    assert store.get_strategy("acme", 1) == approved


def test_put_reads_a_document_from_standard_input(
    cli: Cli, store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    feed_stdin(monkeypatch, make_doc("acme", 1).to_json_bytes())
    assert cli("put", "-").status == 0
    assert store.get_strategy("acme", 1) == make_doc("acme", 1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{\n  "brief_id": "acme",\n  oops\n}', "not valid JSON"),
        ('{"brief_id": "acme", "version": 0}', "version"),
        ('{"brief_id": "../x", "version": 1}', "invalid brief id"),
        ('{"brief_id": "acme", "version": 1, "extra": 1}', "extra"),
        ('{"brief_id": "acme", "version": 1, "created_at": "2026-01-01T00:00:00"}', "timezone"),
        ("", "empty"),
    ],
    ids=["json", "version", "brief-id", "extra-field", "naive-time", "empty"],
)
def test_put_refuses_an_invalid_document_in_one_line_naming_the_file(
    cli: Cli, store: FileStore, tmp_path: Path, text: str, expected: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    result = cli("put", str(path))
    assert result.status == 1
    assert result.error_line.startswith(f"strategystore: {path}: ")
    assert expected in result.error_line
    assert store.list_briefs() == []


def test_put_of_a_missing_file_is_one_line(cli: Cli, tmp_path: Path) -> None:
    result = cli("put", str(tmp_path / "absent.json"))
    assert result.status == 1
    assert "absent.json: No such file or directory" in result.error_line


def test_new_adds_the_next_version_from_sections_and_metadata(
    cli: Cli, store: FileStore, tmp_path: Path
) -> None:
    store.create(make_doc("acme", 1))
    spec = {
        "sections": [{"key": "audience", "title": "Audience", "body": "Cyclists."}],
        "metadata": {"tone": "bold"},
    }
    result = cli("new", "acme", str(write_json(tmp_path / "new.json", spec)))
    assert result.status == 0
    assert "created version 2 of acme (draft)" in result.out
    doc = store.get_strategy("acme", 2)
    assert doc is not None
    assert doc.sections == [Section(key="audience", title="Audience", body="Cyclists.")]
    assert doc.metadata == {"tone": "bold"}


def test_new_starts_a_brief_at_version_1_from_standard_input(
    cli: Cli, store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    feed_stdin(monkeypatch, b"{}")
    assert cli("new", "fresh", "-").status == 0
    assert store.list_version_numbers("fresh") == [1]


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("[1, 2]", "expected a JSON object"),
        ('{"sections": [], "status": "approved"}', "unexpected field 'status'"),
        ('{"sections": {"a": "b"}}', "sections must be a list"),
        ('{"sections": [{"key": "", "title": "t", "body": "b"}]}', "section 1: key"),
        ('{"sections": [{"key": "a", "title": "t"}]}', "section 1: body: Field required"),
        ('{"metadata": {"x": NaN}}', "metadata.x"),
        ("{", "not valid JSON"),
    ],
    ids=["not-object", "unknown-field", "sections-object", "empty-key", "no-body", "nan", "json"],
)
def test_new_refuses_an_input_it_cannot_use(
    cli: Cli, store: FileStore, tmp_path: Path, spec: str, expected: str
) -> None:
    path = tmp_path / "new.json"
    path.write_text(spec)
    result = cli("new", "acme", str(path))
    assert result.status == 1
    assert expected in result.error_line
    assert store.list_briefs() == []


def test_new_refuses_a_brief_id_differing_only_by_case(
    cli: Cli, store: FileStore, tmp_path: Path
) -> None:
    store.create(make_doc("Acme", 1))
    result = cli("new", "acme", str(write_json(tmp_path / "n.json", {})))
    assert result.status == 1
    assert "differs only by letter case" in result.error_line


# -- status changes and delete -----------------------------------------------


def test_approve_then_withdraw_with_a_reason(cli: Cli, store: FileStore) -> None:
    store.create(make_doc("acme", 1))
    approved = cli("approve", "acme", "1")
    assert approved.status == 0
    assert approved.out == "approved version 1 of acme\n"
    withdrawn = cli("withdraw", "acme", "1", "--reason", "legal hold")
    assert withdrawn.status == 0
    assert withdrawn.out == "withdrawn version 1 of acme\n"
    doc = store.get_strategy("acme", 1)
    assert doc is not None
    assert (doc.status, doc.status_reason) == (Status.WITHDRAWN, "legal hold")


def test_reject_keeps_the_reason(cli: Cli, store: FileStore) -> None:
    store.create(make_doc("acme", 1))
    assert cli("reject", "acme", "1", "--reason", "off brand").status == 0
    doc = store.get_strategy("acme", 1)
    assert doc is not None
    assert (doc.status, doc.status_reason) == (Status.REJECTED, "off brand")


def test_approving_twice_says_nothing_changed(cli: Cli, store: FileStore) -> None:
    store.create(make_doc("acme", 1))
    cli("approve", "acme", "1")
    again = cli("approve", "acme", "1")
    assert again.status == 0
    assert "already approved; nothing changed" in again.out


def test_rejecting_again_with_another_reason_says_it_was_not_recorded(
    cli: Cli, store: FileStore
) -> None:
    store.create(make_doc("acme", 1))
    cli("reject", "acme", "1", "--reason", "off brand")
    again = cli("reject", "acme", "1", "--reason", "too long")
    assert again.status == 0
    assert again.out.splitlines() == [
        "version 1 of acme is already rejected; nothing changed",
        "the new reason was not recorded: it keeps the reason 'off brand'",
    ]
    assert store.get_strategy("acme", 1).status_reason == "off brand"  # type: ignore[union-attr]
    same = cli("reject", "acme", "1", "--reason", "off brand")
    assert "not recorded" not in same.out


@pytest.mark.parametrize("command", ["approve", "reject", "withdraw"])
def test_a_status_change_of_a_missing_version_is_not_found(cli: Cli, command: str) -> None:
    result = cli(command, "acme", "3")
    assert result.status == 1
    assert "version 3 of brief 'acme' does not exist" in result.error_line


def test_withdrawing_a_draft_is_refused(cli: Cli, store: FileStore) -> None:
    store.create(make_doc("acme", 1))
    result = cli("withdraw", "acme", "1")
    assert result.status == 1
    assert "it is draft" in result.error_line
    assert store.get_strategy("acme", 1) == make_doc("acme", 1)


def test_reason_is_not_an_option_of_approve(cli: Cli) -> None:
    assert cli("approve", "acme", "1", "--reason", "x").status == 2


def test_delete_removes_a_draft(cli: Cli, store: FileStore) -> None:
    store.create(make_doc("acme", 1))
    result = cli("delete", "acme", "1")
    assert result.status == 0
    assert result.out == "deleted draft version 1 of acme\n"
    assert store.list_briefs() == []


def test_delete_of_a_missing_version_is_not_found(cli: Cli) -> None:
    result = cli("delete", "acme", "1")
    assert result.status == 1
    assert "does not exist" in result.error_line


def test_delete_refuses_an_approved_version(cli: Cli, store: FileStore) -> None:
    store.create(make_doc("acme", 1))
    store.approve("acme", 1)
    result = cli("delete", "acme", "1")
    assert result.status == 1
    assert "cannot delete version 1 of brief 'acme': it is approved" in result.error_line
    assert store.list_version_numbers("acme") == [1]


# -- diff ---------------------------------------------------------------------


def test_diff_shows_sections_added_removed_and_changed_with_metadata_and_status(
    cli: Cli, store: FileStore
) -> None:
    store.create(
        make_doc(
            "acme",
            1,
            sections=[
                Section(key="audience", title="Audience", body="Cyclists.\nCommuters."),
                Section(key="budget", title="Budget", body="10k"),
            ],
            metadata={"tone": "friendly", "old": 1},
        )
    )
    store.approve("acme", 1, now=T0)
    store.create(
        make_doc(
            "acme",
            2,
            sections=[
                Section(key="audience", title="Who", body="Cyclists.\nStudents."),
                Section(key="channels", title="Channels", body="Instagram"),
            ],
            metadata={"tone": "bold", "new": True},
        )
    )
    result = cli("diff", "acme", "1", "2")
    assert result.status == 1
    out = result.out
    assert "--- acme version 1 (approved" in out
    assert "+++ acme version 2 (draft" in out
    assert "status: approved -> draft" in out
    assert '  ~ tone: "friendly" -> "bold"' in out
    assert "  + new: true" in out
    assert "  - old: 1" in out
    assert '  + channels "Channels" (added)\n      @@' in out
    assert "      +Instagram" in out
    assert '  - budget "Budget" (removed)' in out
    assert '  ~ audience "Who" (changed)\n      title: "Audience" -> "Who"' in out
    assert "       Cyclists.\n      -Commuters.\n      +Students." in out


def test_diff_notices_a_change_of_metadata_type_and_of_section_order(
    cli: Cli, store: FileStore
) -> None:
    a = Section(key="a", title="A", body="x")
    b = Section(key="b", title="B", body="y")
    store.create(make_doc("acme", 1, sections=[a, b], metadata={"n": 1}))
    store.create(make_doc("acme", 2, sections=[b, a], metadata={"n": 1.0}))
    out = cli("diff", "acme", "1", "2").out
    assert "  ~ n: 1 -> 1.0" in out
    assert "  order: a, b -> b, a" in out


def test_diff_of_identical_versions_says_there_is_no_difference(cli: Cli, store: FileStore) -> None:
    store.create(make_doc("acme", 1))
    store.create(make_doc("acme", 2))
    result = cli("diff", "acme", "1", "2")
    # They differ only in their number: nothing a reviewer reads changed.
    assert result.status == 0
    assert "no differences" in result.out


def test_diff_with_a_missing_version_is_not_found(cli: Cli, store: FileStore) -> None:
    store.create(make_doc("acme", 1))
    result = cli("diff", "acme", "1", "2")
    assert result.status == 1
    assert "version 2 of brief 'acme' does not exist" in result.error_line


# -- export and import --------------------------------------------------------


def _fill(store: FileStore) -> list[StrategyDocument]:
    docs = [
        make_doc("zeta", 1),
        make_doc("acme", 1),
        make_doc("acme", 2, metadata={"ü": "ß"}),
        make_doc("acme", 10),
    ]
    for doc in docs:
        store.create(doc)
    return docs


def test_export_writes_one_compact_document_per_line_briefs_sorted_newest_last(
    cli: Cli, store: FileStore
) -> None:
    _fill(store)
    result = cli("export")
    assert result.status == 0
    lines = result.out.splitlines()
    keys = [(json.loads(line)["brief_id"], json.loads(line)["version"]) for line in lines]
    assert keys == [("acme", 1), ("acme", 2), ("acme", 10), ("zeta", 1)]
    stored = store.get_strategy("acme", 2)
    assert stored is not None
    assert lines[1] == stored.model_dump_json()
    assert result.err == ""


def test_export_of_named_briefs_writes_only_those(cli: Cli, store: FileStore) -> None:
    _fill(store)
    lines = cli("export", "zeta").out.splitlines()
    assert [json.loads(line)["brief_id"] for line in lines] == ["zeta"]


def test_export_of_an_unknown_brief_exports_the_rest_and_exits_1(
    cli: Cli, store: FileStore
) -> None:
    _fill(store)
    result = cli("export", "zeta", "nobody")
    assert result.status == 1
    assert len(result.out.splitlines()) == 1
    assert "'nobody' has no versions" in result.error_line


def test_export_refuses_an_invalid_brief_id_before_writing_anything(
    cli: Cli, store: FileStore
) -> None:
    _fill(store)
    result = cli("export", "acme", "../etc")
    assert result.status == 1
    assert result.out == ""
    assert "invalid brief id" in result.error_line


def test_export_streams_each_document_before_reading_the_next(
    cli: Cli, store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fill(store)
    events: list[str] = []
    read = FileStore.iter_documents

    def logged_read(
        self: FileStore, brief_ids: Iterable[str] | None = None
    ) -> Iterator[StrategyDocument]:
        for doc in read(self, brief_ids):
            events.append("read")
            yield doc

    monkeypatch.setattr(FileStore, "iter_documents", logged_read)
    real_stdout = sys.stdout

    class LoggedStdout(io.StringIO):
        def write(self, text: str) -> int:
            events.append("write")
            return real_stdout.write(text)

    monkeypatch.setattr(sys, "stdout", LoggedStdout())
    assert cli("export").status == 0
    assert events == ["read", "write"] * 4


def test_export_continues_past_a_corrupt_document_and_exits_1(
    cli: Cli, store: FileStore, data_dir: Path
) -> None:
    _fill(store)
    (data_dir / "acme" / "2.json").write_text("{")
    result = cli("export")
    assert result.status == 1
    assert len(result.out.splitlines()) == 3
    assert str(data_dir / "acme" / "2.json") in result.error_line


def test_export_then_import_copies_every_document_exactly(
    cli: Cli, store: FileStore, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    docs = _fill(store)
    dump = tmp_path / "all.jsonl"
    dump.write_text(cli("export").out)
    target = tmp_path / "copy"
    assert main(["--dir", str(target), "init"]) == 0
    assert main(["--dir", str(target), "import", str(dump)]) == 0
    assert capsys.readouterr().err == "4 written, 0 skipped, 0 refused\n"
    copy = FileStore(target)
    for doc in docs:
        assert copy.get_strategy(doc.brief_id, doc.version) == doc
        assert (target / doc.brief_id / f"{doc.version}.json").read_bytes() == (
            store.document_path(doc.brief_id, doc.version).read_bytes()
        )


def _jsonl(*docs: StrategyDocument) -> str:
    return "".join(doc.model_dump_json() + "\n" for doc in docs)


def test_import_skips_identical_documents_and_refuses_differing_ones(
    cli: Cli, store: FileStore, tmp_path: Path
) -> None:
    store.create(make_doc("acme", 1))
    store.create(make_doc("acme", 2))
    source = tmp_path / "in.jsonl"
    source.write_text(
        _jsonl(make_doc("acme", 1), make_doc("acme", 2, metadata={"x": 1}), make_doc("acme", 3))
    )
    result = cli("import", str(source))
    assert result.status == 1
    err = result.err.splitlines()
    assert err[0].startswith(f"strategystore: {source}:2: refused: version 2 of brief 'acme'")
    assert "--upsert" in err[0]
    assert err[-1] == "1 written, 1 skipped, 1 refused"
    assert store.get_strategy("acme", 2) == make_doc("acme", 2)
    assert store.get_strategy("acme", 3) == make_doc("acme", 3)


def test_import_upsert_replaces_differing_drafts_but_never_an_approved_version(
    cli: Cli, store: FileStore, tmp_path: Path
) -> None:
    store.create(make_doc("acme", 1))
    approved = store.approve("acme", 1, now=T0)
    store.create(make_doc("acme", 2))
    source = tmp_path / "in.jsonl"
    changed = make_doc("acme", 2, metadata={"x": 1})
    source.write_text(_jsonl(make_doc("acme", 1, metadata={"x": 1}), changed))
    result = cli("import", "--upsert", str(source))
    assert result.status == 1
    assert f"{source}:1: refused: cannot change version 1" in result.err
    assert result.err.splitlines()[-1] == "1 written, 0 skipped, 1 refused"
    assert store.get_strategy("acme", 1) == approved
    assert store.get_strategy("acme", 2) == changed


def test_import_reports_a_bad_line_by_number_and_writes_the_good_ones(
    cli: Cli, store: FileStore, tmp_path: Path
) -> None:
    source = tmp_path / "in.jsonl"
    bad = '{"brief_id": "acme", "version": 2, "status": "lost"}\n'
    source.write_text(
        _jsonl(make_doc("acme", 1)) + "\n" + bad + "not json\n" + _jsonl(make_doc("acme", 3))
    )
    result = cli("import", str(source))
    assert result.status == 1
    err = result.err.splitlines()
    assert err[0].startswith(f"strategystore: {source}:3: not a valid strategy document: status")
    assert err[1].startswith(f"strategystore: {source}:4: not valid JSON")
    assert err[2] == "2 written, 0 skipped, 2 refused"
    assert store.list_version_numbers("acme") == [3, 1]


def test_import_reads_standard_input(
    cli: Cli, store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    feed_stdin(monkeypatch, _jsonl(make_doc("acme", 1)).encode())
    result = cli("import", "-")
    assert result.status == 0
    assert result.err == "1 written, 0 skipped, 0 refused\n"
    assert store.list_version_numbers("acme") == [1]


def test_import_of_a_missing_file_is_one_line(cli: Cli, tmp_path: Path) -> None:
    result = cli("import", str(tmp_path / "absent.jsonl"))
    assert result.status == 1
    assert "absent.jsonl: No such file or directory" in result.error_line


def test_long_commands_show_progress_only_when_stderr_is_a_terminal(
    cli: Cli, store: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "in.jsonl"
    source.write_text(_jsonl(make_doc("acme", 1)))
    quiet = cli("import", str(source))
    assert "\r" not in quiet.err
    monkeypatch.setattr(sys.stderr, "isatty", lambda: True)
    shown = cli("import", str(source))
    assert "\rimported 1 lines…" in shown.err
    assert shown.err.endswith("\r\x1b[K0 written, 1 skipped, 0 refused\n")


# -- schema ---------------------------------------------------------------------


def test_schema_describes_a_document_file_for_editors(cli: Cli, store: FileStore) -> None:
    result = cli("schema")
    assert result.status == 0
    schema = json.loads(result.out)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "strategystore document"
    assert schema["additionalProperties"] is False
    fields = [*StrategyDocument.model_fields, "content_digest"]
    assert list(schema["properties"]) == fields
    # A stored file states every field, so the schema an editor checks against says so.
    assert schema["required"] == fields
    # A stored file names only properties the schema knows.
    store.create(make_doc())
    stored = json.loads(store.document_path("acme-q3", 1).read_text())
    assert set(stored) <= set(schema["properties"])


# -- bench wiring ----------------------------------------------------------------


def test_bench_hands_its_own_options_to_the_bench_module(
    cli: Cli, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[object] = []
    fake = types.ModuleType("strategystore.bench")

    def configure_parser(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--rounds", type=int, default=1)

    def run(args: argparse.Namespace, where: Path) -> int:
        seen.extend([args.rounds, where])
        return 0

    fake.configure_parser = configure_parser  # type: ignore[attr-defined]
    fake.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "strategystore.bench", fake)
    assert cli("bench", "--rounds", "3").status == 0
    assert seen == [3, data_dir]
    assert cli("bench", "--bogus").status == 2


# -- the real program ------------------------------------------------------------


def test_the_real_program_reads_and_writes_documents(tmp_path: Path) -> None:
    assert run_module("init", cwd=tmp_path).returncode == 0
    spec = json.dumps({"sections": [{"key": "a", "title": "Audience", "body": "Cyclists"}]})
    created = run_module("new", "acme", "-", cwd=tmp_path, stdin=spec)
    assert (created.returncode, created.stdout) == (0, "created version 1 of acme (draft)\n")
    approved = run_module("approve", "acme", "1", cwd=tmp_path)
    assert approved.returncode == 0
    shown = run_module("show", "acme", cwd=tmp_path)
    assert shown.returncode == 0
    assert "## Audience  [a]" in shown.stdout
    listed = run_module("briefs", "--json", cwd=tmp_path)
    assert json.loads(listed.stdout)[0]["latest_status"] == "approved"


def test_the_real_program_fails_in_one_line_with_the_right_status(tmp_path: Path) -> None:
    missing = run_module("briefs", cwd=tmp_path)
    assert missing.returncode == 1
    assert missing.stderr.count("\n") == 1
    assert "init" in missing.stderr
    assert run_module("init", cwd=tmp_path).returncode == 0
    hostile = run_module("show", "../etc", cwd=tmp_path)
    assert hostile.returncode == 1
    assert hostile.stderr.startswith("strategystore: invalid brief id '../etc'")
    assert "Traceback" not in hostile.stderr
    usage = run_module("show", cwd=tmp_path)
    assert usage.returncode == 2
    assert "usage:" in usage.stderr


def test_the_real_program_exports_and_imports_through_a_pipe(tmp_path: Path) -> None:
    source = tmp_path / "source"
    FileStore(source).create(make_doc("acme", 1))
    exported = run_module("--dir", str(source), "export", cwd=tmp_path)
    assert exported.returncode == 0
    assert run_module("--dir", "copy", "init", cwd=tmp_path).returncode == 0
    imported = run_module("--dir", "copy", "import", "-", cwd=tmp_path, stdin=exported.stdout)
    assert (imported.returncode, imported.stderr) == (0, "1 written, 0 skipped, 0 refused\n")
    assert FileStore(tmp_path / "copy").get_strategy("acme", 1) == make_doc("acme", 1)
    diffed = run_module("--dir", str(source), "diff", "acme", "1", "1", cwd=tmp_path)
    assert "no differences" in diffed.stdout


def test_the_real_program_prints_the_schema(tmp_path: Path) -> None:
    result = run_module("schema", cwd=tmp_path)
    assert result.returncode == 0
    assert json.loads(result.stdout)["title"] == "strategystore document"


# -- found in review ---------------------------------------------------------------


def test_check_repair_leaves_the_temporary_files_of_a_running_import(
    cli: Cli, store: FileStore, tmp_path: Path
) -> None:
    store.create_next("acme-q3")
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        brief = store.data_dir / "acme-q3"
        staged = brief / f".2.json.{live.pid}-0.tmp"
        staged.write_text("an import is about to publish this")
        stale = brief / ".3.json.999999999-0.tmp"  # no such process
        stale.write_text("left by a crash")
        result = cli("check", "--repair")
        assert result.status == 0
        assert staged.exists()
        assert not stale.exists()
        assert str(stale) in result.out
    finally:
        live.kill()
        live.wait()


def test_a_refused_import_line_leaves_no_directory_behind(
    cli: Cli, store: FileStore, tmp_path: Path
) -> None:
    store.create_next("acme-q3")
    lines = tmp_path / "in.jsonl"
    lines.write_bytes(make_doc(brief_id="ACME-Q3").model_dump_json().encode() + b"\n")
    result = cli("import", str(lines))
    assert result.status == 1
    assert sorted(p.name for p in store.data_dir.iterdir() if not p.name.startswith(".")) == [
        "acme-q3",
        "strategystore.json",
    ]
    assert cli("check").status == 0


def test_an_import_names_the_right_line_when_a_key_comes_twice(cli: Cli, tmp_path: Path) -> None:
    docs = [make_doc(version=1), make_doc(version=2), make_doc(version=1, metadata={"x": 1})]
    lines = tmp_path / "in.jsonl"
    lines.write_bytes(b"".join(d.model_dump_json().encode() + b"\n" for d in docs))
    result = cli("import", str(lines))
    assert result.status == 1
    assert result.err.splitlines()[0].startswith(f"strategystore: {lines}:3: ")


def test_new_reports_json_python_cannot_read_in_one_line(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    feed_stdin(monkeypatch, b'{"metadata": {"x": ' + b"1" * 5000 + b"}}")
    result = cli("new", "acme-q3", "-")
    assert result.status == 1
    assert "not valid JSON" in result.error_line
    feed_stdin(monkeypatch, b"[" * 100_000)
    result = cli("new", "acme-q3", "-")
    assert result.status == 1
    assert "not valid JSON" in result.error_line


def test_show_json_prints_a_hand_formatted_file_as_it_is(cli: Cli, store: FileStore) -> None:
    store.save(make_doc())
    path = store.data_dir / "acme-q3" / "1.json"
    hand = json.dumps(json.loads(path.read_bytes()), indent=4) + "\n"
    path.write_text(hand)
    assert cli("show", "acme-q3", "1", "--json").out == hand


def test_diff_says_when_only_the_final_newline_differs(cli: Cli, store: FileStore) -> None:
    store.save(make_doc(version=1, sections=[Section(key="a", title="A", body="x")]))
    store.save(make_doc(version=2, sections=[Section(key="a", title="A", body="x\n")]))
    assert "only line endings or the final newline differ" in cli("diff", "acme-q3", "1", "2").out


def test_put_accepts_a_file_that_starts_with_a_byte_order_mark(
    cli: Cli, store: FileStore, tmp_path: Path
) -> None:
    path = tmp_path / "doc.json"
    path.write_bytes(b"\xef\xbb\xbf" + make_doc().to_json_bytes())
    assert cli("put", str(path)).status == 0
    assert store.get_strategy("acme-q3", 1) == make_doc()
