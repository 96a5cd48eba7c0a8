"""The pytest plugin ``strategystore.testing``, run as a user's suite would run it.

Each test writes a user's test file into ``tmp_path`` and runs pytest on it in
a subprocess, which loads the plugin through its ``pytest11`` entry point. A
``pytest.ini`` in ``tmp_path`` makes that directory the rootdir, so this
repository's conftest and configuration play no part.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import strategystore

USER_TESTS = """
from strategystore import FileStore, MemoryStore, Status


def test_memory(memory_store):
    assert isinstance(memory_store, MemoryStore)
    draft = memory_store.create_next("acme-q3", [{"key": "goal", "title": "Goal", "body": "Grow"}])
    assert memory_store.get_latest("acme-q3") == draft


def test_file(file_store, tmp_path):
    assert isinstance(file_store, FileStore)
    draft = file_store.create_next("acme-q3", [{"key": "goal", "title": "Goal", "body": "Grow"}])
    assert file_store.get_latest("acme-q3") == draft
    assert (tmp_path / "strategy-data" / "acme-q3" / "1.json").is_file()


def test_both(strategy_store):
    draft = strategy_store.create_next("acme-q3")
    strategy_store.approve("acme-q3", draft.version)
    latest = strategy_store.get_latest("acme-q3", status=Status.APPROVED)
    assert latest is not None and latest.version == 1
"""


def run_user_tests(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    """Run pytest on ``source`` as a user's test file in ``tmp_path``, plugins from entry points."""
    (tmp_path / "pytest.ini").write_text("[pytest]\nfilterwarnings = error\n", encoding="utf-8")
    test_file = tmp_path / "test_user.py"
    test_file.write_text(textwrap.dedent(source), encoding="utf-8")
    # PYTEST_ADDOPTS or PYTEST_DISABLE_PLUGIN_AUTOLOAD from outside would change the run.
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTEST_")}
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rA", "-p", "no:cacheprovider", str(test_file)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=False,
    )


def outcome_line(result: subprocess.CompletedProcess[str]) -> str:
    """The last line of pytest's output: ``4 passed in 0.12s`` and the like."""
    return result.stdout.strip().splitlines()[-1]


def test_a_user_suite_gets_each_store_and_both_from_strategy_store(tmp_path: Path) -> None:
    result = run_user_tests(tmp_path, USER_TESTS)

    assert result.returncode == 0, result.stdout + result.stderr
    assert outcome_line(result).startswith("4 passed in "), result.stdout
    assert "PASSED test_user.py::test_both[memory]" in result.stdout
    assert "PASSED test_user.py::test_both[file]" in result.stdout


def test_a_failing_user_test_is_reported_once_per_store(tmp_path: Path) -> None:
    result = run_user_tests(
        tmp_path,
        """
        def test_latest_of_an_empty_store(strategy_store):
            assert strategy_store.get_latest("acme-q3") is not None
        """,
    )

    assert result.returncode == 1, result.stdout + result.stderr
    assert outcome_line(result).startswith("2 failed in "), result.stdout
    assert "FAILED test_user.py::test_latest_of_an_empty_store[memory]" in result.stdout
    assert "FAILED test_user.py::test_latest_of_an_empty_store[file]" in result.stdout


def test_every_store_is_closed_after_its_test(tmp_path: Path) -> None:
    result = run_user_tests(
        tmp_path,
        """
        used = []

        def test_memory(memory_store):
            used.append(memory_store)

        def test_file(file_store):
            used.append(file_store)

        def test_both(strategy_store):
            used.append(strategy_store)

        def test_all_four_were_closed():
            assert len(used) == 4
            assert all(store.closed for store in used)
        """,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert outcome_line(result).startswith("5 passed in "), result.stdout


def test_a_conftest_fixture_overrides_the_plugins_of_the_same_name(tmp_path: Path) -> None:
    (tmp_path / "conftest.py").write_text(
        textwrap.dedent(
            """
            import pytest

            @pytest.fixture
            def memory_store():
                return "the user's own"
            """
        ),
        encoding="utf-8",
    )
    result = run_user_tests(
        tmp_path,
        """
        def test_memory(memory_store):
            assert memory_store == "the user's own"

        def test_both(strategy_store):
            assert not isinstance(strategy_store, str)
        """,
    )

    assert result.returncode == 0, result.stdout + result.stderr
    assert outcome_line(result).startswith("3 passed in "), result.stdout


def _imports_pydantic(code: str) -> bool:
    result = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return {"True": True, "False": False}[result.stdout.strip()]


def test_the_plugin_module_itself_imports_no_store(tmp_path: Path) -> None:
    # The package's __init__ is skipped (an empty package stands in for it), so
    # this sees exactly what strategystore/testing.py imports at its top.
    package_dir = str(Path(strategystore.__file__).parent)
    code = textwrap.dedent(
        f"""
        import sys, types
        package = types.ModuleType("strategystore")
        package.__path__ = [{package_dir!r}]
        sys.modules["strategystore"] = package
        import strategystore.testing
        print("pydantic" in sys.modules or "strategystore.memory" in sys.modules)
        """
    )
    assert _imports_pydantic(code) is False


def test_importing_the_plugin_loads_no_pydantic() -> None:
    code = "import strategystore.testing, sys; print('pydantic' in sys.modules)"
    assert _imports_pydantic(code) is False
