"""``strategystore bench``: the store measured on its disk against the raw-file floor and SQLite.

One run times every operation of ``FileStore`` and what it is compared with
(the raw-file floor, SQLite, TinyDB when the ``bench`` extra is installed),
round by round in a rotating order, so drift of a shared machine hits both
sides alike; it reports medians over the rounds, the ratio of the store's rate
to the reference's, and how much the machine wobbled. The command line is
timed as whole processes on a data set of 100,000 documents: ``check`` and
``briefs`` on an unchanged directory and ``check PATH…`` of ten staged files
against ``strategystore --version``, ``check`` on a cold index against one
process reading and validating every file. Everything runs in a
temporary ``.bench-*`` directory on the data directory's file system, removed
afterwards. Targets are reported as PASS or FAIL: absolute speed depends on
the machine, ratios in one run do not. ``--check`` makes a missed target exit
1, for a CI that opts in. The text fits 100 columns unless ``--wide``.

Given a PostgreSQL URL instead of a data directory (``run_postgres``), it
measures ``PostgresStore`` against the same SQL written by hand with psycopg,
in tables of its own that it drops afterwards.

Usage::

    strategystore bench [--quick] [--json] [--wide] [--check]
    strategystore bench --store postgresql://USER@HOST/DATABASE [--quick] [--json] …
    python -m strategystore.bench [--dir DIR] [--quick] [--json] [--wide] [--check]
"""

from __future__ import annotations

import argparse

from strategystore.bench._run import run
from strategystore.bench._settings import configure_parser

__all__ = ["configure_parser", "run", "run_postgres"]


def run_postgres(args: argparse.Namespace, dsn: str) -> int:
    """Run the benchmark against the PostgreSQL server of ``dsn``; the exit status.

    It needs the ``postgres`` extra, imported only here, so that the file
    benchmark runs without it.

    Raises:
        ImportError: psycopg or psycopg_pool is not installed.
    """
    from strategystore.bench import _postgres  # noqa: PLC0415

    return _postgres.run(args, dsn)
