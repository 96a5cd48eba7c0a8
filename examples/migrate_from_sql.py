"""Move strategies off the SQL ``strategy_document`` table with ``strategystore import-sql``.

Builds a small SQLite database the way the ORM wrote it (naive UTC
timestamps, sections in two shapes, an enum stored by name), then copies it
into a data directory. One row cannot be mapped and is reported by its id;
after it is fixed in SQL, a second run writes only that row and skips the
rest, so the migration can be repeated until it is clean. Everything happens
in a temporary directory.
"""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import tempfile
from pathlib import Path

# The original table, as the application's ORM created it.
SCHEMA = """
CREATE TABLE strategy_document (
    id INTEGER PRIMARY KEY,
    brief_id VARCHAR(100) NOT NULL,
    version INTEGER NOT NULL,
    status VARCHAR(20) NOT NULL,
    created_at DATETIME NOT NULL,
    updated_at DATETIME,
    sections TEXT,
    metadata TEXT,
    UNIQUE (brief_id, version)
)
"""

ROWS = [
    (
        1,
        "acme-q3-launch",
        1,
        "APPROVED",
        "2024-05-02 09:15:00",
        "2024-05-03 16:40:12.482913",
        json.dumps(
            [
                {"key": "audience", "title": "Audience", "body": "Urban cyclists, 25-40."},
                {"key": "message", "title": "Key message", "body": "Commute faster."},
            ]
        ),
        json.dumps({"model": "gpt-4", "temperature": 0.7}),
    ),
    (
        2,
        "acme-q3-launch",
        2,
        "draft",
        "2024-05-06T08:00:00",
        None,
        # An older generator wrote sections as an object keyed by section.
        json.dumps(
            {
                "audience": "Urban cyclists and e-bike owners, 25-45.",
                "message": {"title": "Key message", "content": "Commute faster, arrive fresh."},
            }
        ),
        json.dumps({"model": "gpt-4o"}),
    ),
    (
        3,
        "globex-rebrand",
        1,
        "archived",  # a status the document model does not have
        "2024-04-11 10:00:00",
        "2024-04-11 10:00:00",
        json.dumps([{"id": "tone", "title": "Tone", "content": "Confident, warm."}]),
        "{}",
    ),
]


def strategystore(workdir: Path, *args: str) -> int:
    """Run the real command line in ``workdir``, show it and its output, return its status."""
    print(f"$ strategystore {' '.join(args)}")
    command = [sys.executable, "-m", "strategystore", *args]
    result = subprocess.run(command, cwd=workdir, capture_output=True, text=True, check=False)
    for line in (result.stdout + result.stderr).splitlines():
        print(f"  {line}".rstrip())
    print(f"  (exit status {result.returncode})\n")
    return result.returncode


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        database = workdir / "legacy.sqlite"
        with sqlite3.connect(database) as connection:
            connection.execute(SCHEMA)
            connection.executemany(
                "INSERT INTO strategy_document VALUES (?, ?, ?, ?, ?, ?, ?, ?)", ROWS
            )
        connection.close()
        print(f"built {database.name} with {len(ROWS)} rows\n")

        # The command line's data directory defaults to ./strategy-data.
        strategystore(workdir, "init")
        strategystore(workdir, "import-sql", database.name)

        print("fix the unmappable row in SQL, then run the same command again:\n")
        with sqlite3.connect(database) as connection:
            connection.execute("UPDATE strategy_document SET status = 'withdrawn' WHERE id = 3")
        connection.close()
        status = strategystore(workdir, "import-sql", database.name)

        strategystore(workdir, "briefs")
        strategystore(workdir, "show", "acme-q3-launch", "2")
        strategystore(workdir, "check")
        return status


if __name__ == "__main__":
    raise SystemExit(main())
