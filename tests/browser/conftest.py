"""Fixtures of the browser tests: a real ``strategystore serve`` and headless Chromium.

The browser is Debian's ``chromium`` driven by Playwright (no browser
download). Without either, the tests fail in CI (``CI=true``) and are
skipped elsewhere, as the PostgreSQL tests are without a server.
"""

from __future__ import annotations

import contextlib
import os
import queue
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

from strategystore import FileStore, Section
from strategystore.store import BaseStore

if TYPE_CHECKING:
    from playwright.sync_api import Browser, Page, ViewportSize

#: Debian's Chromium; Playwright's own browser builds are never downloaded.
CHROMIUM = Path("/usr/bin/chromium")

#: As root Chromium's sandbox cannot start, and with the network closed its
#: background services would only wait for hosts they cannot reach.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

VIEWPORT: ViewportSize = {"width": 1000, "height": 700}

#: How long a page may take to answer, in milliseconds.
TIMEOUT_MS = 10_000

#: The line ``serve`` prints once it listens, which names its address.
_ADDRESS = re.compile(r"(http://[^\s/]+)/")

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _missing(message: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(message)
    pytest.skip(message)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium, launched once per module."""
    try:
        from playwright.sync_api import sync_playwright  # noqa: PLC0415
    except ImportError:
        _missing("the browser tests need Playwright: pip install -e '.[test]'")
    if not CHROMIUM.exists():
        _missing(f"the browser tests need Chromium at {CHROMIUM}: apt-get install chromium")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A fresh page in a context of its own (no cookies or history from another test)."""
    context = browser.new_context(viewport=VIEWPORT)
    context.set_default_timeout(TIMEOUT_MS)
    try:
        yield context.new_page()
    finally:
        context.close()


# -- the server ---------------------------------------------------------------------


@dataclass
class Served:
    """A running ``strategystore serve``: its address and what it has logged."""

    url: str
    log: Path

    def at(self, path: str) -> str:
        """The full address of ``path`` (which starts with ``/``)."""
        return self.url + path


@contextlib.contextmanager
def serving(store: str, log: Path, *, allow_write: bool = False) -> Iterator[Served]:
    """Run ``strategystore serve --port 0 --store STORE`` until the block ends, then SIGTERM it.

    The address is read from the line the server prints on stdout. The
    server must stop on SIGTERM and must not have logged a traceback.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATEGYSTORE_")}
    env["PYTHONUNBUFFERED"] = "1"
    command = [sys.executable, "-m", "strategystore", "serve", "--port", "0", "--store", store]
    if allow_write:
        command.append("--allow-write")
    with log.open("w", encoding="utf-8") as errors:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            env=env,
            cwd=log.parent,
        )
    assert process.stdout is not None
    lines: queue.Queue[str] = queue.Queue()
    # A thread drains stdout, so a chatty server never blocks on a full pipe.
    reader = threading.Thread(target=_drain, args=(process.stdout, lines), daemon=True)
    reader.start()
    try:
        yield Served(_address(process, lines, log), log)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            pytest.fail(f"strategystore serve did not stop on SIGTERM:\n{_tail(log)}")
        finally:
            reader.join(timeout=5)
            process.stdout.close()
    logged = log.read_text(encoding="utf-8", errors="replace")
    assert "Traceback" not in logged, logged


def _drain(stream: Iterator[str], lines: queue.Queue[str]) -> None:
    for line in stream:
        lines.put(line)


def _address(process: subprocess.Popen[str], lines: queue.Queue[str], log: Path) -> str:
    try:
        line = lines.get(timeout=30)
    except queue.Empty:
        pytest.fail(f"strategystore serve printed no address within 30 s:\n{_tail(log)}")
    found = _ADDRESS.search(line)
    if found is None:
        code = process.poll()
        pytest.fail(f"strategystore serve printed {line!r} (exit {code}):\n{_tail(log)}")
    return found.group(1)


def _tail(log: Path) -> str:
    return log.read_text(encoding="utf-8", errors="replace")[-4000:]


# -- the documents -------------------------------------------------------------------

BRIEF = "acme-q3-launch"

#: The hostile brief's first version: text that would run script if the page trusted it.
HOSTILE_BODY = (
    "<script>window.pwned=1</script>\n\n"
    '<img src=x onerror="window.pwned=1">\n\n'
    "[x](javascript:window.pwned=1)\n\n"
    "<javascript:window.pwned=1>\n\n"
    '![y](x" onerror="window.pwned=1)\n\n'
    "A [safe link](https://example.com/plan)."
)


def _sections(channels: str, budget: str) -> list[Section]:
    return [
        Section(key="audience", title="Audience", body="Urban cyclists, 25-40, commuting daily."),
        Section(key="channels", title="Channels", body=channels),
        Section(key="budget", title="Budget", body=budget),
    ]


def fill(store: BaseStore) -> None:
    """The briefs the tests review.

    ``acme-q3-launch``: 1 approved, 2 rejected (with a reason), 3 and 4
    drafts; 1 to 2 changes the channels and the budget. ``globex-rebrand``: 1,
    a draft.
    """
    store.create_next(
        BRIEF,
        _sections("- Instagram\n- Podcasts", "EUR 40,000 over the quarter."),
        {"generator": "gpt", "temperature": 0.4},
        now=T0,
    )
    store.approve(BRIEF, 1, now=T0 + timedelta(hours=1))
    store.create_next(
        BRIEF,
        _sections("- Instagram\n- TikTok", "EUR 55,000 over the quarter."),
        {"generator": "gpt", "temperature": 0.7},
        now=T0 + timedelta(days=1),
    )
    store.reject(BRIEF, 2, reason="too close to v1", now=T0 + timedelta(days=1, hours=2))
    for day in (2, 3):
        store.create_next(
            BRIEF,
            _sections("- Instagram\n- Strava clubs", f"EUR {40 + day},000 over the quarter."),
            {"generator": "gpt", "temperature": 0.5},
            now=T0 + timedelta(days=day),
        )
    store.create_next(
        "globex-rebrand",
        [Section(key="goal", title="Goal", body="Make the brand feel **younger**.")],
        now=T0 + timedelta(days=4),
    )


def fill_hostile(store: BaseStore) -> None:
    """``hostile``: 1 and 2, drafts whose text tries to run script in the page."""
    store.create_next(
        "hostile",
        [
            Section(key="attack", title="<script>window.pwned=1</script>", body=HOSTILE_BODY),
        ],
        {"note": '<img src=x onerror="window.pwned=1">'},
        now=T0,
    )
    store.create_next(
        "hostile",
        [Section(key="attack", title="Attack", body=HOSTILE_BODY.replace("x", "z"))],
        {"note": "<script>window.pwned=1</script>"},
        now=T0 + timedelta(hours=1),
    )


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    """A data directory holding the briefs of ``fill``."""
    path = tmp_path / "data"
    fill(FileStore(path, durable=False))
    return path


@pytest.fixture(scope="module")
def read_only(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """One read-only server for the module over ``fill``, ``fill_hostile`` and a stray file."""
    root = tmp_path_factory.mktemp("read-only")
    store = FileStore(root / "data", durable=False)
    fill(store)
    fill_hostile(store)
    (root / "data" / "README.md").write_text("Notes that are not a document.\n")
    with serving(str(root / "data"), root / "serve.log") as served:
        yield served
