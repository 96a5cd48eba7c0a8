"""``strategystore bench --store postgresql://…``: ``PostgresStore`` against hand-written SQL.

One run times ``get_strategy``, ``create_next`` and a bulk load of documents
through ``PostgresStore`` and, round by round in a rotating order, the same
SQL written by hand with psycopg on one connection (the floor, see
``_pg_floor``), and reports the ratio of the store's rate to the floor's.
Everything happens in tables of the run's own (``strategystore_bench_<random>_…``),
created with the store's own layout and dropped afterwards; the table the
URL may name is never touched. The server's durability settings are part of
the report: with ``fsync`` or ``synchronous_commit`` off a commit costs
almost nothing, and the figures say more about round trips than about disks.
"""

from __future__ import annotations

import argparse
import os
import platform
import secrets
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pydantic
from psycopg import sql

import strategystore
from strategystore._dsn import split_table
from strategystore._render import Progress
from strategystore.bench._context import Context
from strategystore.bench._document import BRIEF_VERSIONS, METADATA, TEMPLATE, document
from strategystore.bench._measure import Contender, percentile_spread
from strategystore.bench._pg_floor import RawPostgres, lock_key, row
from strategystore.bench._report import render_figures, render_verdict, summarize, wrap
from strategystore.bench._run import emit
from strategystore.bench._settings import Settings
from strategystore.postgres import PostgresStore

__all__ = ["SERVER_SETTINGS", "run"]

#: The server settings the report states: what a commit costs depends on them.
SERVER_SETTINGS = (
    "fsync",
    "synchronous_commit",
    "full_page_writes",
    "wal_sync_method",
    "shared_buffers",
)


def run(args: argparse.Namespace, dsn: str) -> int:
    """Run the benchmark on the PostgreSQL server of ``dsn`` and print the report.

    Args:
        args: options added by ``configure_parser``; ``--quick``, ``--rounds``,
            ``--import-docs``, ``--json``, ``--wide`` and ``--check`` apply.
        dsn: a ``postgresql://`` URL or libpq connection string; a ``table``
            it names is ignored (the run works in tables of its own).

    Returns:
        0, or with ``--check`` 1 when a target was missed.
    """
    settings = Settings.from_args(args)
    conninfo, _ = split_table(dsn)
    progress = Progress(prefix="bench: ", stream=sys.stderr)
    started = time.perf_counter()
    try:
        with tempfile.TemporaryDirectory(prefix="strategystore-bench-") as scratch:
            ctx = Context(settings, Path(scratch), progress)
            with _Tables(conninfo) as tables, ctx.cleanup:
                server = tables.describe_server()
                measure_get(ctx, tables)
                measure_create_next(ctx, tables)
                measure_copy(ctx, tables)
            report = _build_report(ctx, server, time.perf_counter() - started)
    finally:
        progress.clear()
    return emit(report, args, render)


class _Tables:
    """The run's tables on the server, each dropped at the end, and the floor's connection."""

    def __init__(self, conninfo: str) -> None:
        self.conninfo = conninfo
        self.prefix = f"strategystore_bench_{secrets.token_hex(4)}"
        self.raw = RawPostgres(conninfo)
        self._made: list[str] = []

    def __enter__(self) -> _Tables:
        return self

    def __exit__(self, *exc_info: object) -> None:
        try:
            for name in self._made:
                self.drop(name)
        finally:
            self.raw.close()

    def store(self, name: str) -> PostgresStore:
        """A ``PostgresStore`` over a new table of this run (created empty)."""
        table = f"{self.prefix}_{name}"
        self._made.append(table)
        return PostgresStore(self.conninfo, table=table)

    def table(self, name: str) -> str:
        """A new, empty table of this run, laid out as a store makes its table."""
        with self.store(name) as made:
            return made.table

    def drop(self, table: str) -> None:
        """Drop one of this run's tables (nothing if it is gone already)."""
        if table in self._made:
            self.raw.conn.execute(sql.SQL("DROP TABLE IF EXISTS {}").format(sql.Identifier(table)))

    @contextmanager
    def fresh(self, name: str) -> Iterator[str]:
        """A new empty table for one round, dropped when the round is over."""
        table = self.table(name)
        try:
            yield table
        finally:
            self.drop(table)

    def describe_server(self) -> dict[str, Any]:
        """Where the server is, its version and the settings that decide what a commit costs."""
        with self.store("probe") as probe:
            where = {"host": probe.host, "database": probe.database}
        names = ("server_version", *SERVER_SETTINGS)
        values = self.raw.conn.execute(
            sql.SQL("SELECT {}").format(
                sql.SQL(", ").join(
                    sql.SQL("current_setting({})").format(sql.Literal(n)) for n in names
                )
            )
        ).fetchone()
        found = dict(zip(names, values or (), strict=True))
        durable = found["fsync"] == "on" and found["synchronous_commit"] != "off"
        return {**where, **found, "durable": durable}


def _cycle(
    count: int, keys: list[tuple[str, int]], read: Callable[[str, int], object]
) -> Contender:
    def contender(r: int) -> float:
        start = time.perf_counter()
        for i in range(count):
            read(*keys[i % len(keys)])
        return (time.perf_counter() - start) / count

    return contender


def measure_get(ctx: Context, tables: _Tables) -> None:
    """``get_strategy`` of stored documents against a raw ``SELECT`` by key."""
    ctx.progress.show("preparing reads")
    store = tables.store("reads")
    ctx.cleanup.callback(store.close)
    keys = [("read-set", v) for v in range(1, 51)]
    store.import_documents(document(b, v) for b, v in keys)
    table, raw = store.table, tables.raw
    for brief, version in keys:  # past psycopg's prepare threshold on both sides
        store.get_strategy(brief, version)
        raw.get(table, brief, version)
        raw.get_validated(table, brief, version)
    count = ctx.settings.ops(2_000, 200)
    st, floor, validated = ctx.interleave(
        "get_strategy",
        [
            _cycle(count, keys, store.get_strategy),
            _cycle(count, keys, lambda b, v: raw.get(table, b, v)),
            _cycle(count, keys, lambda b, v: raw.get_validated(table, b, v)),
        ],
    )
    ctx.compare(
        "pg_get_vs_raw",
        "get_strategy / raw SELECT data by key + json.loads",
        st,
        floor,
        target=(">=", 0.8),
    )
    ctx.compare(
        "pg_get_vs_raw_validated",
        "get_strategy / raw SELECT data by key + model_validate_json",
        st,
        validated,
    )


def measure_create_next(ctx: Context, tables: _Tables) -> None:
    """``create_next`` against BEGIN, advisory lock, max(version), INSERT, COMMIT by hand.

    Each round and each side works on a brief of its own, new at the start of
    the round, so both find the same number of versions before them.
    """
    store = tables.store("create_next")
    ctx.cleanup.callback(store.close)
    table, raw = store.table, tables.raw
    count = ctx.settings.ops(300, 50)
    sections = [s.model_dump() for s in TEMPLATE.sections]
    # A few transactions on each side first, past psycopg's prepare threshold.
    warm_rows = [row(document("warm-raw", v)) for v in range(1, 11)]
    for _ in warm_rows:
        store.create_next("warm-store", sections, METADATA)
        raw.create_next(table, lock_key(table, "warm-raw"), "warm-raw", warm_rows)

    def run_store(r: int) -> float:
        brief = f"store-{r}"
        start = time.perf_counter()
        for _ in range(count):
            store.create_next(brief, sections, METADATA)
        return (time.perf_counter() - start) / count

    def run_raw(r: int) -> float:
        brief = f"raw-{r}"
        rows = [row(document(brief, v)) for v in range(1, count + 1)]
        key = lock_key(table, brief)
        start = time.perf_counter()
        for _ in range(count):
            raw.create_next(table, key, brief, rows)
        return (time.perf_counter() - start) / count

    st, floor = ctx.interleave("create_next", [run_store, run_raw])
    ctx.compare(
        "pg_create_next_vs_raw",
        "create_next / raw BEGIN + advisory lock + max(version) + INSERT + COMMIT",
        st,
        floor,
        target=(">=", 0.8),
    )


def measure_copy(ctx: Context, tables: _Tables) -> None:
    """``import_documents`` of documents in memory into an empty table, against raw loads.

    The store writes them as its import does (a transaction per batch, each
    brief locked, what is stored read first to skip or refuse); the floor
    inserts the same rows into an empty table of the same layout in one
    transaction, by ``executemany`` and by ``COPY``.
    """
    total = ctx.settings.import_docs
    docs = [document(f"imp{i // BRIEF_VERSIONS:05d}", i % BRIEF_VERSIONS + 1) for i in range(total)]
    rows = [row(doc) for doc in docs]
    raw = tables.raw

    def run_store(r: int) -> float:
        with tables.store(f"copy_store_{r}") as store:
            store.list_briefs()  # the pool's first connection is open before the clock starts
            start = time.perf_counter()
            summary = store.import_documents(docs)
            seconds = time.perf_counter() - start
            table = store.table
        tables.drop(table)
        if summary.written != total:
            raise RuntimeError(f"the import wrote {summary.written} of {total} documents")
        return seconds / total

    def run_raw(how: str) -> Contender:
        load = raw.executemany if how == "executemany" else raw.copy

        def contender(r: int) -> float:
            with tables.fresh(f"copy_{how}_{r}") as table:
                start = time.perf_counter()
                load(table, rows)
                return (time.perf_counter() - start) / total

        return contender

    st, many, copied = ctx.interleave(
        f"copy of {total:,} documents",
        [run_store, run_raw("executemany"), run_raw("copy")],
        at_most=5,
    )
    label = f"copy of {total:,} docs: import_documents / raw executemany, one transaction"
    figure = ctx.compare("pg_copy_vs_executemany", label, st, many, target=(">=", 0.7))
    figure.store += " docs"
    figure.reference += " docs"
    figure = ctx.compare(
        "pg_copy_vs_copy",
        f"copy of {total:,} docs: import_documents / raw COPY FROM STDIN, one transaction",
        st,
        copied,
    )
    figure.store += " docs"
    figure.reference += " docs"


def _build_report(ctx: Context, server: dict[str, Any], seconds: float) -> dict[str, Any]:
    settings = ctx.settings
    return {
        "machine": {
            "platform": platform.platform(),
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "strategystore": strategystore.__version__,
            "pydantic": pydantic.VERSION,
            "psycopg": psycopg.__version__,
            "psycopg_impl": psycopg.pq.__impl__,
            "libpq": psycopg.pq.version(),
        },
        "server": server,
        "settings": {
            "quick": settings.quick,
            "rounds": settings.rounds,
            "import_docs": settings.import_docs,
            "document_bytes": len(TEMPLATE.to_json_bytes()),
            "document_sections": len(TEMPLATE.sections),
        },
        "noise": {"cpu_spread": percentile_spread(ctx.noise), "cpu_samples": len(ctx.noise)},
        "figures": {f.key: f.as_json() for f in ctx.figures},
        "summary": summarize(ctx.figures),
        "seconds": seconds,
    }


def render(report: dict[str, Any], width: int | None) -> str:
    """The report as text: the machine and the server, the targets, the other figures."""
    machine, server = report["machine"], report["server"]
    settings, noise = report["settings"], report["noise"]
    libpq = machine["libpq"]
    server_settings = ", ".join(f"{name}={server[name]}" for name in SERVER_SETTINGS)
    header = [
        f"strategystore {machine['strategystore']} bench on PostgreSQL "
        f"{server['server_version']} (database {server['database']} on {server['host']}): "
        f"{machine['platform']}, {machine['cpus']} CPUs, Python {machine['python']}, "
        f"pydantic {machine['pydantic']}, psycopg {machine['psycopg']} "
        f"({machine['psycopg_impl']}, libpq {libpq // 10000}.{libpq % 10000})",
        f"server: {server_settings}; "
        + (
            "durable (a commit waits for its WAL flush)"
            if server["durable"]
            else "NOT durable: fsync or synchronous_commit is off, so commits cost almost nothing"
        ),
        f"document: {settings['document_sections']} sections, {settings['document_bytes']:,} "
        f"bytes; medians of {settings['rounds']} rounds, store and floor interleaved",
        "the floor: the same SQL by hand with psycopg on one connection, rows built before the "
        "clock starts; reads parse the text with json.loads and build no document",
        f"machine noise: a fixed CPU loop varied ±{noise['cpu_spread']:.0%} (10th to 90th "
        f"percentile) over {noise['cpu_samples']} samples through the run; 'spread' is ± half "
        "the range of a figure's per-round values",
    ]
    lines = [line for text in header for line in wrap(text, width, "  ")]
    lines += ["", *render_figures(report["figures"], width)]
    lines += ["", *render_verdict(report, width)]
    return "\n".join(lines)
