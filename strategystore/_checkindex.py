"""What ``check`` asks of the listing index (``_index``) and tells it.

A brief directory whose identity is as the index recorded it when it was
listed, settled then, holds the entries it held (``ListingIndex.proven_counts``
proves it). ``listed`` lists a directory and takes its identity first, so the
index can record the pair.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from strategystore import _cache
from strategystore._against import Key, Seen
from strategystore._cache import Identity
from strategystore._findings import Finding
from strategystore._index import ListingIndex
from strategystore._indexfile import DIR_FLAGS
from strategystore._layout import document_version
from strategystore._verdict import LINE, PROBLEM, JudgedNow, Record, seen_of

__all__ = ["findings_of", "listed", "others_if_judged", "others_if_unchanged"]


def listed(directory: Path) -> tuple[list[str], Identity | None]:
    """A brief directory's names, and its identity taken just before they were listed.

    The identity is ``None`` where the directory cannot be opened as one;
    the listing then raises as ``os.listdir`` does.
    """
    try:
        fd = os.open(directory, DIR_FLAGS)
    except OSError:
        return os.listdir(directory), None
    try:
        # First the identity: a change made while listing then shows as a
        # different identity next time.
        found = _cache.identity(os.fstat(fd))
        return os.listdir(fd), found
    finally:
        os.close(fd)


def others_if_unchanged(
    index: ListingIndex, brief_id: str, directory: Path, present: set[str]
) -> set[str] | None:
    """The names of a brief directory besides its documents, if the index proves them all.

    ``None`` unless every document the directory holds (``present``
    names what it holds) is as the index recorded it, and valid.
    """
    others: set[str] = set()

    def complete(versions: Sequence[int], names: list[str]) -> bool:
        if not present.issuperset(names):
            return False
        others.update(present.difference(names))
        return all(document_version(name) is None for name in others)

    try:
        dir_fd = os.open(directory, DIR_FLAGS)
    except OSError:
        return None
    try:
        return None if index.unchanged(brief_id, dir_fd, complete) is None else others
    finally:
        os.close(dir_fd)


def others_if_judged(judged: JudgedNow, brief_id: str, present: set[str]) -> set[str]:
    """The names of a brief directory besides the documents judged valid in this run.

    ``present`` names what the directory holds; the records of the valid
    ones are taken from ``judged``.
    """
    versions = {name: v for name in present if (v := document_version(name)) is not None}
    valid = judged.take_valid(brief_id, versions.values())
    return {name for name in present if versions.get(name) not in valid}


def findings_of(
    index: ListingIndex, record: Record, path: str, seen: dict[Key, Seen | None] | None, key: Key
) -> list[Finding]:
    """What ``_document_problems`` says of a document the index judged."""
    if record[PROBLEM] != -1:
        line = record[LINE]
        return [
            Finding(Path(path), index.text(record[PROBLEM]) or "", line=None if line < 0 else line)
        ]
    if seen is not None:
        seen[key] = seen_of(record)
    return []
