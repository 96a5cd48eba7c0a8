"""What the store is compared with: the raw-file floor and SQLite.

* The raw floor: the same canonical bytes written as temporary file + write
  (+ fsync) + rename (+ directory fsync), the same file read with ``open`` +
  ``read`` + ``json.loads``, ``os.listdir`` + parse for a brief.
* The locked floor: the least a write with the store's guarantees does,
  inlined, with every descriptor it can keep opened once: the checked
  canonical bytes, the brief's lock (its ``flock``, the gate, the data
  directory's shared ``flock``, an ``lstat`` proving the lock file), an
  ``lstat`` for an existing version and one of the data directory (the case
  check), the brief directory opened without following links and its
  ``fstat``, then the raw floor's write published with ``os.replace`` (what
  ``save`` does once its look under the lock found no version), and the
  lock's release. What the store costs above it is its own code, not its
  guarantees.
* SQLite from the standard library (WAL; ``synchronous=FULL`` for durable
  writes, ``NORMAL`` otherwise): one insert per transaction, ``SELECT`` by key
  plus ``model_validate_json``, versions of a brief through the primary key.

TinyDB, the plain-JSON peer, is measured only when the optional ``bench``
extra is installed, through its own API.
"""

from __future__ import annotations

import fcntl
import json
import os
import sqlite3
from pathlib import Path

from strategystore._arguments import valid_bytes
from strategystore._fsio import write_all
from strategystore.models import StrategyDocument

__all__ = [
    "LockedFloor",
    "RawFiles",
    "Sqlite",
    "raw_read",
    "raw_read_validated",
    "raw_version_numbers",
    "raw_versions",
]


def write_new(dir_fd: int, name: str, data: bytes, *, durable: bool, flags: int = 0) -> None:
    """Create the file ``name`` in ``dir_fd`` holding ``data`` (fsynced, if ``durable``)."""
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | flags, 0o666, dir_fd=dir_fd)
    try:
        write_all(fd, data)
        if durable:
            os.fsync(fd)
    finally:
        os.close(fd)


class RawFiles:
    """The floor: what any correct atomic file write must do, and nothing more."""

    def __init__(self, directory: Path, *, durable: bool) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.directory = directory
        self.durable = durable
        self._dir_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)

    def write(self, name: str, data: bytes) -> None:
        """Replace the file ``name`` with ``data`` atomically (and durably, if so made)."""
        temp = f".{name}.tmp"
        write_new(self._dir_fd, temp, data, durable=self.durable)
        os.replace(temp, name, src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd)
        if self.durable:
            os.fsync(self._dir_fd)

    def close(self) -> None:
        """Close the directory's descriptor."""
        os.close(self._dir_fd)


class LockedFloor:
    """The least a validated, locked write of a new version does: see the module's docstring."""

    def __init__(self, directory: Path, brief_id: str, *, durable: bool) -> None:
        (directory / ".locks").mkdir(parents=True, exist_ok=True)
        (directory / brief_id).mkdir(exist_ok=True)
        (directory / "strategystore.json").write_bytes(b"{}\n")
        self.durable = durable
        self._root = str(directory)
        self._lock_path = f"{directory}/.locks/{brief_id}.lock"
        self._root_fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
        self._gate = os.open(directory / "strategystore.json", os.O_RDONLY)
        self._lock = os.open(self._lock_path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o666)
        info = os.fstat(self._lock)
        self._lock_id = (info.st_dev, info.st_ino)
        self._written = 0

    def save(self, doc: StrategyDocument) -> None:
        """Write ``doc`` as a new version under its brief's lock."""
        data = valid_bytes(doc)[1]
        brief_id = doc.brief_id
        fcntl.flock(self._lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        try:
            fcntl.flock(self._gate, fcntl.LOCK_SH | fcntl.LOCK_NB)
            fcntl.flock(self._gate, fcntl.LOCK_UN)
            fcntl.flock(self._root_fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            try:
                proof = os.lstat(self._lock_path)
                if (proof.st_dev, proof.st_ino) != self._lock_id:
                    raise RuntimeError(f"{self._lock_path} was replaced")
                self._publish(brief_id, f"{doc.version}.json", data)
            finally:
                fcntl.flock(self._root_fd, fcntl.LOCK_UN)
        finally:
            fcntl.flock(self._lock, fcntl.LOCK_UN)

    def _publish(self, brief_id: str, name: str, data: bytes) -> None:
        if os.path.lexists(f"{self._root}/{brief_id}/{name}"):
            raise FileExistsError(name)
        os.lstat(self._root)
        dir_fd = os.open(
            brief_id, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=self._root_fd
        )
        try:
            os.fstat(dir_fd)
            self._written += 1
            temp = f".{name}.{self._written}.tmp"
            write_new(dir_fd, temp, data, durable=self.durable, flags=os.O_NOFOLLOW)
            os.replace(temp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            if self.durable:
                os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def close(self) -> None:
        """Close the descriptors it kept."""
        for fd in (self._lock, self._gate, self._root_fd):
            os.close(fd)


class Sqlite:
    """The SQL alternative: one table keyed on ``(brief_id, version)`` holding the document JSON."""

    def __init__(self, path: Path, *, durable: bool) -> None:
        self._conn = sqlite3.connect(path)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute(f"PRAGMA synchronous={'FULL' if durable else 'NORMAL'}")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS strategy_document ("
            " brief_id TEXT NOT NULL, version INTEGER NOT NULL, document TEXT NOT NULL,"
            " PRIMARY KEY (brief_id, version)) WITHOUT ROWID"
        )
        self._conn.commit()

    def insert(self, doc: StrategyDocument) -> None:
        """Insert ``doc`` in a transaction of its own."""
        # Serialising is part of what a SQL-backed store pays per write, as the store does.
        with self._conn:
            self._conn.execute(
                "INSERT INTO strategy_document VALUES (?, ?, ?)",
                (doc.brief_id, doc.version, doc.to_json_bytes().decode()),
            )

    def get(self, brief_id: str, version: int) -> StrategyDocument | None:
        """The document of a key, validated; ``None`` if there is none."""
        row = self._conn.execute(
            "SELECT document FROM strategy_document WHERE brief_id = ? AND version = ?",
            (brief_id, version),
        ).fetchone()
        return None if row is None else StrategyDocument.model_validate_json(row[0])

    def version_numbers(self, brief_id: str) -> list[int]:
        """The brief's version numbers, newest first."""
        rows = self._conn.execute(
            "SELECT version FROM strategy_document WHERE brief_id = ? ORDER BY version DESC",
            (brief_id,),
        )
        return [version for (version,) in rows]

    def versions(self, brief_id: str) -> list[StrategyDocument]:
        """The brief's documents, validated, newest first."""
        rows = self._conn.execute(
            "SELECT document FROM strategy_document WHERE brief_id = ? ORDER BY version DESC",
            (brief_id,),
        )
        return [StrategyDocument.model_validate_json(text) for (text,) in rows]

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()


def raw_read(path: str) -> object:
    """The file at ``path`` parsed as JSON, unvalidated."""
    with open(path, "rb") as file:
        return json.loads(file.read())


def raw_read_validated(path: str) -> StrategyDocument:
    """The file at ``path`` validated as a document."""
    with open(path, "rb") as file:
        return StrategyDocument.model_validate_json(file.read())


def raw_version_numbers(path: str) -> list[int]:
    """The version numbers of the brief directory ``path``, newest first."""
    names = os.listdir(path)
    return sorted((int(n[:-5]) for n in names if n.endswith(".json")), reverse=True)


def raw_versions(path: str) -> list[StrategyDocument]:
    """Every document of the brief directory ``path``, validated, newest first."""
    return [raw_read_validated(f"{path}/{v}.json") for v in raw_version_numbers(path)]
