"""With the ``.gitattributes`` a data directory gets, git never line-merges a document.

The scenario: one branch approves version 1 while another edits a section
of it. Without the attribute, ``git merge`` combines both silently and the
result claims an approval over text nobody approved (the seal catches that on
read); with it, the merge stops with a conflict for ``resolve`` to settle.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from strategystore import CorruptDocumentError, FileStore, Section
from tests.conftest import run_module

pytestmark = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def _git(repo: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
        "GIT_CONFIG_NOSYSTEM": "1",
        "HOME": str(repo.parent),
    }
    return subprocess.run(
        ["git", *args], cwd=repo, env=env, capture_output=True, text=True, check=check
    )


def _approve_here_edit_there(repo: Path, *, attributes: bool) -> subprocess.CompletedProcess[str]:
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    store = FileStore(repo)
    if not attributes:
        (repo / ".gitattributes").unlink()
    store.create_next(
        "acme",
        [
            Section(key="goal", title="Goal", body="Grow."),
            Section(key="plan", title="Plan", body="Ads."),
        ],
        {"owner": "ana"},
    )
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "draft")
    _git(repo, "checkout", "-qb", "edit")
    draft = store.get_strategy("acme", 1)
    assert draft is not None
    store.save(
        draft.model_copy(
            update={"sections": [draft.sections[0], Section(key="plan", title="Plan", body="TV.")]}
        )
    )
    _git(repo, "commit", "-qam", "edit the plan")
    _git(repo, "checkout", "-q", "main")
    store.approve("acme", 1)
    _git(repo, "commit", "-qam", "approve")
    return _git(repo, "merge", "--no-edit", "edit", check=False)


def test_with_the_attributes_the_merge_is_a_conflict(tmp_path: Path) -> None:
    merged = _approve_here_edit_there(tmp_path / "repo", attributes=True)
    assert merged.returncode == 1
    assert "CONFLICT (content): Merge conflict in acme/1.json" in merged.stdout
    unmerged = _git(tmp_path / "repo", "ls-files", "-u").stdout.split("\n")
    assert {line.split("\t")[-1] for line in unmerged if line} == {"acme/1.json"}


def test_without_them_git_merges_silently_and_the_seal_refuses_the_result(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    merged = _approve_here_edit_there(repo, attributes=False)
    assert merged.returncode == 0, merged.stdout
    text = (repo / "acme" / "1.json").read_text()
    assert '"status": "approved"' in text and '"body": "TV."' in text
    with pytest.raises(CorruptDocumentError, match="approved content changed after it was sealed"):
        FileStore(repo).get_strategy("acme", 1)


def _cli(repo: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run_module("--dir", str(repo), *args, cwd=repo)


def test_the_approve_here_edit_there_merge_ends_well(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    assert _approve_here_edit_there(repo, attributes=True).returncode == 1
    # The file shows one side only, without markers: check still says so.
    checked = _cli(repo, "check")
    assert checked.returncode == 1
    assert "acme/1.json: unresolved: git holds this document in conflict" in checked.stdout
    resolved = _cli(repo, "resolve")
    assert resolved.returncode == 0, resolved.stdout + resolved.stderr
    assert "kept the approved version" in resolved.stdout
    _git(repo, "commit", "-q", "--no-edit")
    store = FileStore(repo)
    approved, edit = store.get_strategy("acme", 1), store.get_strategy("acme", 2)
    assert approved is not None and edit is not None
    assert approved.status.value == "approved" and approved.sections[1].body == "Ads."
    assert edit.status.value == "draft" and edit.sections[1].body == "TV."
    assert _cli(repo, "check", "--against", "HEAD~1").returncode == 0


def test_two_branches_adding_the_next_version_end_well(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    assert _cli(repo, "init").returncode == 0
    feed = repo.parent / "plan.json"
    feed.write_text('{"sections": [{"key": "goal", "title": "Goal", "body": "Grow."}]}')
    assert _cli(repo, "new", "acme", str(feed)).returncode == 0
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "v1")
    _git(repo, "checkout", "-qb", "other")
    assert _cli(repo, "new", "acme", "--from", "1").returncode == 0
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "v2 there")
    _git(repo, "checkout", "-q", "main")
    assert _cli(repo, "new", "acme", str(feed)).returncode == 0
    _git(repo, "add", "-A")
    _git(repo, "commit", "-qm", "v2 here")
    merged = _git(repo, "merge", "--no-edit", "other", check=False)
    assert "CONFLICT (add/add): Merge conflict in acme/2.json" in merged.stdout
    resolved = _cli(repo, "resolve")
    assert resolved.returncode == 0, resolved.stdout + resolved.stderr
    assert "renumbered" in resolved.stdout and "2 → 3" in resolved.stdout
    _git(repo, "commit", "-q", "--no-edit")
    assert FileStore(repo).list_version_numbers("acme") == [3, 2, 1]
    assert _cli(repo, "check").returncode == 0


def test_check_asks_git_which_attributes_apply_to_documents(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    _git(repo, "init", "-q", "-b", "main")
    data = repo / "data"
    FileStore(data).close()
    assert _cli(data, "check").returncode == 0
    # A later line overrides the store's: git would merge documents line by line.
    with (data / ".gitattributes").open("a") as attributes:
        attributes.write("*.json merge=union\n")
    checked = _cli(data, "check")
    assert checked.returncode == 1
    assert "git applies merge: union, text: set, eol: lf to documents here" in checked.stdout
    (data / ".gitattributes").write_text("*.json text eol=lf -merge\n")
    (repo / ".git" / "info" / "attributes").write_text("*.json merge=union\n")
    assert _cli(data, "check").returncode == 1
