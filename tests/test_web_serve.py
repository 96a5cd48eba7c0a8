"""``strategystore serve`` for real: a process, a socket, urllib, and a clean stop on SIGTERM."""

from __future__ import annotations

import http.client
import os
import re
import signal
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

import pytest

pytest.importorskip("jinja2")
pytest.importorskip("markdown_it")

from strategystore import FileStore, Section

_ADDRESS = re.compile(r"Serving strategies at (http://[^ ]+/) \((read-only|changes allowed);")


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    with FileStore(path) as store:
        store.create_next("acme", [Section(key="goal", title="Goal", body="Grow **fast**.")])
    return path


@contextmanager
def serving(*args: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """A running ``strategystore serve ARGS`` and the address it printed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("STRATEGYSTORE_")}
    process = subprocess.Popen(
        [sys.executable, "-m", "strategystore", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        assert process.stdout is not None and process.stderr is not None
        line = process.stdout.readline()
        found = _ADDRESS.match(line)
        assert found is not None, (line, process.stderr.read() if process.poll() else "")
        yield process, found.group(1)
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def stop(process: subprocess.Popen[str]) -> tuple[int, str]:
    """Send SIGTERM and wait; the exit status and what it said on stderr."""
    process.send_signal(signal.SIGTERM)
    status = process.wait(timeout=10)
    assert process.stderr is not None
    return status, process.stderr.read()


def test_serve_prints_its_address_answers_and_stops_on_sigterm(data_dir: Path) -> None:
    with serving("--dir", str(data_dir), "serve", "--port", "0") as (process, url):
        port = urlsplit(url).port
        assert port is not None and port != 0
        assert urlsplit(url).hostname == "127.0.0.1"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
            assert 'class="brief-link" href="/briefs/acme"' in response.read().decode()
        with urllib.request.urlopen(f"{url}briefs/acme/1", timeout=10) as response:
            page = response.read().decode()
            assert "<strong>fast</strong>" in page
            assert "default-src 'none'" in response.headers["Content-Security-Policy"]
        with urllib.request.urlopen(f"{url}briefs/acme/1.json", timeout=10) as response:
            assert response.headers["Content-Type"] == "application/json"
        status, err = stop(process)
    assert status == 0
    assert "Traceback" not in err


def test_serve_refuses_a_foreign_host_over_the_socket(data_dir: Path) -> None:
    with serving("--dir", str(data_dir), "serve", "--port", "0") as (process, url):
        parts = urlsplit(url)
        assert parts.hostname is not None and parts.port is not None
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        connection.request("GET", "/", headers={"Host": f"evil.example:{parts.port}"})
        response = connection.getresponse()
        assert response.status == 421
        assert response.getheader("Location") is None
        connection.close()
        connection = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
        connection.request(
            "POST",
            "/briefs/acme/1/approve",
            body="token=x",
            headers={"Content-Type": "application/x-www-form-urlencoded"},
        )
        assert connection.getresponse().status == 403  # read-only
        connection.close()
        assert stop(process)[0] == 0


def test_serve_stops_on_sigint(data_dir: Path) -> None:
    with serving("--dir", str(data_dir), "serve", "--port", "0", "--allow-write") as (
        process,
        url,
    ):
        with urllib.request.urlopen(f"{url}briefs/acme/1", timeout=10) as response:
            assert 'id="action-approve"' in response.read().decode()
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0


def test_serve_warns_when_bound_beyond_this_machine(data_dir: Path) -> None:
    with serving("--dir", str(data_dir), "serve", "--port", "0", "--host", "0.0.0.0") as (
        process,
        url,
    ):
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.status == 200
        status, err = stop(process)
    assert status == 0
    assert "warning" in err and "0.0.0.0" in err


def test_serve_on_a_missing_directory_says_so(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "strategystore", "--dir", str(tmp_path / "none"), "serve"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 1
    assert "init" in done.stderr and "Traceback" not in done.stderr


def test_serve_on_a_port_in_use_names_the_address(data_dir: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        command = ["--dir", str(data_dir), "serve", "--port", port]
        done = subprocess.run(
            [sys.executable, "-m", "strategystore", *command],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1
    assert f"127.0.0.1:{port}" in done.stderr and "in use" in done.stderr
    assert "Traceback" not in done.stderr and done.stdout == ""


def test_serve_without_the_web_extra_says_what_to_install(data_dir: Path) -> None:
    code = (
        "import sys; sys.modules['jinja2'] = None; "
        "from strategystore.cli import main; "
        f"sys.exit(main(['--dir', {str(data_dir)!r}, 'serve', '--port', '0']))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 1
    assert "pip install 'strategystore[web]'" in done.stderr
    assert done.stdout == ""


@pytest.mark.parametrize("port", ["-1", "65536", "http", "80.5"])
def test_serve_refuses_a_bad_port(data_dir: Path, port: str) -> None:
    from strategystore.cli import main  # noqa: PLC0415

    assert main(["--dir", str(data_dir), "serve", "--port", port]) == 2
