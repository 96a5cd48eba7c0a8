"""The command line's newer commands and rules: new --from, show --approved, edit, diff's
exit status, damaged versions in briefs and versions, import's hint, put's one-line refusals.
"""

from __future__ import annotations

import io
import json
import shlex
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

import pytest

from strategystore import FileStore, Section, Status, StrategyDocument, _render
from strategystore.cli import main
from tests.conftest import T0, Cli, feed_stdin, make_doc, run_module


@pytest.fixture
def store(data_dir: Path) -> FileStore:
    return FileStore(data_dir, create=False)


GOAL = Section(key="goal", title="Goal", body="Grow **fast**.")
AUDIENCE = Section(key="audience", title="Audience", body="Urban cyclists.")


# -- new --from, and a document as show --json prints it -----------------------


def test_new_from_a_version_takes_its_sections_and_metadata(cli: Cli, store: FileStore) -> None:
    store.create(make_doc("acme", 1, sections=[GOAL, AUDIENCE], metadata={"tone": "bold"}))
    store.approve("acme", 1, now=T0)
    result = cli("new", "acme", "--from", "1")
    assert result.status == 0
    assert result.out == "created version 2 of acme (draft) from version 1\n"
    doc = store.get_strategy("acme", 2)
    assert doc is not None
    assert doc.status is Status.DRAFT
    assert doc.sections == [GOAL, AUDIENCE]
    assert doc.metadata == {"tone": "bold"}


def test_new_from_a_missing_version_is_one_line_and_creates_nothing(
    cli: Cli, store: FileStore
) -> None:
    store.create(make_doc("acme", 1))
    result = cli("new", "acme", "--from", "4")
    assert result.status == 1
    assert result.error_line == "strategystore: version 4 of brief 'acme' does not exist"
    assert store.list_version_numbers("acme") == [1]


def test_new_takes_the_sections_and_metadata_of_a_document_as_show_json_prints_it(
    cli: Cli, store: FileStore, tmp_path: Path
) -> None:
    store.create(make_doc("acme", 1, sections=[AUDIENCE], metadata={"n": 1.0}))
    store.approve("acme", 1, now=T0)
    shown = tmp_path / "shown.json"
    shown.write_text(cli("show", "acme", "1", "--json").out)
    result = cli("new", "acme", str(shown))
    assert result.status == 0
    assert result.out == "created version 2 of acme (draft)\n"
    doc = store.get_strategy("acme", 2)
    assert doc is not None
    # Its status, seal, timestamps and key are the new draft's own.
    assert (doc.status, doc.content_digest, doc.version) == (Status.DRAFT, None, 2)
    assert doc.created_at != T0
    assert doc.sections == [AUDIENCE]
    assert json.dumps(doc.metadata) == '{"n": 1.0}'


def test_new_ignores_every_other_field_of_a_document_even_an_unknown_one(
    cli: Cli, store: FileStore, tmp_path: Path
) -> None:
    given = {
        "brief_id": "someone-else",
        "version": 7,
        "status": "withdrawn",
        "content_digest": "sha256:0",
        "anything": [1],
        "sections": [GOAL.model_dump()],
    }
    path = tmp_path / "doc.json"
    path.write_text(json.dumps(given))
    assert cli("new", "acme", str(path)).status == 0
    doc = store.get_strategy("acme", 1)
    assert doc is not None
    assert (doc.sections, doc.metadata, doc.status) == ([GOAL], {}, Status.DRAFT)


@pytest.mark.parametrize(
    "spec",
    [{"brief_id": "acme", "sections": []}, {"version": 1, "sections": []}],
    ids=["brief-id-only", "version-only"],
)
def test_new_refuses_unknown_fields_when_the_input_is_not_a_whole_document(
    cli: Cli, store: FileStore, tmp_path: Path, spec: dict[str, object]
) -> None:
    path = tmp_path / "new.json"
    path.write_text(json.dumps(spec))
    result = cli("new", "acme", str(path))
    assert result.status == 1
    assert "unexpected field" in result.error_line
    assert store.list_briefs() == []


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["new", "acme", "n.json", "--from", "1"], "new takes FILE or --from VERSION, not both"),
        (["new", "acme"], "new needs FILE (- for standard input) or --from VERSION"),
    ],
    ids=["both", "neither"],
)
def test_new_with_both_or_neither_of_file_and_from_is_a_usage_error_in_one_line(
    cli: Cli, store: FileStore, tmp_path: Path, args: list[str], expected: str
) -> None:
    store.create(make_doc("acme", 1))
    (tmp_path / "n.json").write_text("{}")
    result = cli(*args)
    assert result.status == 2
    assert result.error_line == f"strategystore: {expected}; see `strategystore new --help`"
    assert store.list_version_numbers("acme") == [1]


def test_the_real_program_copies_a_shown_document_into_a_new_version(tmp_path: Path) -> None:
    FileStore(tmp_path / "strategy-data").create(make_doc("acme", 1, sections=[AUDIENCE]))
    shown = run_module("show", "acme", "--json", cwd=tmp_path)
    assert shown.returncode == 0
    piped = run_module("new", "acme", "-", cwd=tmp_path, stdin=shown.stdout)
    assert (piped.returncode, piped.stdout) == (0, "created version 2 of acme (draft)\n")
    copied = run_module("new", "acme", "--from", "2", cwd=tmp_path)
    assert copied.stdout == "created version 3 of acme (draft) from version 2\n"
    doc = FileStore(tmp_path / "strategy-data").get_strategy("acme", 3)
    assert doc is not None
    assert doc.sections == [AUDIENCE]


# -- show --approved -----------------------------------------------------------


def test_show_approved_shows_the_latest_approved_version(cli: Cli, store: FileStore) -> None:
    for version in (1, 2, 3):
        store.create(make_doc("acme", version))
    store.approve("acme", 1, now=T0)
    store.approve("acme", 2, now=T0)
    result = cli("show", "acme", "--approved")
    assert result.status == 0
    assert result.out.startswith("# acme, version 2 (approved)\n")
    as_json = cli("show", "acme", "--approved", "--json")
    assert as_json.out.encode() == store.document_path("acme", 2).read_bytes()


def test_show_approved_of_a_brief_without_one_is_one_line_exit_1(
    cli: Cli, store: FileStore
) -> None:
    store.create(make_doc("acme", 1))
    result = cli("show", "acme", "--approved")
    assert result.status == 1
    assert "brief 'acme' has no approved version" in result.error_line
    assert result.out == ""


def test_show_approved_with_a_version_is_a_usage_error(cli: Cli, store: FileStore) -> None:
    store.create(make_doc("acme", 1))
    store.approve("acme", 1, now=T0)
    result = cli("show", "acme", "1", "--approved")
    assert result.status == 2
    assert result.error_line == (
        "strategystore: show takes VERSION or --approved, not both; see `strategystore show --help`"
    )
    assert result.out == ""


# -- edit ------------------------------------------------------------------------

#: The start of every editor script: the file to edit is the last argument, and
#: the script notes which file it was given and the bytes it found there.
EDITOR_PREAMBLE = """\
import json, pathlib, subprocess, sys
path = pathlib.Path(sys.argv[-1])
here = pathlib.Path(__file__).parent
(here / "given-path").write_text(str(path))
(here / "given-bytes").write_bytes(path.read_bytes())
doc = json.loads(path.read_text())
"""

REWRITE_BODY = """
doc["sections"][0]["body"] = "Grow steadily."
path.write_text(json.dumps(doc, indent=2))
"""


def use_editor(
    monkeypatch: pytest.MonkeyPatch, folder: Path, script: str, *, variable: str = "EDITOR"
) -> Path:
    """Make ``script`` (after the preamble) the editor, in ``$variable``; the folder it is in."""
    folder.mkdir(exist_ok=True)
    path = folder / "editor.py"
    path.write_text(EDITOR_PREAMBLE + script)
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.delenv("EDITOR", raising=False)
    monkeypatch.setenv(variable, f"{shlex.quote(sys.executable)} -I {shlex.quote(str(path))}")
    return folder


def given_path(folder: Path) -> Path:
    """The file the editor script was given."""
    return Path((folder / "given-path").read_text())


class Terminal(io.StringIO):
    """A standard input that is a terminal, on which the user types the text it is made with."""

    def isatty(self) -> bool:
        return True


@pytest.fixture
def no_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))


@pytest.fixture(autouse=True)
def temporary_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Where ``edit`` makes its temporary copies, in this process and in the real program."""
    path = tmp_path / "tmp"
    path.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(path))
    monkeypatch.setenv("TMPDIR", str(path))
    return path


def test_edit_saves_the_latest_draft_as_the_editor_left_it_and_removes_the_copy(
    cli: Cli,
    store: FileStore,
    data_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    temporary_directory: Path,
) -> None:
    store.create(make_doc("acme-q3", 1))
    store.create(make_doc("acme-q3", 2))
    editor = use_editor(monkeypatch, tmp_path / "my editor", REWRITE_BODY)
    result = cli("edit", "acme-q3")
    assert result.status == 0
    assert result.out == "saved draft version 2 of acme-q3\n"
    assert result.err == ""
    doc = store.get_strategy("acme-q3", 2)
    assert doc is not None
    assert doc.sections[0].body == "Grow steadily."
    # The edit is dated when it was saved.
    assert doc.updated_at > make_doc("acme-q3", 2).updated_at
    assert store.get_strategy("acme-q3", 1) == make_doc("acme-q3", 1)
    # The editor was given the draft's canonical bytes, in a temporary file
    # outside the data directory named after the draft.
    assert (editor / "given-bytes").read_bytes() == make_doc("acme-q3", 2).to_json_bytes()
    copy = given_path(editor)
    assert copy.name.startswith("acme-q3.v2.")
    assert copy.suffix == ".json"
    assert copy.parent == temporary_directory
    assert data_dir not in copy.parents
    assert not copy.exists()


def test_edit_of_a_given_version_prefers_visual_to_editor(
    cli: Cli, store: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create(make_doc("acme-q3", 1))
    store.create(make_doc("acme-q3", 2))
    use_editor(monkeypatch, tmp_path / "editor", REWRITE_BODY, variable="VISUAL")
    monkeypatch.setenv("EDITOR", "false")
    result = cli("edit", "acme-q3", "1")
    assert (result.status, result.out) == (0, "saved draft version 1 of acme-q3\n")
    edited = store.get_strategy("acme-q3", 1)
    assert edited is not None
    assert edited.sections[0].body == "Grow steadily."
    assert store.get_strategy("acme-q3", 2) == make_doc("acme-q3", 2)


def test_edit_that_changes_nothing_says_so_and_writes_nothing(
    cli: Cli, store: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create(make_doc("acme-q3", 1))
    path = store.document_path("acme-q3", 1)
    before = path.stat()
    editor = use_editor(monkeypatch, tmp_path / "editor", "")
    result = cli("edit", "acme-q3")
    assert result.status == 0
    assert result.out == "no changes to draft version 1 of acme-q3\n"
    assert path.stat().st_ino == before.st_ino
    assert not given_path(editor).exists()


def test_edit_of_a_reformatted_but_equal_document_writes_nothing(
    cli: Cli, store: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create(make_doc("acme-q3", 1))
    before = store.document_path("acme-q3", 1).stat().st_ino
    use_editor(monkeypatch, tmp_path / "editor", "path.write_text(json.dumps(doc, indent=4))\n")
    result = cli("edit", "acme-q3")
    assert (result.status, result.out) == (0, "no changes to draft version 1 of acme-q3\n")
    assert store.document_path("acme-q3", 1).stat().st_ino == before


@pytest.mark.usefixtures("no_terminal")
def test_an_invalid_edit_without_a_terminal_exits_1_and_keeps_the_edited_copy(
    cli: Cli, store: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create(make_doc("acme-q3", 1))
    editor = use_editor(monkeypatch, tmp_path / "editor", 'path.write_text("{ broken")\n')
    result = cli("edit", "acme-q3")
    assert result.status == 1
    copy = given_path(editor)
    assert result.error_line.startswith(f"strategystore: {copy}: not valid JSON")
    assert result.error_line.endswith(f"nothing was saved; the edited copy is kept at {copy}")
    assert copy.read_text() == "{ broken"
    assert store.get_strategy("acme-q3", 1) == make_doc("acme-q3", 1)


@pytest.mark.usefixtures("no_terminal")
@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ('doc["version"] = 5', "brief_id and version must stay 'acme-q3' and 1"),
        ('doc["brief_id"] = "other"', "brief_id and version must stay 'acme-q3' and 1"),
        (
            'doc["status"] = "approved"',
            "status must stay draft: status changes go through `strategystore approve`, "
            "`strategystore reject` and `strategystore withdraw`",
        ),
        ('doc["metadata"]["x"] = float("nan")', "metadata.x is nan, which JSON cannot hold"),
    ],
    ids=["version", "brief-id", "status", "nan"],
)
def test_an_edit_must_stay_the_same_valid_draft(
    cli: Cli,
    store: FileStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    change: str,
    expected: str,
) -> None:
    store.create(make_doc("acme-q3", 1))
    script = f"{change}\npath.write_text(json.dumps(doc))\n"
    editor = use_editor(monkeypatch, tmp_path / "editor", script)
    result = cli("edit", "acme-q3")
    assert result.status == 1
    assert expected in result.error_line
    assert result.error_line.endswith(f"the edited copy is kept at {given_path(editor)}")
    assert given_path(editor).exists()
    assert store.list_briefs() == ["acme-q3"]
    assert store.list_version_numbers("acme-q3") == [1]
    assert store.get_strategy("acme-q3", 1) == make_doc("acme-q3", 1)


#: Breaks the file on the first run, rewrites a section's body on the second.
BREAK_THEN_FIX = """
runs = here / "runs"
count = int(runs.read_text()) + 1 if runs.exists() else 1
runs.write_text(str(count))
if count == 1:
    path.write_text('{"brief_id": "acme-q3", "version": 1, "sections": 3}')
else:
    doc = json.loads(path.read_text())
    doc["sections"] = [{"key": "goal", "title": "Goal", "body": "Fixed."}]
    path.write_text(json.dumps(doc))
"""


def test_an_invalid_edit_on_a_terminal_asks_to_edit_again_and_saves_the_second_edit(
    cli: Cli, store: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create(make_doc("acme-q3", 1))
    editor = use_editor(monkeypatch, tmp_path / "editor", BREAK_THEN_FIX)
    monkeypatch.setattr(sys, "stdin", Terminal("\n"))
    result = cli("edit", "acme-q3")
    assert result.status == 0
    assert (editor / "runs").read_text() == "2"
    copy = given_path(editor)
    first, second = result.err.split("\n", 1)
    assert first.startswith(f"strategystore: {copy}: not a valid strategy document: sections")
    assert second == "edit again? [Y/n] "
    assert result.out == "saved draft version 1 of acme-q3\n"
    doc = store.get_strategy("acme-q3", 1)
    assert doc is not None
    assert doc.sections == [Section(key="goal", title="Goal", body="Fixed.")]
    assert not copy.exists()


@pytest.mark.parametrize(
    ("answer", "then"),
    # A terminal echoes a typed answer, ending the question's line; at the end
    # of input the command ends it.
    [("n\n", ""), ("", "\n")],
    ids=["no", "end-of-input"],
)
def test_declining_to_edit_again_keeps_the_edited_copy_and_exits_1(
    cli: Cli,
    store: FileStore,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    answer: str,
    then: str,
) -> None:
    store.create(make_doc("acme-q3", 1))
    editor = use_editor(monkeypatch, tmp_path / "editor", BREAK_THEN_FIX)
    monkeypatch.setattr(sys, "stdin", Terminal(answer))
    result = cli("edit", "acme-q3")
    assert result.status == 1
    assert (editor / "runs").read_text() == "1"
    copy = given_path(editor)
    assert result.err.endswith(
        f"edit again? [Y/n] {then}strategystore: the edited copy is not valid; "
        f"nothing was saved; the edited copy is kept at {copy}\n"
    )
    assert copy.exists()
    assert store.get_strategy("acme-q3", 1) == make_doc("acme-q3", 1)


@pytest.mark.parametrize("status", ["approve", "reject"])
def test_edit_refuses_a_version_that_is_not_a_draft_and_points_to_new_from(
    cli: Cli, store: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, status: str
) -> None:
    store.create(make_doc("acme-q3", 1))
    frozen = getattr(store, status)("acme-q3", 1, now=T0)
    editor = use_editor(monkeypatch, tmp_path / "editor", REWRITE_BODY)
    result = cli("edit", "acme-q3", "1")
    assert result.status == 1
    assert "only a draft can be edited" in result.error_line
    assert "`strategystore new acme-q3 --from 1`" in result.error_line
    assert not (editor / "given-path").exists()
    assert store.get_strategy("acme-q3", 1) == frozen


def test_edit_of_a_missing_version_or_brief_is_not_found(
    cli: Cli, store: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create(make_doc("acme-q3", 1))
    use_editor(monkeypatch, tmp_path / "editor", REWRITE_BODY)
    missing = cli("edit", "acme-q3", "2")
    assert (missing.status, missing.error_line) == (
        1,
        "strategystore: version 2 of brief 'acme-q3' does not exist",
    )
    unknown = cli("edit", "nobody")
    assert unknown.status == 1
    assert "'nobody' has no versions" in unknown.error_line


def test_edit_without_an_editor_says_to_set_one(
    cli: Cli, store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create(make_doc("acme-q3", 1))
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", "  ")
    result = cli("edit", "acme-q3")
    assert result.status == 1
    assert "set $VISUAL or $EDITOR" in result.error_line


def test_an_editor_that_cannot_be_started_is_one_line(
    cli: Cli, store: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create(make_doc("acme-q3", 1))
    monkeypatch.delenv("VISUAL", raising=False)
    monkeypatch.setenv("EDITOR", str(tmp_path / "no-such-editor"))
    result = cli("edit", "acme-q3")
    assert result.status == 1
    assert result.error_line.startswith(
        f"strategystore: cannot run the editor {tmp_path / 'no-such-editor'}: "
    )


@pytest.mark.parametrize("edits", [True, False], ids=["after-an-edit", "without-an-edit"])
def test_an_editor_that_fails_saves_nothing(
    cli: Cli, store: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, edits: bool
) -> None:
    store.create(make_doc("acme-q3", 1))
    script = (REWRITE_BODY if edits else "") + "sys.exit(3)\n"
    editor = use_editor(monkeypatch, tmp_path / "editor", script)
    result = cli("edit", "acme-q3")
    assert result.status == 1
    copy = given_path(editor)
    if edits:
        assert result.error_line == (
            "strategystore: the editor exited with status 3; nothing was saved; "
            f"the edited copy is kept at {copy}"
        )
        assert "Grow steadily." in copy.read_text()
    else:
        assert result.error_line == (
            "strategystore: the editor exited with status 3; nothing was saved"
        )
        assert not copy.exists()
    assert store.get_strategy("acme-q3", 1) == make_doc("acme-q3", 1)


def test_a_change_made_while_the_editor_ran_is_reported_and_never_overwritten(
    cli: Cli, store: FileStore, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create(make_doc("acme-q3", 1))
    theirs = make_doc("acme-q3", 1, metadata={"by": "someone else"})
    (tmp_path / "theirs.json").write_bytes(theirs.to_json_bytes())
    put = [sys.executable, "-m", "strategystore", "--dir", str(data_dir), "put", "theirs.json"]
    meanwhile = f"subprocess.run({put!r}, cwd={str(tmp_path)!r}, check=True)\n"
    editor = use_editor(monkeypatch, tmp_path / "editor", meanwhile + REWRITE_BODY)
    result = cli("edit", "acme-q3")
    assert result.status == 1
    copy = given_path(editor)
    assert result.error_line == (
        "strategystore: version 1 of acme-q3 was changed by someone else while it was being "
        "edited, and that change stays; nothing was saved; "
        f"the edited copy is kept at {copy}"
    )
    assert store.get_strategy("acme-q3", 1) == theirs
    assert "Grow steadily." in copy.read_text()


def test_a_store_refusing_the_edit_is_one_line_and_keeps_the_copy(
    cli: Cli, store: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create(make_doc("acme-q3", 1))
    editor = use_editor(monkeypatch, tmp_path / "editor", REWRITE_BODY)

    def refuse(self: FileStore, doc: StrategyDocument, *, expected: StrategyDocument) -> None:
        raise ValueError("use approve() to approve a draft")

    monkeypatch.setattr(FileStore, "update", refuse)
    result = cli("edit", "acme-q3")
    assert result.status == 1
    copy = given_path(editor)
    assert result.error_line == (
        "strategystore: use approve() to approve a draft; nothing was saved; "
        f"the edited copy is kept at {copy}"
    )


def test_an_interrupt_at_the_terminal_is_left_to_the_editor(
    cli: Cli, store: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create(make_doc("acme-q3", 1))
    # Ctrl-C reaches every process of the terminal's foreground group.
    interrupt = "import os, signal, time\ntime.sleep(0.2)\nos.kill(os.getppid(), signal.SIGINT)\n"
    use_editor(monkeypatch, tmp_path / "editor", interrupt + REWRITE_BODY)
    result = cli("edit", "acme-q3")
    assert (result.status, result.out) == (0, "saved draft version 1 of acme-q3\n")


def test_edit_refuses_a_missing_data_directory_and_suggests_init(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    editor = use_editor(monkeypatch, tmp_path / "editor", REWRITE_BODY)
    assert main(["--dir", str(tmp_path / "nowhere"), "edit", "acme-q3"]) == 1
    err = capsys.readouterr().err
    assert "does not exist" in err
    assert "init" in err
    assert not (editor / "given-path").exists()


def test_the_real_program_edits_a_draft(
    tmp_path: Path, store: FileStore, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store.create(make_doc("acme-q3", 1))
    use_editor(monkeypatch, tmp_path / "editor", REWRITE_BODY)
    done = run_module("--dir", str(data_dir), "edit", "acme-q3", cwd=tmp_path)
    assert (done.returncode, done.stdout, done.stderr) == (
        0,
        "saved draft version 1 of acme-q3\n",
        "",
    )
    doc = store.get_strategy("acme-q3", 1)
    assert doc is not None
    assert doc.sections[0].body == "Grow steadily."


# -- diff's exit status ------------------------------------------------------------


def test_diff_exits_1_when_the_versions_differ_and_0_when_they_are_the_same(
    cli: Cli, store: FileStore
) -> None:
    store.create(make_doc("acme", 1))
    store.create(make_doc("acme", 2, metadata={"tone": "bold"}))
    differ = cli("diff", "acme", "1", "2")
    assert differ.status == 1
    assert '  + tone: "bold"' in differ.out
    assert differ.err == ""
    same = cli("diff", "acme", "2", "2")
    assert same.status == 0
    assert "no differences" in same.out


# -- damaged versions in briefs and versions -----------------------------------------


@pytest.fixture
def damaged(store: FileStore, data_dir: Path) -> Path:
    """Brief acme: 1 approved, 2 damaged by hand, 3 a draft; brief zeta: 1, a draft."""
    store.create(make_doc("acme", 1))
    store.approve("acme", 1, now=T0)
    store.create(make_doc("acme", 2))
    store.create(make_doc("acme", 3))
    store.create(make_doc("zeta", 1))
    path = data_dir / "acme" / "2.json"
    path.write_text("{not json")
    return path


def test_versions_lists_a_damaged_version_as_such_and_the_others_then_exits_1(
    cli: Cli, damaged: Path
) -> None:
    result = cli("versions", "acme")
    assert result.status == 1
    _, third, second, first = result.out.splitlines()
    assert third.split()[:2] == ["3", "draft"]
    assert second.split() == ["2", "damaged"]
    assert first.split()[:2] == ["1", "approved"]
    assert result.error_line.startswith(f"strategystore: {damaged}: not valid JSON")


def test_versions_json_gives_a_damaged_version_its_error(cli: Cli, damaged: Path) -> None:
    result = cli("versions", "acme", "--json")
    assert result.status == 1
    rows = json.loads(result.out)
    assert [row["version"] for row in rows] == [3, 2, 1]
    assert rows[1] == {"version": 2, "error": result.error_line.removeprefix("strategystore: ")}
    assert rows[0]["status"] == "draft"


def test_briefs_shows_what_it_can_of_a_brief_with_a_damaged_version_and_marks_it(
    cli: Cli, damaged: Path
) -> None:
    result = cli("briefs")
    assert result.status == 1
    header, acme, zeta = result.out.splitlines()
    assert header.split()[-1] == "DAMAGED"
    assert acme.split()[:5] == ["acme", "3", "3", "draft", "1"]
    assert acme.split()[-1] == "2"
    assert zeta.split()[:5] == ["zeta", "1", "1", "draft", "-"]
    assert not zeta.rstrip().endswith(" 2")
    assert str(damaged) in result.error_line


def test_briefs_marks_a_damaged_latest_version(cli: Cli, store: FileStore, damaged: Path) -> None:
    store.delete("acme", 3)
    result = cli("briefs", "--json")
    assert result.status == 1
    acme, zeta = json.loads(result.out)
    problem = result.error_line.removeprefix("strategystore: ")
    assert acme == {
        "brief_id": "acme",
        "versions": 2,
        "latest_version": 2,
        "latest_status": "damaged",
        "latest_approved_version": 1,
        "updated_at": None,
        "damaged": [{"version": 2, "error": problem}],
    }
    assert "damaged" not in zeta


# -- export past damaged versions ------------------------------------------------------


def test_export_names_every_damaged_version_of_a_brief_once_and_exports_the_rest(
    cli: Cli, store: FileStore, data_dir: Path
) -> None:
    for version in (1, 2, 3, 4, 5):
        store.create(make_doc("acme", version))
    store.create(make_doc("zeta", 1))
    for version in (2, 4):
        (data_dir / "acme" / f"{version}.json").write_text("{not json")
    result = cli("export")
    assert result.status == 1
    keys = [
        (json.loads(line)["brief_id"], json.loads(line)["version"])
        for line in result.out.splitlines()
    ]
    assert keys == [("acme", 1), ("acme", 3), ("acme", 5), ("zeta", 1)]
    err = result.err.splitlines()
    assert len(err) == 2
    assert err[0].startswith(f"strategystore: {data_dir / 'acme' / '2.json'}: ")
    assert err[1].startswith(f"strategystore: {data_dir / 'acme' / '4.json'}: ")


# -- import of a pretty-printed document ------------------------------------------------


def test_import_of_one_pretty_printed_document_says_to_use_put(
    cli: Cli, store: FileStore, tmp_path: Path
) -> None:
    source = tmp_path / "one doc.json"
    source.write_bytes(make_doc("acme", 1).to_json_bytes())
    result = cli("import", str(source))
    assert result.status == 1
    assert result.err.splitlines() == [
        f"strategystore: {source}: not JSON Lines: this looks like one pretty-printed "
        f"document; use `strategystore put '{source}'`",
        "0 written, 0 skipped, 1 refused",
    ]
    assert store.list_briefs() == []


def test_import_of_a_pretty_printed_document_on_standard_input_says_put_minus(
    cli: Cli, store: FileStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    feed_stdin(monkeypatch, b"\n" + make_doc("acme", 1).to_json_bytes())
    result = cli("import", "-")
    assert result.status == 1
    assert result.err.splitlines()[0].endswith(
        "one pretty-printed document; use `strategystore put -`"
    )


def test_import_still_names_each_bad_line_of_what_is_not_one_document(
    cli: Cli, store: FileStore, tmp_path: Path
) -> None:
    source = tmp_path / "in.jsonl"
    pretty_but_no_document = json.dumps({"sections": [], "metadata": {}}, indent=2)
    source.write_text(pretty_but_no_document + "\n")
    result = cli("import", str(source))
    assert result.status == 1
    err = result.err.splitlines()
    assert len(err) == 5
    assert all(line.startswith(f"strategystore: {source}:") for line in err[:4])
    assert "put" not in result.err
    assert err[-1] == "0 written, 0 skipped, 4 refused"


def test_import_with_a_good_line_is_json_lines_whatever_its_other_lines_make_together(
    cli: Cli, store: FileStore, tmp_path: Path
) -> None:
    source = tmp_path / "in.jsonl"
    good = make_doc("acme", 1).model_dump_json()
    source.write_text("{\n" + good + '\n"brief_id": "acme"\n}\n')
    result = cli("import", str(source))
    assert result.status == 1
    err = result.err.splitlines()
    assert [line.split(": ")[1] for line in err[:3]] == [f"{source}:{n}" for n in (1, 3, 4)]
    assert err[3:] == ["1 written, 0 skipped, 3 refused"]
    assert "pretty-printed" not in result.err
    assert store.list_version_numbers("acme") == [1]


# -- put's refusals ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "commands"),
    [
        (Status.APPROVED, "`strategystore approve acme 1`"),
        (Status.REJECTED, "`strategystore reject acme 1`"),
        (Status.WITHDRAWN, "`strategystore approve acme 1`, then `strategystore withdraw acme 1`"),
    ],
)
def test_put_of_a_stored_draft_with_another_status_is_refused_in_one_line(
    cli: Cli, store: FileStore, tmp_path: Path, status: Status, commands: str
) -> None:
    store.create(make_doc("acme", 1))
    path = tmp_path / "changed.json"
    path.write_bytes(make_doc("acme", 1, status=status).to_json_bytes())
    result = cli("put", str(path))
    assert result.status == 1
    assert result.error_line == (
        f"strategystore: version 1 of acme is a draft, and put cannot make it {status.value}: "
        "a status changes only through its own command; put the content as a draft, "
        f"then run {commands}"
    )
    assert store.get_strategy("acme", 1) == make_doc("acme", 1)


def test_put_of_a_drafts_json_with_its_status_changed_by_hand_says_what_to_run(
    cli: Cli, store: FileStore, tmp_path: Path
) -> None:
    store.create(make_doc("acme", 1))
    path = tmp_path / "changed.json"
    fields = json.loads(make_doc("acme", 1).to_json_bytes()) | {"status": "approved"}
    path.write_text(json.dumps(fields))
    result = cli("put", str(path))
    assert result.status == 1
    assert "an approved version carries the seal" in result.error_line
    assert "run `strategystore approve acme 1`" in result.error_line
    assert store.get_strategy("acme", 1) == make_doc("acme", 1)


def test_put_reports_a_plain_value_error_of_the_store_in_one_line(
    cli: Cli, store: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def refuse(self: FileStore, doc: StrategyDocument) -> None:
        raise ValueError("use approve() to change the status of a draft")

    monkeypatch.setattr(FileStore, "save", refuse)
    path = tmp_path / "doc.json"
    path.write_bytes(make_doc("acme", 1).to_json_bytes())
    result = cli("put", str(path))
    assert result.status == 1
    assert result.error_line == "strategystore: use approve() to change the status of a draft"


def test_put_new_and_import_refuse_a_repeated_key_as_a_stored_file_would(
    cli: Cli, store: FileStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    twice = tmp_path / "twice.json"
    twice.write_text('{"sections": [], "sections": [{"key": "a", "title": "", "body": ""}]}')
    result = cli("new", "acme", str(twice))
    assert result.status == 1
    assert "the key 'sections' appears twice in one object, on line 1" in result.error_line
    document = make_doc("acme", 1).to_json_bytes().decode()
    twice.write_text(
        document.replace('"status": "draft",', '"status": "approved",\n  "status": "draft",')
    )
    result = cli("put", str(twice))
    assert result.status == 1 and "the key 'status' appears twice" in result.error_line
    line = (
        make_doc("acme", 1)
        .model_dump_json()
        .replace('"status":"draft"', '"status":"approved","status":"draft"')
    )
    twice.write_text(line + "\n")
    result = cli("import", str(twice))
    assert result.status == 1 and "twice.json:1: the key 'status' appears twice" in result.err
    assert store.list_briefs() == []


def test_times_of_early_years_are_shown_zero_padded_alike() -> None:
    """A table's minute and a header's second spell the year in four digits, as RFC 3339 does."""
    moment = datetime(999, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    assert _render.minute(moment) == "0999-05-06 07:08"
    assert _render.second(moment) == "0999-05-06 07:08:09 UTC"
    assert _render.second(datetime(2026, 1, 15, 9, 30, tzinfo=UTC)) == "2026-01-15 09:30:00 UTC"
