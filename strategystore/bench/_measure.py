"""Timing primitives, the machine's noise, and the figure a measurement becomes."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Contender",
    "Figure",
    "duration",
    "percentile_spread",
    "rate",
    "relative_spread",
    "spin",
    "timed",
]

_COMPARISONS: dict[str, Callable[[float, float], bool]] = {
    ">=": lambda value, threshold: value >= threshold,
    "<=": lambda value, threshold: value <= threshold,
    "<": lambda value, threshold: value < threshold,
}

#: A contender runs its batch for one round (the argument) and returns seconds per operation.
Contender = Callable[[int], float]


def timed(operation: Callable[[], object], count: int) -> float:
    """Seconds per call of ``operation``, called ``count`` times in a row."""
    start = time.perf_counter()
    for _ in range(count):
        operation()
    return (time.perf_counter() - start) / count


def spin() -> float:
    """Time a fixed piece of pure Python: the machine's own noise, store-independent."""
    start = time.perf_counter()
    sum(i * i for i in range(20_000))
    return time.perf_counter() - start


def percentile_spread(values: Sequence[float]) -> float:
    """Half the distance from the 10th to the 90th percentile, relative to the median."""
    if len(values) < 2:
        return 0.0
    deciles = statistics.quantiles(values, n=10)
    return (deciles[-1] - deciles[0]) / 2 / statistics.median(values)


def relative_spread(values: Sequence[float]) -> float:
    """Half the range between rounds, relative to the median."""
    middle = statistics.median(values)
    return (max(values) - min(values)) / 2 / middle if middle else 0.0


def rate(seconds_per_op: float) -> str:
    """Operations per second: ``1,234/s``."""
    return f"{1 / seconds_per_op:,.0f}/s"


def duration(seconds: float) -> str:
    """A duration in the unit that suits it: ``1.50 s``, ``2.31 ms``, ``15.7 µs``."""
    if seconds >= 1:
        return f"{seconds:.2f} s"
    if seconds >= 1e-3:
        return f"{seconds * 1e3:.2f} ms"
    return f"{seconds * 1e6:.1f} µs"


@dataclass
class Figure:
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
        """Whether the value meets the target; ``None`` without a target or a value."""
        if self.target is None or self.value is None:
            return None
        op, threshold = self.target
        return _COMPARISONS[op](self.value, threshold)

    def as_json(self) -> dict[str, Any]:
        """The figure as the JSON report holds it, details included."""
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
