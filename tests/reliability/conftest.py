"""Fixtures of the reliability suite, and the figures it prints at the end of a run.

``STRATEGYSTORE_STRESS=1`` runs every test ten times longer (more kill
rounds, races and examples); ``STRATEGYSTORE_STRESS_FACTOR=N`` picks the
factor.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from strategystore import FileStore
from tests.reliability._support import FIGURES, seed_base, stress_factor


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    if not FIGURES:
        return
    terminalreporter.write_sep(
        "=", f"strategystore reliability figures (stress x{stress_factor()})"
    )
    width = max(len(name) for name in FIGURES)
    for name in sorted(FIGURES):
        terminalreporter.write_line(f"{name:<{width}}  {FIGURES[name]:>9,}")


@pytest.fixture(scope="module")
def base_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory holding the scenarios' starting state; copy it, never write to it."""
    data = tmp_path_factory.mktemp("base") / "data"
    seed_base(FileStore(data, durable=False))
    return data
