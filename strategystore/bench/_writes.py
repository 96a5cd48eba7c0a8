"""The write scenarios: ``save``, bulk import and TinyDB inserts, against their references."""

from __future__ import annotations

import importlib
import random
import time
from collections.abc import Callable
from typing import Any

from strategystore.bench._contenders import LockedFloor, RawFiles, Sqlite
from strategystore.bench._context import Context
from strategystore.bench._document import (
    BRIEF_VERSIONS,
    Maker,
    document,
    unvalidated_document,
)
from strategystore.bench._measure import Contender, Figure, relative_spread
from strategystore.files import FileStore
from strategystore.models import StrategyDocument

__all__ = ["measure_bulk_import", "measure_save", "measure_tinydb"]


def measure_save(ctx: Context, *, durable: bool) -> None:
    """``save`` of new versions against the raw floor and a SQLite insert, in one mode."""
    mode = "durable" if durable else "durable=False"
    count = ctx.settings.ops(100, 20) if durable else ctx.settings.ops(300, 50)
    store = FileStore(ctx.root / "save", durable=durable)
    raw = RawFiles(ctx.root / "raw" / f"save-{durable}", durable=durable)
    ctx.cleanup.callback(raw.close)
    sql = Sqlite(ctx.root / f"save-{durable}.sqlite3", durable=durable)
    ctx.cleanup.callback(sql.close)
    brief = f"save-{'durable' if durable else 'fast'}"
    floor = LockedFloor(ctx.root / "locked" / f"save-{durable}", brief, durable=durable)
    ctx.cleanup.callback(floor.close)

    def batch(r: int, brief: str = brief, make: Maker = document) -> list[StrategyDocument]:
        return [make(brief, r * count + i + 1) for i in range(count)]

    def saving(brief: str, make: Maker) -> Contender:
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

    def each(write: Callable[[StrategyDocument], None]) -> Contender:
        def run(r: int) -> float:
            docs = batch(r)
            start = time.perf_counter()
            for doc in docs:
                write(doc)
            return (time.perf_counter() - start) / count

        return run

    st, rw, sq, copied, least = ctx.interleave(
        f"save, {mode}",
        [
            saving(brief, document),
            run_raw,
            each(sql.insert),
            saving(f"{brief}-copied", unvalidated_document),
            each(floor.save),
        ],
    )
    ctx.compare(
        f"save_{'durable' if durable else 'nondurable'}_vs_locked_floor",
        f"save, {mode} / the least a validated, locked write of a new version does",
        st,
        least,
    )
    ctx.compare(
        f"locked_floor_{'durable' if durable else 'nondurable'}_vs_raw",
        f"that least write, {mode} / raw {'durable floor' if durable else 'floor without fsync'}",
        least,
        rw,
    )
    if durable:
        ctx.fsync_spread = relative_spread(rw)
        ctx.compare(
            "save_durable_vs_raw",
            "save, durable / raw durable floor",
            st,
            rw,
            target=(">=", 0.85),
        )
        ctx.compare(
            "save_durable_vs_sqlite",
            "save, durable / SQLite insert (synchronous=FULL)",
            st,
            sq,
        )
        ctx.compare(
            "save_durable_copied_vs_raw",
            "save, durable, document from model_copy(update=...) / raw durable floor",
            copied,
            rw,
        )
    else:
        ctx.compare(
            "save_nondurable_vs_raw",
            "save, durable=False / raw floor without fsync",
            st,
            rw,
            target=(">=", 0.50),
        )
        ctx.compare(
            "save_nondurable_vs_sqlite",
            "save, durable=False / SQLite insert (synchronous=NORMAL)",
            st,
            sq,
        )
        ctx.compare(
            "save_nondurable_copied_vs_raw",
            "save, durable=False, document from model_copy(update=...) / raw floor",
            copied,
            rw,
        )


def measure_bulk_import(ctx: Context) -> None:
    """``import_documents`` of a whole data set against saving documents one by one."""
    total = ctx.settings.import_docs
    one_by_one = min(total, ctx.settings.ops(2_000, 200))
    label = f"bulk import of {total:,} docs, durable / one-by-one durable save"
    probe = FileStore(ctx.root / "import-probe")
    if getattr(probe, "import_documents", None) is None:
        ctx.figures.append(
            Figure(
                "bulk_import_vs_save",
                label,
                None,
                "x",
                target=(">=", 3.0),
                note="not available: FileStore has no import_documents",
            )
        )
        return
    docs = [document(f"imp{i // BRIEF_VERSIONS:05d}", i % BRIEF_VERSIONS + 1) for i in range(total)]

    def run_bulk(r: int) -> float:
        store = FileStore(ctx.root / f"import-bulk-{r}", durable=True)
        importer: Any = store.import_documents
        start = time.perf_counter()
        importer(docs)
        return (time.perf_counter() - start) / total

    def run_each(r: int) -> float:
        store = FileStore(ctx.root / f"import-each-{r}", durable=True)
        start = time.perf_counter()
        for doc in docs[:one_by_one]:
            store.save(doc)
        return (time.perf_counter() - start) / one_by_one

    bulk, each = ctx.interleave("bulk import", [run_bulk, run_each], at_most=3)
    figure = ctx.compare("bulk_import_vs_save", label, bulk, each, target=(">=", 3.0))
    figure.unit = "x"
    figure.reference += f" ({one_by_one:,} saves)"


def measure_tinydb(ctx: Context) -> None:
    """``save`` against a TinyDB insert, both holding the same number of documents."""
    size = ctx.settings.tinydb_docs
    label = f"store save / TinyDB insert, at {size:,} docs, no fsync"
    try:
        tinydb: Any = importlib.import_module("tinydb")
    except ImportError:
        ctx.figures.append(
            Figure(
                "tinydb_insert",
                label,
                None,
                "x",
                target=(">=", 10.0),
                note="tinydb not installed (pip install 'strategystore[bench]')",
            )
        )
        return
    dataset = ctx.dataset(size)
    store = FileStore(dataset.root, create=False, durable=False)
    ctx.progress.show(f"filling TinyDB with {size:,} documents")
    db = tinydb.TinyDB(ctx.root / "tinydb.json")
    ctx.cleanup.callback(db.close)
    db.insert_multiple(
        document(f"t{i // BRIEF_VERSIONS:06d}", i % BRIEF_VERSIONS + 1).model_dump(mode="json")
        for i in range(size)
    )
    # TinyDB's default storage rewrites the whole file on every insert, so a
    # handful of inserts per round already takes long at ten thousand documents.
    tiny_count = max(1, min(50, 20_000 // size))
    store_count = ctx.settings.ops(200, 50)
    rng = random.Random(7)
    inserted = 0

    def run_tiny(r: int) -> float:
        nonlocal inserted
        docs = [document("tiny-new", inserted + i + 1) for i in range(tiny_count)]
        inserted += tiny_count
        start = time.perf_counter()
        for doc in docs:
            db.insert(doc.model_dump(mode="json"))
        return (time.perf_counter() - start) / tiny_count

    def run_store(r: int) -> float:
        docs = []
        for brief in rng.sample(dataset.briefs, min(store_count, len(dataset.briefs))):
            docs.append(document(brief, dataset.next_version[brief]))
            dataset.next_version[brief] += 1
        start = time.perf_counter()
        for doc in docs:
            store.save(doc)
        return (time.perf_counter() - start) / len(docs)

    st, tiny = ctx.interleave("TinyDB insert", [run_store, run_tiny], at_most=5)
    figure = ctx.compare("tinydb_insert", label, st, tiny, target=(">=", 10.0))
    figure.unit = "x"
    figure.reference += " TinyDB"
