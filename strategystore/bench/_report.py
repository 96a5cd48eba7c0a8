"""The report of a run: a JSON-ready dict, and the text a person reads."""

from __future__ import annotations

import importlib
import os
import platform
import sqlite3
import textwrap
from collections.abc import Sequence
from contextlib import suppress
from pathlib import Path
from typing import Any

import pydantic

import strategystore
from strategystore import _render
from strategystore.bench._context import Context
from strategystore.bench._document import TEMPLATE
from strategystore.bench._measure import Figure, duration, percentile_spread
from strategystore.bench._settings import WIDTH

__all__ = [
    "build_report",
    "missed_targets",
    "render",
    "render_figures",
    "render_verdict",
    "summarize",
    "wrap",
]


def build_report(ctx: Context, seconds: float) -> dict[str, Any]:
    """Everything ``ctx`` measured, with the machine and the settings, as the JSON report."""
    settings = ctx.settings
    return {
        "machine": _machine(ctx.root),
        "settings": {
            "quick": settings.quick,
            "rounds": settings.rounds,
            "sizes": list(settings.sizes),
            "import_docs": settings.import_docs,
            "tinydb_docs": settings.tinydb_docs,
            "command_docs": settings.command_docs,
            "processes": settings.processes,
            "document_bytes": len(TEMPLATE.to_json_bytes()),
            "document_sections": len(TEMPLATE.sections),
        },
        "noise": {
            "cpu_spread": percentile_spread(ctx.noise),
            "cpu_samples": len(ctx.noise),
            "fsync_spread": ctx.fsync_spread,
        },
        "figures": {f.key: f.as_json() for f in ctx.figures},
        "scaling": {"sizes": list(settings.sizes), "rows": ctx.scaling},
        "summary": summarize(ctx.figures),
        "seconds": seconds,
    }


def summarize(figures: Sequence[Figure]) -> dict[str, Any]:
    """How many targets there are, and which were met, missed and not measured."""
    targets = [f for f in figures if f.target is not None]
    return {
        "targets": len(targets),
        "passed": sum(f.passed is True for f in targets),
        "failed": sorted(f.key for f in targets if f.passed is False),
        "not_measured": sorted(f.key for f in targets if f.passed is None),
    }


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


def render(report: dict[str, Any], width: int | None = WIDTH) -> str:
    """The report as text: a header, the targets, the other figures, the scaling table.

    Args:
        report: what ``build_report`` returned.
        width: the columns every line fits; ``None`` for one line per figure
            however long (``--wide``).
    """
    machine = report["machine"]
    settings = report["settings"]
    noise = report["noise"]
    fsync = noise["fsync_spread"]
    header_lines = [
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
    ]
    lines = [line for text in header_lines for line in wrap(text, width, "  ")]
    lines += ["", *render_figures(report["figures"], width)]
    lines += ["", *_scaling_table(report["scaling"], width)]
    lines += ["", *render_verdict(report, width)]
    return "\n".join(lines)


def render_figures(figures: dict[str, Any], width: int | None = WIDTH) -> list[str]:
    """The lines of the targets table, its notes and the table of the other figures."""
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
    lines = _table("Targets", header, targeted, width)
    for f in figures.values():
        if f["note"]:
            lines += wrap(f"  n/a: {f['label']}: {f['note']}", width, "       ")
    lines += ["", *_table("Also measured (no target)", header[:4] + header[5:6], others, width)]
    return lines


def render_verdict(report: dict[str, Any], width: int | None = WIDTH) -> list[str]:
    """The last line: how many targets were met, which were not, and how long the run took."""
    summary = report["summary"]
    verdict = f"{summary['passed']} of {summary['targets']} targets met"
    if summary["failed"]:
        verdict += "; failing: " + ", ".join(summary["failed"])
    if summary["not_measured"]:
        verdict += "; not measured: " + ", ".join(summary["not_measured"])
    return wrap(f"{verdict} ({report['seconds']:.0f} s)", width, "  ")


def missed_targets(report: dict[str, Any]) -> list[str]:
    """One line per target the run missed: its label, value and target, and its key.

    A target that was not measured (an optional package missing) is not missed.
    """
    figures = report["figures"]
    return [
        f"{figures[key]['label']}: {_value(figures[key])}, target {figures[key]['target']} ({key})"
        for key in report["summary"]["failed"]
    ]


def _scaling_table(scaling: dict[str, Any], width: int | None) -> list[str]:
    sizes = scaling["sizes"]
    header = ("operation", *(f"{s:,} docs" for s in sizes), "largest/smallest")
    rows: list[tuple[str, ...]] = []
    for entry in scaling["rows"].values():
        per_op = [entry["seconds_per_op"][str(s)] for s in sizes]
        rows.append(
            (f"{entry['label']}, per op", *map(duration, per_op), f"{per_op[-1] / per_op[0]:.2f}")
        )
        items = [entry["items_per_op"][str(s)] for s in sizes]
        if any(n > 1 for n in items):
            per_item = [entry["seconds_per_item"][str(s)] for s in sizes]
            what = "brief" if "briefs" in entry["label"] else "version"
            rows.append(
                (
                    f"  per {what} ({' / '.join(f'{n:,}' for n in items)})",
                    *map(duration, per_item),
                    f"{per_item[-1] / per_item[0]:.2f}",
                )
            )
    return _table(
        "Scaling (briefs of 10 versions plus one long brief; every size worked through the "
        "same briefs; reads first, on settled files; writes add new versions)",
        header,
        rows,
        width,
    )


def _table(
    title: str, header: Sequence[str], rows: Sequence[Sequence[str]], width: int | None
) -> list[str]:
    """A titled table whose columns after the first, all figures, align to the right.

    When a line would pass ``width``, a first cell too long to sit beside the
    figures takes a line of its own, with its figures on the next line.
    """
    right = set(range(1, len(header)))
    lines = _render.table(header, rows, right=right)
    if width is None or max(map(len, lines)) <= width:
        return [*wrap(title, width, "  "), *lines]
    figures = sum(max(len(r[i]) for r in (header, *rows)) + 2 for i in range(1, len(header)))
    room = max(width - figures, len(header[0]))
    fitted = [("" if len(r[0]) > room else r[0], *r[1:]) for r in rows]
    lines = _render.table(header, fitted, right=right)
    out = [*wrap(title, width, "  "), lines[0]]
    for cells, line in zip(rows, lines[1:], strict=True):
        if len(cells[0]) > room:
            out += wrap(cells[0], width, "    ")
        out.append(line)
    return out


def wrap(text: str, width: int | None, indent: str) -> list[str]:
    """``text`` in lines of at most ``width`` columns, continued after ``indent``."""
    if width is None:
        return [text]
    return textwrap.wrap(text, width, subsequent_indent=indent, break_on_hyphens=False) or [""]
