"""``python -m strategystore``: the command line."""

from strategystore.cli import main

raise SystemExit(main())
