"""Fixtures shared by every test tier."""

from __future__ import annotations

import io
import os
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from strategystore import FileStore, MemoryStore, Section, StrategyDocument
from strategystore.cli import main
from strategystore.store import BaseStore
from tests import pgserver

T0 = datetime(2026, 1, 15, 9, 30, tzinfo=UTC)


def make_doc(brief_id: str = "acme-q3", version: int = 1, **fields: object) -> StrategyDocument:
    """A valid document with a section and some metadata; ``fields`` override."""
    values: dict[str, object] = {
        "brief_id": brief_id,
        "version": version,
        "created_at": T0,
        "sections": [Section(key="goal", title="Goal", body="Grow **fast**.")],
        "metadata": {"model": "gpt", "score": 0.5},
    }
    values.update(fields)
    return StrategyDocument.model_validate(values)


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """A PostgreSQL server's DSN: ``$STRATEGYSTORE_TEST_DSN``, or a server started for the session.

    Without one, the test fails in CI (``CI=true``) and is skipped elsewhere.
    """
    given = os.environ.get(pgserver.DSN_VARIABLE)
    if given:
        yield given
        return
    try:
        server = pgserver.start()
    except (FileNotFoundError, RuntimeError, KeyError) as exc:
        if os.environ.get("CI") == "true":
            pytest.fail(f"no PostgreSQL server for the tests: {exc}")
        pytest.skip(f"no PostgreSQL server for the tests: {exc}")
    try:
        yield server.dsn
    finally:
        server.remove()


@pytest.fixture
def pg_table(pg_dsn: str) -> Iterator[str]:
    """A table name of the test's own, dropped afterwards."""
    import psycopg  # noqa: PLC0415

    name = f"t_{uuid.uuid4().hex[:16]}"
    yield name
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {name}")


@pytest.fixture
def pg_store(pg_dsn: str, pg_table: str) -> Iterator[BaseStore]:
    """A ``PostgresStore`` over a table of the test's own."""
    from strategystore.postgres import PostgresStore  # noqa: PLC0415

    with PostgresStore(pg_dsn, table=pg_table, lock_timeout=5.0) as opened:
        yield opened


@pytest.fixture(params=["memory", "file", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[BaseStore]:
    """Each behaviour test runs against MemoryStore, FileStore and PostgresStore."""
    if request.param == "memory":
        yield MemoryStore()
    elif request.param == "file":
        yield FileStore(tmp_path / "data", lock_timeout=5.0)
    else:
        yield request.getfixturevalue("pg_store")


Reopen = Callable[..., BaseStore]


@pytest.fixture
def another_handle(request: pytest.FixtureRequest) -> Iterator[Reopen]:
    """Opens another handle on a store's data, as a second worker would; closed after the test.

    A second ``FileStore`` on the directory (not durable), a second
    ``PostgresStore`` on the table, the ``MemoryStore`` itself (it has no
    other handle). Keyword arguments are the new handle's options.
    """
    opened: list[BaseStore] = []

    def reopen(store: BaseStore, **options: Any) -> BaseStore:
        handle: BaseStore
        if isinstance(store, MemoryStore):
            return store
        if isinstance(store, FileStore):
            handle = FileStore(store.data_dir, **{"durable": False, **options})
        else:
            from strategystore.postgres import PostgresStore  # noqa: PLC0415

            assert isinstance(store, PostgresStore)
            dsn = request.getfixturevalue("pg_dsn")
            handle = PostgresStore(dsn, table=store.table, **{"lock_timeout": 5.0, **options})
        opened.append(handle)
        return handle

    yield reopen
    for handle in opened:
        handle.close()


@pytest.fixture
def file_store(tmp_path: Path) -> FileStore:
    return FileStore(tmp_path / "data", lock_timeout=5.0)


#: How a shell closes each standard stream of the program it starts.
_CLOSE = {"stdin": "<&-", "stdout": ">&-", "stderr": "2>&-"}


def run_module(
    *args: str, cwd: Path, stdin: str | None = None, closed: tuple[str, ...] = ()
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m strategystore`` for real, with no STRATEGYSTORE_* from the caller.

    ``closed`` names standard streams (``stdin``, ``stdout``, ``stderr``) the
    program starts without, as ``<&-`` and ``>&-`` in a shell leave it.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATEGYSTORE_")}
    command = [sys.executable, "-m", "strategystore", *args]
    if closed:
        redirects = " ".join(_CLOSE[name] for name in closed)
        command = [
            "/bin/sh",
            "-c",
            f'exec "$0" -m strategystore "$@" {redirects}',
            sys.executable,
            *args,
        ]
    return subprocess.run(
        command,
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        check=False,
    )


# -- the command line, run in this process ---------------------------------------


@dataclass
class Result:
    """What one run of the command line did."""

    status: int
    out: str
    err: str

    @property
    def error_line(self) -> str:
        """The single line written to stderr; fails if there is not exactly one."""
        assert "Traceback" not in self.err
        lines = self.err.splitlines()
        assert len(lines) == 1, self.err
        return lines[0]


Cli = Callable[..., Result]


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """An initialised data directory for command-line tests."""
    path = tmp_path / "data"
    FileStore(path)
    return path


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str], data_dir: Path) -> Cli:
    """Runs ``main`` in this process on ``data_dir``; returns what it did."""

    def run(*args: str) -> Result:
        status = main(["--dir", str(data_dir), *args])
        captured = capsys.readouterr()
        return Result(status, captured.out, captured.err)

    return run


def feed_stdin(monkeypatch: pytest.MonkeyPatch, data: bytes) -> None:
    """Make ``data`` what the program reads from standard input."""
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data), encoding="utf-8"))
