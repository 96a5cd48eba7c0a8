"""``strategystore check PATH…``: the files named (as pre-commit names them), problems and notes.

Also the shipped pre-commit hooks, run as pre-commit runs them: the command
built from ``.pre-commit-hooks.yaml`` and the staged files of a real
repository.
"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
from pathlib import Path

import pytest

from strategystore import FileStore
from strategystore._layout import FORMAT
from strategystore.check import DataDirCheck, Finding
from strategystore.cli import main
from tests.conftest import make_doc, run_module

REPO = Path(__file__).resolve().parent.parent


# -- helpers shared with test_check_against ------------------------------------


def git(repo: Path, *args: str) -> str:
    """Run git in ``repo``; its standard output."""
    done = subprocess.run(
        ["git", *args], cwd=repo, capture_output=True, text=True, check=False, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def init_repo(repo: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A new git repository at ``repo``, usable with no git configuration at all."""
    home = repo.parent / "home"
    home.mkdir(exist_ok=True)
    for name, value in {
        "GIT_AUTHOR_NAME": "Test",
        "GIT_AUTHOR_EMAIL": "test@example.com",
        "GIT_COMMITTER_NAME": "Test",
        "GIT_COMMITTER_EMAIL": "test@example.com",
        "HOME": str(home),
        "GIT_CONFIG_NOSYSTEM": "1",
        "GIT_CEILING_DIRECTORIES": str(repo.parent),
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("GIT_DIR", raising=False)
    monkeypatch.delenv("GIT_WORK_TREE", raising=False)
    repo.mkdir(exist_ok=True)
    git(repo, "init", "-q", "-b", "main")
    return repo


def commit_all(repo: Path, message: str = "commit") -> None:
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "--allow-empty", "-m", message)


# -- the data directory the tests look at --------------------------------------


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``tmp/data`` with acme 1 and 2 and zeta 1; the current directory is ``tmp``."""
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "data"
    store = FileStore(path)
    store.create(make_doc("acme", 1))
    store.create(make_doc("acme", 2))
    store.create(make_doc("zeta", 1))
    return path


def check(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, list[str]]:
    """Run ``check`` in-process; its exit status and its lines of output."""
    status = main(["check", *args])
    captured = capsys.readouterr()
    assert captured.err == ""
    return status, captured.out.splitlines()


def named(data_dir: Path, *paths: str) -> list[Finding]:
    return list(DataDirCheck(data_dir, paths=paths).findings())


def walked(data_dir: Path) -> list[Finding]:
    return list(DataDirCheck(data_dir).findings())


# -- paths -----------------------------------------------------------------------


def test_only_the_documents_named_are_checked(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (data_dir / "zeta" / "1.json").write_text("{")
    status, out = check(capsys, "--dir", "data", "data/acme/1.json", "data/acme/2.json")
    assert status == 0
    assert out == ["data: 2 documents in 1 brief (of 2 paths named), no problems"]


def test_a_named_document_with_a_problem_is_reported_under_the_directory_as_named(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (data_dir / "zeta" / "1.json").write_text("{")
    status, out = check(capsys, "--dir", "data", "./data/zeta/1.json", "data/acme/../acme/1.json")
    assert status == 1
    assert out[0].startswith("data/zeta/1.json:1: not valid JSON")
    assert out[-1] == "data: 1 document in 1 brief (of 2 paths named); 1 problem"


def test_paths_outside_the_data_directory_are_ignored(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (data_dir / "zeta" / "1.json").write_text("{")
    (tmp_path / "package.json").write_text("{")
    (tmp_path / "data-old").mkdir()
    (tmp_path / "data-old" / "1.json").write_text("{")
    status, out = check(
        capsys,
        "--dir",
        "data",
        "package.json",
        "./data-old/1.json",
        str(tmp_path.parent / "elsewhere.json"),
        "data/../package.json",
    )
    assert status == 0
    assert out == ["data: 0 documents in 0 briefs (of 4 paths named, 4 outside it), no problems"]


def test_a_named_path_that_does_not_exist_is_skipped(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (data_dir / "zeta" / "1.json").write_text("{")
    status, out = check(
        capsys, "--dir", "data", "data/acme/9.json", "data/gone/1.json", "data/notes.md"
    )
    assert status == 0
    assert out == ["data: 0 documents in 0 briefs (of 3 paths named), no problems"]


def test_the_marker_is_checked_whatever_is_named(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (data_dir / "strategystore.json").write_text("format one")
    status, out = check(capsys, "--dir", "data", "data/acme/1.json")
    assert status == 1
    assert out[0] == (
        f'data/strategystore.json: not a valid marker file; it should hold {{"format": {FORMAT}}}'
    )


def test_a_named_brief_directory_is_checked_whole(data_dir: Path) -> None:
    (data_dir / "acme" / "2.json").write_text("{")
    (data_dir / "zeta" / "1.json").write_text("{")
    assert [f.path for f in named(data_dir, str(data_dir / "acme"))] == [
        data_dir / "acme" / "2.json"
    ]


def test_the_data_directory_named_is_walked_whole(data_dir: Path) -> None:
    (data_dir / "zeta" / "1.json").write_text("{")
    (data_dir / "zeta" / "012.json").write_text("{")
    found = named(data_dir, "data", "elsewhere.txt")
    assert found == walked(data_dir)
    assert len(found) == 2


def test_a_data_directory_reached_through_a_link_takes_the_real_paths(
    data_dir: Path, tmp_path: Path
) -> None:
    (tmp_path / "linked").symlink_to(data_dir)
    (data_dir / "zeta" / "1.json").write_text("{")
    found = named(tmp_path / "linked", str(data_dir / "zeta" / "1.json"), "data/acme/1.json")
    assert [f.path for f in found] == [tmp_path / "linked" / "zeta" / "1.json"]


def test_a_named_brief_that_collides_by_case_is_reported_with_the_other(data_dir: Path) -> None:
    (data_dir / "ACME").mkdir()
    (data_dir / "ACME" / "1.json").write_bytes(make_doc("ACME", 1).to_json_bytes())
    found = named(data_dir, "data/ACME/1.json")
    assert {f.path.name for f in found if "letter case" in f.message} == {"acme", "ACME"}


def test_a_file_inside_an_unknown_directory_is_judged_as_that_directory(
    data_dir: Path,
) -> None:
    (data_dir / "acme" / "drafts").mkdir()
    (data_dir / "acme" / "drafts" / "a.md").write_text("")
    (data_dir / "acme" / "drafts" / "b.md").write_text("")
    found = named(data_dir, "data/acme/drafts/a.md", "data/acme/drafts/b.md")
    assert [(f.path, f.note) for f in found] == [(data_dir / "acme" / "drafts", True)]


# -- problems and notes, the same for a walk and for the paths named ---------------

NOTES = {
    ".DS_Store": "a macOS Finder file; it can be deleted",
    "README.md": "unknown file",
    "strategystore.json.orig": "a merge leftover (from git mergetool); it can be deleted",
    "acme/.1.json.swp": "an editor's swap file (vim); it can be deleted",
    "acme/.1.json.swo": "an editor's swap file (vim); it can be deleted",
    "acme/1.json~": "an editor's backup copy; it can be deleted",
    "acme/#1.json#": "an editor's auto-save file (Emacs); it can be deleted",
    "acme/1.json.orig": "a merge leftover (from git mergetool); it can be deleted",
    "acme/1.json.rej": "a patch leftover",
    "acme/1.json.bak": "a backup copy; it can be deleted",
    "acme/.DS_Store": "a macOS Finder file; it can be deleted",
    "acme/Thumbs.db": "a Windows Explorer thumbnail cache; it can be deleted",
    "acme/notes.md": "not a document",
    "acme/.1.json.0123456789ab.tmp": "stale temporary file",
    "bad name/notes.md": "unknown directory: its name is not a valid brief id",
}

PROBLEMS = {
    "acme/012.json": "rename it to 12.json",
    "acme/1.JSON": "1.json exists too",
    "acme/01.json": "1.json exists too",
    "bad name/1.json": "not a valid brief id",
    "zeta/2.json": "does not state brief_id",
}


def _make(data_dir: Path, relative: str) -> Path:
    path = data_dir / relative
    path.parent.mkdir(exist_ok=True)
    path.write_bytes(b'{"half": ' if relative.endswith(".tmp") else b"{}\n")
    return path


def _reported(found: list[Finding], data_dir: Path, relative: str) -> Finding:
    top = Path(relative).parts[0]
    by_path = {f.path: f for f in found}
    finding = by_path.get(data_dir / relative) or by_path.get(data_dir / top)
    assert finding is not None, found
    return finding


@pytest.mark.parametrize("relative", sorted(NOTES))
def test_leftovers_and_unknown_files_are_notes_saying_what_they_are(
    data_dir: Path, relative: str
) -> None:
    _make(data_dir, relative)
    for found in (walked(data_dir), named(data_dir, f"data/{relative}")):
        finding = _reported(found, data_dir, relative)
        assert finding.note, finding
        assert NOTES[relative] in finding.message
        assert not [f for f in found if not f.note]


@pytest.mark.parametrize("relative", sorted(PROBLEMS))
def test_misnamed_misplaced_and_invalid_files_are_problems(data_dir: Path, relative: str) -> None:
    _make(data_dir, relative)
    for found in (walked(data_dir), named(data_dir, f"./data/{relative}")):
        finding = _reported(found, data_dir, relative)
        assert not finding.note, finding
        assert PROBLEMS[relative] in finding.message


def test_links_and_special_files_are_problems(data_dir: Path, tmp_path: Path) -> None:
    (data_dir / "linked").symlink_to(tmp_path)
    (data_dir / "acme" / "3.json").symlink_to(data_dir / "acme" / "1.json")
    os.mkfifo(data_dir / "acme" / "pipe")
    os.mkfifo(data_dir / "fifo")
    paths = ["data/linked", "data/acme/3.json", "data/acme/pipe", "data/fifo"]
    for found in (walked(data_dir), named(data_dir, *paths)):
        messages = {f.path.relative_to(data_dir).as_posix(): f for f in found}
        assert not any(f.note for f in found)
        assert "symbolic link" in messages["linked"].message
        assert "symbolic link" in messages["acme/3.json"].message
        assert "special file" in messages["acme/pipe"].message
        assert "special file" in messages["fifo"].message


def test_the_store_s_own_files_and_dot_directories_are_not_reported(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The data directory is the top of its repository here.
    git(data_dir, "init", "-q")
    (data_dir / ".github" / "workflows").mkdir(parents=True)
    (data_dir / ".github" / "workflows" / "check.yml").write_text("on: push\n")
    (data_dir / ".editorconfig").write_text("root = true\n")
    assert (data_dir / ".gitignore").is_file()
    assert (data_dir / ".gitattributes").is_file()
    (data_dir / ".locks").mkdir(exist_ok=True)
    status, out = check(capsys, "--dir", "data", "--strict")
    assert (status, out) == (0, ["data: 3 documents in 2 briefs, no problems"])
    status, out = check(
        capsys,
        "--dir",
        "data",
        "--strict",
        "data/.gitignore",
        "data/.gitattributes",
        "data/.github/workflows/check.yml",
        "data/strategystore.json",
    )
    assert (status, out) == (0, ["data: 0 documents in 0 briefs (of 4 paths named), no problems"])


def test_notes_fail_the_check_only_when_strict(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (data_dir / "acme" / "1.json.orig").write_text("{}")
    status, out = check(capsys, "--dir", "data")
    assert status == 0
    assert out[-1] == "data: 3 documents in 2 briefs, no problems (1 note)"
    status, out = check(capsys, "--dir", "data", "--strict")
    assert status == 1
    assert out[-1] == "data: 3 documents in 2 briefs, no problems; 1 note, which --strict refuses"
    status, out = check(capsys, "--dir", "data", "--strict", "data/acme/1.json")
    assert status == 0


def test_an_approved_version_edited_by_hand_is_a_problem(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    FileStore(data_dir).approve("acme", 1)
    path = data_dir / "acme" / "1.json"
    path.write_text(path.read_text().replace("Grow **fast**.", "Grow **faster**."))
    for paths in ((), ("data/acme/1.json",)):
        status, out = check(capsys, "--dir", "data", *paths)
        assert status == 1
        assert out[0].startswith("data/acme/1.json: ")
        assert "approved content changed after it was sealed" in out[0]


def test_a_format_1_marker_is_a_problem_that_names_migrate(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (data_dir / "strategystore.json").write_text('{"format": 1}\n')
    (data_dir / "acme" / "1.json").write_text("{")
    for paths in ((), ("data/acme/1.json",)):
        status, out = check(capsys, "--dir", "data", *paths)
        assert status == 1
        [finding, summary] = out
        assert finding.startswith("data/strategystore.json: format 1 is older")
        assert "strategystore migrate" in finding
        assert summary.endswith("; 1 problem")


# -- the pre-commit hooks -----------------------------------------------------------


def _yaml_scalar(text: str) -> object:
    """A value of the small YAML subset the hooks file is written in; anything else fails."""
    if len(text) >= 2 and text.startswith("'") and text.endswith("'"):
        return text[1:-1].replace("''", "'")
    if text.startswith("[") and text.endswith("]"):
        inner = text[1:-1].strip()
        return [str(_yaml_scalar(item.strip())) for item in inner.split(",")] if inner else []
    if text in ("true", "false"):
        return text == "true"
    plain = text and text[0] not in "'\"[]{}#&*!|>%@`,?:-" and ": " not in text
    assert plain and " #" not in text, f"unsupported YAML: {text!r}"
    return text


def load_hooks() -> dict[str, dict[str, object]]:
    """``.pre-commit-hooks.yaml``: each hook's settings, by id."""
    hooks: list[dict[str, object]] = []
    for line in (REPO / ".pre-commit-hooks.yaml").read_text().splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        found = re.fullmatch(r"(- |  )([a-z_]+): (.*)", line)
        assert found is not None, f"unsupported YAML line: {line!r}"
        if found.group(1) == "- ":
            hooks.append({})
        hooks[-1][found.group(2)] = _yaml_scalar(found.group(3))
    return {str(hook["id"]): hook for hook in hooks}


def _tags(path: Path) -> set[str]:
    """The file-type tags pre-commit (identify) gives a path, as far as hooks here ask."""
    if path.is_symlink():
        return {"symlink"}
    return {"directory"} if path.is_dir() else {"file"}


def run_hook(
    hook: dict[str, object], repo: Path, user_args: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """Run ``hook`` on the staged files of ``repo`` as pre-commit does."""
    assert hook["language"] == "python"
    entry = shlex.split(str(hook["entry"]))
    assert entry[0] == "strategystore"  # the console script is `python -m strategystore`
    if hook["pass_filenames"] is False:
        assert hook["always_run"] is True
        return run_module(*entry[1:], *_strings(hook, "args", []), *user_args, cwd=repo)
    staged = git(
        repo, "diff", "--staged", "--name-only", "--no-ext-diff", "-z", "--diff-filter=ACMRTUXB"
    ).split("\0")
    include = re.compile(str(hook.get("files", "")))
    exclude = re.compile(str(hook.get("exclude", "^$")))
    types = set(_strings(hook, "types", ["file"]))
    types_or = set(_strings(hook, "types_or", []))
    files = []
    for name in filter(None, staged):
        if not include.search(name) or exclude.search(name):
            continue
        if not os.path.lexists(repo / name):
            continue
        tags = _tags(repo / name)
        if tags >= types and (not types_or or tags & types_or):
            files.append(name)
    args = [*entry[1:], *_strings(hook, "args", []), *user_args, *files]
    if not files:
        return subprocess.CompletedProcess(args, 0, "(no files to check) Skipped\n", "")
    return run_module(*args, cwd=repo)


def _strings(hook: dict[str, object], key: str, default: list[str]) -> list[str]:
    value = hook.get(key, default)
    assert isinstance(value, list)
    return [str(item) for item in value]


@pytest.fixture
def hook_repo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A repository with ``strategy-data`` (acme 1 approved, acme 2 draft) and a program."""
    repo = init_repo(tmp_path / "repo", monkeypatch)
    store = FileStore(repo / "strategy-data")
    store.create(make_doc("acme", 1))
    store.approve("acme", 1)
    store.create(make_doc("acme", 2))
    (repo / "app.py").write_text("print('hello')\n")
    commit_all(repo, "start")
    return repo


def test_the_hooks_file_ships_a_check_a_strict_check_and_a_sealed_check() -> None:
    hooks = load_hooks()
    assert set(hooks) == {
        "strategystore-check",
        "strategystore-check-strict",
        "strategystore-check-sealed",
    }
    assert hooks["strategystore-check"]["entry"] == "strategystore check"
    assert hooks["strategystore-check-strict"]["entry"] == "strategystore check --strict"
    assert hooks["strategystore-check-sealed"]["entry"] == "strategystore check --against HEAD"


def staged_hooks() -> list[dict[str, object]]:
    """The hooks that check the staged files."""
    return [hook for hook in load_hooks().values() if hook["pass_filenames"] is True]


def test_only_the_sealed_hook_refuses_a_commit_that_deletes_an_approved_version(
    hook_repo: Path,
) -> None:
    git(hook_repo, "rm", "-q", "strategy-data/acme/1.json")
    for hook in staged_hooks():
        assert run_hook(hook, hook_repo).returncode == 0  # pre-commit passes no deleted file
    sealed = run_hook(load_hooks()["strategystore-check-sealed"], hook_repo)
    assert sealed.returncode == 1
    assert "was approved at HEAD and has been deleted" in sealed.stdout


def test_the_hook_passes_a_commit_of_good_documents(hook_repo: Path) -> None:
    store = FileStore(hook_repo / "strategy-data")
    store.create(make_doc("acme", 3))
    store.save(make_doc("acme", 2, metadata={"model": "gpt", "score": 0.75}))
    (hook_repo / "app.py").write_text("{ not a document at all")
    git(hook_repo, "add", "-A")
    for hook in staged_hooks():
        result = run_hook(hook, hook_repo)
        assert result.returncode == 0, result.stdout + result.stderr
        assert result.stdout.splitlines()[-1].startswith("strategy-data: 2 documents in 1 brief")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ("conflict", "git merge-conflict marker"),
        ("misnamed", "rename it to 3.json"),
        ("edited", "approved content changed after it was sealed"),
        ("linked", "symbolic link"),
    ],
)
def test_the_hook_refuses_a_commit_with_a_problem(
    hook_repo: Path, change: str, message: str
) -> None:
    data = hook_repo / "strategy-data"
    if change == "conflict":
        (data / "acme" / "2.json").write_text("<<<<<<< HEAD\n{}\n=======\n{}\n>>>>>>> other\n")
    elif change == "misnamed":
        (data / "acme" / "03.json").write_bytes(make_doc("acme", 3).to_json_bytes())
    elif change == "edited":
        doc = json.loads((data / "acme" / "1.json").read_text())
        doc["sections"][0]["body"] = "Grow slowly."
        (data / "acme" / "1.json").write_text(json.dumps(doc, indent=2) + "\n")
    else:
        (data / "beta").symlink_to(data / "acme")
    git(hook_repo, "add", "-A")
    for hook in staged_hooks():
        result = run_hook(hook, hook_repo)
        assert result.returncode == 1, result.stdout + result.stderr
        assert message in result.stdout
        assert result.stderr == ""


def test_only_the_strict_hook_refuses_a_leftover(hook_repo: Path) -> None:
    (hook_repo / "strategy-data" / "acme" / "2.json.orig").write_text("{}")
    git(hook_repo, "add", "-A")
    hooks = load_hooks()
    assert run_hook(hooks["strategystore-check"], hook_repo).returncode == 0
    strict = run_hook(hooks["strategystore-check-strict"], hook_repo)
    assert strict.returncode == 1
    assert "a merge leftover (from git mergetool)" in strict.stdout


def test_the_hook_finds_another_data_directory_with_dir_in_its_args(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = init_repo(tmp_path / "repo", monkeypatch)
    FileStore(repo / "content" / "strategies").create(make_doc("acme", 1))
    commit_all(repo)
    (repo / "content" / "strategies" / "acme" / "1.json").write_text("{")
    git(repo, "add", "-A")
    hook = load_hooks()["strategystore-check"]
    result = run_hook(hook, repo, ("--dir", "content/strategies"))
    assert result.returncode == 1
    assert "content/strategies/acme/1.json:1: not valid JSON" in result.stdout


def test_the_sealed_hook_lets_the_first_commit_through(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = init_repo(tmp_path / "repo", monkeypatch)
    FileStore(repo / "strategy-data").create(make_doc("acme", 1))
    git(repo, "add", "-A")
    result = run_hook(load_hooks()["strategystore-check-sealed"], repo)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "note: there is no commit yet: nothing to compare with HEAD" in result.stdout
