"""What the scenarios of one run share: settings, scratch directory, figures and noise.

Nothing here calls sync(): flushing the whole machine's dirty pages makes the
following seconds of file creation several times slower on virtual disks, and
would measure the flush instead of the store. Files are not deleted before the
end of the run for the same reason; interleaving the contenders round by round
spreads background writeback over both sides.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from contextlib import ExitStack
from pathlib import Path
from typing import Any

from strategystore._render import Progress
from strategystore.bench._datasets import Dataset, build_dataset
from strategystore.bench._measure import Contender, Figure, rate, relative_spread, spin
from strategystore.bench._settings import Settings

__all__ = ["SETTLE_SECONDS", "Context", "settle"]

# A cache that follows git's racy-entry rule (DESIGN.md section 5) trusts a
# file only once its ctime is older than the file system's timestamp
# granularity (two seconds on the coarsest, FAT). Reads of files written a
# moment ago would time cold reads under the name "warm", so measured reads
# wait until their files are at least this old.
SETTLE_SECONDS = 2.0


def settle(written_at: float) -> None:
    """Wait until files written at ``written_at`` (``time.monotonic``) have settled."""
    time.sleep(max(0.0, written_at + SETTLE_SECONDS - time.monotonic()))


class Context:
    """One benchmark run in ``root``: the figures and noise its scenarios collect.

    ``cleanup`` closes what the scenarios opened; the run enters it around them.
    """

    def __init__(self, settings: Settings, root: Path, progress: Progress) -> None:
        self.settings = settings
        self.root = root
        self.progress = progress
        self.figures: list[Figure] = []
        self.noise: list[float] = []
        self.scaling: dict[str, dict[str, Any]] = {}
        self.datasets: dict[int, Dataset] = {}
        self.fsync_spread: float | None = None
        self.cleanup = ExitStack()

    def interleave(
        self, title: str, contenders: Sequence[Contender], *, at_most: int | None = None
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
            self.noise.append(spin())
            shift = r % len(contenders)
            for i in [*range(shift, len(contenders)), *range(shift)]:
                results[i].append(contenders[i](r))
        return results

    def compare(
        self,
        key: str,
        label: str,
        store: Sequence[float],
        reference: Sequence[float],
        *,
        target: tuple[str, float] | None = None,
        reference_name: str = "",
    ) -> Figure:
        """Add the figure of the store's rate over the reference's, paired round by round."""
        ratios = [ref / st for st, ref in zip(store, reference, strict=True)]
        store_s = statistics.median(store)
        ref_s = statistics.median(reference)
        figure = Figure(
            key=key,
            label=label,
            value=statistics.median(ratios),
            unit="ratio",
            target=target,
            store=rate(store_s),
            reference=rate(ref_s) + (f" {reference_name}" if reference_name else ""),
            spread=relative_spread(ratios),
            details={
                "store_seconds_per_op": store_s,
                "reference_seconds_per_op": ref_s,
                "store_ops_per_second": 1 / store_s,
                "reference_ops_per_second": 1 / ref_s,
            },
        )
        self.figures.append(figure)
        return figure

    def dataset(self, size: int) -> Dataset:
        """The data directory holding ``size`` documents, built on first use."""
        if size in self.datasets:
            return self.datasets[size]
        self.progress.show(f"building {size:,} documents")
        dataset = build_dataset(self.root / f"data-{size}", size)
        self.datasets[size] = dataset
        return dataset
