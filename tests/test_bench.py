"""The benchmark runs end to end at tiny sizes and reports every figure; speed is never asserted."""

from __future__ import annotations

import argparse
import copy
import importlib.util
import io
import json
import math
import shutil
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from strategystore import FileStore, bench
from strategystore.bench import __main__ as bench_main
from strategystore.bench import _run
from strategystore.bench._context import Context
from strategystore.bench._measure import Figure
from strategystore.bench._report import build_report
from strategystore.cli import main

TINY = [
    "--quick",
    "--rounds",
    "2",
    "--sizes",
    "20,60",
    "--import-docs",
    "20",
    "--tinydb-docs",
    "20",
    "--command-docs",
    "60",
    "--processes",
    "2",
]

#: Every figure of the issue's target table, by its key in the JSON report.
TARGETED = {
    "save_durable_vs_raw",
    "save_nondurable_vs_raw",
    "get_vs_sqlite",
    "get_vs_raw",
    "list_version_numbers_vs_raw",
    "create_next_race_durable",
    "create_next_race_nondurable",
    "bulk_import_vs_save",
    "scaling_save_durable",
    "scaling_save",
    "scaling_get_strategy",
    "export_peak_memory",
    "tinydb_insert",
    "import_time_over_one_model",
    "check_unchanged_vs_startup",
    "briefs_unchanged_vs_startup",
    "check_cold_vs_validate_loop",
    "check_staged_vs_startup",
}
#: The whole-process figures of the command line, each against its reference.
COMMANDS = {
    "check_unchanged_vs_startup",
    "briefs_unchanged_vs_startup",
    "check_cold_vs_validate_loop",
    "check_staged_vs_startup",
}
SCALING_ROWS = {
    "save_durable",
    "save",
    "raw_write",
    "get_strategy",
    "raw_read",
    "create_next",
    "list_version_numbers",
    "list_versions_by_brief",
    "list_versions_by_brief_long",
    "list_briefs",
}


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench")
    bench.configure_parser(parser)
    return parser.parse_args(argv)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("bench") / "data"
    FileStore(path)
    return path


@pytest.fixture(scope="module")
def report(data_dir: Path) -> dict[str, Any]:
    """One tiny benchmark run with ``--json``, shared by the tests of this module."""
    out = io.StringIO()
    with redirect_stdout(out):
        assert bench.run(parse([*TINY, "--json"]), data_dir) == 0
    found: dict[str, Any] = json.loads(out.getvalue())
    return found


def is_number(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def test_every_target_figure_is_reported(report: dict[str, Any]) -> None:
    figures = report["figures"]
    assert set(figures) >= TARGETED
    assert report["summary"]["targets"] == len(TARGETED)
    for key in TARGETED:
        figure = figures[key]
        assert figure["target"], key
        if figure["available"]:
            assert is_number(figure["value"]), key
            assert isinstance(figure["passed"], bool), key
        else:
            assert figure["value"] is None, key
            assert figure["passed"] is None, key
            assert figure["note"], key


def test_the_figures_that_explain_the_targets_are_reported(report: dict[str, Any]) -> None:
    # What a document built with model_copy(update=...) costs to save, how the
    # least write with the store's guarantees compares with the store and the
    # raw floor, and the import cost of the least a package defining a
    # pydantic model can pay.
    figures = report["figures"]
    for key in (
        "save_durable_copied_vs_raw",
        "save_nondurable_copied_vs_raw",
        "save_durable_vs_locked_floor",
        "save_nondurable_vs_locked_floor",
        "locked_floor_durable_vs_raw",
        "locked_floor_nondurable_vs_raw",
        "import_time",
        "import_time_over_basemodel",
    ):
        assert is_number(figures[key]["value"]), key
        assert figures[key]["target"] is None, key
    assert "one-field pydantic model" in figures["import_time_over_one_model"]["label"]


def test_only_optional_figures_may_be_missing(report: dict[str, Any]) -> None:
    missing = {k for k, f in report["figures"].items() if not f["available"]}
    assert missing <= {"tinydb_insert", "bulk_import_vs_save", "check_staged_vs_startup"}
    assert ("check_staged_vs_startup" in missing) == (shutil.which("git") is None)
    assert ("bulk_import_vs_save" in missing) == (
        getattr(FileStore, "import_documents", None) is None
    )
    tinydb = report["figures"]["tinydb_insert"]
    if importlib.util.find_spec("tinydb") is None:
        assert tinydb["note"].startswith("tinydb not installed")
    else:
        assert is_number(tinydb["value"])


def test_comparisons_carry_both_rates_and_a_spread(report: dict[str, Any]) -> None:
    for key, figure in report["figures"].items():
        if figure["unit"] in ("ratio", "x") and figure["available"]:
            assert is_number(figure["spread"]), key
            for name in ("store_seconds_per_op", "reference_seconds_per_op"):
                if name in figure:
                    assert is_number(figure[name]) and figure[name] > 0, key


def test_command_figures_time_whole_processes_against_their_references(
    report: dict[str, Any],
) -> None:
    figures = report["figures"]
    assert report["settings"]["command_docs"] == 60
    for key in COMMANDS:
        figure = figures[key]
        assert figure["target"].startswith("<= "), key
        if not figure["available"]:
            continue
        assert figure["unit"] == "x", key
        assert figure["docs"] == 60, key
        assert figure["started_as"] in ("strategystore", "python -m strategystore"), key
        assert figure["rounds"] in (1, 2), key  # fewer when a first run is slow
        assert "60 docs" in figure["label"], key
    assert "--version" in figures["check_unchanged_vs_startup"]["label"]
    assert "model_validate_json" in figures["check_cold_vs_validate_loop"]["label"]
    staged = figures["check_staged_vs_startup"]
    if staged["available"]:
        assert len(staged["paths"]) == 10
        assert all(path.endswith(".json") for path in staged["paths"])


def test_scaling_table_has_every_operation_at_every_size(report: dict[str, Any]) -> None:
    scaling = report["scaling"]
    assert scaling["sizes"] == [20, 60]
    assert set(scaling["rows"]) == SCALING_ROWS
    for key, row in scaling["rows"].items():
        for size in ("20", "60"):
            assert is_number(row["seconds_per_op"][size]), key
            assert is_number(row["seconds_per_item"][size]), key


def test_noise_and_settings_are_reported(report: dict[str, Any]) -> None:
    assert is_number(report["noise"]["cpu_spread"])
    assert is_number(report["noise"]["fsync_spread"])
    assert report["settings"]["rounds"] == 2
    assert report["settings"]["document_sections"] == 5
    assert report["machine"]["file_system"]


def test_the_temporary_directory_is_removed(report: dict[str, Any], data_dir: Path) -> None:
    assert [p.name for p in data_dir.iterdir() if p.name.startswith(".bench-")] == []


def test_the_table_shows_every_target_with_a_verdict(
    report: dict[str, Any], capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert bench.run(parse([*TINY, "--rounds", "1"]), tmp_path / "missing" / "data") == 0
    out, err = capsys.readouterr()
    assert err == ""  # progress only goes to a terminal
    for figure in report["figures"].values():
        if figure["target"]:
            assert figure["label"] in out
    assert "Scaling" in out
    assert out.count("PASS") + out.count("FAIL") + out.count("n/a:") >= len(TARGETED)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("sizes", ["", "100,10", "5,5", "1,10", "ten"])
def test_bad_sizes_are_a_usage_error(sizes: str) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse(["--sizes", sizes])
    assert exit_info.value.code == 2


@pytest.mark.parametrize(
    ("argv", "environment", "expected"),
    [
        (["--dir", "given"], "from-env", "given"),
        ([], "from-env", "from-env"),
        ([], None, "strategy-data"),
    ],
)
def test_python_m_bench_measures_the_data_directory_it_is_told(
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    environment: str | None,
    expected: str,
) -> None:
    if environment is None:
        monkeypatch.delenv("STRATEGYSTORE_DIR", raising=False)
    else:
        monkeypatch.setenv("STRATEGYSTORE_DIR", environment)
    seen: list[tuple[argparse.Namespace, Path]] = []

    def fake_run(args: argparse.Namespace, data_dir: Path) -> int:
        seen.append((args, data_dir))
        return 0

    monkeypatch.setattr(bench_main, "run", fake_run)
    assert bench_main.main([*argv, "--quick"]) == 0
    [(args, data_dir)] = seen
    assert data_dir == Path(expected)
    assert args.quick


# -- the text's width and --check, on reports given to run() rather than measured --


def report_this(monkeypatch: pytest.MonkeyPatch, report: dict[str, Any]) -> None:
    """Make ``bench.run`` print ``report`` instead of measuring one."""
    monkeypatch.setattr(_run, "_measure", lambda ctx: copy.deepcopy(report))


def test_the_text_fits_100_columns_unless_wide(
    report: dict[str, Any],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    long_words = copy.deepcopy(report)
    long_words["machine"]["platform"] = "Linux-" + "x" * 150
    for given in (report, long_words):
        report_this(monkeypatch, given)
        assert bench.run(parse(TINY), tmp_path) == 0
        lines = capsys.readouterr().out.splitlines()
        assert max(len(line) for line in lines) <= 100
        for figure in given["figures"].values():
            label = figure["label"]
            # Beside its figures, or on a line of its own when that is too long.
            assert any(line == label or line.startswith(label + "  ") for line in lines)

    report_this(monkeypatch, report)
    assert bench.run(parse([*TINY, "--wide"]), tmp_path) == 0
    lines = capsys.readouterr().out.splitlines()
    assert max(len(line) for line in lines) > 100
    assert not any(line.startswith("  Python") for line in lines)  # the header is not wrapped
    for figure in report["figures"].values():
        [line] = [line for line in lines if line.startswith(figure["label"] + "  ")]
        if figure["target"]:
            assert line.endswith(("PASS", "FAIL", "n/a"))


def fake_measure(values: dict[str, float | None]) -> Any:
    """A ``_measure`` whose figures are ``values``, each with the target ``>= 1``."""

    def measure(ctx: Context) -> dict[str, Any]:
        for key, value in values.items():
            ctx.figures.append(
                Figure(key=key, label=f"figure {key}", value=value, unit="ratio", target=(">=", 1))
            )
        ctx.noise.append(1.0)
        return build_report(ctx, 0.0)

    return measure


@pytest.mark.parametrize("output", [[], ["--json"], ["--wide"]])
def test_check_exits_1_naming_each_missed_target(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    output: list[str],
) -> None:
    values = {"missed": 0.5, "also_missed": 0.25, "met": 2.0, "not_measured": None}
    monkeypatch.setattr(_run, "_measure", fake_measure(values))
    assert bench.run(parse([*TINY, *output, "--check"]), tmp_path) == 1
    out, err = capsys.readouterr()
    assert "figure missed" in out
    assert err.splitlines() == [
        "bench: target missed: figure also_missed: 0.25, target >= 1 (also_missed)",
        "bench: target missed: figure missed: 0.50, target >= 1 (missed)",
    ]

    assert bench.run(parse([*TINY, *output]), tmp_path) == 0  # reported, not enforced
    assert capsys.readouterr().err == ""


def test_check_exits_0_when_every_measured_target_is_met(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setattr(_run, "_measure", fake_measure({"met": 2.0, "not_measured": None}))
    assert bench.run(parse([*TINY, "--check"]), tmp_path) == 0
    assert capsys.readouterr().err == ""


def test_the_command_line_passes_check_and_wide_to_the_bench(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setattr(_run, "_measure", fake_measure({"missed": 0.5}))
    assert main(["--dir", str(tmp_path), "bench", "--wide", "--check"]) == 1
    assert "target missed: figure missed" in capsys.readouterr().err
    assert main(["--dir", str(tmp_path), "bench", "--wide"]) == 0


# -- PostgreSQL ------------------------------------------------------------------------

#: The three figures of the PostgreSQL bench, each with its target.
POSTGRES_TARGETED = {"pg_get_vs_raw", "pg_create_next_vs_raw", "pg_copy_vs_executemany"}


def test_the_postgres_bench_reports_its_three_figures_and_drops_its_tables(
    pg_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    import psycopg  # noqa: PLC0415

    def bench_tables() -> set[str]:
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            rows = conn.execute(
                "SELECT tablename FROM pg_tables WHERE tablename LIKE 'strategystore_bench_%'"
            ).fetchall()
        return {name for (name,) in rows}

    before = bench_tables()
    argv = ["--store", pg_dsn, "bench", "--quick", "--rounds", "2", "--import-docs", "20"]
    assert main([*argv, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    figures = report["figures"]
    assert set(figures) >= POSTGRES_TARGETED | {"pg_get_vs_raw_validated", "pg_copy_vs_copy"}
    assert report["summary"]["targets"] == len(POSTGRES_TARGETED)
    for key in POSTGRES_TARGETED:
        assert figures[key]["target"], key
        assert is_number(figures[key]["value"]), key
        assert isinstance(figures[key]["passed"], bool), key
        assert is_number(figures[key]["spread"]), key
    assert report["server"]["fsync"] in ("on", "off")
    assert "password" not in json.dumps(report["server"])
    assert bench_tables() == before

    assert main([*argv, "--rounds", "1"]) == 0
    out = capsys.readouterr().out
    assert "bench on PostgreSQL" in out
    for key in POSTGRES_TARGETED:
        assert figures[key]["label"] in out
    assert max(len(line) for line in out.splitlines()) <= 100
    assert bench_tables() == before


def test_the_postgres_bench_follows_the_environment_s_dsn(
    pg_dsn: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("STRATEGYSTORE_MODE", "postgres")
    monkeypatch.setenv("STRATEGYSTORE_DSN", pg_dsn)
    monkeypatch.delenv("STRATEGYSTORE_DIR", raising=False)
    assert main(["bench", "--quick", "--rounds", "1", "--import-docs", "10", "--json"]) == 0
    assert set(json.loads(capsys.readouterr().out)["figures"]) >= POSTGRES_TARGETED
