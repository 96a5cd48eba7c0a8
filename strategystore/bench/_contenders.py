"""What the store is compared with: the raw-file floor and SQLite.

* The raw floor: the same canonical bytes written as temporary file + write
  (+ fsync) + rename (+ directory fsync), the same file read with ``open`` +
  ``read`` + ``json.loads``, ``os.listdir`` + parse for a brief.
* SQLite from the standard library (WAL; ``synchronous=FULL`` for durable
  writes, ``NORMAL`` otherwise): one insert per transaction, ``SELECT`` by key
  plus ``model_validate_json``, versions of a brief through the primary key.

TinyDB, the plain-JSON peer, is measured only when the optional ``bench``
extra is installed, through its own API.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

from strategystore._fsio import write_all
from strategystore.models import StrategyDocument

__all__ = [
    "RawFiles",
    "Sqlite",
    "raw_read",
    "raw_read_validated",
    "raw_version_numbers",
    "raw_versions",
]


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
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666, dir_fd=self._dir_fd)
        try:
            write_all(fd, data)
            if self.durable:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(temp, name, src_dir_fd=self._dir_fd, dst_dir_fd=self._dir_fd)
        if self.durable:
            os.fsync(self._dir_fd)

    def close(self) -> None:
        """Close the directory's descriptor."""
        os.close(self._dir_fd)


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
