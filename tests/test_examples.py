"""Every script in ``examples/`` runs, from an empty directory, and shows what it is about."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

#: What each example must print to show it did its job; an example not listed
#: here must still succeed and print something.
EXPECTED = {
    "quickstart.py": ["approved"],
    "approval_workflow.py": ["rejected v1", "refused: cannot change", "latest approved is now v2"],
    "concurrent_workers.py": ["none missing or doubled", "no problems"],
    "git_versioned_data.py": [
        "CONFLICT (add/add)",
        "CONFLICT (content)",
        "renumbered",
        "merged ours",
        "has been deleted",
        "no problems",
    ],
    "migrate_from_sql.py": ["cannot map", "1 written, 2 skipped, 0 refused", "no problems"],
    "testing_with_memory_store.py": ["passed (MemoryStore)", "approved"],
    "workers_on_postgres.py": [
        "4 machines stored 40 versions",
        "versions 1..21, none missing or doubled",
        "approved version 3",
        "no problems",
    ],
}


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.py")), ids=lambda path: path.name)
def test_the_example_runs_in_an_empty_directory(
    example: Path, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    if example.name == "git_versioned_data.py" and shutil.which("git") is None:
        pytest.skip("this example needs git on the PATH")
    workdir = tmp_path / "work"
    workdir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATEGYSTORE_")}
    if example.name == "workers_on_postgres.py":
        env["STRATEGYSTORE_DSN"] = request.getfixturevalue("pg_dsn")
    # Examples that use a temporary directory make it here, so nothing outlives the test.
    env["TMPDIR"] = str(tmp_path)
    result = subprocess.run(
        [sys.executable, str(example)],
        cwd=workdir,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout.strip()
    for expected in EXPECTED.get(example.name, []):
        assert expected in result.stdout, f"{example.name} did not print {expected!r}"


def test_every_expected_output_belongs_to_an_existing_example() -> None:
    present = {path.name for path in EXAMPLES.glob("*.py")}
    assert set(EXPECTED) - {"quickstart.py"} <= present
