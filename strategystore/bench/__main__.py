"""``python -m strategystore.bench``: the benchmark on a data directory of one's choice."""

from __future__ import annotations

import argparse
from pathlib import Path

from strategystore._backends import DATA_DIR_VARIABLE, DEFAULT_DATA_DIR, data_dir
from strategystore.bench import configure_parser, run


def main(argv: list[str] | None = None) -> int:
    """Parse ``argv`` (the command line when ``None``), run the benchmark; the exit status."""
    parser = argparse.ArgumentParser(
        prog="python -m strategystore.bench",
        description="Measure FileStore on a data directory's disk against the raw-file "
        "floor, SQLite and TinyDB.",
    )
    parser.add_argument(
        "--dir",
        type=Path,
        help=f"the data directory whose disk is measured (default ${DATA_DIR_VARIABLE}, "
        f"then ./{DEFAULT_DATA_DIR})",
    )
    configure_parser(parser)
    args = parser.parse_args(argv)
    return run(args, data_dir(args.dir))


if __name__ == "__main__":
    raise SystemExit(main())
