"""Walk a data directory, or the files named, and list everything a person should fix.

``strategystore check`` runs this. It reads every file itself rather than
through ``FileStore``, so it keeps going past the first bad file and also
looks where the store never does (unknown files, misnamed documents, links,
brief directories that collide by letter case). *Problems* are what the store
refuses or cannot see; *notes* are worth knowing but harm nothing (stale
temporary files, editor and merge leftovers, unknown files). Against a
revision it also compares the sealed versions with that commit
(``_against``). A document whose file is unchanged since the last look is
judged from the listing index (``_index``), with the same findings. It
changes nothing, except that with ``repair`` it removes stale temporary
files, each only while holding its brief's lock, which proves no writer owns
it.
"""

from __future__ import annotations

import errno
import os
import stat
import time
from collections.abc import Callable, Generator, Iterable, Iterator
from contextlib import suppress
from functools import partial
from pathlib import Path

from strategystore import _cache
from strategystore._against import Baseline, Key, Seen, fingerprint
from strategystore._checkindex import (
    findings_of,
    listed,
    others_if_judged,
    others_if_unchanged,
)
from strategystore._findings import (
    LINK_ADVICE,
    SPECIAL_ADVICE,
    Finding,
    check_temporary,
    holds_documents,
    invalid_brief_dir,
    leftover,
    locks_dir_findings,
    mode_and_identity,
    mode_of,
    other_entry,
)
from strategystore._fsio import READ_FLAGS, read_all
from strategystore._gitchecks import git_files, revision_findings, unmerged, version_exists
from strategystore._index import ListingIndex, index_wanted
from strategystore._layout import (
    FORMAT,
    LOCKS_DIR,
    MARKER_NAME,
    DocumentFileError,
    MarkerError,
    case_collisions,
    decode_document_file,
    document_name,
    document_version,
    is_temporary,
    marker_format,
    misplacement,
)
from strategystore._locks import BriefLocks, check_platform
from strategystore._verdict import Listed, judge, unknown_documents
from strategystore.errors import LockTimeoutError, StoreFormatError, StrategyStoreError
from strategystore.models import MAX_VERSION, brief_id_problem

__all__ = ["DataDirCheck", "Finding"]

#: Top-level names whose links are judged on their own (``_check_git_files``) or git's.
_GIT_OWN = frozenset([".git", ".gitattributes", ".gitignore"])


#: How long check waits for a brief's lock to judge its temporary files.
_LOCK_WAIT = 0.5


class DataDirCheck:
    """A check of one data directory; iterate ``findings()`` to run it.

    Args:
        root: the data directory, as the user named it (findings use it as
            their path prefix).
        paths: check only these files (and the marker), as pre-commit names
            them: relative to the current directory or absolute. Paths
            outside the data directory are ignored, and so are paths that no
            longer exist; a brief directory named is checked whole. ``None``
            walks the whole directory.
        against: a git revision (``origin/main``) whose sealed versions must
            be in the working tree unchanged (``_against``); with ``paths``,
            only the versions named and those whose files are gone are compared.
        repair: remove stale temporary files.
        on_file: called with the running count after each entry looked at
            (or each brief's documents, when the index vouches for them all),
            for a progress display.
        use_index: judge unchanged documents from the listing index
            (``_index``) and record the others; by default unless
            ``STRATEGYSTORE_NO_INDEX`` is set. Findings are the same either way.

    After the run, ``documents`` and ``briefs`` count what was valid,
    ``files`` every entry looked at, ``named`` and ``outside`` the paths
    given and those of them outside the data directory, and ``compared`` the
    versions compared with ``against``.
    """

    def __init__(
        self,
        root: Path,
        *,
        paths: Iterable[str | os.PathLike[str]] | None = None,
        against: str | None = None,
        repair: bool = False,
        on_file: Callable[[int], None] | None = None,
        use_index: bool | None = None,
    ) -> None:
        self.root = root
        self.paths = None if paths is None else list(paths)
        self.against = against
        self.repair = repair
        self._on_file = on_file
        self.documents = 0
        self.briefs = 0
        self.files = 0
        self.named = 0 if self.paths is None else len(self.paths)
        self.outside = 0
        self.compared = 0
        self._locks: BriefLocks | None = None
        self._use_index = index_wanted() if use_index is None else use_index
        self._index: ListingIndex | None = None
        #: Brief directories listed before the walk (on a cold index), until it comes to them.
        self._listings: dict[str, Listed] = {}
        # What each version looked at holds, kept only to compare with a revision.
        self._seen: dict[Key, Seen | None] | None = None if against is None else {}

    def findings(self) -> Iterator[Finding]:
        """Run the check and yield each finding.

        Files come in name order (documents by version), then the brief
        directories that collide by letter case, then what the comparison
        with ``against`` found.

        Raises:
            StoreFormatError: the directory does not exist or is not a directory.
            RevisionError: ``against`` cannot be used (no git work tree, no
                such commit); raised before any finding.
            GitError: git failed while reading the revision's documents.
        """
        check_platform()
        if not self.root.is_dir():
            reason = "is not a directory" if self.root.exists() else "does not exist"
            where = self.root.absolute()
            raise StoreFormatError(
                f"{where} {reason}; create a data directory with `strategystore --dir {where} init`"
            )
        baseline = None if self.against is None else Baseline(self.root, self.against)
        problem, stop = self._check_marker()
        if problem is not None:
            yield problem
            if stop:
                # Files of another format would be misjudged by these rules.
                return
        else:
            # Only to take brief locks for stale temporary files; a zero
            # timeout makes every attempt non-blocking.
            self._locks = BriefLocks(self.root.absolute(), 0)
            if self._use_index:
                self._index = ListingIndex(self.root).load()
        wanted = None if self.paths is None else self._entries_named(self.paths)
        if wanted is None:
            yield from self._walk()
        else:
            yield from self._check_named(wanted)
        if self._index is not None:
            self._index.save(full=wanted is None)
        yield from unmerged(self.root, wanted)
        if baseline is not None:
            yield from self._compare(baseline)

    def _count(self, entries: int = 1) -> None:
        self.files += entries
        if self._on_file is not None:
            self._on_file(self.files)

    # -- what to look at -------------------------------------------------------

    def _walk(self) -> Iterator[Finding]:
        brief_dirs: list[str] = []
        names = sorted(os.listdir(self.root))
        index = self._index
        proven: dict[str, int] = {}
        if index is not None:
            index.judge_unknown(unknown_documents(index.knows, self.root, names, self._listings))
            # (A comparison with a revision needs each version's seal.)
            if self._seen is None:
                proven = index.proven_counts(str(self.root), [n for n in names if index.knows(n)])
        for name in names:
            self._count()
            documents = proven.get(name)
            if documents:
                # An unchanged brief of valid documents and nothing else.
                self._count(documents)
                self.briefs += 1
                self.documents += documents
                brief_dirs.append(name)
                continue
            yield from self._check_top_entry(name, None, brief_dirs)
        yield from git_files(self.root)
        yield from self._check_case_collisions(brief_dirs)

    def _check_named(self, wanted: dict[str, set[str] | None]) -> Iterator[Finding]:
        for name in sorted(wanted):
            self._count()
            yield from self._check_top_entry(name, wanted[name], [])
        yield from self._check_case_collisions(_case_variants(self.root, wanted))

    def _entries_named(
        self, paths: list[str | os.PathLike[str]]
    ) -> dict[str, set[str] | None] | None:
        """The entries of the data directory the paths fall in, or ``None`` for all of it.

        Each maps to the names inside it to look at, or ``None`` for all of
        them: ``acme/1.json`` looks at ``1.json`` of ``acme``, ``acme`` at the
        whole brief, and ``acme/drafts/x.md`` at the directory ``acme/drafts``.
        """
        lexical = Path(os.path.abspath(self.root))
        real = Path(os.path.realpath(self.root))
        wanted: dict[str, set[str] | None] = {}
        for given in paths:
            parts = _parts_below(Path(os.path.abspath(given)), lexical, real)
            if parts is None:
                self.outside += 1
            elif not parts:
                return None  # the data directory itself
            elif len(parts) == 1:
                wanted[parts[0]] = None
            else:
                inside = wanted.setdefault(parts[0], set())
                if inside is not None:
                    inside.add(parts[1])
        return wanted

    # -- the marker and .locks/ ----------------------------------------------

    def _check_marker(self) -> tuple[Finding | None, bool]:
        """The marker file's problem, if any, and whether it names another format."""
        path = self.root / MARKER_NAME
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            return Finding(
                path,
                f"missing: without it this is no data directory; restore it from git, or "
                f'write {{"format": {FORMAT}}} into it if this really is a data directory',
            ), False
        if stat.S_ISLNK(mode):
            return Finding(path, LINK_ADVICE), False
        if not stat.S_ISREG(mode):
            return Finding(path, "is not a regular file"), False
        try:
            marker_format(path.read_bytes())
        except MarkerError as exc:
            return Finding(path, exc.reason), exc.newer or exc.older
        return None, False

    # -- the top of the data directory ---------------------------------------

    def _check_top_entry(
        self, name: str, only: set[str] | None, brief_dirs: list[str]
    ) -> Iterator[Finding]:
        """Judge one entry of the data directory; a brief directory's ``only`` names, or all.

        A brief directory that holds a document is added to ``brief_dirs``.
        """
        path = self.root / name
        if name == MARKER_NAME:
            return
        if name == LOCKS_DIR:
            yield from locks_dir_findings(path, only, self._count)
            return
        # A directory listed before the walk was opened as one, not through a link.
        mode = stat.S_IFDIR if only is None and name in self._listings else mode_of(path)
        if mode is None:
            return  # removed since the listing (a delete of a last version), or never there
        if name not in _GIT_OWN and stat.S_ISLNK(mode):
            # Whatever its name: git would commit the link.
            yield Finding(path, LINK_ADVICE)
            return
        if not (stat.S_ISDIR(mode) or stat.S_ISREG(mode) or stat.S_ISLNK(mode)):
            yield Finding(path, SPECIAL_ADVICE)
            return
        if not stat.S_ISDIR(mode):
            if is_temporary(name):
                yield Finding(
                    path,
                    "temporary file left by an interrupted `strategystore init`; "
                    "remove it by hand when no init is running",
                    note=True,
                )
                return
            if (left := leftover(path)) is not None:
                yield left
                return
        if name.startswith("."):
            # The store's .gitignore and .gitattributes, and what git and other
            # tools keep at a repository's top (.git, .github, .editorconfig).
            return
        if stat.S_ISLNK(mode):
            yield Finding(path, LINK_ADVICE)
        elif stat.S_ISREG(mode):
            yield Finding(
                path,
                "unknown file: a data directory holds only brief directories; "
                "move it elsewhere, or delete it",
                note=True,
            )
        elif not stat.S_ISDIR(mode):
            yield Finding(path, SPECIAL_ADVICE)
        elif (invalid := brief_id_problem(name)) is not None:
            yield invalid_brief_dir(path, invalid)
        else:
            holds_document = yield from self._check_brief_dir(name, path, only)
            if holds_document:
                brief_dirs.append(name)

    def _check_case_collisions(self, brief_dirs: list[str]) -> Iterator[Finding]:
        for names in case_collisions(brief_dirs):
            for name in names:
                others = ", ".join(repr(n) for n in names if n != name)
                yield Finding(
                    self.root / name,
                    f"brief directory differs only by letter case from {others}; they collide "
                    "on a case-insensitive file system (macOS, Windows): merge them into one",
                )

    # -- brief directories ---------------------------------------------------

    def _check_brief_dir(
        self, brief_id: str, directory: Path, only: set[str] | None
    ) -> Generator[Finding, None, bool]:
        """Judge a brief directory's entries (``only`` those, or all); whether it holds a document.

        Only a directory holding a file named as a document is a brief, in the
        store's eyes too; an empty one collides with nothing.
        """
        # Listed already, on a cold index: the index has nothing to prove it by.
        kept = self._listings.pop(brief_id, None) if only is None else None
        listing_of = kept or _listed_now(directory)
        if isinstance(listing_of, FileNotFoundError):
            return False  # its last version was deleted since the listing
        if isinstance(listing_of, OSError):
            yield Finding(
                directory,
                f"brief directory cannot be read: {listing_of.strerror}; its documents "
                "were not checked (fix its permissions)",
            )
            return False
        listing, identity, seen_at = listing_of
        present = set(listing)
        documents = 0
        others = None
        if only is None and self._index is not None and self._seen is None:
            # (A comparison with a revision needs each version's seal.) What
            # is left once the documents the index vouches for are counted:
            # as recorded and valid, or judged valid a moment ago.
            if kept is None:
                others = others_if_unchanged(self._index, brief_id, directory, present)
            else:
                others = others_if_judged(self._index.judged_now, brief_id, present)
        if others is None:
            others = present if only is None else present & only
        elif documents := len(present) - len(others):
            self._count(documents)
        numbers = {name: document_version(name) for name in others}
        names = sorted(others, key=lambda name: (numbers[name] or MAX_VERSION, name))
        temporaries: list[str] = []
        prefix = f"{directory}/"
        for name in names:
            self._count()
            version = numbers[name]
            if version is not None:
                # A string, not a Path, for speed: a Path is made only for a finding.
                found = self._check_document(brief_id, version, prefix + name)
                if found is None:
                    continue  # deleted since the listing
                if not found:
                    documents += 1
                yield from found
            elif is_temporary(name):
                temporaries.append(name)
            elif (finding := other_entry(directory / name, present)) is not None:
                yield finding
        if temporaries:
            yield from self._check_temporaries(brief_id, temporaries)
        index = self._index
        if (
            index is not None
            and only is None
            and identity is not None
            and documents == len(listing)
            and index.settled(identity, seen_at)
        ):
            # Its listing named only valid documents: the next check may trust
            # it while the directory keeps this identity.
            versions = [v for v in map(document_version, listing) if v is not None]
            index.record_dir(brief_id, identity, versions, exact=True)
        if documents:
            self.briefs += 1
            self.documents += documents
        elif not listing:
            yield Finding(directory, "empty brief directory; remove it", note=True)
        return bool(documents) or any(version is not None for version in numbers.values())

    def _check_document(self, brief_id: str, version: int, path: str) -> list[Finding] | None:
        """The document's problems; ``None`` when it no longer exists."""
        found = self._document_problems(brief_id, version, path)
        if found and self._seen is not None:
            self._seen[(brief_id, version)] = None  # compared with nothing: it is a problem
        return found

    def _document_problems(self, brief_id: str, version: int, path: str) -> list[Finding] | None:
        """Read and judge one document; a valid one is also kept for the comparison."""
        index = self._index
        if index is not None:
            record = index.judged_now.take(brief_id, version)
            if record is not None:
                return findings_of(index, record, path, self._seen, (brief_id, version))
            found = mode_and_identity(path)
            if found is not None and stat.S_ISREG(found[0]):
                record = index.lookup(brief_id, version, found[1])
                if record is not None:
                    return findings_of(index, record, path, self._seen, (brief_id, version))
        seen_at = time.time_ns()
        try:
            fd = os.open(path, READ_FLAGS)
        except FileNotFoundError:
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                return [Finding(Path(path), LINK_ADVICE)]
            return [Finding(Path(path), f"cannot be read: {exc.strerror}")]
        try:
            info = os.fstat(fd)
            if not stat.S_ISREG(info.st_mode):
                kind = "a directory" if os.path.isdir(path) else "not a regular file"
                return [Finding(Path(path), f"is {kind}, where a document belongs; remove it")]
            data = read_all(fd)
        except OSError as exc:
            return [Finding(Path(path), f"cannot be read: {exc.strerror}")]
        finally:
            os.close(fd)
        if index is not None:
            record = judge(brief_id, version, _cache.identity(info), seen_at, data)
            record = index.record(brief_id, record)
            return findings_of(index, record, path, self._seen, (brief_id, version))
        try:
            doc = decode_document_file(data)
        except DocumentFileError as exc:
            return [Finding(Path(path), exc.reason, line=exc.line)]
        misplaced = misplacement(doc, brief_id, version)
        if misplaced is not None:
            return [Finding(Path(path), misplaced)]
        if self._seen is not None:
            self._seen[(brief_id, version)] = Seen(
                doc.status, doc.content_digest, fingerprint(data)
            )
        return []

    def _check_temporaries(self, brief_id: str, names: list[str]) -> Iterator[Finding]:
        directory = self.root / brief_id
        if self._locks is None:
            for name in names:
                yield Finding(
                    directory / name,
                    "temporary file; cannot tell whether a writer owns it until the "
                    "marker file is fixed",
                    note=True,
                )
            return
        findings: list[Finding] = []
        try:
            # A write makes and removes its temporary file while holding the
            # brief's lock; an import also prepares a batch of them before it
            # takes the lock, named after its process, which is still running.
            # Whatever is left while we hold the lock, by no live process, is
            # stale. The findings are reported once the lock is released, so
            # a slow reader of this output never holds up a writer.
            with self._locks.hold(brief_id, timeout=_LOCK_WAIT):
                for name in names:
                    findings.extend(check_temporary(directory / name, repair=self.repair))
        except LockTimeoutError:
            # A writer holds the lock (its temporary file is in use), or
            # writers kept the lock file from being made: say so, never that
            # nothing is there.
            for name in names:
                yield Finding(
                    directory / name,
                    "temporary file; a writer is busy with this brief, so whether it is "
                    "stale cannot be told now: run check again later",
                    note=True,
                )
            return
        except (StrategyStoreError, OSError) as exc:
            for name in names:
                yield Finding(
                    directory / name,
                    f"temporary file; cannot take the brief's lock to tell whether it is "
                    f"stale ({exc})",
                    note=True,
                )
            return
        yield from findings

    # -- the comparison with a revision ---------------------------------------

    def _compare(self, baseline: Baseline) -> Iterator[Finding]:
        assert self._seen is not None
        yield from revision_findings(self.root, baseline)
        for change in baseline.changes(self._seen, partial(version_exists, self.root)):
            path = self.root / change.brief_id / document_name(change.version)
            yield Finding(path, change.message, note=change.note)
        self.compared = baseline.compared


def _case_variants(root: Path, wanted: Iterable[str]) -> list[str]:
    """The brief directories holding a document whose names fold to one of ``wanted``."""
    folded = {name.lower() for name in wanted if brief_id_problem(name) is None}
    if not folded:
        return []
    variants = []
    for name in sorted(os.listdir(root)):
        if name.lower() not in folded or brief_id_problem(name) is not None:
            continue
        mode = mode_of(root / name)
        if mode is not None and stat.S_ISDIR(mode) and holds_documents(root / name):
            variants.append(name)
    return variants


def _parts_below(path: Path, lexical: Path, real: Path) -> tuple[str, ...] | None:
    """``path``'s parts below the data directory (``lexical`` or ``real``), or ``None``."""
    # Lexically first, so a link inside the data directory is judged as the
    # link it is; then through the links of the parent directories, for a
    # data directory reached by another path (/tmp on macOS, say).
    with suppress(ValueError):
        return path.relative_to(lexical).parts
    resolved = Path(os.path.realpath(path.parent)) / path.name
    with suppress(ValueError):
        return resolved.relative_to(real).parts
    return None


def _listed_now(directory: Path) -> Listed | OSError:
    """``listed(directory)`` and when it began, or why the directory cannot be listed."""
    seen_at = time.time_ns()
    try:
        listing, identity = listed(directory)
    except OSError as exc:
        return exc
    return listing, identity, seen_at
