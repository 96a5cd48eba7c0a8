"""``strategystore bench``: the store measured on its disk against the raw-file floor and SQLite.

One run times every operation of ``FileStore`` and what it is compared with
(the raw-file floor, SQLite, TinyDB when the ``bench`` extra is installed),
round by round in a rotating order, so drift of a shared machine hits both
sides alike; it reports medians over the rounds, the ratio of the store's rate
to the reference's, and how much the machine wobbled. Everything runs in a
temporary ``.bench-*`` directory on the data directory's file system, removed
afterwards. Targets are reported as PASS or FAIL: absolute speed depends on
the machine, ratios in one run do not. ``--check`` makes a missed target exit
1, for a CI that opts in. The text fits 100 columns unless ``--wide``.

Usage::

    strategystore bench [--quick] [--json] [--wide] [--check]
    python -m strategystore.bench [--dir DIR] [--quick] [--json] [--wide] [--check]
"""

from strategystore.bench._run import run
from strategystore.bench._settings import configure_parser

__all__ = ["configure_parser", "run"]
