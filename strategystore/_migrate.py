"""``strategystore migrate``: a format-1 data directory becomes format 2, in place.

Format 2 seals every version that is not a draft (``content_digest``) and
makes every file state that field. ``migrate`` first reads every document
and changes nothing if any cannot be read; then it rewrites each document in
its canonical format-2 bytes, atomically and under its brief's lock, makes
them all durable, adds the ``.gitattributes`` and ``.gitignore`` lines, and
only then writes the new marker. An interrupted run leaves a format-1
directory that neither version opens until ``migrate`` is run again, which
finishes the job. A version that is not a draft is sealed as it stands:
format 1 kept no record of what was approved, so a hand edit made before the
migration is sealed with it.

On a format-2 directory it converts the drafts an old strategystore wrote
after the migration (they lack ``content_digest``), and names, without
sealing, any other version that lacks its seal: sealing it there could cover
an edit made after approval.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shlex
import stat
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from strategystore import _render
from strategystore._console import data_dir
from strategystore._fsio import READ_FLAGS, Writer, read_all
from strategystore._layout import (
    FORMAT,
    GITATTRIBUTES,
    GITIGNORE,
    MARKER_NAME,
    NO_LINKS,
    DocumentFileError,
    MarkerError,
    decode_document_file,
    document_name,
    document_version,
    is_brief_name,
    marker_bytes,
    marker_format,
    misplacement,
)
from strategystore._locks import DEFAULT_LOCK_TIMEOUT, BriefLocks, check_platform
from strategystore.errors import StoreFormatError
from strategystore.files import add_missing_lines
from strategystore.models import Status

__all__ = ["Migration", "cmd_migrate", "migrate"]


@dataclass
class Migration:
    """What ``migrate`` did.

    Attributes:
        format_before: the directory's format when it started.
        sealed: versions sealed, per status.
        drafts: drafts rewritten in format 2.
        already: documents that were in format 2 already (an earlier, interrupted run).
        damaged: files left as they were, with the reason; the marker is not
            written while there is any.
    """

    format_before: int
    sealed: Counter[Status] = field(default_factory=Counter)
    drafts: int = 0
    already: int = 0
    damaged: list[tuple[Path, str]] = field(default_factory=list)

    @property
    def done(self) -> bool:
        """Whether the directory is in format 2 now."""
        return not self.damaged


def migrate(
    root: Path,
    *,
    lock_timeout: float = DEFAULT_LOCK_TIMEOUT,
    on_document: Callable[[int], None] | None = None,
) -> Migration:
    """Convert the data directory ``root`` from format 1 to format 2, in place.

    Args:
        root: the data directory.
        lock_timeout: how long to wait for each brief's lock.
        on_document: called with the number of documents done so far.

    Raises:
        StoreFormatError: ``root`` is not a data directory, or of a newer format.
    """
    check_platform()
    before = _format_of(root)
    io = Writer(root, durable=True)
    # A first pass reads everything and writes nothing: a directory with a
    # file that cannot be converted is left exactly as it was.
    survey = Migration(before)
    for brief_id, version in _documents(root):
        _convert(io, brief_id, version, survey, write=False)
    if survey.damaged:
        return survey
    migration = Migration(before)
    locks = BriefLocks(root, lock_timeout)
    locks.make_locks_dir()
    written: list[tuple[str, str]] = []
    done = 0
    for brief_id, versions in itertools.groupby(_documents(root), key=lambda item: item[0]):
        with locks.hold(brief_id):
            for _, version in versions:
                if _convert(io, brief_id, version, migration, write=True):
                    written.append((brief_id, document_name(version)))
                done += 1
                if on_document is not None:
                    on_document(done)
    io.flush(written)
    if migration.damaged or before == FORMAT:
        return migration
    add_missing_lines(io, ".gitignore", GITIGNORE)
    add_missing_lines(io, ".gitattributes", GITATTRIBUTES)
    io.write_root_file(MARKER_NAME, marker_bytes(), exclusive=False)
    return migration


def _documents(root: Path) -> Iterator[tuple[str, int]]:
    """Every ``(brief_id, version)`` file name of the data directory, in order."""
    for brief_id in sorted(os.listdir(root)):
        if not is_brief_name(brief_id) or not stat.S_ISDIR(os.lstat(root / brief_id).st_mode):
            continue  # not a brief (a link to one is refused by the store)
        versions = (document_version(name) for name in os.listdir(root / brief_id))
        for version in sorted(v for v in versions if v is not None):
            yield brief_id, version


def _format_of(root: Path) -> int:
    path = root / MARKER_NAME
    try:
        fd = os.open(path, READ_FLAGS)
    except FileNotFoundError:
        raise StoreFormatError(
            f"{root} is not a data directory (it has no {MARKER_NAME}); nothing to migrate"
        ) from None
    except OSError as exc:
        raise StoreFormatError(f"{path}: cannot read the marker file ({exc.strerror})") from exc
    try:
        raw = read_all(fd, 0)
    finally:
        os.close(fd)
    try:
        return marker_format(raw, older=True)
    except MarkerError as exc:
        raise StoreFormatError(f"{path}: {exc.reason}") from exc


def _convert(io: Writer, brief_id: str, version: int, migration: Migration, *, write: bool) -> bool:
    """Rewrite one document in format 2 (if ``write``); whether it was written."""
    path = io.data_dir / brief_id / document_name(version)
    try:
        fd = os.open(path, READ_FLAGS)
    except OSError as exc:
        reason = NO_LINKS if os.path.islink(path) else exc.strerror or str(exc)
        migration.damaged.append((path, reason))
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            migration.damaged.append((path, "not a regular file"))
            return False
        data = read_all(fd, 0)
    finally:
        os.close(fd)
    try:
        # A file an earlier run converted states its seal, which is checked.
        doc = decode_document_file(data, format=1)
    except DocumentFileError as exc:
        migration.damaged.append((path, exc.reason))
        return False
    problem = misplacement(doc, brief_id, version)
    if problem is not None:
        migration.damaged.append((path, problem))
        return False
    canonical = doc.to_json_bytes()
    if canonical == data or (migration.format_before == FORMAT and b'"content_digest"' in data):
        migration.already += 1  # converted, or a format-2 file in a hand-edited layout
        return False
    if migration.format_before == FORMAT and doc.status is not Status.DRAFT:
        migration.damaged.append(
            (
                path,
                f"{doc.status.value} but has no seal: written by a strategystore older than "
                "format 2, or its seal removed by hand; compare it with its history in git "
                "and restore it, or store its content as a new version",
            )
        )
        return False
    if not write:
        return False
    io.write_document(brief_id, path.name, canonical, exclusive=False, durable=False)
    if doc.status is Status.DRAFT:
        migration.drafts += 1
    else:
        migration.sealed[doc.status] += 1
    return True


def cmd_migrate(args: argparse.Namespace) -> int:
    """``migrate``: seal every frozen version and write the format-2 marker last."""
    root = data_dir(args)
    if not root.is_dir():
        raise StoreFormatError(f"{root} does not exist; there is nothing to migrate")
    progress = _render.Progress("migrated", "documents")
    migration = migrate(root, lock_timeout=args.lock_timeout, on_document=progress.update)
    progress.clear()
    converted = sum(migration.sealed.values()) + migration.drafts
    if migration.format_before == FORMAT and migration.done and not converted:
        print(f"{root} is in format {FORMAT} already; nothing to do")
        return 0
    sealed = sum(migration.sealed.values())
    kinds = ", ".join(
        f"{migration.sealed[status]} {status.value}"
        for status in Status
        if migration.sealed[status]
    )
    print(
        f"sealed {_render.count(sealed, 'version')}"
        + (f" ({kinds})" if kinds else "")
        + f" and rewrote {_render.count(migration.drafts, 'draft')}"
        + (f"; {migration.already} already converted" if migration.already else "")
    )
    if not migration.done:
        for path, reason in migration.damaged:
            print(f"{path}: {reason}")
        print(
            f"{_render.count(len(migration.damaged), 'file')} could not be converted, so "
            f"nothing was changed; fix or restore them from git, then run "
            f"`strategystore --dir {shlex.quote(str(root))} migrate` again"
        )
        return 1
    print(f"{root} is in format {FORMAT} now")
    return 0
