"""``strategystore check --against REV``: sealed versions must survive unchanged since REV.

Every test works in a real git repository in a temporary directory: the data
directory is committed on ``main``, then changed in the working tree.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from strategystore import FileStore, Section, StrategyDocument, _git
from strategystore.cli import main
from tests.conftest import make_doc, run_module
from tests.test_check_paths import commit_all, git, init_repo


@pytest.fixture
def repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``strategy-data`` committed on main: acme 1 approved and 2 a draft, zeta 1
    rejected, omega 1 withdrawn. The current directory is the repository's top."""
    repo = init_repo(tmp_path / "repo", monkeypatch)
    monkeypatch.chdir(repo)
    store = FileStore(repo / "strategy-data")
    store.create(make_doc("acme", 1))
    store.approve("acme", 1)
    store.create(make_doc("acme", 2))
    store.create(make_doc("zeta", 1))
    store.reject("zeta", 1, reason="off brief")
    store.create(make_doc("omega", 1))
    store.approve("omega", 1)
    store.withdraw("omega", 1, reason="client left")
    commit_all(repo, "strategies")
    return repo


def check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    """Run ``check`` in-process on ``strategy-data``; its exit status and output lines."""
    status = main(["--dir", "strategy-data", "check", *args])
    captured = capsys.readouterr()
    assert captured.err == ""
    return status, captured.out.splitlines()


def document_file(brief_id: str, version: int) -> Path:
    return Path("strategy-data") / brief_id / f"{version}.json"


def edit_fields(brief_id: str, version: int, **fields: Any) -> None:
    """Change fields of a file by hand, keeping its seal as it stands."""
    path = document_file(brief_id, version)
    doc = json.loads(path.read_text())
    doc.update(fields)
    path.write_text(json.dumps(doc, indent=2) + "\n")


def reseal_with_body(brief_id: str, version: int, body: str) -> None:
    """Change a version's content and write a file whose seal matches the new content."""
    path = document_file(brief_id, version)
    doc = StrategyDocument.from_json_bytes(path.read_bytes())
    changed = doc.model_copy(update={"sections": [Section(key="goal", title="Goal", body=body)]})
    assert changed.content_digest != doc.content_digest
    path.write_bytes(changed.to_json_bytes())


def test_an_unchanged_working_tree_passes_and_says_what_it_compared(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status, out = check(capsys, "--against", "main")
    assert status == 0
    assert out == [
        "strategy-data: 4 documents in 3 briefs, 3 sealed versions compared with main, no problems"
    ]


def test_an_approved_version_edited_and_resealed_is_a_problem(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reseal_with_body("acme", 1, "Grow slowly.")
    assert check(capsys)[0] == 0  # a valid file: only the comparison can tell
    status, out = check(capsys, "--against", "main")
    assert status == 1
    assert out[0].startswith(
        "strategy-data/acme/1.json: version 1 of acme was approved at main and has been "
        "edited (its seal changed)"
    )
    assert out[-1].endswith("; 1 problem")


def test_an_edit_that_breaks_the_seal_is_reported_once(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = document_file("acme", 1)
    path.write_text(path.read_text().replace("Grow **fast**.", "Grow **faster**."))
    status, out = check(capsys, "--against", "main")
    assert status == 1
    [problem] = out[:-1]
    assert "approved content changed after it was sealed" in problem


def test_a_deleted_sealed_version_is_a_problem(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document_file("zeta", 1).unlink()
    document_file("zeta", 1).parent.rmdir()
    status, out = check(capsys, "--against", "main")
    assert status == 1
    assert out[0].startswith(
        "strategy-data/zeta/1.json: version 1 of zeta was rejected at main and has been deleted"
    )


def test_a_sealed_version_put_back_to_draft_is_a_problem(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    edit_fields("acme", 1, status="draft", content_digest=None)
    assert check(capsys)[0] == 0
    status, out = check(capsys, "--against", "main")
    assert status == 1
    assert "version 1 of acme was approved at main and has been put back to draft" in out[0]


def test_withdrawing_an_approved_version_is_allowed(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    FileStore(repo / "strategy-data").withdraw("acme", 1, reason="replaced")
    status, out = check(capsys, "--against", "main")
    assert status == 0
    assert out[-1].endswith("3 sealed versions compared with main, no problems")


@pytest.mark.parametrize(
    ("brief_id", "status", "message"),
    [
        ("omega", "approved", "version 1 of omega was withdrawn at main and is approved again"),
        ("zeta", "approved", "version 1 of zeta was rejected at main and is now approved"),
        ("acme", "rejected", "version 1 of acme was approved at main and is now rejected"),
        ("zeta", "withdrawn", "version 1 of zeta was rejected at main and is now withdrawn"),
        ("omega", "rejected", "version 1 of omega was withdrawn at main and is now rejected"),
    ],
)
def test_a_status_change_other_than_a_withdrawal_is_a_problem(
    repo: Path, capsys: pytest.CaptureFixture[str], brief_id: str, status: str, message: str
) -> None:
    edit_fields(brief_id, 1, status=status)
    assert check(capsys)[0] == 0
    exit_status, out = check(capsys, "--against", "main")
    assert exit_status == 1
    [problem] = out[:-1]
    assert problem.startswith(f"strategy-data/{brief_id}/1.json: {message}; ")


def test_drafts_at_the_revision_and_new_versions_are_not_compared(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = FileStore(repo / "strategy-data")
    store.save(make_doc("acme", 2, metadata={"changed": True}))
    store.approve("acme", 2)
    store.create(make_doc("acme", 3, status="approved"))
    store.create(make_doc("beta", 1))
    status, out = check(capsys, "--against", "main")
    assert status == 0
    assert out == [
        "strategy-data: 6 documents in 4 briefs, 3 sealed versions compared with main, no problems"
    ]
    store.delete("beta", 1)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "approve acme 2")
    document_file("acme", 2).unlink()
    status, out = check(capsys, "--against", "main")
    assert status == 1
    assert "version 2 of acme was approved at main and has been deleted" in out[0]


def test_with_paths_only_the_named_and_the_deleted_are_compared(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reseal_with_body("acme", 1, "Grow slowly.")
    edit_fields("zeta", 1, status="approved")
    document_file("omega", 1).unlink()
    status, out = check(capsys, "--against", "main", "strategy-data/acme/1.json", "README.md")
    assert status == 1
    assert [line.split(": ")[0] for line in out[:-1]] == [
        "strategy-data/acme/1.json",
        "strategy-data/omega/1.json",
    ]
    assert "has been edited" in out[0]
    assert "was withdrawn at main and has been deleted" in out[1]
    assert out[-1] == (
        "strategy-data: 1 document in 1 brief (of 2 paths named, 1 outside it), "
        "2 sealed versions compared with main; 2 problems"
    )


def test_a_document_at_the_revision_that_is_no_document_is_a_note(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    document_file("acme", 3).write_text('{"brief_id": "acme"}\n')
    commit_all(repo, "a broken file")
    document_file("acme", 3).write_bytes(make_doc("acme", 3).to_json_bytes())
    status, out = check(capsys, "--against", "main")
    assert status == 0
    assert out[0].startswith(
        "strategy-data/acme/3.json: note: at main this file was no valid document ("
    )
    assert out[0].endswith("), so it was not compared")
    assert check(capsys, "--against", "main", "--strict")[0] == 1


def test_a_revision_before_migrate_is_compared_by_content(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # Format 1: no seals in the files, format 1 in the marker.
    formatted = {}
    for path in sorted(Path("strategy-data").glob("*/*.json")):
        formatted[path] = path.read_bytes()
        doc = json.loads(path.read_text())
        del doc["content_digest"]
        path.write_text(json.dumps(doc, indent=2) + "\n")
    marker = Path("strategy-data/strategystore.json")
    marker.write_text('{\n  "format": 1\n}\n')
    commit_all(repo, "format 1")
    for path, data in formatted.items():
        path.write_bytes(data)
    marker.write_text('{\n  "format": 2\n}\n')
    status, out = check(capsys, "--against", "main")
    assert status == 0
    assert "3 sealed versions compared with main, no problems" in out[-1]
    reseal_with_body("zeta", 1, "Not what was rejected.")
    status, out = check(capsys, "--against", "main")
    assert status == 1
    assert "version 1 of zeta was rejected at main and has been edited" in out[0]


def test_a_data_directory_at_the_top_of_its_repository(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    data = tmp_path / "strategy-data"
    store = FileStore(data)
    store.create(make_doc("acme", 1))
    store.approve("acme", 1)
    init_repo(data, monkeypatch)
    commit_all(data)
    monkeypatch.chdir(tmp_path)
    edit_fields("acme", 1, status="rejected")
    status, out = check(capsys, "--against", "HEAD")
    assert status == 1
    assert "version 1 of acme was approved at HEAD and is now rejected" in out[0]


def test_the_revision_is_read_with_one_ls_tree_and_one_cat_file(
    repo: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStore(repo / "strategy-data")
    for number in range(40):
        store.create(make_doc(f"brief-{number}", 1, status="approved"))
    commit_all(repo)
    commands: list[str] = []
    run = _git.run

    def counting(cwd: Path, *args: str, stdin: bytes | None = None) -> bytes:
        commands.append(args[0])
        return run(cwd, *args, stdin=stdin)

    monkeypatch.setattr(_git, "run", counting)
    status, out = check(capsys, "--against", "main")
    assert status == 0
    assert "43 sealed versions compared" in out[-1]
    assert commands.count("ls-tree") == 1
    assert commands.count("cat-file") == 1


def test_an_unknown_revision_is_a_usage_error(repo: Path) -> None:
    result = run_module("--dir", "strategy-data", "check", "--against", "origin/main", cwd=repo)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("strategystore: check --against: 'origin/main' names no commit")
    assert "fetch" in result.stderr


def test_against_outside_a_git_repository_is_a_usage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    FileStore(tmp_path / "data").create(make_doc("acme", 1))
    result = run_module("--dir", "data", "check", "--against", "main", cwd=tmp_path)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr == (
        "strategystore: check --against: data is not inside a git work tree; --against "
        "compares with a commit of the repository that holds the data directory\n"
    )


def test_the_real_program_refuses_an_edited_version(repo: Path) -> None:
    reseal_with_body("acme", 1, "Grow slowly.")
    result = run_module("check", "--against", "main", cwd=repo)
    assert result.returncode == 1
    assert "version 1 of acme was approved at main and has been edited" in result.stdout
    assert result.stderr == ""
    assert os.path.exists(document_file("acme", 1))


def test_a_data_directory_moved_since_the_revision_does_not_pass_the_gate(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    git(repo, "mv", "strategy-data", "data")
    git(repo, "commit", "-qm", "move")
    git(repo, "mv", "data", "strategy-data")
    reseal_with_body("acme", 1, "Grow slowly.")
    status, out = check(capsys, "--against", "HEAD")
    assert status == 1
    assert out[0] == (
        "strategy-data: HEAD has no data directory at this path, but has one at data: a moved "
        "data directory cannot be compared with HEAD; move it back, or compare it with the "
        "commit that moved it"
    )
    # Compared with the commit before the move, the edit is found.
    status, out = check(capsys, "--against", "HEAD~1")
    assert status == 1 and "has been edited (its seal changed)" in out[0]


def test_a_revision_without_any_data_directory_is_a_note(
    repo: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    git(repo, "checkout", "-q", "--orphan", "empty")
    git(repo, "rm", "-rq", "--cached", ".")
    git(repo, "commit", "-q", "--allow-empty", "-m", "nothing")
    status, out = check(capsys, "--against", "empty")
    assert status == 0
    assert out[0] == "strategy-data: note: empty has no data directory at all: nothing to compare"
