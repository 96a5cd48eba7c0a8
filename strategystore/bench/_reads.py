"""The read scenarios: ``get_strategy`` and the listings of one brief, against their references."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from strategystore.bench._contenders import (
    Sqlite,
    raw_read,
    raw_read_validated,
    raw_version_numbers,
    raw_versions,
)
from strategystore.bench._context import Context, settle
from strategystore.bench._document import BRIEF_VERSIONS, document
from strategystore.bench._measure import Contender, timed
from strategystore.files import FileStore

__all__ = ["ReadSet", "measure_reads", "prepare_reads"]


@dataclass
class ReadSet:
    """The documents the read scenarios use, in the store and in SQLite alike."""

    store: FileStore
    sqlite: Sqlite
    keys: list[tuple[str, int]]
    list_brief: str
    written_at: float


def prepare_reads(ctx: Context) -> ReadSet:
    """Write the documents of the reads first, so that they have settled when measured."""
    ctx.progress.show("preparing")
    store = FileStore(ctx.root / "reads", durable=False)
    sqlite = Sqlite(ctx.root / "reads.sqlite3", durable=False)
    ctx.cleanup.callback(sqlite.close)
    keys = [("read-set", v) for v in range(1, 51)]
    list_brief = "list-set"
    docs = [document(b, v) for b, v in keys]
    docs += [document(list_brief, v) for v in range(1, BRIEF_VERSIONS + 1)]
    for doc in docs:
        store.save(doc)
        sqlite.insert(doc)
    return ReadSet(store, sqlite, keys, list_brief, time.monotonic())


def measure_reads(ctx: Context, reads: ReadSet) -> None:
    """``get_strategy``, ``list_version_numbers`` and ``list_versions_by_brief``, warm."""
    settle(reads.written_at)
    store, sql = reads.store, reads.sqlite
    keys = reads.keys
    paths = [str(store.document_path(b, v)) for b, v in keys]
    count = ctx.settings.ops(2_000, 200)
    for brief, version in keys:  # warm every cache, the store's included
        store.get_strategy(brief, version)

    def cycle(fn: Callable[[int], object]) -> Contender:
        def contender(r: int) -> float:
            start = time.perf_counter()
            for i in range(count):
                fn(i % len(keys))
            return (time.perf_counter() - start) / count

        return contender

    st, raw, raw_valid, sq = ctx.interleave(
        "get_strategy",
        [
            cycle(lambda i: store.get_strategy(*keys[i])),
            cycle(lambda i: raw_read(paths[i])),
            cycle(lambda i: raw_read_validated(paths[i])),
            cycle(lambda i: sql.get(*keys[i])),
        ],
    )
    ctx.compare(
        "get_vs_sqlite",
        "get_strategy, warm / SQLite SELECT + validate",
        st,
        sq,
        target=(">=", 1.0),
    )
    ctx.compare(
        "get_vs_raw",
        "get_strategy / raw read + json.loads",
        st,
        raw,
        target=(">=", 0.70),
    )
    ctx.compare(
        "get_vs_raw_validated",
        "get_strategy / raw read + model_validate_json",
        st,
        raw_valid,
    )

    brief = reads.list_brief
    brief_path = str(store.data_dir / brief)
    lists = ctx.settings.ops(2_000, 200)
    docs = ctx.settings.ops(300, 30)
    st, raw, sq = ctx.interleave(
        "list_version_numbers",
        [
            lambda r: timed(lambda: store.list_version_numbers(brief), lists),
            lambda r: timed(lambda: raw_version_numbers(brief_path), lists),
            lambda r: timed(lambda: sql.version_numbers(brief), lists),
        ],
    )
    ctx.compare(
        "list_version_numbers_vs_raw",
        "list_version_numbers / raw listdir + parse",
        st,
        raw,
        target=(">=", 0.80),
    )
    ctx.compare(
        "list_version_numbers_vs_sqlite",
        "list_version_numbers / SQLite versions by index",
        st,
        sq,
    )
    st, raw, sq = ctx.interleave(
        "list_versions_by_brief",
        [
            lambda r: timed(lambda: store.list_versions_by_brief(brief), docs),
            lambda r: timed(lambda: raw_versions(brief_path), docs),
            lambda r: timed(lambda: sql.versions(brief), docs),
        ],
    )
    ctx.compare(
        "list_versions_by_brief_vs_raw",
        f"list_versions_by_brief ({BRIEF_VERSIONS}) / raw listdir + read + validate",
        st,
        raw,
    )
    ctx.compare(
        "list_versions_by_brief_vs_sqlite",
        f"list_versions_by_brief ({BRIEF_VERSIONS}) / SQLite by index + validate",
        st,
        sq,
    )
