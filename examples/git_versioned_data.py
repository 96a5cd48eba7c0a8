"""A data directory inside a git repository: a commit per change, and a merge conflict.

Every document is a small, stable JSON file, so git shows exactly what each
change did. When two branches edit the same draft, git leaves conflict
markers in the file; the store then refuses to read it (``CorruptDocumentError``)
and ``strategystore check`` names the file and the line, until someone
resolves it. The repository is made in a temporary directory and removed at
the end. Needs ``git`` on the PATH.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

from strategystore import CorruptDocumentError, FileStore, Section, StrategyDocument
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
    """A copy of ``doc`` whose section ``key`` has a new body."""
    sections = [
        {**s.model_dump(), "body": body} if s.key == key else s.model_dump() for s in doc.sections
    ]
    return StrategyDocument.model_validate({**doc.model_dump(), "sections": sections})


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

        store = FileStore(repo / "strategy-data")
        commit(repo, "Start a strategy data directory")

        first = store.create_next(
            BRIEF,
            [
                Section(key="audience", title="Audience", body="Office workers who hate Mondays."),
                Section(key="message", title="Key message", body="Mondays, but better."),
            ],
            {"author": "generator"},
        )
        commit(repo, f"Draft v{first.version} of {BRIEF}")
        revised = with_body(first, "message", "Make Monday your favourite day.")
        store.update(revised, expected=first)
        commit(repo, "Sharpen the key message")
        store.approve(BRIEF, first.version)
        commit(repo, f"Approve v{first.version}")

        path = f"strategy-data/{BRIEF}/1.json"
        print(f"\n$ git log --oneline -- {path}")
        print(git(repo, "log", "--format=%h %s", "--", path).rstrip())
        print(f"\n$ git diff HEAD~1 -- {path}   (approval changes only what it changes)")
        print(git(repo, "diff", "HEAD~1", "--", path).rstrip())

        # Two people edit the same draft on two branches.
        draft = store.create_next(BRIEF, revised.sections, {"author": "generator"})
        commit(repo, f"Draft v{draft.version}")
        git(repo, "checkout", "--quiet", "-b", "alice")
        store.save(with_body(draft, "audience", "Remote teams across Europe."))
        commit(repo, "Alice: target remote teams")
        git(repo, "checkout", "--quiet", "main")
        store.save(with_body(draft, "audience", "Open-plan offices in London."))
        commit(repo, "Bob: target open-plan offices")
        print("\n$ git merge alice")
        print(git(repo, "merge", "alice", check=False).rstrip())

        try:
            store.get_strategy(BRIEF, draft.version)
        except CorruptDocumentError as exc:
            print(f"\nthe store refuses the conflicted file:\n  {exc}")

        print("\n$ strategystore check")
        status = strategystore_cli(["--dir", str(repo / "strategy-data"), "check"])
        print(f"(exit status {status})")

        # Resolve by taking Alice's side, as one would in an editor.
        conflicted = f"strategy-data/{BRIEF}/{draft.version}.json"
        git(repo, "checkout", "--theirs", "--", conflicted)
        commit(repo, "Merge alice: keep the remote-teams audience")
        resolved = store.get_strategy(BRIEF, draft.version)
        assert resolved is not None
        audience = resolved.section("audience")
        assert audience is not None
        print(f"\nresolved: audience is now {audience.body!r}")
        print("$ strategystore check")
        return strategystore_cli(["--dir", str(repo / "strategy-data"), "check"])


if __name__ == "__main__":
    raise SystemExit(main())
