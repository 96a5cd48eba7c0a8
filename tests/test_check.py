"""``strategystore check``: every problem in a data directory, with its path and line."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import pytest

from strategystore import FileStore
from strategystore._layout import FORMAT
from strategystore.check import DataDirCheck, Finding
from strategystore.cli import main
from tests.conftest import make_doc, run_module

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    store = FileStore(path)
    store.create(make_doc("acme", 1))
    store.create(make_doc("acme", 2))
    store.create(make_doc("zeta", 1))
    return path


def check(data_dir: Path, capsys: pytest.CaptureFixture[str], *options: str) -> tuple[int, str]:
    status = main(["--dir", str(data_dir), "check", *options])
    captured = capsys.readouterr()
    assert captured.err == ""
    return status, captured.out


def findings(data_dir: Path) -> list[Finding]:
    return list(DataDirCheck(data_dir).findings())


def test_a_clean_data_directory_passes_with_a_summary(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out = check(data_dir, capsys)
    assert status == 0
    assert out == f"{data_dir}: 3 documents in 2 briefs, no problems\n"


def test_a_merge_conflict_is_named_by_path_and_line(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = data_dir / "acme" / "2.json"
    lines = path.read_text().splitlines()
    lines[4:5] = ["<<<<<<< HEAD", lines[4], "=======", lines[4], ">>>>>>> feature"]
    path.write_text("\n".join(lines) + "\n")
    status, out = check(data_dir, capsys)
    assert status == 1
    assert f"{path}:5: git merge-conflict marker" in out
    assert out.splitlines()[-1] == f"{data_dir}: 2 documents in 2 briefs; 1 problem"


def test_a_json_error_is_named_by_path_and_line(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = data_dir / "acme" / "1.json"
    path.write_text('{\n  "brief_id": "acme",\n  "version": 1,\n}\n')
    status, out = check(data_dir, capsys)
    assert status == 1
    assert f"{path}:4: not valid JSON" in out


def test_a_schema_error_is_named_with_the_line_of_its_field(data_dir: Path) -> None:
    path = data_dir / "acme" / "1.json"
    doc = json.loads(path.read_text())
    doc["status"] = "archived"
    path.write_text(json.dumps(doc, indent=2))
    [finding] = findings(data_dir)
    assert finding.path == path
    assert finding.line == 4
    assert "status" in finding.message
    assert "not a valid strategy document" in finding.message


def test_an_empty_document_file_is_a_problem(data_dir: Path) -> None:
    (data_dir / "acme" / "1.json").write_bytes(b"")
    [finding] = findings(data_dir)
    assert "empty" in finding.message


def test_a_document_at_the_wrong_path_is_named_with_where_it_belongs(data_dir: Path) -> None:
    (data_dir / "acme" / "7.json").write_bytes(make_doc("acme", 3).to_json_bytes())
    [finding] = findings(data_dir)
    assert finding.path == data_dir / "acme" / "7.json"
    assert "belongs at acme/3.json" in finding.message


def test_a_non_canonical_name_is_reported_with_the_name_to_use(data_dir: Path) -> None:
    (data_dir / "zeta" / "012.json").write_bytes(make_doc("zeta", 12).to_json_bytes())
    (data_dir / "zeta" / "01.json").write_bytes(make_doc("zeta", 1).to_json_bytes())
    (data_dir / "zeta" / "0.json").write_bytes(b"{}")
    messages = {f.path.name: f.message for f in findings(data_dir)}
    assert "rename it to 12.json" in messages["012.json"]
    assert "1.json exists too" in messages["01.json"]
    assert "outside 1 to" in messages["0.json"]


def test_symbolic_links_are_reported_and_never_followed(data_dir: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "1.json").write_text("{ not json")
    (data_dir / "linked-brief").symlink_to(outside)
    (data_dir / "zeta" / "2.json").symlink_to(outside / "1.json")
    problems = {f.path: f.message for f in findings(data_dir)}
    assert "symbolic link" in problems[data_dir / "linked-brief"]
    assert "symbolic link" in problems[data_dir / "zeta" / "2.json"]
    assert not any("JSON" in message for message in problems.values())


def test_brief_directories_differing_only_by_case_are_reported(data_dir: Path) -> None:
    (data_dir / "ACME").mkdir()
    (data_dir / "ACME" / "1.json").write_bytes(make_doc("ACME", 1).to_json_bytes())
    collisions = [f for f in findings(data_dir) if "letter case" in f.message]
    assert {f.path.name for f in collisions} == {"acme", "ACME"}


def test_unknown_files_are_reported_at_the_top_and_in_a_brief(data_dir: Path) -> None:
    (data_dir / "notes.md").write_text("hello")
    (data_dir / "acme" / "notes.md").write_text("hello")
    (data_dir / "acme" / "drafts").mkdir()
    (data_dir / "bad name").mkdir()
    (data_dir / ".locks" / "stray.txt").write_text("")
    problems = {f.path.relative_to(data_dir).as_posix(): f.message for f in findings(data_dir)}
    assert "unknown file" in problems["notes.md"]
    assert "not a document" in problems["acme/notes.md"]
    assert "unexpected directory" in problems["acme/drafts"]
    assert "not a valid brief id" in problems["bad name"]
    assert "unknown file among the lock files" in problems[".locks/stray.txt"]


def test_dot_files_people_keep_at_the_top_are_not_problems(data_dir: Path) -> None:
    (data_dir / ".git").mkdir()
    (data_dir / ".editorconfig").write_text("root = true\n")
    with (data_dir / ".gitattributes").open("a") as attributes:
        attributes.write("* text=auto\n")  # a user's own line beside the store's
    assert findings(data_dir) == []


def test_gitattributes_without_the_merge_rule_or_as_a_link_is_a_problem(data_dir: Path) -> None:
    attributes = data_dir / ".gitattributes"
    attributes.write_text("* text=auto\n")
    (found,) = findings(data_dir)
    assert (found.path, found.note) == (attributes, False)
    assert "lacks *.json text eol=lf -merge" in found.message and "init" in found.message
    attributes.unlink()
    assert "does not exist" in findings(data_dir)[0].message
    (data_dir.parent / "elsewhere").write_bytes(b"*.json text eol=lf -merge\n")
    attributes.symlink_to(data_dir.parent / "elsewhere")
    (found,) = findings(data_dir)
    assert "symbolic link, which git does not read" in found.message
    # A .gitignore that lacks lines only lets git show lock files: a note.
    attributes.unlink()
    attributes.write_bytes(b"*.json text eol=lf -merge\n")
    (data_dir / ".gitignore").write_text("")
    (found,) = findings(data_dir)
    assert found.note and "lacks .locks/, .*.tmp" in found.message


def test_a_document_that_is_a_pipe_is_reported_without_blocking(data_dir: Path) -> None:
    os.mkfifo(data_dir / "zeta" / "2.json")
    [finding] = findings(data_dir)
    assert "not a regular file" in finding.message


def test_a_missing_marker_is_a_problem_and_the_rest_is_still_checked(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (data_dir / "strategystore.json").unlink()
    (data_dir / "acme" / "1.json").write_text("{")
    status, out = check(data_dir, capsys)
    assert status == 1
    assert f"{data_dir / 'strategystore.json'}: missing" in out
    assert f"{data_dir / 'acme' / '1.json'}:1: not valid JSON" in out


def test_a_newer_marker_stops_the_check_with_advice_to_upgrade(data_dir: Path) -> None:
    (data_dir / "strategystore.json").write_text(f'{{"format": {FORMAT + 1}}}')
    (data_dir / "acme" / "1.json").write_text("{")
    [finding] = findings(data_dir)
    assert "newer" in finding.message
    assert "upgrade" in finding.message


def test_an_invalid_marker_is_a_problem(data_dir: Path) -> None:
    (data_dir / "strategystore.json").write_text("format one")
    [finding] = findings(data_dir)
    assert "not a valid marker file" in finding.message


def test_every_problem_is_listed_not_only_the_first(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (data_dir / "acme" / "1.json").write_text("{")
    (data_dir / "acme" / "2.json").write_text("<<<<<<< HEAD\n")
    (data_dir / "zeta" / "1.json").write_text("[]")
    (data_dir / "stray.txt").write_text("")
    status, out = check(data_dir, capsys)
    assert status == 1
    # An unknown file at the top (stray.txt) is a note.
    assert out.splitlines()[-1] == f"{data_dir}: 0 documents in 0 briefs; 3 problems, 1 note"


def _stale_temporary(data_dir: Path) -> Path:
    temp = data_dir / "acme" / ".1.json.0123456789ab.tmp"
    temp.write_bytes(b'{"half": ')
    return temp


def test_a_stale_temporary_file_is_a_note_that_does_not_fail_the_check(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    temp = _stale_temporary(data_dir)
    status, out = check(data_dir, capsys)
    assert status == 0
    assert f"{temp}: note: stale temporary file" in out
    assert "--repair" in out
    assert out.splitlines()[-1] == f"{data_dir}: 3 documents in 2 briefs, no problems (1 note)"
    assert temp.exists()


def test_repair_removes_stale_temporary_files_and_never_a_document(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    temp = _stale_temporary(data_dir)
    (data_dir / "zeta" / "1.json").write_text("{")
    before = sorted(p for p in data_dir.rglob("*.json"))
    status, out = check(data_dir, capsys, "--repair")
    assert status == 1  # the broken document is still a problem
    assert f"{temp}: note: removed stale temporary file" in out
    assert not temp.exists()
    assert sorted(p for p in data_dir.rglob("*.json")) == before
    assert (data_dir / "zeta" / "1.json").read_text() == "{"


def _lock_temporaries(data_dir: Path) -> tuple[Path, Path]:
    """A temporary lock file of a process that has ended, and one of a process still running."""
    ended = subprocess.Popen(["true"])
    ended.wait()
    dead = data_dir / ".locks" / f".acme.lock.{ended.pid}-0.tmp"
    live = data_dir / ".locks" / f".acme.lock.{os.getppid()}-0.tmp"
    for temp in (dead, live):
        temp.write_bytes(b"")
    return dead, live


def test_a_temporary_lock_file_an_ended_process_left_is_a_note_repair_never_removes(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dead, live = _lock_temporaries(data_dir)
    ancient = data_dir / ".locks" / ".acme.lock.99999999999999999999-0.tmp"
    ancient.write_bytes(b"")
    for options in ((), ("--repair",)):
        status, out = check(data_dir, capsys, *options)
        assert status == 0
        for temp in (dead, ancient):
            assert f"{temp}: note: temporary lock file left by an interrupted write" in out
        assert str(live) not in out  # its process may be renaming it into place
        assert "unknown file" not in out
    # A writer in another PID namespace looks like an ended process.
    assert dead.exists() and live.exists() and ancient.exists()


def test_a_temporary_lock_file_of_a_brief_named_like_the_index_is_no_index_file(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    temp = data_dir / ".locks" / ".index.v1.lock.99999999999999999999-0.tmp"
    temp.write_bytes(b"")
    status, out = check(data_dir, capsys)
    assert status == 0
    assert f"{temp}: note: temporary lock file" in out


def test_repair_leaves_a_temporary_file_whose_writer_holds_the_lock(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    temp = _stale_temporary(data_dir)
    writer = FileStore(data_dir)
    with writer.locks.hold("acme"):
        status, out = check(data_dir, capsys, "--repair")
    assert status == 0
    assert temp.exists()
    # Left alone, and said to be left alone rather than passed over in silence.
    assert f"{temp}: note: temporary file; a writer is busy with this brief" in out


def test_a_temporary_file_in_a_brief_without_a_lock_file_is_judged_while_others_write(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    temp = _stale_temporary(data_dir)
    shutil.rmtree(data_dir / ".locks")  # a fresh clone: no lock file yet
    writer = FileStore(data_dir)
    stop = threading.Event()

    def write() -> None:
        while not stop.is_set():
            writer.save(make_doc("zeta", 1, metadata={"n": time.monotonic()}))

    busy = threading.Thread(target=write)
    busy.start()
    try:
        status, out = check(data_dir, capsys, "--repair")
    finally:
        stop.set()
        busy.join(timeout=30)
    assert status == 0
    assert not temp.exists(), out
    assert f"{temp}: note: removed stale temporary file" in out


def test_a_temporary_file_in_a_directory_with_a_broken_marker_is_left_alone(
    data_dir: Path,
) -> None:
    temp = _stale_temporary(data_dir)
    (data_dir / "strategystore.json").unlink()
    notes = [f for f in DataDirCheck(data_dir, repair=True).findings() if f.note]
    assert [f.path for f in notes] == [temp]
    assert temp.exists()


def test_check_of_a_missing_directory_is_one_error_suggesting_init(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["--dir", str(tmp_path / "nowhere"), "check"]) == 1
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "does not exist" in captured.err
    assert "init" in captured.err


def test_progress_is_reported_per_entry(data_dir: Path) -> None:
    seen: list[int] = []
    list(DataDirCheck(data_dir, on_file=seen.append).findings())
    assert seen == list(range(1, len(seen) + 1))
    assert len(seen) >= 6  # marker, .gitignore, .locks, two briefs, their documents


def test_the_real_program_exits_1_and_lists_the_problem(data_dir: Path) -> None:
    (data_dir / "acme" / "1.json").write_text("{")
    result = run_module("--dir", str(data_dir), "check", cwd=data_dir)
    assert result.returncode == 1
    assert f"{data_dir / 'acme' / '1.json'}:1: not valid JSON" in result.stdout
    assert result.stderr == ""


def test_the_pre_commit_hook_runs_check_on_the_staged_files() -> None:
    # Run as pre-commit runs it in tests/test_check_paths.py.
    hook = (REPO / ".pre-commit-hooks.yaml").read_text()
    assert "- id: strategystore-check\n" in hook
    assert "entry: strategystore check\n" in hook
    assert "language: python\n" in hook
    assert "pass_filenames: true\n" in hook


def test_links_and_special_files_are_problems_whatever_their_names(data_dir: Path) -> None:
    (data_dir / "acme" / "notes.bak").symlink_to("/etc/passwd")
    (data_dir / ".evil").symlink_to("/")
    os.mkfifo(data_dir / "acme" / "q.orig")
    problems = {
        f.path.relative_to(data_dir).as_posix(): f for f in findings(data_dir) if not f.note
    }
    assert "symbolic link" in problems["acme/notes.bak"].message
    assert "symbolic link" in problems[".evil"].message
    assert "special file" in problems["acme/q.orig"].message


def test_a_gitattributes_inside_a_brief_is_a_problem(data_dir: Path) -> None:
    (data_dir / "acme" / ".gitattributes").write_text("*.json merge=union\n")
    (found,) = findings(data_dir)
    assert not found.note and "can undo the rule" in found.message


def test_a_name_that_is_not_utf8_is_printed_with_escapes(data_dir: Path) -> None:
    (data_dir / "acme" / os.fsdecode(b"\xff.bak")).write_text("")
    (found,) = findings(data_dir)
    assert str(found).startswith(f"{data_dir}/acme/\\xff.bak: note: a backup copy")
