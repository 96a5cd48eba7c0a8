"""Workers on several machines share one PostgreSQL table; a data directory moves there and back.

Run it with a server to use (any database you may create a table in)::

    STRATEGYSTORE_DSN=postgresql://USER@HOST/DATABASE python examples/workers_on_postgres.py

It copies a small data directory into a table of its own, starts four
processes that each open their own ``PostgresStore`` (as workers on four
machines would) and add versions to the same briefs at once, approves one,
copies the table back into a directory that ``check`` passes, and drops its
table at the end. Everything else lives in a temporary directory.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import tempfile
import uuid
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import psycopg

from strategystore import FileStore, PostgresStore, Section, Status
from strategystore.cli import main as strategystore_cli

BRIEFS = ("acme-q3-launch", "globex-rebrand")
MACHINES = 4
VERSIONS_PER_MACHINE = 10


def work(dsn: str, table: str, machine: int) -> list[tuple[str, int]]:
    """One worker: its own store and connections; add versions to both briefs."""
    keys = []
    with PostgresStore(dsn, table=table, create=False) as store:
        for attempt in range(VERSIONS_PER_MACHINE):
            brief = BRIEFS[attempt % len(BRIEFS)]
            doc = store.create_next(
                brief,
                [Section(key="idea", title="Idea", body=f"Machine {machine}, idea {attempt}.")],
                {"machine": machine},
            )
            keys.append(doc.key)
    return keys


def with_table(dsn: str, table: str) -> str:
    """The command line's form of a store: the URL naming its table."""
    return f"{dsn}{'&' if '?' in dsn else '?'}table={table}"


def main() -> int:
    dsn = os.environ.get("STRATEGYSTORE_DSN")
    if not dsn or not dsn.startswith(("postgresql://", "postgres://")):
        print("set STRATEGYSTORE_DSN to a postgresql:// URL to run this example", file=sys.stderr)
        return 2
    table = f"strategy_example_{uuid.uuid4().hex[:8]}"
    url = with_table(dsn, table)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            here = Path(tmp) / "strategy-data"
            local = FileStore(here)
            for brief in BRIEFS:
                local.create_next(brief, [Section(key="idea", title="Idea", body="First idea.")])
            print(f"$ strategystore copy {here.name} postgresql://…?table={table}")
            strategystore_cli(["copy", str(here), url])

            # "spawn" starts clean interpreters, as programs on other machines would be.
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=MACHINES, mp_context=context) as pool:
                args = ([dsn] * MACHINES, [table] * MACHINES, range(MACHINES))
                results = list(pool.map(work, *args))
            keys = [key for machine_keys in results for key in machine_keys]
            print(f"{MACHINES} machines stored {len(keys)} versions")
            assert len(set(keys)) == len(keys), "two machines got the same version"

            with PostgresStore(dsn, table=table) as shared:
                for brief in BRIEFS:
                    versions = shared.list_version_numbers(brief)
                    expected = list(range(len(versions), 0, -1))
                    assert versions == expected, f"{brief}: not contiguous: {versions}"
                    machines = Counter(
                        doc.metadata.get("machine", "copied")
                        for doc in shared.list_versions_by_brief(brief)
                    )
                    shares = ", ".join(f"{m}: {n}" for m, n in sorted(machines.items(), key=str))
                    print(f"{brief}: versions 1..{len(versions)}, none missing or doubled")
                    print(f"  by machine: {shares}")
                approved = shared.approve(BRIEFS[0], 3)
                latest = shared.get_latest(BRIEFS[0], status=Status.APPROVED)
                assert latest == approved
                print(f"approved version {approved.version} of {BRIEFS[0]}, sealed")

            back = Path(tmp) / "back"
            print(f"\n$ strategystore copy postgresql://…?table={table} {back.name}")
            strategystore_cli(["copy", url, str(back)])
            print(f"$ strategystore --dir {back.name} check")
            return strategystore_cli(["--dir", str(back), "check"])
    finally:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"DROP TABLE IF EXISTS {table}")


if __name__ == "__main__":
    raise SystemExit(main())
