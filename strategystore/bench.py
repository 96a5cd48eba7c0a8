"""``strategystore bench``: the store measured on its disk against the raw-file floor and SQLite.

One run times every operation of ``FileStore`` *and* what it is compared
with, round by round in a rotating order, so drift of a shared machine hits
both sides alike; it reports medians over the rounds, the ratio of the
store's rate to the reference's rate, and how much the machine wobbled.

The references:

* the raw floor: the same canonical bytes written as temporary file + write
  (+ fsync) + rename (+ directory fsync), the same file read with ``open`` +
  ``read`` + ``json.loads``, ``os.listdir`` + parse for a brief;
* SQLite from the standard library (WAL; ``synchronous=FULL`` for durable
  writes, ``NORMAL`` otherwise): one insert per transaction, ``SELECT`` by key
  plus ``model_validate_json``, versions of a brief through the primary key;
* TinyDB, when the optional ``bench`` extra is installed, as the plain-JSON peer.

Everything runs in a temporary ``.bench-*`` directory on the data directory's
file system, removed afterwards. Targets are reported as PASS or FAIL, never
enforced: absolute speed depends on the machine, ratios in one run do not.

Usage::

    strategystore bench [--quick] [--json]
    python -m strategystore.bench [--dir DIR] [--quick] [--json]
"""

from __future__ import annotations

import argparse
import importlib
import json
import multiprocessing
import os
import platform
import random
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack, suppress
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

import pydantic

import strategystore
from strategystore._backends import DEFAULT_DATA_DIR
from strategystore.files import FileStore
from strategystore.models import Section, StrategyDocument

__all__ = ["configure_parser", "run"]

#: Default sizes of the full run and of ``--quick``.
FULL_SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (200, 1_000)

# A cache that follows git's racy-entry rule (DESIGN.md section 5) trusts a
# file only once its ctime is older than the file system's timestamp
# granularity (two seconds on the coarsest, FAT). Reads of files written a
# moment ago would time cold reads under the name "warm", so measured reads
# wait until their files are at least this old.
_SETTLE_SECONDS = 2.0

# Nothing here calls sync(): flushing the whole machine's dirty pages makes
# the following seconds of file creation several times slower on virtual
# disks, and would measure the flush instead of the store. Files are not
# deleted before the end of the run for the same reason; interleaving the
# contenders round by round spreads background writeback over both sides.

#: Versions in each brief of the scaling data sets, and in the one long brief.
_BRIEF_VERSIONS = 10
_LONG_BRIEF_VERSIONS = 100

_SECTIONS = (
    (
        "summary",
        "Summary",
        "Launch the Q3 range to urban professionals aged 28 to 40 who already buy "
        "premium coffee equipment online. The campaign leads with the **grinder's "
        "consistency** and the two-year warranty, converts through the web shop and "
        "measures success by first-purchase revenue and the share of repeat buyers "
        "after ninety days. Retail partners follow in week six.",
    ),
    (
        "audience",
        "Audience",
        "Primary: home baristas who follow two or more coffee creators and have "
        "bought an espresso machine in the last two years. Secondary: gift buyers "
        "in November and December, reached through partner newsletters. Exclude "
        "existing customers from acquisition spend; retarget them with the "
        "accessory bundle instead, capped at three impressions a week.",
    ),
    (
        "positioning",
        "Positioning",
        "For people who care how their coffee tastes every single morning, the "
        "grinder is the one upgrade that changes the cup more than a new machine. "
        "Unlike entry-level burr grinders it holds its setting for months, and "
        "unlike professional ones it fits under a kitchen cabinet. Proof points: "
        "lab grind-distribution chart, three independent reviews, warranty terms.",
    ),
    (
        "channels",
        "Channels and budget",
        "- Paid social: 45 % of budget, short demo videos, creator whitelisting\n"
        "- Search: 25 %, brand plus 'best coffee grinder' terms, strict ROAS floor\n"
        "- Creators: 20 %, six mid-size partners with affiliate codes\n"
        "- Email and CRM: 10 %, launch sequence and the accessory bundle\n"
        "Budget is released in three tranches gated on cost per first purchase.",
    ),
    (
        "measurement",
        "Measurement",
        "Weekly dashboard: spend, first purchases, cost per first purchase, "
        "revenue, repeat rate at 30, 60 and 90 days. A geo holdout in two regions "
        "measures incremental lift of paid social; creator codes attribute their "
        "sales directly. Decision review at the end of week four: shift up to a "
        "third of the remaining budget towards the best channel.",
    ),
)
_METADATA: dict[str, pydantic.JsonValue] = {
    "author": "planning-team",
    "model": "strategy-writer-2",
    "score": 0.82,
    "tags": ["launch", "q3", "coffee"],
    "tokens": 1834,
}
_CREATED_AT = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)

_TEMPLATE = StrategyDocument(
    brief_id="bench",
    version=1,
    created_at=_CREATED_AT,
    sections=[Section(key=k, title=t, body=b) for k, t, b in _SECTIONS],
    metadata=_METADATA,
)


_FIELDS = _TEMPLATE.model_dump()


def _doc(brief_id: str, version: int) -> StrategyDocument:
    """The realistic document under another key, built as callers build theirs: validated."""
    return StrategyDocument.model_validate({**_FIELDS, "brief_id": brief_id, "version": version})


_Maker = Callable[[str, int], StrategyDocument]


def _unvalidated_doc(brief_id: str, version: int) -> StrategyDocument:
    """The same, made by ``model_copy(update=...)``: the store must validate it again."""
    return _TEMPLATE.model_copy(update={"brief_id": brief_id, "version": version})


# -- command-line interface ---------------------------------------------------


def configure_parser(parser: argparse.ArgumentParser) -> None:
    """Add the options of ``bench`` to ``parser``.

    Args:
        parser: the (sub)parser of the ``bench`` command.
    """
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes and few rounds: the whole run takes seconds (for CI)",
    )
    parser.add_argument(
        "--rounds",
        type=_positive_int,
        metavar="N",
        help="rounds per measurement; medians are reported (default 7, quick 3)",
    )
    parser.add_argument(
        "--sizes",
        type=_sizes,
        metavar="N,N,…",
        help="document counts of the scaling table, ascending; the export is measured "
        "at the largest (default 1000,10000,100000; quick 200,1000)",
    )
    parser.add_argument(
        "--import-docs",
        type=_positive_int,
        metavar="N",
        help="documents in one bulk import (default 10000, quick 200)",
    )
    parser.add_argument(
        "--tinydb-docs",
        type=_positive_int,
        metavar="N",
        help="documents already in TinyDB and in the store when inserting (default "
        "10000, quick 200)",
    )
    parser.add_argument(
        "--processes",
        type=_positive_int,
        metavar="N",
        help="processes racing create_next on one brief (default 4)",
    )
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object with every figure"
    )


def _positive_int(text: str) -> int:
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} is not a positive number")
    return value


def _sizes(text: str) -> tuple[int, ...]:
    sizes = tuple(_positive_int(part.strip()) for part in text.split(",") if part.strip())
    if not sizes:
        raise argparse.ArgumentTypeError("give at least one size, e.g. 1000,10000")
    if list(sizes) != sorted(set(sizes)):
        raise argparse.ArgumentTypeError(f"sizes must be distinct and ascending, not {text!r}")
    if sizes[0] < 2:
        raise argparse.ArgumentTypeError("the smallest size must be at least 2 documents")
    return sizes


@dataclass(frozen=True)
class _Settings:
    quick: bool
    rounds: int
    sizes: tuple[int, ...]
    import_docs: int
    tinydb_docs: int
    processes: int

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> _Settings:
        quick = bool(getattr(args, "quick", False))

        def pick(name: str, full: Any, fast: Any) -> Any:
            given = getattr(args, name, None)
            if given is not None:
                return given
            return fast if quick else full

        return cls(
            quick=quick,
            rounds=pick("rounds", 7, 3),
            sizes=tuple(pick("sizes", FULL_SIZES, QUICK_SIZES)),
            import_docs=pick("import_docs", 10_000, 200),
            tinydb_docs=pick("tinydb_docs", 10_000, 200),
            processes=pick("processes", 4, 4),
        )

    def ops(self, full: int, quick: int) -> int:
        """Operations per timed batch."""
        return quick if self.quick else full


def run(args: argparse.Namespace, data_dir: Path) -> int:
    """Run the benchmark on ``data_dir``'s file system and print the report.

    Works in a fresh ``.bench-*`` directory inside ``data_dir`` (or inside its
    nearest existing parent when it does not exist yet), removed afterwards.
    Progress goes to stderr only when stderr is a terminal.

    Args:
        args: options added by ``configure_parser``.
        data_dir: the data directory whose disk is measured.

    Returns:
        0: targets are reported, not enforced.
    """
    settings = _Settings.from_args(args)
    where = Path(os.path.abspath(data_dir))
    while not where.is_dir():
        where = where.parent
    root = Path(tempfile.mkdtemp(prefix=".bench-", dir=where))
    progress = _Progress(sys.stderr)
    try:
        report = _Bench(settings, root, progress).run()
    finally:
        progress.clear()
        shutil.rmtree(root, ignore_errors=True)
    if getattr(args, "json", False):
        print(json.dumps(report, indent=2))
    else:
        print(_render(report))
    return 0


# -- measuring ------------------------------------------------------------------


_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda value, threshold: value >= threshold,
    "<=": lambda value, threshold: value <= threshold,
    "<": lambda value, threshold: value < threshold,
}


class _Progress:
    """One rewritten status line on stderr, shown only to a person at a terminal."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._enabled = stream.isatty()

    def show(self, text: str) -> None:
        if self._enabled:
            self._stream.write(f"\r\x1b[Kbench: {text}")
            self._stream.flush()

    def clear(self) -> None:
        if self._enabled:
            self._stream.write("\r\x1b[K")
            self._stream.flush()


#: A contender runs its batch for one round (the argument) and returns seconds per operation.
_Contender = Callable[[int], float]


def _timed(operation: Callable[[], object], count: int) -> float:
    start = time.perf_counter()
    for _ in range(count):
        operation()
    return (time.perf_counter() - start) / count


def _spin() -> float:
    """Time a fixed piece of pure Python: the machine's own noise, store-independent."""
    start = time.perf_counter()
    sum(i * i for i in range(20_000))
    return time.perf_counter() - start


def _percentile_spread(values: Sequence[float]) -> float:
    """Half the distance from the 10th to the 90th percentile, relative to the median."""
    if len(values) < 2:
        return 0.0
    deciles = statistics.quantiles(values, n=10)
    return (deciles[-1] - deciles[0]) / 2 / statistics.median(values)


def _relative_spread(values: Sequence[float]) -> float:
    """Half the range between rounds, relative to the median."""
    middle = statistics.median(values)
    return (max(values) - min(values)) / 2 / middle if middle else 0.0


@dataclass
class _Figure:
    """One reported figure: what was measured, the value compared with its target."""

    key: str
    label: str
    value: float | None
    unit: str
    target: tuple[str, float] | None = None
    store: str = ""
    reference: str = ""
    spread: float | None = None
    note: str = ""
    details: dict[str, Any] = field(default_factory=dict)

    @property
    def passed(self) -> bool | None:
        if self.target is None or self.value is None:
            return None
        op, threshold = self.target
        return _COMPARISONS[op](self.value, threshold)

    def as_json(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "value": self.value,
            "unit": self.unit,
            "target": None if self.target is None else f"{self.target[0]} {self.target[1]:g}",
            "passed": self.passed,
            "available": self.value is not None,
            "store_text": self.store,
            "reference_text": self.reference,
            "spread": self.spread,
            "note": self.note or None,
            **self.details,
        }


@dataclass
class _Dataset:
    """A data directory of ``size`` documents for the scaling table."""

    size: int
    root: Path
    briefs: list[str]
    long_brief: str
    long_versions: int
    built_at: float
    next_version: dict[str, int] = field(default_factory=dict)


class _RawFiles:
    """The floor: what any correct atomic file write must do, and nothing more."""

    def __init__(self, directory: Path, *, durable: bool) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.durable = durable
        self._dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)

    def write(self, name: str, data: bytes) -> None:
        temp = f".{name}.tmp"
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666, dir_fd=self._dir_fd)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if self.durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, name, src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd)
        if self.durable:
            os.fsync(self._dir_fd)

    def close(self) -> None:
        os.close(self._dir_fd)


class _Sqlite:
    """The SQL alternative: one table keyed on ``(brief_id, version)`` holding the document JSON."""

    def __init__(self, path: Path, *, durable: bool) -> None:
        self._conn = sqlite3.connect(path)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS strategy_document ("
            " brief_id TEXT NOT NULL, version INTEGER NOT NULL, document TEXT NOT NULL,"
            " PRIMARY KEY (brief_id, version)) WITHOUT ROWID"
        )
        self._conn.commit()

    def insert(self, doc: StrategyDocument) -> None:
        # Serialising is part of what a SQL-backed store pays per write, as the store does.
        with self._conn:
            self._conn.execute(
                "INSERT INTO strategy_document VALUES (?, ?, ?)",
                (doc.brief_id, doc.version, doc.to_json_bytes().decode()),
            )

    def get(self, brief_id: str, version: int) -> StrategyDocument | None:
        row = self._conn.execute(
            "SELECT document FROM strategy_document WHERE brief_id = ? AND version = ?",
            (brief_id, version),
        ).fetchone()
        return None if row is None else StrategyDocument.model_validate_json(row[0])

    def version_numbers(self, brief_id: str) -> list[int]:
        rows = self._conn.execute(
            "SELECT version FROM strategy_document WHERE brief_id = ? ORDER BY version DESC",
            (brief_id,),
        )
        return [version for (version,) in rows]

    def versions(self, brief_id: str) -> list[StrategyDocument]:
        rows = self._conn.execute(
            "SELECT document FROM strategy_document WHERE brief_id = ? ORDER BY version DESC",
            (brief_id,),
        )
        return [StrategyDocument.model_validate_json(text) for (text,) in rows]

    def close(self) -> None:
        self._conn.close()


def _raw_read(path: str) -> object:
    with open(path, "rb") as file:
        return json.loads(file.read())


def _raw_read_validated(path: str) -> StrategyDocument:
    with open(path, "rb") as file:
        return StrategyDocument.model_validate_json(file.read())


def _raw_version_numbers(path: str) -> list[int]:
    names = os.listdir(path)
    return sorted((int(n[:-5]) for n in names if n.endswith(".json")), reverse=True)


def _raw_versions(path: str) -> list[StrategyDocument]:
    return [_raw_read_validated(f"{path}/{v}.json") for v in _raw_version_numbers(path)]


class _Bench:
    """One benchmark run in ``root``; ``run`` returns the report as a JSON-ready dict."""

    def __init__(self, settings: _Settings, root: Path, progress: _Progress) -> None:
        self.settings = settings
        self.root = root
        self.progress = progress
        self.figures: list[_Figure] = []
        self.noise: list[float] = []
        self.scaling: dict[str, dict[str, Any]] = {}
        self.datasets: dict[int, _Dataset] = {}
        self.fsync_spread: float | None = None
        self._cleanup = ExitStack()

    # -- the run -----------------------------------------------------------

    def run(self) -> dict[str, Any]:
        started = time.perf_counter()
        with self._cleanup:
            self._setup_reads()
            # Built first so they have settled (see _SETTLE_SECONDS) by the time
            # the scaling table reads them.
            for size in self.settings.sizes:
                self._dataset(size)
            self._measure_save(durable=True)
            self._measure_save(durable=False)
            self._measure_reads()
            self._measure_bulk_import()
            self._measure_create_next_race()
            self._measure_scaling()
            self._measure_tinydb()
            self._measure_export()
            self._measure_import_time()
        return self._report(time.perf_counter() - started)

    def _interleave(
        self, title: str, contenders: Sequence[_Contender], *, at_most: int | None = None
    ) -> list[list[float]]:
        """Run every contender once per round, rotating who goes first.

        Args:
            title: what the progress line says.
            contenders: the store's operation and its references.
            at_most: fewer rounds than the setting, for the slowest measurements.

        Returns:
            Seconds per operation, one list per contender, one entry per round.
        """
        results: list[list[float]] = [[] for _ in contenders]
        rounds = self.settings.rounds if at_most is None else min(self.settings.rounds, at_most)
        for r in range(rounds):
            self.progress.show(f"{title}, round {r + 1}/{rounds}")
            self.noise.append(_spin())
            shift = r % len(contenders)
            for i in [*range(shift, len(contenders)), *range(shift)]:
                results[i].append(contenders[i](r))
        return results

    def _compare(
        self,
        key: str,
        label: str,
        store: Sequence[float],
        reference: Sequence[float],
        *,
        target: tuple[str, float] | None = None,
        reference_name: str = "",
    ) -> _Figure:
        """The store's rate over the reference's, paired round by round."""
        ratios = [ref / st for st, ref in zip(store, reference, strict=True)]
        store_s = statistics.median(store)
        ref_s = statistics.median(reference)
        figure = _Figure(
            key=key,
            label=label,
            value=statistics.median(ratios),
            unit="ratio",
            target=target,
            store=_rate(store_s),
            reference=_rate(ref_s) + (f" {reference_name}" if reference_name else ""),
            spread=_relative_spread(ratios),
            details={
                "store_seconds_per_op": store_s,
                "reference_seconds_per_op": ref_s,
                "store_ops_per_second": 1 / store_s,
                "reference_ops_per_second": 1 / ref_s,
            },
        )
        self.figures.append(figure)
        return figure

    # -- fixtures ------------------------------------------------------------

    def _setup_reads(self) -> None:
        """Documents the read measurements use, written first so they have settled by then."""
        self.progress.show("preparing")
        self.read_store = FileStore(self.root / "reads", durable=False)
        self.read_sqlite = _Sqlite(self.root / "reads.sqlite3", durable=False)
        self._cleanup.callback(self.read_sqlite.close)
        self.read_keys = [("read-set", v) for v in range(1, 51)]
        self.list_brief = "list-set"
        docs = [_doc(b, v) for b, v in self.read_keys]
        docs += [_doc(self.list_brief, v) for v in range(1, _BRIEF_VERSIONS + 1)]
        for doc in docs:
            self.read_store.save(doc)
            self.read_sqlite.insert(doc)
        self.reads_written_at = time.monotonic()

    @staticmethod
    def _settle(written_at: float) -> None:
        time.sleep(max(0.0, written_at + _SETTLE_SECONDS - time.monotonic()))

    # -- save --------------------------------------------------------------------

    def _measure_save(self, *, durable: bool) -> None:
        mode = "durable" if durable else "durable=False"
        count = self.settings.ops(100, 20) if durable else self.settings.ops(300, 50)
        store = FileStore(self.root / "save", durable=durable)
        raw = _RawFiles(self.root / "raw" / f"save-{durable}", durable=durable)
        self._cleanup.callback(raw.close)
        sql = _Sqlite(self.root / f"save-{durable}.sqlite3", durable=durable)
        self._cleanup.callback(sql.close)
        brief = f"save-{'durable' if durable else 'fast'}"

        def batch(r: int, brief: str = brief, make: _Maker = _doc) -> list[StrategyDocument]:
            return [make(brief, r * count + i + 1) for i in range(count)]

        def saving(brief: str, make: _Maker) -> _Contender:
            def run(r: int) -> float:
                docs = batch(r, brief, make)
                start = time.perf_counter()
                for doc in docs:
                    store.save(doc)
                return (time.perf_counter() - start) / count

            return run

        def run_raw(r: int) -> float:
            items = [(f"{d.version}.json", d.to_json_bytes()) for d in batch(r)]
            start = time.perf_counter()
            for name, data in items:
                raw.write(name, data)
            return (time.perf_counter() - start) / count

        def run_sql(r: int) -> float:
            docs = batch(r)
            start = time.perf_counter()
            for doc in docs:
                sql.insert(doc)
            return (time.perf_counter() - start) / count

        st, rw, sq, copied = self._interleave(
            f"save, {mode}",
            [saving(brief, _doc), run_raw, run_sql, saving(f"{brief}-copied", _unvalidated_doc)],
        )
        if durable:
            self.fsync_spread = _relative_spread(rw)
            self._compare(
                "save_durable_vs_raw",
                "save, durable / raw durable floor",
                st,
                rw,
                target=(">=", 0.85),
            )
            self._compare(
                "save_durable_vs_sqlite",
                "save, durable / SQLite insert (synchronous=FULL)",
                st,
                sq,
            )
            self._compare(
                "save_durable_copied_vs_raw",
                "save, durable, document from model_copy(update=...) / raw durable floor",
                copied,
                rw,
            )
        else:
            self._compare(
                "save_nondurable_vs_raw",
                "save, durable=False / raw floor without fsync",
                st,
                rw,
                target=(">=", 0.50),
            )
            self._compare(
                "save_nondurable_vs_sqlite",
                "save, durable=False / SQLite insert (synchronous=NORMAL)",
                st,
                sq,
            )
            self._compare(
                "save_nondurable_copied_vs_raw",
                "save, durable=False, document from model_copy(update=...) / raw floor",
                copied,
                rw,
            )

    # -- reads ---------------------------------------------------------------------

    def _measure_reads(self) -> None:
        self._settle(self.reads_written_at)
        store, sql = self.read_store, self.read_sqlite
        keys = self.read_keys
        paths = [str(store.document_path(b, v)) for b, v in keys]
        count = self.settings.ops(2_000, 200)
        for brief, version in keys:  # warm every cache, the store's included
            store.get_strategy(brief, version)

        def cycle(fn: Callable[[int], object]) -> _Contender:
            def contender(r: int) -> float:
                start = time.perf_counter()
                for i in range(count):
                    fn(i % len(keys))
                return (time.perf_counter() - start) / count

            return contender

        st, raw, raw_valid, sq = self._interleave(
            "get_strategy",
            [
                cycle(lambda i: store.get_strategy(*keys[i])),
                cycle(lambda i: _raw_read(paths[i])),
                cycle(lambda i: _raw_read_validated(paths[i])),
                cycle(lambda i: sql.get(*keys[i])),
            ],
        )
        self._compare(
            "get_vs_sqlite",
            "get_strategy, warm / SQLite SELECT + validate",
            st,
            sq,
            target=(">=", 1.0),
        )
        self._compare(
            "get_vs_raw",
            "get_strategy / raw read + json.loads",
            st,
            raw,
            target=(">=", 0.70),
        )
        self._compare(
            "get_vs_raw_validated",
            "get_strategy / raw read + model_validate_json",
            st,
            raw_valid,
        )

        brief = self.list_brief
        brief_path = str(store.data_dir / brief)
        lists = self.settings.ops(2_000, 200)
        docs = self.settings.ops(300, 30)
        st, raw, sq = self._interleave(
            "list_version_numbers",
            [
                lambda r: _timed(lambda: store.list_version_numbers(brief), lists),
                lambda r: _timed(lambda: _raw_version_numbers(brief_path), lists),
                lambda r: _timed(lambda: sql.version_numbers(brief), lists),
            ],
        )
        self._compare(
            "list_version_numbers_vs_raw",
            "list_version_numbers / raw listdir + parse",
            st,
            raw,
            target=(">=", 0.80),
        )
        self._compare(
            "list_version_numbers_vs_sqlite",
            "list_version_numbers / SQLite versions by index",
            st,
            sq,
        )
        st, raw, sq = self._interleave(
            "list_versions_by_brief",
            [
                lambda r: _timed(lambda: store.list_versions_by_brief(brief), docs),
                lambda r: _timed(lambda: _raw_versions(brief_path), docs),
                lambda r: _timed(lambda: sql.versions(brief), docs),
            ],
        )
        self._compare(
            "list_versions_by_brief_vs_raw",
            f"list_versions_by_brief ({_BRIEF_VERSIONS}) / raw listdir + read + validate",
            st,
            raw,
        )
        self._compare(
            "list_versions_by_brief_vs_sqlite",
            f"list_versions_by_brief ({_BRIEF_VERSIONS}) / SQLite by index + validate",
            st,
            sq,
        )

    # -- bulk import -------------------------------------------------------------------

    def _measure_bulk_import(self) -> None:
        total = self.settings.import_docs
        one_by_one = min(total, self.settings.ops(2_000, 200))
        label = f"bulk import of {total:,} docs, durable / one-by-one durable save"
        probe = FileStore(self.root / "import-probe")
        if getattr(probe, "import_documents", None) is None:
            self.figures.append(
                _Figure(
                    "bulk_import_vs_save",
                    label,
                    None,
                    "x",
                    target=(">=", 3.0),
                    note="not available: FileStore has no import_documents",
                )
            )
            return
        docs = [
            _doc(f"imp{i // _BRIEF_VERSIONS:05d}", i % _BRIEF_VERSIONS + 1) for i in range(total)
        ]

        def run_bulk(r: int) -> float:
            store = FileStore(self.root / f"import-bulk-{r}", durable=True)
            importer: Any = store.import_documents
            start = time.perf_counter()
            importer(docs)
            return (time.perf_counter() - start) / total

        def run_each(r: int) -> float:
            store = FileStore(self.root / f"import-each-{r}", durable=True)
            start = time.perf_counter()
            for doc in docs[:one_by_one]:
                store.save(doc)
            return (time.perf_counter() - start) / one_by_one

        bulk, each = self._interleave("bulk import", [run_bulk, run_each], at_most=3)
        figure = self._compare("bulk_import_vs_save", label, bulk, each, target=(">=", 3.0))
        figure.unit = "x"
        figure.reference += f" ({one_by_one:,} saves)"

    # -- create_next from several processes -----------------------------------------------

    def _measure_create_next_race(self) -> None:
        processes = self.settings.processes
        data_dir = self.root / "race"
        FileStore(data_dir)
        counts = {True: self.settings.ops(400, 40), False: self.settings.ops(1_000, 100)}
        with _WorkerPool(data_dir, processes) as pool:
            for durable in (True, False):
                total = counts[durable]
                mode = "durable" if durable else "durable=False"

                def alone(r: int, durable: bool = durable, total: int = total) -> float:
                    return pool.race(f"solo-{durable}-{r}", total, durable, workers=1)

                def together(r: int, durable: bool = durable, total: int = total) -> float:
                    return pool.race(f"race-{durable}-{r}", total, durable, workers=processes)

                many, one = self._interleave(f"create_next race, {mode}", [together, alone])
                self._compare(
                    f"create_next_race_{'durable' if durable else 'nondurable'}",
                    f"create_next, {processes} processes on one brief / 1 process, {mode}",
                    many,
                    one,
                    target=(">=", 0.70),
                )

    # -- scaling ---------------------------------------------------------------------------

    def _dataset(self, size: int) -> _Dataset:
        """A data directory holding ``size`` documents, built once with raw unsynced writes."""
        if size in self.datasets:
            return self.datasets[size]
        self.progress.show(f"building {size:,} documents")
        root = self.root / f"data-{size}"
        FileStore(root)
        long_versions = min(_LONG_BRIEF_VERSIONS, size // 2)
        regular = size - long_versions
        briefs = [f"b{i:06d}" for i in range(-(-regular // _BRIEF_VERSIONS))]
        layout = [(b, _BRIEF_VERSIONS) for b in briefs]
        if regular % _BRIEF_VERSIONS:
            layout[-1] = (briefs[-1], regular % _BRIEF_VERSIONS)
        layout.append(("long", long_versions))
        dataset = _Dataset(size, root, briefs, "long", long_versions, 0.0)
        for brief, versions in layout:
            directory = root / brief
            directory.mkdir()
            for version in range(1, versions + 1):
                (directory / f"{version}.json").write_bytes(_doc(brief, version).to_json_bytes())
            dataset.next_version[brief] = versions + 1
        dataset.built_at = time.monotonic()
        self.datasets[size] = dataset
        return dataset

    def _measure_scaling(self) -> None:
        datasets = [self._dataset(size) for size in self.settings.sizes]
        self._settle(max(d.built_at for d in datasets))
        ops = _ScalingOps(datasets, self.settings)
        # Reads first, on settled files: a write makes its brief's directory
        # "racy" for a moment, and reads right after it would time the cache's
        # refusal to trust it rather than the steady state the table is about.
        rows: list[tuple[str, str, Callable[[_Dataset], float], Callable[[_Dataset], int]]] = [
            ("get_strategy", "get_strategy, warm", ops.get, _one),
            ("raw_read", "reference: raw read + json.loads", ops.raw_read, _one),
            (
                "list_version_numbers",
                f"list_version_numbers ({_BRIEF_VERSIONS} versions)",
                ops.list_version_numbers,
                _one,
            ),
            (
                "list_versions_by_brief",
                f"list_versions_by_brief ({_BRIEF_VERSIONS} versions)",
                ops.list_versions_by_brief,
                lambda d: _BRIEF_VERSIONS,
            ),
            (
                "list_versions_by_brief_long",
                "list_versions_by_brief (long brief)",
                ops.list_long_brief,
                lambda d: d.long_versions,
            ),
            ("list_briefs", "list_briefs", ops.list_briefs, lambda d: len(d.briefs) + 1),
            ("save_durable", "save, durable", ops.save_durable, _one),
            ("save", "save, durable=False", ops.save, _one),
            ("raw_write", "reference: raw write, no fsync", ops.raw_write, _one),
            ("create_next", "create_next, durable=False", ops.create_next, _one),
        ]
        for key, label, measure, items in rows:
            self._scaling_row(key, label, measure, items, datasets)

    def _scaling_row(
        self,
        key: str,
        label: str,
        measure: Callable[[_Dataset], float],
        items: Callable[[_Dataset], int],
        datasets: Sequence[_Dataset],
    ) -> None:
        """Time one operation at every size, the sizes interleaved round by round."""
        contenders = [(lambda r, d=d: measure(d)) for d in datasets]
        per_size = self._interleave(f"scaling: {label}", contenders)
        seconds = [statistics.median(values) for values in per_size]
        self.scaling[key] = {
            "label": label,
            "seconds_per_op": {str(d.size): s for d, s in zip(datasets, seconds, strict=True)},
            "items_per_op": {str(d.size): items(d) for d in datasets},
            "seconds_per_item": {
                str(d.size): s / items(d) for d, s in zip(datasets, seconds, strict=True)
            },
            "spread": max(_relative_spread(values) for values in per_size),
        }
        if key not in ("save_durable", "save", "get_strategy"):
            return
        ratios = [big / small for small, big in zip(per_size[0], per_size[-1], strict=True)]
        self.figures.append(
            _Figure(
                f"scaling_{key}",
                f"{label} per op at {datasets[-1].size:,} docs / at {datasets[0].size:,}",
                statistics.median(ratios),
                "ratio",
                target=("<=", 1.3),
                store=_duration(seconds[-1]),
                reference=_duration(seconds[0]),
                spread=_relative_spread(ratios),
                details={
                    "largest_seconds_per_op": seconds[-1],
                    "smallest_seconds_per_op": seconds[0],
                },
            )
        )

    # -- TinyDB ----------------------------------------------------------------------------

    def _measure_tinydb(self) -> None:
        size = self.settings.tinydb_docs
        label = f"store save / TinyDB insert, at {size:,} docs, no fsync"
        try:
            tinydb: Any = importlib.import_module("tinydb")
        except ImportError:
            self.figures.append(
                _Figure(
                    "tinydb_insert",
                    label,
                    None,
                    "x",
                    target=(">=", 10.0),
                    note="tinydb not installed (pip install 'strategystore[bench]')",
                )
            )
            return
        dataset = self._dataset(size)
        store = FileStore(dataset.root, create=False, durable=False)
        self.progress.show(f"filling TinyDB with {size:,} documents")
        db = tinydb.TinyDB(self.root / "tinydb.json")
        self._cleanup.callback(db.close)
        db.insert_multiple(
            _doc(f"t{i // _BRIEF_VERSIONS:06d}", i % _BRIEF_VERSIONS + 1).model_dump(mode="json")
            for i in range(size)
        )
        # TinyDB's default storage rewrites the whole file on every insert, so a
        # handful of inserts per round already takes long at ten thousand documents.
        tiny_count = max(1, min(50, 20_000 // size))
        store_count = self.settings.ops(200, 50)
        rng = random.Random(7)
        inserted = 0

        def run_tiny(r: int) -> float:
            nonlocal inserted
            docs = [_doc("tiny-new", inserted + i + 1) for i in range(tiny_count)]
            inserted += tiny_count
            start = time.perf_counter()
            for doc in docs:
                db.insert(doc.model_dump(mode="json"))
            return (time.perf_counter() - start) / tiny_count

        def run_store(r: int) -> float:
            docs = []
            for brief in rng.sample(dataset.briefs, min(store_count, len(dataset.briefs))):
                docs.append(_doc(brief, dataset.next_version[brief]))
                dataset.next_version[brief] += 1
            start = time.perf_counter()
            for doc in docs:
                store.save(doc)
            return (time.perf_counter() - start) / len(docs)

        st, tiny = self._interleave("TinyDB insert", [run_store, run_tiny], at_most=5)
        figure = self._compare("tinydb_insert", label, st, tiny, target=(">=", 10.0))
        figure.unit = "x"
        figure.reference += " TinyDB"

    # -- export memory -------------------------------------------------------------------------

    def _measure_export(self) -> None:
        size = self.settings.sizes[-1]
        dataset = self._dataset(size)
        self.progress.show(f"exporting {size:,} documents")
        out = self.root / "export.jsonl"
        result = subprocess.run(
            [sys.executable, "-c", _EXPORT_SCRIPT, str(dataset.root), str(out)],
            check=True,
            capture_output=True,
            text=True,
        )
        found = json.loads(result.stdout)
        out.unlink(missing_ok=True)
        baseline = found["baseline_kib"] / 1024
        peak = found["peak_kib"] / 1024
        self.figures.append(
            _Figure(
                "export_peak_memory",
                f"export (JSON lines) of the {size:,}-doc data set, peak memory above start",
                peak - baseline,
                "MB",
                target=("<", 100.0),
                store=f"{found['docs']:,} docs, {found['docs'] / found['seconds']:,.0f}/s",
                reference=f"start {baseline:.0f} MB",
                details={
                    "docs": found["docs"],
                    "seconds": found["seconds"],
                    "baseline_mb": baseline,
                    "peak_mb": peak,
                },
            )
        )

    # -- import time -----------------------------------------------------------------------------

    def _measure_import_time(self) -> None:
        runs = self.settings.ops(11, 3)
        # Both imports get cached bytecode, as in any installed environment, even
        # where PYTHONDONTWRITEBYTECODE is set or the package directory is read-only:
        # a private cache inside the benchmark's directory, filled by a first import.
        env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
        env["PYTHONPYCACHEPREFIX"] = str(self.root / "pycache")
        # The names every user imports, so that a lazily filled package namespace
        # cannot look cheap while the first real use pays the cost.
        ours = "from strategystore import FileStore, StrategyDocument"
        statements = [ours, "import pydantic", "from pydantic import BaseModel", _ONE_MODEL]

        def import_seconds(statement: str) -> float:
            code = (
                f"import time\nt = time.perf_counter()\n{statement}\nprint(time.perf_counter() - t)"
            )
            out = subprocess.run(
                [sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env
            )
            return float(out.stdout)

        import_seconds(ours)  # fills the bytecode cache, outside the measurement
        times: dict[str, list[float]] = {statement: [] for statement in statements}
        for i in range(runs):
            self.progress.show(f"import time, run {i + 1}/{runs}")
            shift = i % len(statements)
            for statement in statements[shift:] + statements[:shift]:
                times[statement].append(import_seconds(statement) * 1000)
        median = {statement: statistics.median(values) for statement, values in times.items()}
        for key, baseline, target in (
            ("import_time", "import pydantic", ("<=", 30.0)),
            ("import_time_over_basemodel", "from pydantic import BaseModel", None),
            ("import_time_over_one_model", _ONE_MODEL, None),
        ):
            deltas = [a - b for a, b in zip(times[ours], times[baseline], strict=True)]
            middle = statistics.median(deltas)
            self.figures.append(
                _Figure(
                    key,
                    f"import strategystore over {_BASELINES.get(baseline, baseline)}",
                    middle,
                    "ms",
                    target=target,
                    store=f"{median[ours]:.1f} ms",
                    reference=f"{median[baseline]:.1f} ms",
                    spread=(max(deltas) - min(deltas)) / 2 / abs(middle or 1),
                    details={
                        "statement": ours,
                        "strategystore_ms": median[ours],
                        "baseline": _BASELINES.get(baseline, baseline),
                        "baseline_ms": median[baseline],
                        "runs": runs,
                    },
                )
            )

    # -- the report ----------------------------------------------------------------------------

    def _report(self, seconds: float) -> dict[str, Any]:
        targets = [f for f in self.figures if f.target is not None]
        return {
            "machine": _machine(self.root),
            "settings": {
                "quick": self.settings.quick,
                "rounds": self.settings.rounds,
                "sizes": list(self.settings.sizes),
                "import_docs": self.settings.import_docs,
                "tinydb_docs": self.settings.tinydb_docs,
                "processes": self.settings.processes,
                "document_bytes": len(_TEMPLATE.to_json_bytes()),
                "document_sections": len(_TEMPLATE.sections),
            },
            "noise": {
                "cpu_spread": _percentile_spread(self.noise),
                "cpu_samples": len(self.noise),
                "fsync_spread": self.fsync_spread,
            },
            "figures": {f.key: f.as_json() for f in self.figures},
            "scaling": {"sizes": list(self.settings.sizes), "rows": self.scaling},
            "summary": {
                "targets": len(targets),
                "passed": sum(f.passed is True for f in targets),
                "failed": sorted(f.key for f in targets if f.passed is False),
                "not_measured": sorted(f.key for f in targets if f.passed is None),
            },
            "seconds": seconds,
        }


#: The least any package that defines a pydantic model pays on import: one
#: model of one field, built lazily as StrategyDocument is.
_ONE_MODEL = """from pydantic import BaseModel, ConfigDict
class Floor(BaseModel):
    model_config = ConfigDict(defer_build=True)
    name: str"""
_BASELINES = {_ONE_MODEL: "a module defining a one-field pydantic model"}


class _ScalingOps:
    """The operations of the scaling table, each timed on one data set; seconds per operation.

    Every data set is worked through the same number of briefs, drawn at
    random once (the briefs an application is busy with), so only the total
    number of documents differs between sizes. The first write to a brief
    creates its lock file, a second new inode; with a working set of one size
    everywhere, that cost falls alike on every size instead of on the largest.
    Writes add new versions, so each is a real write; reads use one fixed
    sample of keys, read once beforehand so that every cache is warm.
    """

    def __init__(self, datasets: Sequence[_Dataset], settings: _Settings) -> None:
        self.settings = settings
        self.rng = random.Random(5)
        self.stores = {d.size: FileStore(d.root, create=False, durable=False) for d in datasets}
        self.durable_stores = {
            d.size: FileStore(d.root, create=False, durable=True) for d in datasets
        }
        working_set = min(len(d.briefs) for d in datasets)
        self.pools = {d.size: self.rng.sample(d.briefs, working_set) for d in datasets}
        self.samples: dict[int, list[tuple[str, int]]] = {}
        for d in datasets:
            keys = [
                (self.rng.choice(self.pools[d.size]), self.rng.randint(1, _BRIEF_VERSIONS))
                for _ in range(settings.ops(200, 50))
            ]
            keys = [(b, v) for b, v in keys if v < d.next_version[b]] or [(d.long_brief, 1)]
            self.samples[d.size] = keys
            for brief, version in keys:
                self.stores[d.size].get_strategy(brief, version)

    def _briefs(self, d: _Dataset, count: int) -> list[str]:
        pool = self.pools[d.size]
        return self.rng.sample(pool, min(count, len(pool)))

    def _new_versions(self, d: _Dataset, count: int) -> list[StrategyDocument]:
        docs = []
        for brief in self._briefs(d, count):
            docs.append(_doc(brief, d.next_version[brief]))
            d.next_version[brief] += 1
        return docs

    def save_durable(self, d: _Dataset) -> float:
        return self._save(self.durable_stores[d.size], d, self.settings.ops(30, 10))

    def save(self, d: _Dataset) -> float:
        return self._save(self.stores[d.size], d, self.settings.ops(100, 30))

    def _save(self, store: FileStore, d: _Dataset, count: int) -> float:
        docs = self._new_versions(d, count)
        start = time.perf_counter()
        for doc in docs:
            store.save(doc)
        return (time.perf_counter() - start) / len(docs)

    def raw_write(self, d: _Dataset) -> float:
        items = [
            (d.root / doc.brief_id, f"{doc.version}.json", doc.to_json_bytes())
            for doc in self._new_versions(d, self.settings.ops(100, 30))
        ]
        start = time.perf_counter()
        for directory, name, data in items:
            temp = directory / f".{name}.tmp"
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            os.replace(temp, directory / name)
        return (time.perf_counter() - start) / len(items)

    def get(self, d: _Dataset) -> float:
        store, keys = self.stores[d.size], self.samples[d.size]
        passes = 3
        start = time.perf_counter()
        for _ in range(passes):
            for brief, version in keys:
                store.get_strategy(brief, version)
        return (time.perf_counter() - start) / (passes * len(keys))

    def raw_read(self, d: _Dataset) -> float:
        paths = [str(d.root / b / f"{v}.json") for b, v in self.samples[d.size]]
        start = time.perf_counter()
        for path in paths:
            _raw_read(path)
        return (time.perf_counter() - start) / len(paths)

    def create_next(self, d: _Dataset) -> float:
        briefs = self._briefs(d, self.settings.ops(100, 20))
        store = self.stores[d.size]
        sections = [s.model_dump() for s in _TEMPLATE.sections]
        start = time.perf_counter()
        for brief in briefs:
            created = store.create_next(brief, sections, _METADATA)
            d.next_version[brief] = created.version + 1
        return (time.perf_counter() - start) / len(briefs)

    def list_version_numbers(self, d: _Dataset) -> float:
        briefs, store = self._briefs(d, 200), self.stores[d.size]
        start = time.perf_counter()
        for brief in briefs:
            store.list_version_numbers(brief)
        return (time.perf_counter() - start) / len(briefs)

    def list_versions_by_brief(self, d: _Dataset) -> float:
        briefs, store = self._briefs(d, 50), self.stores[d.size]
        start = time.perf_counter()
        for brief in briefs:
            store.list_versions_by_brief(brief)
        return (time.perf_counter() - start) / len(briefs)

    def list_long_brief(self, d: _Dataset) -> float:
        store = self.stores[d.size]
        return _timed(lambda: store.list_versions_by_brief(d.long_brief), self.settings.ops(20, 5))

    def list_briefs(self, d: _Dataset) -> float:
        count = max(1, min(20, 20_000 // (len(d.briefs) + 1)))
        return _timed(self.stores[d.size].list_briefs, count)


def _one(dataset: _Dataset) -> int:
    return 1


# The export measured in its own interpreter, so its peak memory is the
# export's alone; it streams like the CLI's export: brief by brief, version by
# version, one JSON line written per document. On Linux the peak comes from
# /proc (VmHWM belongs to this address space), because ru_maxrss carries the
# forking parent's high-water mark across exec and would hide the export's own.
_EXPORT_SCRIPT = """
import json, resource, sys, time
from strategystore import FileStore

def memory():
    try:
        with open("/proc/self/status", encoding="ascii") as status:
            fields = dict(line.split(":", 1) for line in status)
        return int(fields["VmRSS"].split()[0]), int(fields["VmHWM"].split()[0])
    except (OSError, KeyError, ValueError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak // 1024 if sys.platform == "darwin" else peak, None

store = FileStore(sys.argv[1], create=False)
baseline, _ = memory()
count = 0
start = time.perf_counter()
with open(sys.argv[2], "w", encoding="utf-8") as out:
    for brief_id in store.list_briefs():
        for version in store.list_version_numbers(brief_id):
            doc = store.get_strategy(brief_id, version)
            if doc is not None:
                out.write(doc.model_dump_json() + "\\n")
                count += 1
seconds = time.perf_counter() - start
current, peak = memory()
print(json.dumps({"docs": count, "seconds": seconds, "baseline_kib": baseline,
                  "peak_kib": peak if peak is not None else current}))
"""


# -- processes racing create_next -----------------------------------------------------------------


class _WorkerPool:
    """Processes started once, each running ``create_next`` batches on command.

    Starting interpreters costs far more than the operations measured, so the
    processes outlive the rounds; a barrier starts a race's workers together.
    """

    def __init__(self, data_dir: Path, processes: int) -> None:
        # spawn, not fork: a fork would copy this process's threads and locks.
        context = multiprocessing.get_context("spawn")
        self._results: Any = context.Queue()
        self._barrier: Any = context.Barrier(processes)
        self._tasks: list[Any] = [context.Queue() for _ in range(processes)]
        self._processes = [
            context.Process(
                target=_race_worker,
                args=(str(data_dir), tasks, self._results, self._barrier),
                daemon=True,
            )
            for tasks in self._tasks
        ]

    def __enter__(self) -> _WorkerPool:
        for process in self._processes:
            process.start()
        return self

    def __exit__(self, *exc: object) -> None:
        for tasks in self._tasks:
            tasks.put(None)
        for process in self._processes:
            process.join(timeout=10)
            if process.is_alive():
                process.terminate()
                process.join()

    def race(self, brief_id: str, total: int, durable: bool, *, workers: int) -> float:
        """``total`` create_next calls on one brief split over ``workers`` processes.

        Returns:
            Wall-clock seconds per operation, from the first start to the last end.
        """
        share, extra = divmod(total, workers)
        together = workers == len(self._processes)
        for i in range(workers):
            self._tasks[i].put((brief_id, share + (i < extra), durable, together))
        spans = []
        for _ in range(workers):
            found = self._results.get(timeout=300)
            if isinstance(found, str):
                raise RuntimeError(f"a create_next worker failed: {found}")
            spans.append(found)
        wall: float = max(end for _, end in spans) - min(start for start, _ in spans)
        return wall / total


def _race_worker(data_dir: str, tasks: Any, results: Any, barrier: Any) -> None:
    stores = {
        durable: FileStore(data_dir, create=False, durable=durable) for durable in (True, False)
    }
    sections = [s.model_dump() for s in _TEMPLATE.sections]
    while (task := tasks.get()) is not None:
        brief_id, count, durable, together = task
        try:
            if together:
                barrier.wait(timeout=120)
            store = stores[durable]
            # time.monotonic is one system-wide clock, comparable between processes.
            start = time.monotonic()
            for _ in range(count):
                store.create_next(brief_id, sections, _METADATA)
            results.put((start, time.monotonic()))
        except Exception as exc:  # reported to the parent, which raises it
            results.put(f"{type(exc).__name__}: {exc}")


# -- presenting -----------------------------------------------------------------------------------


def _machine(root: Path) -> dict[str, Any]:
    tinydb_version = None
    with suppress(ImportError):
        tinydb_version = importlib.import_module("tinydb").__version__
    return {
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "strategystore": strategystore.__version__,
        "pydantic": pydantic.VERSION,
        "sqlite": sqlite3.sqlite_version,
        "tinydb": tinydb_version,
        "file_system": _file_system(root),
    }


def _file_system(path: Path) -> str:
    """The type and device of the file system holding ``path`` (Linux), else ``unknown``."""
    best = ("", "unknown")
    try:
        with open("/proc/self/mounts", encoding="utf-8") as mounts:
            for line in mounts:
                device, mount_point, kind, *_ = line.split()
                inside = str(path) == mount_point or str(path).startswith(
                    mount_point.rstrip("/") + "/"
                )
                if inside and len(mount_point) >= len(best[0]):
                    best = (mount_point, f"{kind} on {device}")
    except OSError:
        pass
    return best[1]


def _rate(seconds_per_op: float) -> str:
    return f"{1 / seconds_per_op:,.0f}/s"


def _duration(seconds: float) -> str:
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"


def _value(figure: dict[str, Any]) -> str:
    value = figure["value"]
    unit = figure["unit"]
    if value is None:
        return "—"
    if unit == "x":
        return f"{value:.2f}x"
    if unit in ("MB", "ms"):
        return f"{value:.1f} {unit}"
    return f"{value:.2f}"


def _render(report: dict[str, Any]) -> str:
    machine = report["machine"]
    settings = report["settings"]
    noise = report["noise"]
    fsync = noise["fsync_spread"]
    lines = [
        f"strategystore {machine['strategystore']} bench on {machine['file_system']}: "
        f"{machine['platform']}, {machine['cpus']} CPUs, Python {machine['python']}, "
        f"pydantic {machine['pydantic']}, SQLite {machine['sqlite']}, "
        f"TinyDB {machine['tinydb'] or 'not installed'}",
        f"document: {settings['document_sections']} sections, {settings['document_bytes']:,} "
        f"bytes; medians of {settings['rounds']} rounds, store and reference interleaved",
        f"machine noise: a fixed CPU loop varied ±{noise['cpu_spread']:.0%} (10th to 90th "
        f"percentile) over {noise['cpu_samples']} samples through the run"
        + (f"; the raw durable floor ±{fsync:.0%} between rounds" if fsync is not None else "")
        + "; 'spread' is ± half the range of a figure's per-round values",
        "",
    ]
    figures = report["figures"]
    header = ("figure", "store", "reference", "value", "target", "spread", "result")

    def row(figure: dict[str, Any]) -> tuple[str, ...]:
        result = {True: "PASS", False: "FAIL", None: "n/a"}[figure["passed"]]
        spread = figure["spread"]
        return (
            figure["label"],
            figure.get("store_text", ""),
            figure.get("reference_text", ""),
            _value(figure),
            figure["target"] or "",
            "" if spread is None else f"±{spread:.0%}",
            result if figure["target"] else "",
        )

    targeted = [row(f) for f in figures.values() if f["target"]]
    others = [row(f)[:4] + row(f)[5:6] for f in figures.values() if not f["target"]]
    lines += _table("Targets", header, targeted)
    lines += [f"  n/a: {f['label']}: {f['note']}" for f in figures.values() if f["note"]]
    lines += ["", *_table("Also measured (no target)", header[:4] + header[5:6], others)]

    scaling = report["scaling"]
    sizes = scaling["sizes"]
    scale_header = ("operation", *(f"{s:,} docs" for s in sizes), "largest/smallest")
    scale_rows: list[tuple[str, ...]] = []
    for entry in scaling["rows"].values():
        per_op = [entry["seconds_per_op"][str(s)] for s in sizes]
        scale_rows.append(
            (f"{entry['label']}, per op", *map(_duration, per_op), f"{per_op[-1] / per_op[0]:.2f}")
        )
        items = [entry["items_per_op"][str(s)] for s in sizes]
        if any(n > 1 for n in items):
            per_item = [entry["seconds_per_item"][str(s)] for s in sizes]
            what = "brief" if "briefs" in entry["label"] else "version"
            scale_rows.append(
                (
                    f"  per {what} ({' / '.join(f'{n:,}' for n in items)})",
                    *map(_duration, per_item),
                    f"{per_item[-1] / per_item[0]:.2f}",
                )
            )
    lines += [
        "",
        *_table(
            "Scaling (briefs of 10 versions plus one long brief; every size worked through the "
            "same briefs; reads first, on settled files; writes add new versions)",
            scale_header,
            scale_rows,
        ),
    ]
    summary = report["summary"]
    verdict = f"{summary['passed']} of {summary['targets']} targets met"
    if summary["failed"]:
        verdict += "; failing: " + ", ".join(summary["failed"])
    if summary["not_measured"]:
        verdict += "; not measured: " + ", ".join(summary["not_measured"])
    lines += ["", f"{verdict} ({report['seconds']:.0f} s)"]
    return "\n".join(lines)


def _table(title: str, header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]

    def line(cells: Sequence[str]) -> str:
        first, *rest = cells
        parts = [first.ljust(widths[0])]
        parts += [cell.rjust(width) for cell, width in zip(rest, widths[1:], strict=True)]
        return "  ".join(parts).rstrip()

    return [title, line(header), *(line(r) for r in rows)]


def _main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m strategystore.bench",
        description="Measure FileStore on a data directory's disk against the raw-file "
        "floor, SQLite and TinyDB.",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        default=Path(os.environ.get("STRATEGYSTORE_DIR") or DEFAULT_DATA_DIR),
        help="the data directory whose disk is measured (default $STRATEGYSTORE_DIR, "
        "then ./strategy-data)",
    )
    configure_parser(parser)
    args = parser.parse_args(argv)
    return run(args, args.dir)


if __name__ == "__main__":
    raise SystemExit(_main())
