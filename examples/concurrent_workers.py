"""Several processes add versions to the same briefs at once; no two get the same number.

Each worker process opens its own ``FileStore`` on one data directory and calls
``create_next`` in a loop. The brief's lock, held across processes, makes every
allocation atomic, so the versions come out distinct and contiguous. The data
goes to a temporary directory that is removed at the end.
"""

from __future__ import annotations

import multiprocessing
import tempfile
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from strategystore import FileStore, Section
from strategystore.cli import main as strategystore_cli

BRIEFS = ("acme-q3-launch", "globex-rebrand")
WORKERS = 4
VERSIONS_PER_WORKER = 10


def work(data_dir: str, worker: int) -> list[tuple[str, int]]:
    """One worker process: add versions to both briefs, return the keys it got."""
    store = FileStore(data_dir)
    keys = []
    for attempt in range(VERSIONS_PER_WORKER):
        brief = BRIEFS[attempt % len(BRIEFS)]
        doc = store.create_next(
            brief,
            [Section(key="idea", title="Idea", body=f"Worker {worker}, attempt {attempt}.")],
            {"worker": worker},
        )
        keys.append(doc.key)
    return keys


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "strategy-data"
        FileStore(data_dir)  # initialise once, before the workers start

        # "spawn" starts clean interpreters, as separate programs would be.
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=WORKERS, mp_context=context) as pool:
            results = list(pool.map(work, [str(data_dir)] * WORKERS, range(WORKERS)))

        keys = [key for worker_keys in results for key in worker_keys]
        print(f"{WORKERS} processes stored {len(keys)} versions")
        assert len(set(keys)) == len(keys), "two workers got the same version"

        store = FileStore(data_dir)
        for brief in BRIEFS:
            versions = store.list_version_numbers(brief)
            expected = list(range(len(versions), 0, -1))
            assert versions == expected, f"{brief}: versions are not contiguous: {versions}"
            by_worker = Counter(
                doc.metadata["worker"] for doc in store.list_versions_by_brief(brief)
            )
            shares = ", ".join(f"worker {w}: {n}" for w, n in sorted(by_worker.items()))
            print(f"{brief}: versions 1..{len(versions)}, none missing or doubled ({shares})")

        print("\n$ strategystore check")
        return strategystore_cli(["--dir", str(data_dir), "check"])


if __name__ == "__main__":
    raise SystemExit(main())
