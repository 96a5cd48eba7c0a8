"""A data directory inside a git repository, from `git init` to a resolved conflict and a CI gate.

Every document is a small, stable JSON file, so git shows exactly what each
change did. The data directory's `.gitattributes` tells git never to merge
two versions of a document line by line, so two branches that both touched a
document always stop with a conflict, and `strategystore resolve` settles it
by document rules: drafts both sides added are renumbered, drafts both sides
edited are merged section by section. Then `strategystore check --against
main` is the gate a CI job runs on a pull request: a branch that edits an
approved version by hand, or deletes it, fails it. The repository is made in
a temporary directory and removed at the end. Needs `git` on the PATH.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from strategystore import FileStore, Section, StrategyDocument
from strategystore.cli import main as strategystore_cli

BRIEF = "initech-relaunch"


def git(repo: Path, *args: str, check: bool = True) -> str:
    """Run git in ``repo`` and return what it printed."""
    result = subprocess.run(["git", *args], cwd=repo, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise RuntimeError(f"git {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout + result.stderr


def commit(repo: Path, message: str) -> None:
    git(repo, "add", "--all")
    git(repo, "commit", "--quiet", "-m", message)
    print(f"committed: {message}")


def with_body(doc: StrategyDocument, key: str, body: str) -> StrategyDocument:
    """A copy of the draft ``doc`` whose section ``key`` has a new body."""
    sections = [s.model_copy(update={"body": body}) if s.key == key else s for s in doc.sections]
    return doc.model_copy(update={"sections": sections})


def run(data: Path, *args: str) -> int:
    """Run a strategystore command on ``data``, showing it as typed."""
    print(f"\n$ strategystore {' '.join(args)}")
    status = strategystore_cli(["--dir", str(data), *args])
    print(f"(exit status {status})")
    return status


def main() -> int:
    if shutil.which("git") is None:
        print("this example needs git on the PATH")
        return 0
    with tempfile.TemporaryDirectory() as tmp:
        repo = Path(tmp) / "marketing"
        repo.mkdir()
        git(repo, "-c", "init.defaultBranch=main", "init", "--quiet")
        git(repo, "config", "user.name", "Strategy Example")
        git(repo, "config", "user.email", "strategy@example.com")
        git(repo, "config", "commit.gpgsign", "false")

        data = repo / "strategy-data"
        store = FileStore(data)  # writes .gitignore and .gitattributes too
        commit(repo, "Start a strategy data directory")

        first = store.create_next(
            BRIEF,
            [
                Section(key="audience", title="Audience", body="Office workers who hate Mondays."),
                Section(key="message", title="Key message", body="Mondays, but better."),
            ],
            {"author": "generator"},
        )
        store.approve(BRIEF, first.version)
        draft = store.create_next(BRIEF, first.sections, {"author": "generator"})
        commit(repo, f"Approve v{first.version}, start v{draft.version}")

        # Two people work on two branches: each edits a different section of
        # the draft, and each adds a version of their own.
        git(repo, "checkout", "--quiet", "-b", "alice")
        store.save(with_body(draft, "audience", "Remote teams across Europe."))
        store.create_next(BRIEF, draft.sections, {"author": "alice"})
        commit(repo, "Alice: target remote teams, and try a variant")
        git(repo, "checkout", "--quiet", "main")
        store.save(with_body(draft, "message", "Make Monday your favourite day."))
        store.create_next(BRIEF, draft.sections, {"author": "bob"})
        commit(repo, "Bob: sharpen the message, and try a variant")

        print("\n$ git merge alice")
        print(git(repo, "merge", "alice", check=False).rstrip())
        if run(data, "resolve") != 0:
            return 1
        git(repo, "commit", "--quiet", "--no-edit")
        print("committed: the merge")
        merged = store.get_strategy(BRIEF, draft.version)
        assert merged is not None
        print(f"\nv{draft.version} now has both edits:")
        for section in merged.sections:
            print(f"  {section.key}: {section.body}")
        print(f"versions: {store.list_version_numbers(BRIEF)}")

        # A branch that deletes the approved version: the gate a CI job runs
        # on each pull request refuses it.
        git(repo, "checkout", "--quiet", "-b", "cleanup")
        (data / BRIEF / f"{first.version}.json").unlink()
        commit(repo, "Remove the old version")
        if run(data, "check", "--against", "main") != 1:
            return 1
        git(repo, "checkout", "--quiet", "main")
        return run(data, "check", "--against", "main")


if __name__ == "__main__":
    raise SystemExit(main())
