"""The package where ``fcntl`` does not exist (Windows): it imports, and FileStore refuses.

Each test runs Python in a subprocess that cannot import ``fcntl`` (a ``None``
entry in ``sys.modules`` makes ``import fcntl`` raise ``ImportError``); the
Windows-like one also takes away the POSIX-only parts of ``os``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from strategystore import _fsio, _locks

#: Run before the test's code: ``fcntl`` cannot be imported.
NO_FCNTL = "import sys\nsys.modules['fcntl'] = None\n"
#: As NO_FCNTL, and ``os`` without what Windows lacks.
WINDOWS_LIKE = NO_FCNTL + textwrap.dedent(
    """\
    import os
    for name in ("O_DIRECTORY", "O_NOFOLLOW", "O_NONBLOCK", "O_CLOEXEC",
                 "fork", "register_at_fork", "uname"):
        delattr(os, name)
    for name in ("resource", "pwd", "grp", "termios"):
        sys.modules[name] = None
    """
)
MESSAGE = (
    "FileStore needs Linux or macOS: it takes brief locks with flock, which {platform} lacks, "
    "and relies on POSIX rename and link semantics and on fsync of directories; "
    "use MemoryStore (open_store('memory')) here"
)


def run_python(code: str, cwd: Path, prelude: str = NO_FCNTL) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATEGYSTORE_")}
    return subprocess.run(
        [sys.executable, "-c", prelude + textwrap.dedent(code)],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_without_fcntl_the_memory_store_the_model_and_diff_work(tmp_path: Path) -> None:
    result = run_python(
        """
        import strategystore as ss
        from strategystore import StrategyDocument, diff

        store = ss.open_store("memory")
        assert isinstance(store, ss.MemoryStore)
        first = store.create_next("acme", [{"key": "goal", "title": "Goal", "body": "Grow."}])
        second = store.create_next("acme", [{"key": "goal", "title": "Goal", "body": "Grow more."}])
        assert store.get_latest("acme") == second
        assert (first.version, second.version) == (1, 2)
        assert StrategyDocument.from_json_bytes(second.to_json_bytes()) == second
        assert diff(first, second)
        try:
            store.create(first)
        except ss.DuplicateVersionError:
            pass
        else:
            raise AssertionError("a duplicate version was stored")
        print("ok")
        """,
        tmp_path,
    )
    assert (result.returncode, result.stdout, result.stderr) == (0, "ok\n", "")


def test_without_fcntl_file_store_refuses_saying_it_needs_linux_or_macos(tmp_path: Path) -> None:
    result = run_python(
        """
        import strategystore as ss

        for open_one in (lambda: ss.FileStore("data"), lambda: ss.open_store("file", "data")):
            try:
                open_one()
            except ss.ConfigurationError as exc:
                print(exc)
        """,
        tmp_path,
    )
    expected = MESSAGE.format(platform=f"this Python ({sys.platform})")
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout.splitlines() == [expected, expected]
    assert not (tmp_path / "data").exists()


def test_on_windows_the_package_imports_and_the_message_names_windows(tmp_path: Path) -> None:
    result = run_python(
        """
        import strategystore as ss
        import strategystore.check, strategystore.cli, strategystore.resolve

        assert ss.MemoryStore().create_next("acme").version == 1
        sys.platform = "win32"  # only check_platform reads it, when called
        try:
            ss.FileStore("data")
        except ss.ConfigurationError as exc:
            print(exc)
        """,
        tmp_path,
        prelude=WINDOWS_LIKE,
    )
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == MESSAGE.format(platform="Windows") + "\n"
    assert not (tmp_path / "data").exists()


def test_without_fcntl_help_and_schema_still_work(tmp_path: Path) -> None:
    run = "import runpy; runpy.run_module('strategystore', run_name='__main__')"
    for args in (["--help"], ["schema"]):
        result = run_python(f"sys.argv = ['strategystore', *{args!r}]\n{run}", tmp_path)
        assert (result.returncode, result.stderr) == (0, ""), args
        assert result.stdout


def test_without_fcntl_commands_on_a_data_directory_fail_with_one_line(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "strategystore", "--dir", "made", "init"],
        cwd=tmp_path,
        capture_output=True,
        check=True,
    )
    expected = "strategystore: " + MESSAGE.format(platform=f"this Python ({sys.platform})") + "\n"
    for args in (
        ["--dir", "missing", "init"],
        ["--dir", "missing", "briefs"],
        ["--dir", "made", "briefs"],
        ["--dir", "made", "show", "acme"],
        ["--dir", "made", "check"],
        ["--dir", "made", "export"],
    ):
        result = run_python(
            f"from strategystore.cli import main\nraise SystemExit(main({args!r}))", tmp_path
        )
        assert (result.returncode, result.stdout, result.stderr) == (1, "", expected), args
    assert not (tmp_path / "missing").exists()


def test_on_linux_and_macos_the_flags_and_locks_are_the_posix_ones() -> None:
    assert _fsio.MISSING_OPEN_FLAGS == ()
    assert _fsio.DIR_FLAGS == os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | _fsio.O_CLOEXEC
    assert _fsio.READ_FLAGS == os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | _fsio.O_CLOEXEC
    assert _fsio.ROOT_FLAGS == os.O_RDONLY | os.O_DIRECTORY | _fsio.O_CLOEXEC
    _locks.check_platform()  # raises nothing here


def test_windows_like_postgres_store_and_its_command_line_work(
    tmp_path: Path, pg_dsn: str, pg_table: str
) -> None:
    result = run_python(
        f"""
        import strategystore as ss
        from strategystore.cli import main

        store = ss.open_store("postgres", dsn={pg_dsn!r}, table={pg_table!r})
        assert isinstance(store, ss.PostgresStore)
        draft = store.create_next("acme", [{{"key": "goal", "title": "Goal", "body": "Grow."}}])
        store.approve("acme", draft.version)
        store.close()
        url = {pg_dsn!r} + ("&" if "?" in {pg_dsn!r} else "?") + "table=" + {pg_table!r}
        assert main(["--store", url, "show", "acme", "--approved"]) == 0
        print("ok")
        """,
        tmp_path,
        WINDOWS_LIKE,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.endswith("ok\n")
    assert "approved" in result.stdout
