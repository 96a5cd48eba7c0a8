"""The data directory's format rules, as pure functions: no I/O here.

Layout (format 2)::

    strategy-data/
    ├── strategystore.json        {"format": 2}, written last when initialising
    ├── .gitignore                ignores .locks/ and temporary files
    ├── .gitattributes            *.json text eol=lf -merge
    ├── .locks/<brief>.lock       one lock file per case-folded brief id
    └── <brief_id>/<version>.json the document's canonical bytes

What a file must hold, what a name means, what a temporary file is called and
what to tell a person about a file that breaks a rule: the store and ``check``
both ask this module, so they judge every file alike.
"""

from __future__ import annotations

import json
import os
import re

from pydantic import ValidationError

from strategystore.models import (
    MAX_VERSION,
    StrategyDocument,
    brief_id_problem,
    describe_validation_error,
    dump_validated,
)

__all__ = [
    "FORMAT",
    "GITATTRIBUTES",
    "GITIGNORE",
    "LOCKS_DIR",
    "MARKER_NAME",
    "NO_LINKS",
    "DocumentFileError",
    "MarkerError",
    "case_collisions",
    "conflict_marker_line",
    "decode_document_file",
    "describe_invalid",
    "document_name",
    "document_version",
    "is_brief_name",
    "is_temporary",
    "lock_name",
    "marker_bytes",
    "marker_format",
    "misplacement",
    "missing_lines",
    "name_document",
    "repeated_key",
    "temporary_name",
    "temporary_owner",
]

#: The on-disk format this version reads and writes.
FORMAT = 2
#: The file that marks a directory as a data directory.
MARKER_NAME = "strategystore.json"
#: The directory of lock files, one per case-folded brief id.
LOCKS_DIR = ".locks"
#: What ``.gitignore`` must say; lines a user's own file lacks are added to it.
GITIGNORE = b"# strategystore: lock files and temporary files stay out of git\n.locks/\n.*.tmp\n"
#: What ``.gitattributes`` must say: a document's bytes survive any checkout,
#: and git never merges two versions of one document line by line (a line
#: merge can combine an approval on one branch with an edit on another).
GITATTRIBUTES = (
    b"# strategystore: documents keep their bytes; git never line-merges them "
    b"(run `strategystore resolve`)\n*.json text eol=lf -merge\n"
)
#: Why a link inside the data directory is refused.
NO_LINKS = "the store never follows symbolic links inside its data directory"

_DOCUMENT_NAME = re.compile(r"[1-9][0-9]{0,9}\.json")
_CONFLICT_MARKERS = (b"<<<<<<<", b"|||||||", b"=======", b">>>>>>>")
_TEMPORARY_OWNER = re.compile(r"\.(\d+)-\d+\.tmp\Z")


def document_name(version: int) -> str:
    """The file name of a version: plain decimal, ``12.json``."""
    return f"{version}.json"


def document_version(name: str) -> int | None:
    """The version a file name in a brief directory stands for, or ``None``.

    Only plain decimal names count: ``12.json`` is version 12, ``012.json`` is
    not a document.
    """
    # Every brief directory holds the same few names: 1.json, 2.json …
    try:
        return _VERSIONS[name]
    except KeyError:
        pass
    version = None
    if _DOCUMENT_NAME.fullmatch(name) is not None and int(name[:-5]) < MAX_VERSION:
        version = int(name[:-5])
    if len(_VERSIONS) < _VERSIONS_KEPT:
        _VERSIONS[name] = version
    return version


#: What ``document_version`` said of each name it was asked about, up to a bound.
_VERSIONS: dict[str, int | None] = {}
_VERSIONS_KEPT = 4096


def is_brief_name(name: str) -> bool:
    """Whether an entry of the data directory is named as a brief may be."""
    return brief_id_problem(name) is None


def lock_name(brief_id: str) -> str:
    """The lock file of a brief in ``.locks/``: briefs differing by case share one."""
    return brief_id.lower() + ".lock"


def is_temporary(name: str) -> bool:
    """Whether ``name`` is one of the store's temporary files."""
    return name.startswith(".") and name.endswith(".tmp")


def temporary_name(name: str, pid: int, number: int) -> str:
    """The temporary file beside ``name`` of process ``pid``: ``.<name>.<pid>-<number>.tmp``."""
    return f".{name}.{pid}-{number}.tmp"


def temporary_owner(name: str) -> int | None:
    """The process id a temporary file's name carries, if it carries one."""
    found = _TEMPORARY_OWNER.search(name)
    return int(found.group(1)) if found else None


def marker_bytes() -> bytes:
    """What the marker file of a new data directory holds."""
    return json.dumps({"format": FORMAT}, indent=2).encode() + b"\n"


class MarkerError(ValueError):
    """A marker file that does not name a format this version reads.

    Attributes:
        reason: what is wrong, for a person.
        newer: the marker names a newer format (other files would be misjudged).
        older: the marker names an older format, which ``migrate`` converts.
    """

    def __init__(self, reason: str, *, newer: bool = False, older: bool = False) -> None:
        self.reason = reason
        self.newer = newer
        self.older = older
        super().__init__(reason)


def marker_format(raw: bytes, *, older: bool = False) -> int:
    """The format a marker file's bytes name.

    Args:
        raw: the marker file's bytes.
        older: accept an older format (for ``migrate``).

    Raises:
        MarkerError: the bytes are no marker, or name a newer format, or an
            older one unless ``older``.
    """
    try:
        version = json.loads(raw)["format"]
    except (ValueError, TypeError, KeyError) as exc:
        raise MarkerError(
            f'not a valid marker file; it should hold {{"format": {FORMAT}}}'
        ) from exc
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise MarkerError(f"format {version!r} is not a format number")
    if version > FORMAT:
        raise MarkerError(
            f"format {version} is newer than this strategystore reads (format {FORMAT}); "
            "upgrade strategystore",
            newer=True,
        )
    if version < FORMAT and not older:
        raise MarkerError(
            f"format {version} is older than this strategystore reads (format {FORMAT}); "
            "convert it with `strategystore migrate`, which seals every version that is "
            "not a draft",
            older=True,
        )
    return version


def missing_lines(present: bytes, wanted: bytes) -> bytes | None:
    """``present`` with the lines of ``wanted`` it lacks added, or ``None`` if it lacks none.

    Comment lines of ``wanted`` come along only when a rule line is added.
    """
    have = {line.strip() for line in present.splitlines()}
    missing = [line for line in wanted.splitlines() if line.startswith(b"#") or line not in have]
    if all(line.startswith(b"#") for line in missing):
        return None
    joined = present if present.endswith(b"\n") or not present else present + b"\n"
    return joined + b"\n".join(missing) + b"\n"


def misplacement(doc: StrategyDocument, brief_id: str, version: int) -> str | None:
    """Why ``doc`` does not belong at ``<brief_id>/<version>.json``, or ``None`` if it does."""
    if doc.brief_id == brief_id and doc.version == version:
        return None
    return (
        f"holds version {doc.version} of brief {doc.brief_id!r}, which belongs at "
        f"{doc.brief_id}/{doc.version}.json; move it there or fix its fields"
    )


def case_collisions(names: list[str]) -> list[list[str]]:
    """Groups of names that differ only by letter case, in the order given."""
    by_folded: dict[str, list[str]] = {}
    for name in names:
        by_folded.setdefault(name.lower(), []).append(name)
    return [group for group in by_folded.values() if len(group) > 1]


def conflict_marker_line(data: bytes) -> int | None:
    """The 1-based line of the first git merge-conflict marker in ``data``, if any."""
    for number, line in enumerate(data.splitlines(), start=1):
        if line.startswith(_CONFLICT_MARKERS):
            return number
    return None


def describe_invalid(data: bytes, error: ValidationError, *, stored: bool = True) -> str:
    """Say, for a person, why ``data`` is not a valid document.

    Args:
        data: the bytes that did not validate.
        error: what validation said.
        stored: ``data`` is a file in a data directory (the advice is to
            restore it); ``False`` for input given to a command.
    """
    if data.startswith(b"\xef\xbb\xbf"):
        return (
            "starts with a UTF-8 byte order mark (BOM), which a document file must not; "
            "save it as UTF-8 without a BOM"
        )
    if not data.strip():
        if stored:
            return "the file is empty; restore it from git or delete it"
        return "is empty; expected a JSON document"
    line = conflict_marker_line(data)
    if line is not None:
        return f"git merge-conflict marker at line {line}; resolve the conflict and remove it"
    summary = describe_validation_error(error)
    if summary.startswith("not valid JSON"):
        return summary
    return "not a valid strategy document: " + summary


class DocumentFileError(ValueError):
    """A document file that is not a valid, complete document.

    Attributes:
        reason: what is wrong and what to do, for a person.
        line: the 1-based line a person should look at, when there is one.
    """

    def __init__(self, reason: str, line: int | None = None) -> None:
        self.reason = reason
        self.line = line
        super().__init__(reason)


#: Every field a document file must state (DESIGN §6), per format: the
#: model's defaults serve callers building documents, never a stored file.
_FILE_FIELDS = {
    1: tuple(StrategyDocument.model_fields),
    2: (*StrategyDocument.model_fields, *StrategyDocument.model_computed_fields),
}
_JSON_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[{}\[\]:]')
_JSON_POSITION = re.compile(r"at line (\d+) column \d+")


def decode_document_file(data: bytes, *, format: int = FORMAT) -> StrategyDocument:
    """The document a file in a data directory holds, by the rules for stored files.

    A file must be a valid document that states every field and repeats no
    key in any object; a file the store wrote is canonical, which proves both
    at once, so only a hand-edited layout is examined further. A file of
    format 1 (read by ``migrate``) has no ``content_digest`` to state.

    Raises:
        DocumentFileError: with the reason and, where it has one, the line.
    """
    try:
        doc = StrategyDocument.from_json_bytes(data)
    except ValidationError as exc:
        problems = exc.errors(include_url=False, include_input=False)
        parsed = bool(problems) and problems[0]["type"] != "json_invalid"
        if parsed and data.lstrip().startswith(b"{") and _utf8(data):
            # A field left out explains a confusing error (a default created_at
            # of now is after the file's updated_at), so it is named first.
            _check_hand_edited(data.decode(), _FILE_FIELDS[format])
        raise DocumentFileError(describe_invalid(data, exc), _error_line(data, exc)) from exc
    if dump_validated(doc) != data:
        # Re-encoding a file with a repeated key, or a field left out, can
        # never give back the same bytes; only such files need a closer look.
        _check_hand_edited(data.decode(), _FILE_FIELDS[format])
    return doc


def repeated_key(data: bytes) -> DocumentFileError | None:
    """A repeated key in any object of the JSON ``data`` (which must parse), or ``None``.

    JSON readers keep the last of two keys silently; a document given to a
    command is refused like a stored file would be.
    """
    try:
        _check_hand_edited(data.decode(), ())
    except DocumentFileError as exc:
        return exc
    except UnicodeDecodeError:
        return None  # not text: the reader said so already
    return None


def _check_hand_edited(text: str, fields: tuple[str, ...]) -> None:
    """Refuse a repeated key in any object, and a top-level field left out."""
    # The text is valid JSON (it parsed), so its strings and brackets can be
    # matched by pattern; a string followed by ':' is a key.
    frames: list[dict[str, int] | None] = []  # one per open object (keys: offsets) or array
    top_level: dict[str, int] = {}
    key: tuple[str, int] | None = None
    for token in _JSON_TOKEN.finditer(text):
        mark = token.group()
        if mark == "{":
            frames.append(top_level if not frames else {})
        elif mark == "[":
            frames.append(None)
        elif mark in "}]":
            frames.pop()
        elif mark == ":":
            assert key is not None
            name, offset = key
            seen = frames[-1]
            assert seen is not None
            if name in seen:
                first, again = _line_at(text, seen[name]), _line_at(text, offset)
                where = f"on line {first}" if first == again else f"at lines {first} and {again}"
                raise DocumentFileError(
                    f"the key {name!r} appears twice in one object, {where}; a merge or a "
                    "hand edit left both: keep the right one",
                    again,
                )
            seen[name] = offset
        else:
            # Only a string followed by ':' is a key; decoding is needed only
            # where an escape could spell the same key differently.
            key = (json.loads(mark) if "\\" in mark else mark[1:-1], token.start())
    missing = [field for field in fields if field not in top_level]
    if missing == ["content_digest"]:
        raise DocumentFileError(
            "does not state content_digest: a strategystore older than format 2 wrote it "
            "(is an old version still running?), or the seal was removed by hand; restore "
            "the file from git, or run `strategystore migrate`, which seals drafts and names "
            "any other version without a seal"
        )
    if missing:
        raise DocumentFileError(
            f"does not state {', '.join(missing)}: a document file states every field "
            "(restore it from git, or add the missing fields)"
        )


def _utf8(data: bytes) -> bool:
    try:
        data.decode()
    except UnicodeDecodeError:
        return False
    return True


def _line_at(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def _error_line(data: bytes, error: ValidationError) -> int | None:
    """The line a person should look at: a conflict marker, a JSON error, or the field."""
    marker_line = conflict_marker_line(data)
    if marker_line is not None:
        return marker_line
    problems = error.errors(include_url=False, include_input=False)
    if problems and problems[0]["type"] == "json_invalid":
        found = _JSON_POSITION.search(str(problems[0].get("ctx", {}).get("error", "")))
        return int(found.group(1)) if found else None
    return _field_line(data, error)


def _field_line(data: bytes, error: ValidationError) -> int | None:
    """The line of the top-level field the first validation error is about, if it is plain."""
    problems = error.errors(include_url=False, include_input=False)
    if not problems or not problems[0]["loc"]:
        return None
    field = json.dumps(str(problems[0]["loc"][0])).encode()
    # Blanks within the line only: \s would span lines, and a file of blank
    # lines would take quadratic time to search.
    pattern = re.compile(rb"^[ \t]*" + re.escape(field) + rb"[ \t]*:", re.MULTILINE)
    lines = [data.count(b"\n", 0, m.start()) + 1 for m in pattern.finditer(data)]
    # A name that also appears nested (a metadata key, say) is ambiguous.
    return lines[0] if len(lines) == 1 else None


def name_document(exc: OSError, directory: str, name: str) -> None:
    """Make an error from writing ``directory/name`` name that document.

    A write names no file (a full disk's ``ENOSPC``), calls relative to a
    directory name only the file, and a temporary file's name means nothing
    to the person who asked for the document to be written.
    """
    named = exc.filename
    temporary = isinstance(named, str) and is_temporary(os.path.basename(named))
    if named is None or (temporary and exc.filename2 is None):
        exc.filename = os.path.join(directory, name)
    elif isinstance(named, str) and not os.path.isabs(named):
        # A link or rename names both ends: the temporary file, and the document.
        exc.filename = os.path.join(directory, named)
    if isinstance(exc.filename2, str) and not os.path.isabs(exc.filename2):
        exc.filename2 = os.path.join(directory, exc.filename2)
