"""Read the original SQL ``strategy_document`` table as strategy documents.

The table, as the ORM wrote it::

    strategy_document(id, brief_id, version, status, created_at, updated_at,
                      sections, metadata)

with ``sections`` and ``metadata`` as JSON text and naive timestamps that mean
UTC. ``sections`` comes in more than one shape: a list of objects with
``key`` (or ``id``), ``title`` and ``body`` (or ``content``), or an object
mapping each section key to its text or to such an object. A section given as
bare text takes its key as its title.

Nothing is guessed that could lose data: a row with a field the document has
no place for, a value that does not fit, a JSON object that repeats a key or
JSON nested too deeply to read is reported as unmappable instead.
"""

from __future__ import annotations

import errno
import json
import os
import sqlite3
from collections.abc import Iterator, Mapping
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

from pydantic import ValidationError

from strategystore.models import Status, StrategyDocument, describe_validation_error

__all__ = ["TABLE", "SqlSourceError", "UnmappableRowError", "read_documents", "row_to_document"]

#: The table ``import-sql`` reads.
TABLE = "strategy_document"
_COLUMNS = ("brief_id", "version", "status", "created_at", "updated_at", "sections", "metadata")
_STATUSES = ", ".join(s.value for s in Status)


class SqlSourceError(Exception):
    """The database cannot be read as the original table (no such table or columns)."""


class _RepeatedKeyError(ValueError):
    """A JSON object gives ``key`` more than once."""

    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"repeated key {key!r}")


class UnmappableRowError(ValueError):
    """One row that cannot become a strategy document.

    Attributes:
        row_id: the row's ``id``.
        reason: what does not fit, for a person.
    """

    def __init__(self, row_id: object, reason: str) -> None:
        self.row_id = row_id
        self.reason = reason
        super().__init__(f"row id {row_id}: {reason}")


def read_documents(
    database: str | os.PathLike[str],
) -> Iterator[tuple[object, StrategyDocument | UnmappableRowError]]:
    """Yield ``(row id, document or the reason it cannot be one)`` for every row.

    Rows come ordered by brief and version, one at a time: memory does not
    grow with the table. The database is opened read-only.

    Raises:
        IsADirectoryError: the path is a directory.
        FileNotFoundError: there is no such file.
        SqlSourceError: the file has no ``strategy_document`` table, or it
            lacks a column.
        sqlite3.Error: the file is not a readable SQLite database.
    """
    path = Path(database)
    if path.is_dir():
        raise IsADirectoryError(
            errno.EISDIR, "is a directory, not a SQLite database file", str(path)
        )
    if not path.is_file():
        raise FileNotFoundError(errno.ENOENT, "no such database file", str(path))
    uri = f"{path.resolve().as_uri()}?mode=ro"
    with closing(sqlite3.connect(uri, uri=True)) as connection:
        connection.row_factory = _as_dict
        present = {row["name"] for row in connection.execute(f"PRAGMA table_info({TABLE})")}
        if not present:
            raise SqlSourceError(f"{path}: has no table {TABLE!r}")
        missing = [c for c in _COLUMNS if c not in present]
        if missing:
            raise SqlSourceError(f"{path}: table {TABLE!r} has no column {', '.join(missing)}")
        # The original schema has an id column; rowid names a row just as well without it.
        row_id = "id" if "id" in present else "rowid AS id"
        query = f"SELECT {row_id}, {', '.join(_COLUMNS)} FROM {TABLE} ORDER BY brief_id, version"
        for row in connection.execute(query):
            try:
                yield row["id"], row_to_document(row)
            except UnmappableRowError as exc:
                yield row["id"], exc


def _as_dict(cursor: sqlite3.Cursor, row: tuple[object, ...]) -> dict[str, object]:
    return {column[0]: value for column, value in zip(cursor.description, row, strict=True)}


def row_to_document(row: Mapping[str, object]) -> StrategyDocument:
    """Map one row of the original table to a document.

    Args:
        row: the row's columns by name (``id`` is used only in errors).

    Raises:
        UnmappableRowError: a value does not fit the document, with the reason.
    """
    row_id = row.get("id")
    try:
        return StrategyDocument.model_validate(_values(row))
    except ValidationError as exc:
        raise UnmappableRowError(row_id, describe_validation_error(exc, limit=3)) from exc
    except ValueError as exc:
        raise UnmappableRowError(row_id, str(exc)) from exc
    except RecursionError:
        # The JSON reader names the column it gave up on; validation walks
        # nested values recursively too, and a value the reader managed with
        # little stack to spare can still exhaust it there.
        raise UnmappableRowError(row_id, "a value is nested too deeply") from None


def _values(row: Mapping[str, object]) -> dict[str, object]:
    """The document's fields from a row's columns, before validation."""
    created_at = _timestamp(row["created_at"], "created_at")
    updated_at = (
        created_at if row["updated_at"] is None else _timestamp(row["updated_at"], "updated_at")
    )
    return {
        "brief_id": row["brief_id"],
        "version": _version(row["version"]),
        "status": _status(row["status"]),
        "created_at": created_at,
        "updated_at": updated_at,
        "sections": _sections(row["sections"]),
        "metadata": _metadata(row["metadata"]),
    }


def _version(value: object) -> object:
    # SQLite may hand back a column declared INTEGER as text when that is how
    # it was written; digits are still a version number.
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    return value


def _status(value: object) -> Status:
    if not isinstance(value, str):
        raise ValueError(f"status is {value!r}, not one of {_STATUSES}")
    try:
        # An ORM enum column often stores the member's name (DRAFT), not its value.
        return Status(value.strip().lower())
    except ValueError:
        raise ValueError(f"status {value!r} is not one of {_STATUSES}") from None


def _timestamp(value: object, column: str) -> datetime:
    if not isinstance(value, str):
        raise ValueError(f"{column} is {value!r}, not a date and time")
    try:
        parsed = datetime.fromisoformat(value.strip())
    except ValueError:
        raise ValueError(f"{column} {value!r} is not a date and time") from None
    # The ORM stored UTC without saying so.
    return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed


def _json(value: object, column: str) -> object:
    """The JSON value a text column holds; ``None`` for NULL or empty text.

    Raises:
        ValueError: the text is not JSON, repeats a key in an object, or
            nests too deeply for the JSON reader.
    """
    if isinstance(value, bytes):
        try:
            value = value.decode()
        except UnicodeDecodeError:
            raise ValueError(f"{column} is not UTF-8 text") from None
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if not isinstance(value, str):
        raise ValueError(f"{column} is {value!r}, not JSON text")
    try:
        decoded = json.loads(value, object_pairs_hook=_object)
        # Some writers encoded the JSON twice: a string holding the JSON text.
        if isinstance(decoded, str) and decoded.lstrip()[:1] in ("[", "{"):
            decoded = json.loads(decoded, object_pairs_hook=_object)
    except _RepeatedKeyError as exc:
        # Keeping either value would silently drop the other.
        raise ValueError(f"{column} repeats the key {exc.key!r}") from None
    except json.JSONDecodeError as exc:
        raise ValueError(f"{column} is not valid JSON: {exc}") from None
    except RecursionError:
        raise ValueError(f"{column} is nested too deeply") from None
    return decoded


def _object(pairs: list[tuple[str, object]]) -> dict[str, object]:
    """A decoded JSON object, refusing one that gives a key twice."""
    decoded = dict(pairs)
    if len(decoded) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise _RepeatedKeyError(key)
            seen.add(key)
    return decoded


def _metadata(value: object) -> dict[str, object]:
    data = _json(value, "metadata")
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ValueError(f"metadata is a JSON {_kind(data)}, not an object")
    return data


def _sections(value: object) -> list[dict[str, str]]:
    data = _json(value, "sections")
    if data is None:
        return []
    if isinstance(data, list):
        return [_section(None, item, f"section {i}") for i, item in enumerate(data, start=1)]
    if isinstance(data, dict):
        return [_section(str(key), item, f"section {key!r}") for key, item in data.items()]
    raise ValueError(f"sections is a JSON {_kind(data)}, not a list or an object")


def _section(mapped_key: str | None, item: object, where: str) -> dict[str, str]:
    if isinstance(item, str) and mapped_key is not None:
        return {"key": mapped_key, "title": mapped_key, "body": item}
    if not isinstance(item, dict):
        raise ValueError(f"{where} is a JSON {_kind(item)}, not an object")
    fields = dict(item)
    key = _one_of(fields, "key", "id", where)
    if mapped_key is not None:
        if key is not None and str(key) != mapped_key:
            raise ValueError(f"{where} says its key is {key!r}")
        key = mapped_key
    if key is None:
        raise ValueError(f"{where} has no key or id")
    if isinstance(key, int) and not isinstance(key, bool):
        key = str(key)
    body = _one_of(fields, "body", "content", where)
    title = fields.pop("title", None)
    if fields:
        raise ValueError(
            f"{where} has fields a document has no place for: {', '.join(sorted(fields))}"
        )
    return {
        "key": _text(key, "key", where),
        "title": _text(key if title is None else title, "title", where),
        "body": _text("" if body is None else body, "body", where),
    }


def _text(value: object, name: str, where: str) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{where} has a {_kind(value)} {name}, not text")
    return value


def _one_of(fields: dict[str, object], name: str, alias: str, where: str) -> object:
    """Pop ``name`` or its ``alias``; both with different values is ambiguous."""
    value, other = fields.pop(name, None), fields.pop(alias, None)
    if value is not None and other is not None and value != other:
        raise ValueError(f"{where} has both {name} and {alias}, and they differ")
    return value if value is not None else other


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object"
