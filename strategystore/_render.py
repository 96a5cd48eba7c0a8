"""Text for people: documents, tables, counts, timestamps and the progress line.

Shared by the command line, the benchmark and the review page, so each draws
a document, a table or a progress line the same way.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Sequence, Set
from datetime import datetime
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from pydantic import JsonValue

    from strategystore.models import StrategyDocument

__all__ = [
    "Progress",
    "count",
    "document",
    "iso",
    "json_value",
    "minute",
    "second",
    "table",
    "text",
]

#: Erases the line the cursor is on, after a carriage return.
_CLEAR_LINE = "\r\x1b[K"


def document(doc: StrategyDocument) -> str:
    """A document as a person reads it: a header, its metadata, then each section.

    The sections' Markdown is shown as it is; an untitled section, an empty
    body and a document without sections each say so.
    """
    lines = [
        f"# {doc.brief_id}, version {doc.version} ({doc.status.value})",
        "",
        f"created   {second(doc.created_at)}",
        f"updated   {second(doc.updated_at)}",
    ]
    if doc.status_reason:
        lines.append(f"reason    {doc.status_reason}")
    for index, (key, value) in enumerate(doc.metadata.items()):
        label = "metadata" if index == 0 else ""
        lines.append(f"{label:<10}{key}: {json_value(value)}")
    if not doc.sections:
        lines += ["", "(no sections)"]
    for section in doc.sections:
        title = section.title or "(untitled)"
        lines += ["", f"## {title}  [{section.key}]", ""]
        lines.append(section.body.rstrip("\n") if section.body.strip() else "(empty)")
    return "\n".join(lines)


def json_value(value: JsonValue) -> str:
    """A JSON value on one line, object keys sorted, non-ASCII as is: ``{"a": 1.0}``."""
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def table(
    headers: Sequence[str], rows: Sequence[Sequence[str]], *, right: Set[int] = frozenset()
) -> list[str]:
    """Lines of a plain-text table, columns two spaces apart.

    Args:
        headers: the first line's cells.
        rows: the other lines, each with as many cells as ``headers``.
        right: indexes of the columns aligned to the right.
    """
    widths = [max(map(len, column)) for column in zip(headers, *rows, strict=True)]
    # One format for every line: each cell padded in C, not one call per cell.
    line = "  ".join(
        f"{{:{'>' if i in right else '<'}{width}}}" for i, width in enumerate(widths)
    ).format
    return [line(*row).rstrip() for row in (headers, *rows)]


def count(number: int, noun: str) -> str:
    """``1 document``, ``2 documents``."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def iso(moment: datetime) -> str:
    """RFC 3339 with ``Z``, as the files spell a UTC time."""
    return moment.isoformat().replace("+00:00", "Z")


def minute(moment: datetime) -> str:
    """``2026-01-15 09:30``, for columns."""
    return moment.isoformat(" ", "minutes")[:16]


def second(moment: datetime) -> str:
    """``2026-01-15 09:30:00 UTC``, for a document's header."""
    return moment.isoformat(" ", "seconds")[:19] + " UTC"


def text(value: object) -> str:
    """A value for a table cell, ``-`` for none."""
    return "-" if value is None else str(value)


class Progress:
    """One rewritten status line on a stream, drawn only when it is a terminal.

    ``show(text)`` draws a line at once; ``update(n)`` draws ``"<verb> n <noun>…"``
    at most ten times a second, so a loop may call it for every item.
    """

    def __init__(
        self, verb: str = "", noun: str = "", *, prefix: str = "", stream: TextIO | None = None
    ) -> None:
        self._stream = sys.stderr if stream is None else stream
        self._verb = verb
        self._noun = noun
        self._prefix = prefix
        self._enabled = self._stream is not None and self._stream.isatty()
        self._shown = False
        self._next_draw = 0.0

    def __repr__(self) -> str:
        return f"Progress({self._verb!r}, {self._noun!r}, prefix={self._prefix!r})"

    def show(self, line: str) -> None:
        """Replace the status line with ``line``."""
        if self._enabled:
            self._draw(f"{_CLEAR_LINE}{self._prefix}{line}")

    def update(self, number: int) -> None:
        """Show the count so far, at most ten times a second."""
        if not self._enabled:
            return
        now = time.monotonic()
        if now < self._next_draw:
            return
        self._next_draw = now + 0.1
        # A count only grows, so the new line covers the old one.
        self._draw(f"\r{self._prefix}{self._verb} {number} {self._noun}…")

    def _draw(self, line: str) -> None:
        self._stream.write(line)
        self._stream.flush()
        self._shown = True

    def clear(self) -> None:
        """Erase the status line, before other output is written."""
        if self._shown:
            self._stream.write(_CLEAR_LINE)
            self._stream.flush()
            self._shown = False

    def finish(self, message: str) -> None:
        """Replace the status line with a last line, on a terminal only."""
        self.clear()
        if self._enabled:
            self._stream.write(message + "\n")
