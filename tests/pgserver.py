"""A throwaway PostgreSQL server for the tests: a unix socket in a temporary directory, no TCP.

The tests use ``$STRATEGYSTORE_TEST_DSN`` when it is set; otherwise the
``pg_dsn`` fixture starts a server with ``start`` and stops it at the end of
the session. ``.ci/run`` starts one the same way before the tests, so that a
missing server fails the run instead of skipping:

    python tests/pgserver.py find         # exits 1 when no server binaries are here
    python tests/pgserver.py start DIR    # prints the DSN; the server runs on
    python tests/pgserver.py stop DIR

PostgreSQL refuses to run as root: as root, ``initdb`` and the server run as
the ``postgres`` system user, in a directory it owns.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

__all__ = ["DSN_VARIABLE", "Server", "find_binaries", "start"]

#: The environment variable naming a server for the tests to use instead of starting one.
DSN_VARIABLE = "STRATEGYSTORE_TEST_DSN"

#: What makes the test server fast rather than durable; ``--durable`` leaves them out.
_NOT_DURABLE = {
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
}

#: The server's settings for tests: few resources, no TCP.
_SETTINGS = {
    "listen_addresses": "''",
    "max_connections": "200",
    "shared_buffers": "32MB",
    "log_min_messages": "warning",
}


def find_binaries() -> Path | None:
    """The directory holding ``initdb``, ``pg_ctl`` and ``postgres``, or ``None``."""
    candidates = []
    pg_config = shutil.which("pg_config")
    if pg_config:
        found = subprocess.run([pg_config, "--bindir"], check=False, capture_output=True, text=True)
        candidates.append(found.stdout.strip())
    candidates += sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    candidates += [os.path.dirname(p) for p in (shutil.which("initdb"),) if p]
    for candidate in candidates:
        if candidate and all(
            os.access(os.path.join(candidate, name), os.X_OK)
            for name in ("initdb", "pg_ctl", "postgres")
        ):
            return Path(candidate)
    return None


@dataclass
class Server:
    """A running server: its directory, socket directory and DSN."""

    root: Path
    bindir: Path

    @property
    def socket_dir(self) -> Path:
        return self.root / "socket"

    @property
    def data_dir(self) -> Path:
        return self.root / "data"

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@/postgres?host={quote(str(self.socket_dir), safe='')}"

    def pg_ctl(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """Run ``pg_ctl`` on this server's data directory, as its owner."""
        command = [str(self.bindir / "pg_ctl"), "-D", str(self.data_dir), *args]
        return _run_as_owner(command, check=check)

    def start(self) -> None:
        """Start (or restart after ``stop``) the server and wait until it accepts connections."""
        self.pg_ctl("-w", "-t", "60", "-l", str(self.root / "server.log"), "start")

    def stop(self, mode: str = "fast") -> None:
        """Stop the server; nothing happens when it is not running."""
        if (self.data_dir / "postmaster.pid").exists():
            self.pg_ctl("-w", "-m", mode, "stop", check=False)

    def remove(self) -> None:
        """Stop the server and remove its directory."""
        self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)


def _owner() -> pwd.struct_passwd | None:
    """The system user to run the server as when running as root, else ``None``."""
    if os.geteuid() != 0:
        return None
    return pwd.getpwnam("postgres")


def _run_as_owner(command: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    owner = _owner()

    def demote() -> None:  # pragma: no cover - runs in the child
        if owner is not None:
            os.setgid(owner.pw_gid)
            os.setuid(owner.pw_uid)

    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    if owner is not None:
        env["HOME"] = owner.pw_dir
    result = subprocess.run(
        command, check=False, preexec_fn=demote, env=env, capture_output=True, text=True, cwd="/"
    )
    if check and result.returncode != 0:
        raise RuntimeError(
            f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
        )
    return result


def start(root: Path | None = None, *, durable: bool = False) -> Server:
    """Create and start a server in ``root`` (a new temporary directory by default).

    It runs without fsync unless ``durable``, which keeps PostgreSQL's own
    durability settings (for measuring what a commit costs).
    """
    bindir = find_binaries()
    if bindir is None:
        raise FileNotFoundError(
            "no PostgreSQL server binaries (initdb, pg_ctl, postgres): install Debian's "
            "postgresql package, or set STRATEGYSTORE_TEST_DSN to a server's DSN"
        )
    root = Path(root or tempfile.mkdtemp(prefix="strategystore-pg-"))
    root.mkdir(parents=True, exist_ok=True)
    server = Server(root, bindir)
    server.socket_dir.mkdir(exist_ok=True)
    owner = _owner()
    if owner is not None:
        for path in (root, server.socket_dir):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    root.chmod(0o755)
    _run_as_owner(
        [
            str(bindir / "initdb"),
            "-D",
            str(server.data_dir),
            "-U",
            "postgres",
            "--auth=trust",
            "--encoding=UTF8",
            "--locale=C",
            "--no-sync",
        ]
    )
    settings = dict(_SETTINGS, unix_socket_directories=f"'{server.socket_dir}'")
    if not durable:
        settings.update(_NOT_DURABLE)
    with (server.data_dir / "postgresql.conf").open("a") as conf:
        conf.writelines(f"{name} = {value}\n" for name, value in settings.items())
    server.start()
    return server


def _wait_gone(server: Server, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while (server.data_dir / "postmaster.pid").exists() and time.monotonic() < deadline:
        time.sleep(0.1)


def main(argv: list[str]) -> int:
    """``find``, ``start DIR [--durable]`` (prints the DSN) or ``stop DIR``."""
    if argv == ["find"]:
        found = find_binaries()
        print(found or "no PostgreSQL server binaries", file=sys.stdout if found else sys.stderr)
        return 0 if found else 1
    durable = argv[2:] == ["--durable"] and argv[0] == "start"
    if len(argv) != 2 + durable or argv[0] not in ("start", "stop"):
        print("usage: pgserver.py find | start DIR [--durable] | stop DIR", file=sys.stderr)
        return 2
    command, directory = argv[:2]
    root = Path(directory)
    if command == "start":
        print(start(root, durable=durable).dsn)
        return 0
    bindir = find_binaries()
    if bindir is not None and root.exists():
        server = Server(root, bindir)
        server.stop("immediate")
        _wait_gone(server)
    with contextlib.suppress(OSError):
        shutil.rmtree(root)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
