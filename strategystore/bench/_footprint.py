"""What the store costs a process: peak memory of an export, time of the import."""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

from strategystore.bench._context import Context
from strategystore.bench._measure import Figure

__all__ = ["measure_export", "measure_import_time"]

_HERE = Path(__file__).parent
_EXPORT_CHILD = _HERE / "_export_child.py"
_IMPORT_TIME_CHILD = _HERE / "_import_time_child.py"

#: The names every user imports, so that a lazily filled package namespace
#: cannot look cheap while the first real use pays the cost.
_OURS = "from strategystore import FileStore, StrategyDocument"
_ONE_MODEL = "a module defining a one-field pydantic model"

#: What the import-time child is told to import, by the name the report gives it.
_IMPORTS = {
    _OURS: [_OURS],
    "import pydantic": ["import pydantic"],
    "from pydantic import BaseModel": ["from pydantic import BaseModel"],
    _ONE_MODEL: ["--file", str(_HERE / "_one_model.py")],
}


def measure_export(ctx: Context) -> None:
    """Peak memory of exporting the largest data set as JSON lines, above the start."""
    size = ctx.settings.sizes[-1]
    dataset = ctx.dataset(size)
    ctx.progress.show(f"exporting {size:,} documents")
    out = ctx.root / "export.jsonl"
    # In its own interpreter, so that its peak memory is the export's alone.
    result = subprocess.run(
        [sys.executable, str(_EXPORT_CHILD), str(dataset.root), str(out)],
        check=True,
        capture_output=True,
        text=True,
    )
    found = json.loads(result.stdout)
    out.unlink(missing_ok=True)
    baseline = found["baseline_kib"] / 1024
    peak = found["peak_kib"] / 1024
    ctx.figures.append(
        Figure(
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


def measure_import_time(ctx: Context) -> None:
    """Import of ``strategystore`` in a fresh interpreter, above pydantic's own imports."""
    runs = ctx.settings.ops(11, 3)
    # Every import gets cached bytecode, as in any installed environment, even
    # where PYTHONDONTWRITEBYTECODE is set or the package directory is read-only:
    # a private cache inside the benchmark's directory, filled by a first import.
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = str(ctx.root / "pycache")

    def import_seconds(name: str) -> float:
        out = subprocess.run(
            [sys.executable, str(_IMPORT_TIME_CHILD), *_IMPORTS[name]],
            check=True,
            capture_output=True,
            text=True,
            env=env,
        )
        return float(out.stdout)

    names = list(_IMPORTS)
    for name in names:  # fills the bytecode cache, outside the measurement
        import_seconds(name)
    times: dict[str, list[float]] = {name: [] for name in names}
    for i in range(runs):
        ctx.progress.show(f"import time, run {i + 1}/{runs}")
        shift = i % len(names)
        for name in names[shift:] + names[:shift]:
            times[name].append(import_seconds(name) * 1000)
    median = {name: statistics.median(values) for name, values in times.items()}
    for key, baseline, target in (
        ("import_time", "import pydantic", None),
        ("import_time_over_basemodel", "from pydantic import BaseModel", None),
        ("import_time_over_one_model", _ONE_MODEL, ("<=", 10.0)),
    ):
        deltas = [a - b for a, b in zip(times[_OURS], times[baseline], strict=True)]
        middle = statistics.median(deltas)
        ctx.figures.append(
            Figure(
                key,
                f"import strategystore over {baseline}",
                middle,
                "ms",
                target=target,
                store=f"{median[_OURS]:.1f} ms",
                reference=f"{median[baseline]:.1f} ms",
                spread=(max(deltas) - min(deltas)) / 2 / abs(middle or 1),
                details={
                    "statement": _OURS,
                    "strategystore_ms": median[_OURS],
                    "baseline": baseline,
                    "baseline_ms": median[baseline],
                    "runs": runs,
                },
            )
        )
