"""The options of ``bench``, and the work of one run they set."""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import Any

__all__ = ["FULL_SIZES", "QUICK_SIZES", "WIDTH", "Settings", "configure_parser"]

#: Default sizes of the full run and of ``--quick``.
FULL_SIZES = (1_000, 10_000, 100_000)
QUICK_SIZES = (200, 1_000)

#: The columns the text report fits unless ``--wide``.
WIDTH = 100


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
        "--command-docs",
        type=_positive_int,
        metavar="N",
        help="documents in the data directory the check and briefs commands are timed on "
        "(default 100000, quick 2000; a data set of the scaling table when one has this size)",
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
    parser.add_argument(
        "--wide",
        action="store_true",
        help=f"one line per figure however long, instead of fitting {WIDTH} columns",
    )
    parser.add_argument(
        "--check",
        action="store_true",
        help="exit 1 when a target is missed, naming it on stderr (targets not measured "
        "do not count)",
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
class Settings:
    """How much work one run does: rounds, data set sizes, documents and processes."""

    quick: bool
    rounds: int
    sizes: tuple[int, ...]
    import_docs: int
    tinydb_docs: int
    command_docs: int
    processes: int

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Settings:
        """The options given in ``args``, the full or the quick run's defaults for the rest."""
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
            command_docs=pick("command_docs", 100_000, 2_000),
            processes=pick("processes", 4, 4),
        )

    def ops(self, full: int, quick: int) -> int:
        """Operations per timed batch."""
        return quick if self.quick else full
