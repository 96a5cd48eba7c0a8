"""The scaling table: each operation timed on data sets of every size, interleaved."""

from __future__ import annotations

import os
import random
import statistics
import time
from collections.abc import Callable, Sequence

from strategystore.bench._contenders import raw_read
from strategystore.bench._context import Context, settle
from strategystore.bench._datasets import Dataset
from strategystore.bench._document import BRIEF_VERSIONS, METADATA, TEMPLATE, document
from strategystore.bench._measure import Figure, duration, relative_spread, timed
from strategystore.bench._settings import Settings
from strategystore.files import FileStore
from strategystore.models import StrategyDocument

__all__ = ["ScalingOps", "measure_scaling"]

#: The rows of the table whose growth from the smallest to the largest size has a target.
_TARGETED = ("save_durable", "save", "get_strategy")


def measure_scaling(ctx: Context) -> None:
    """Every row of the scaling table, and the figures of the targeted rows."""
    datasets = [ctx.dataset(size) for size in ctx.settings.sizes]
    settle(max(d.built_at for d in datasets))
    ops = ScalingOps(datasets, ctx.settings)
    # Reads first, on settled files: a write makes its brief's directory
    # "racy" for a moment, and reads right after it would time the cache's
    # refusal to trust it rather than the steady state the table is about.
    rows: list[tuple[str, str, Callable[[Dataset], float], Callable[[Dataset], int]]] = [
        ("get_strategy", "get_strategy, warm", ops.get, _one),
        ("raw_read", "reference: raw read + json.loads", ops.raw_read, _one),
        (
            "list_version_numbers",
            f"list_version_numbers ({BRIEF_VERSIONS} versions)",
            ops.list_version_numbers,
            _one,
        ),
        (
            "list_versions_by_brief",
            f"list_versions_by_brief ({BRIEF_VERSIONS} versions)",
            ops.list_versions_by_brief,
            lambda d: BRIEF_VERSIONS,
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
        _scaling_row(ctx, key, label, measure=measure, items=items, datasets=datasets)


def _scaling_row(
    ctx: Context,
    key: str,
    label: str,
    *,
    measure: Callable[[Dataset], float],
    items: Callable[[Dataset], int],
    datasets: Sequence[Dataset],
) -> None:
    """Time one operation at every size, the sizes interleaved round by round."""
    contenders = [(lambda r, d=d: measure(d)) for d in datasets]
    per_size = ctx.interleave(f"scaling: {label}", contenders)
    seconds = [statistics.median(values) for values in per_size]
    ctx.scaling[key] = {
        "label": label,
        "seconds_per_op": {str(d.size): s for d, s in zip(datasets, seconds, strict=True)},
        "items_per_op": {str(d.size): items(d) for d in datasets},
        "seconds_per_item": {
            str(d.size): s / items(d) for d, s in zip(datasets, seconds, strict=True)
        },
        "spread": max(relative_spread(values) for values in per_size),
    }
    if key not in _TARGETED:
        return
    ratios = [big / small for small, big in zip(per_size[0], per_size[-1], strict=True)]
    ctx.figures.append(
        Figure(
            f"scaling_{key}",
            f"{label} per op at {datasets[-1].size:,} docs / at {datasets[0].size:,}",
            statistics.median(ratios),
            "ratio",
            target=("<=", 1.3),
            store=duration(seconds[-1]),
            reference=duration(seconds[0]),
            spread=relative_spread(ratios),
            details={
                "largest_seconds_per_op": seconds[-1],
                "smallest_seconds_per_op": seconds[0],
            },
        )
    )


def _one(dataset: Dataset) -> int:
    return 1


class ScalingOps:
    """The operations of the scaling table, each timed on one data set; seconds per operation.

    Every data set is worked through the same number of briefs, drawn at
    random once (the briefs an application is busy with), so only the total
    number of documents differs between sizes. The first write to a brief
    creates its lock file, a second new inode; with a working set of one size
    everywhere, that cost falls alike on every size instead of on the largest.
    Writes add new versions, so each is a real write; reads use one fixed
    sample of keys, read once beforehand so that every cache is warm.
    """

    def __init__(self, datasets: Sequence[Dataset], settings: Settings) -> None:
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
                (self.rng.choice(self.pools[d.size]), self.rng.randint(1, BRIEF_VERSIONS))
                for _ in range(settings.ops(200, 50))
            ]
            keys = [(b, v) for b, v in keys if v < d.next_version[b]] or [(d.long_brief, 1)]
            self.samples[d.size] = keys
            for brief, version in keys:
                self.stores[d.size].get_strategy(brief, version)

    def _briefs(self, d: Dataset, count: int) -> list[str]:
        pool = self.pools[d.size]
        return self.rng.sample(pool, min(count, len(pool)))

    def _new_versions(self, d: Dataset, count: int) -> list[StrategyDocument]:
        docs = []
        for brief in self._briefs(d, count):
            docs.append(document(brief, d.next_version[brief]))
            d.next_version[brief] += 1
        return docs

    def save_durable(self, d: Dataset) -> float:
        """``save`` of new versions, durable."""
        return self._save(self.durable_stores[d.size], d, self.settings.ops(30, 10))

    def save(self, d: Dataset) -> float:
        """``save`` of new versions, ``durable=False``."""
        return self._save(self.stores[d.size], d, self.settings.ops(100, 30))

    def _save(self, store: FileStore, d: Dataset, count: int) -> float:
        docs = self._new_versions(d, count)
        start = time.perf_counter()
        for doc in docs:
            store.save(doc)
        return (time.perf_counter() - start) / len(docs)

    def raw_write(self, d: Dataset) -> float:
        """The reference of ``save``: temporary file, one write, rename; no fsync."""
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

    def get(self, d: Dataset) -> float:
        """``get_strategy`` of the sampled keys, warm."""
        store, keys = self.stores[d.size], self.samples[d.size]
        passes = 3
        start = time.perf_counter()
        for _ in range(passes):
            for brief, version in keys:
                store.get_strategy(brief, version)
        return (time.perf_counter() - start) / (passes * len(keys))

    def raw_read(self, d: Dataset) -> float:
        """The reference of ``get``: the sampled files read and parsed as JSON."""
        paths = [str(d.root / b / f"{v}.json") for b, v in self.samples[d.size]]
        start = time.perf_counter()
        for path in paths:
            raw_read(path)
        return (time.perf_counter() - start) / len(paths)

    def create_next(self, d: Dataset) -> float:
        """``create_next`` on briefs of the working set, ``durable=False``."""
        briefs = self._briefs(d, self.settings.ops(100, 20))
        store = self.stores[d.size]
        sections = [s.model_dump() for s in TEMPLATE.sections]
        start = time.perf_counter()
        for brief in briefs:
            created = store.create_next(brief, sections, METADATA)
            d.next_version[brief] = created.version + 1
        return (time.perf_counter() - start) / len(briefs)

    def list_version_numbers(self, d: Dataset) -> float:
        """``list_version_numbers`` of briefs of the working set."""
        briefs, store = self._briefs(d, 200), self.stores[d.size]
        start = time.perf_counter()
        for brief in briefs:
            store.list_version_numbers(brief)
        return (time.perf_counter() - start) / len(briefs)

    def list_versions_by_brief(self, d: Dataset) -> float:
        """``list_versions_by_brief`` of briefs of the working set."""
        briefs, store = self._briefs(d, 50), self.stores[d.size]
        start = time.perf_counter()
        for brief in briefs:
            store.list_versions_by_brief(brief)
        return (time.perf_counter() - start) / len(briefs)

    def list_long_brief(self, d: Dataset) -> float:
        """``list_versions_by_brief`` of the one long brief."""
        store = self.stores[d.size]
        return timed(lambda: store.list_versions_by_brief(d.long_brief), self.settings.ops(20, 5))

    def list_briefs(self, d: Dataset) -> float:
        """``list_briefs`` of the whole data set."""
        count = max(1, min(20, 20_000 // (len(d.briefs) + 1)))
        return timed(self.stores[d.size].list_briefs, count)
