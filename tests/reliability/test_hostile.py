"""Hostile input: brief ids, unvalidated documents, planted links and hand-broken files."""

from __future__ import annotations

import json
import os
import re
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from strategystore import (
    CorruptDocumentError,
    FileStore,
    InvalidBriefIdError,
    MemoryStore,
    StoreFormatError,
    StrategyDocument,
)
from strategystore.store import BaseStore
from tests.reliability._support import T0, T1, count, make_doc, scaled, tree

# -- brief ids -------------------------------------------------------------------

#: DESIGN.md section 2, written out again so the store is checked against the
#: contract rather than against its own code.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")
_DEVICES = {"con", "prn", "aux", "nul", *(f"com{i}" for i in range(10))} | {
    f"lpt{i}" for i in range(10)
}


def acceptable(brief_id: str) -> bool:
    """Whether the contract accepts ``brief_id``."""
    return (
        _ID.fullmatch(brief_id) is not None
        and not brief_id.endswith(".")
        and brief_id.split(".", 1)[0].lower() not in _DEVICES
        and brief_id.lower() != "strategystore.json"
    )


NASTY_IDS = [
    "",
    ".",
    "..",
    "...",
    "/",
    "//",
    "../outside",
    "../../outside",
    "../../../outside/x",
    "a/b",
    "a/../b",
    "acme/..",
    "a\\b",
    "..\\outside",
    "a\x00b",
    "\x00",
    "a\n",
    "\na",
    "a\r\n",
    "a\t",
    "a\x1b[31m",
    " a",
    "a ",
    "a.",
    "a..",
    ".a",
    ".locks",
    ".git",
    ".gitignore",
    "-a",
    "_a",
    "é",
    "e\u0301",
    "A\u030a",
    "\u212b",
    "\uff46\uff55\uff4c\uff4c",
    "a\u200b",
    "a\u2028b",
    "a:b",
    "a*b",
    "a?b",
    "a|b",
    "a<b",
    'a"b',
    "~",
    "~root",
    "$HOME",
    "%2e%2e",
    "CON",
    "con",
    "Con.txt",
    "nul.tar.gz",
    "AUX",
    "PRN.md",
    "COM0",
    "com9.x",
    "LPT1",
    "lpt9",
    "COM10",
    "CONSOLE",
    "strategystore.json",
    "STRATEGYSTORE.JSON",
    "strategystore.json.bak",
    "a" * 100,
    "a" * 101,
    "a" * 255,
    "é" * 128,
    "a" * 4096,
]

_SUFFIXES = ["/", "/..", "\x00", "\n", ".", " ", "/x", "\\x", "é", "\u0301", ":"]


@dataclass
class Arena:
    """A temporary tree: the data directory and two decoys an attack would aim at."""

    top: Path

    @property
    def data(self) -> Path:
        return self.top / "root" / "data"

    @property
    def decoys(self) -> list[Path]:
        return [self.top / "outside", self.top / "root" / "outside"]


@pytest.fixture
def arena(tmp_path: Path) -> Arena:
    return _make_arena(tmp_path)


def _make_arena(top: Path) -> Arena:
    arena = Arena(top)
    for decoy in arena.decoys:
        decoy.mkdir(parents=True)
        (decoy / "keep.txt").write_text("not the store's\n")
    FileStore(arena.data, durable=False)
    return arena


def _constructed(brief_id: Any, version: Any = 1) -> StrategyDocument:
    """A document that skipped validation (``model_copy`` and ``model_construct`` do)."""
    return make_doc("carrier", 1).model_copy(update={"brief_id": brief_id, "version": version})


def _calls(brief_id: str) -> list[tuple[str, Callable[[BaseStore], object]]]:
    """Every method that takes a brief id as an argument; documents come later."""
    return [
        ("create_next", lambda s: s.create_next(brief_id, now=T0)),
        ("get_strategy", lambda s: s.get_strategy(brief_id, 1)),
        ("list_versions_by_brief", lambda s: s.list_versions_by_brief(brief_id)),
        ("list_version_numbers", lambda s: s.list_version_numbers(brief_id)),
        ("get_latest", lambda s: s.get_latest(brief_id)),
        ("approve", lambda s: s.approve(brief_id, 1, now=T1)),
        ("reject", lambda s: s.reject(brief_id, 1, now=T1)),
        ("withdraw", lambda s: s.withdraw(brief_id, 1, now=T1)),
        ("delete", lambda s: s.delete(brief_id, 1)),
    ]


def _refuses_everywhere(store: BaseStore, brief_id: str) -> list[str]:
    problems = []
    for name, call in _calls(brief_id):
        try:
            call(store)
        except InvalidBriefIdError:
            count("hostile: calls with a bad brief id refused")
        except Exception as exc:  # anything but the documented error is a problem
            problems.append(f"{name} raised {exc!r}")
        else:
            problems.append(f"{name} accepted it")
    return problems


def _round_trips(store: BaseStore, brief_id: str) -> list[str]:
    problems = []
    created = store.create_next(brief_id, now=T0)
    if created.brief_id != brief_id or created.version != 1:
        problems.append(f"create_next stored {created.key}")
    if store.get_strategy(brief_id, 1) != created or store.get_latest(brief_id) != created:
        problems.append("the document did not read back")
    if store.list_versions_by_brief(brief_id) != [created] or brief_id not in store.list_briefs():
        problems.append("the brief is not listed")
    store.save(make_doc(brief_id, 2))
    store.create(make_doc(brief_id, 3))
    store.update(make_doc(brief_id, 3, metadata={"v": 3}), expected=make_doc(brief_id, 3))
    if store.list_version_numbers(brief_id) != [3, 2, 1]:
        problems.append(f"versions {store.list_version_numbers(brief_id)}")
    if not all(store.delete(brief_id, v) for v in (3, 2, 1)) or brief_id in store.list_briefs():
        problems.append("the brief did not go away with its last version")
    count("hostile: accepted brief ids round-tripped")
    return problems


def _probe(arena: Arena, brief_id: str) -> None:
    """Every method either round-trips ``brief_id`` or refuses it; nothing lands outside."""
    cwd = sorted(os.listdir())
    absolute = os.path.isabs(brief_id) and os.path.lexists(brief_id)
    before = tree(arena.top)
    stores: list[BaseStore] = [MemoryStore(), FileStore(arena.data, durable=False)]
    problems = []
    for store in stores:
        check = _round_trips if acceptable(brief_id) else _refuses_everywhere
        problems += [f"{store!r}: {p}" for p in check(store, brief_id)]
    after = tree(arena.top)
    lock = f"root/data/.locks/{brief_id.lower()}.lock"
    changed = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
    # An accepted brief is deleted again, and leaves only its lock file.
    allowed = [lock] if acceptable(brief_id) and lock not in before else []
    if changed != allowed:
        problems.append(f"the tree changed outside what the brief may touch: {changed}")
    if sorted(os.listdir()) != cwd:
        problems.append("something appeared in the working directory")
    if os.path.isabs(brief_id) and os.path.lexists(brief_id) != absolute:
        problems.append(f"{brief_id} was created")
    count("hostile: brief ids tried")
    assert not problems, f"brief id {brief_id!r}: " + "; ".join(problems)


@pytest.mark.parametrize("brief_id", NASTY_IDS, ids=repr)
def test_each_known_nasty_brief_id_round_trips_or_is_refused_and_nothing_escapes(
    brief_id: str, arena: Arena
) -> None:
    _probe(arena, brief_id)


@pytest.mark.parametrize("target", ["outside", "outside/x", "root/outside", "root/data/../x"])
def test_an_absolute_path_as_brief_id_is_refused_and_nothing_escapes(
    target: str, arena: Arena
) -> None:
    _probe(arena, str(arena.top / target))


_valid = st.from_regex(_ID, fullmatch=True)
_hostile_ids = st.one_of(
    st.sampled_from(NASTY_IDS),
    st.text(max_size=16),
    st.text(alphabet="aZ09._-/\\\x00 \n\u0301é", max_size=16),
    _valid,
    st.builds(lambda a, b: a + b, _valid, st.sampled_from(_SUFFIXES)),
    st.builds(lambda a, b: a + b, st.sampled_from(_SUFFIXES), _valid),
)


@settings(
    max_examples=scaled(300),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@example("../outside")
@example("a" * 255)
@given(brief_id=_hostile_ids)
def test_any_brief_id_round_trips_or_is_refused_and_nothing_escapes(brief_id: str) -> None:
    with tempfile.TemporaryDirectory() as top:
        _probe(_make_arena(Path(top)), brief_id)


# -- documents that skipped validation ---------------------------------------------


@pytest.mark.parametrize(
    ("brief_id", "version"),
    [
        ("acme", "./../../outside/pwn"),
        ("acme", "../acme/2"),
        ("acme", 0),
        ("acme", -1),
        ("acme", 2**31),
        ("acme", True),
        ("../outside", 1),
        ("../../outside", 1),
        ("acme/..", 1),
        ("CON", 1),
    ],
    ids=repr,
)
def test_a_document_that_skipped_validation_is_refused_and_nothing_escapes(
    brief_id: Any, version: Any, arena: Arena
) -> None:
    stores: list[BaseStore] = [MemoryStore(), FileStore(arena.data, durable=False)]
    for store in stores:
        store.create_next("acme", now=T0)
    before = tree(arena.top)
    doc = _constructed(brief_id, version)
    problems = []
    writes: list[tuple[str, Callable[[BaseStore], object]]] = [
        ("save", lambda s: s.save(doc)),
        ("create", lambda s: s.create(doc)),
        ("update", lambda s: s.update(doc, expected=doc)),
        ("import_documents", lambda s: s.import_documents([doc]).written),
    ]
    for store in stores:
        for name, write in writes:
            # Production code runs without warnings as errors; pydantic's
            # serialisation warnings must not be what stops the write here.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                try:
                    outcome = write(store)
                except ValueError:
                    count("hostile: unvalidated documents refused")
                    continue
                except Exception as exc:  # the contract names ValueError for a bad key
                    problems.append(f"{store!r}.{name} raised {exc!r}")
                    continue
            if name != "import_documents" or outcome:
                problems.append(f"{store!r}.{name} accepted it")
        try:
            listed = [(b, store.list_version_numbers(b)) for b in store.list_briefs()]
        except Exception as exc:  # a store that took the document may not list it back
            problems.append(f"{store!r} cannot list its briefs any more: {exc!r}")
        else:
            if listed != [("acme", [1])]:
                problems.append(f"{store!r} now lists {listed}")
    after = tree(arena.top)
    changed = sorted(p for p in before.keys() | after.keys() if before.get(p) != after.get(p))
    if changed:
        problems.append(f"files changed: {changed}")
    assert not problems, "; ".join(problems)


# -- planted links and special files ------------------------------------------------


def _planted(arena: Arena) -> tuple[FileStore, Path]:
    """A store with ``acme`` 1 and 2 and ``beta`` 1, and a decoy holding a valid ``acme`` 1."""
    store = FileStore(arena.data, durable=False, lock_timeout=2.0)
    store.save(make_doc("acme", 1))
    store.save(make_doc("acme", 2))
    store.save(make_doc("beta", 1))
    decoy = arena.decoys[0]
    (decoy / "1.json").write_bytes(make_doc("acme", 1, metadata={"planted": True}).to_json_bytes())
    (decoy / "acme").mkdir()
    (decoy / "acme" / "1.json").write_bytes((decoy / "1.json").read_bytes())
    return store, decoy


def _swap_in_link(path: Path, target: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        for child in path.iterdir():
            child.unlink()
        path.rmdir()
    elif path.exists() or path.is_symlink():
        path.unlink()
    path.symlink_to(target)


def _plant(kind: str, arena: Arena, decoy: Path) -> str:
    """Plant the trap ``kind``; return its path relative to the data directory."""
    data = arena.data
    links = {
        "brief directory": ("acme", decoy),
        "brief directory to another brief": ("acme", data / "beta"),
        "document": ("acme/1.json", decoy / "1.json"),
        "dangling document": ("acme/1.json", decoy / "new.json"),
        "locks directory": (".locks", decoy),
        "lock file": (".locks/acme.lock", decoy / "keep.txt"),
        "dangling lock file": (".locks/acme.lock", decoy / "made.lock"),
    }
    if kind in links:
        where, target = links[kind]
        _swap_in_link(data / where, target)
        return where
    where = {
        "pipe as document": "acme/1.json",
        "pipe as lock file": ".locks/acme.lock",
        "directory as document": "acme/1.json",
    }[kind]
    (data / where).unlink()
    if kind.startswith("pipe"):
        os.mkfifo(data / where)
    else:
        (data / where).mkdir()
    return where


#: Whether reads of ``acme`` still work once the trap is planted (only writes take locks).
_READS_UNAFFECTED = {"locks directory", "lock file", "dangling lock file", "pipe as lock file"}

TRAPS = [
    "brief directory",
    "brief directory to another brief",
    "document",
    "dangling document",
    "locks directory",
    "lock file",
    "dangling lock file",
    "pipe as document",
    "pipe as lock file",
    "directory as document",
]


def _within(seconds: float, call: Callable[[], object]) -> tuple[str, object]:
    """Run ``call`` in a thread; fail if it blocks (on a pipe, say) for ``seconds``."""
    outcome: list[tuple[str, object]] = []

    def run() -> None:
        try:
            outcome.append(("returned", call()))
        except Exception as exc:  # reported to the caller
            outcome.append(("raised", exc))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert outcome, f"the call blocked for {seconds} s"
    return outcome[0]


@pytest.mark.parametrize("kind", TRAPS)
def test_a_planted_link_or_special_file_never_leads_a_read_or_write_outside(
    kind: str, arena: Arena
) -> None:
    store, decoy = _planted(arena)
    trap = _plant(kind, arena, decoy)
    planted_trap = tree(arena.data)[trap]
    outside_before = {d: tree(d) for d in arena.decoys}
    planted = make_doc("acme", 1, metadata={"planted": True})
    reads: list[Callable[[], object]] = [
        lambda: store.get_strategy("acme", 1),
        lambda: store.list_versions_by_brief("acme"),
        lambda: store.get_latest("acme"),
        store.list_briefs,
    ]
    writes: list[Callable[[], object]] = [
        lambda: store.save(make_doc("acme", 1, metadata={"new": True})),
        lambda: store.create(make_doc("acme", 3)),
        lambda: store.create_next("acme"),
        lambda: store.approve("acme", 1),
        lambda: store.delete("acme", 1),
    ]
    for call in reads + writes:
        how, value = _within(5, call)
        count("hostile: calls against planted links and special files")
        if how == "raised":
            assert isinstance(value, CorruptDocumentError), f"{kind}: {value!r}"
            continue
        shown = value if isinstance(value, list) else [value]
        assert planted not in shown, f"{kind}: a read returned the planted document"
    for decoy_dir, before in outside_before.items():
        assert tree(decoy_dir) == before, f"{kind}: something outside the data directory changed"
    assert tree(arena.data)[trap] == planted_trap, f"{kind}: the planted {trap} was replaced"
    # The rest of the store is untouched and still works.
    assert store.get_strategy("beta", 1) == make_doc("beta", 1)
    if kind in _READS_UNAFFECTED:
        assert store.get_strategy("acme", 2) == make_doc("acme", 2)
    if kind not in _READS_UNAFFECTED and "brief directory" not in kind:
        with pytest.raises(CorruptDocumentError, match="acme"):
            store.get_strategy("acme", 1)
    if kind == "locks directory":
        # Every write needs a lock, and the locks live behind the link.
        with pytest.raises(CorruptDocumentError, match="symbolic link"):
            store.create_next("beta")
    else:
        assert store.create_next("beta").version == 2


def test_a_planted_marker_link_is_refused_when_opening(arena: Arena) -> None:
    marker = arena.data / "strategystore.json"
    marker.unlink()
    (arena.decoys[0] / "marker.json").write_text('{"format": 1}\n')
    marker.symlink_to(arena.decoys[0] / "marker.json")
    with pytest.raises(StoreFormatError, match=r"strategystore\.json"):
        FileStore(arena.data)


def test_a_document_hard_linked_from_outside_is_replaced_never_written_through(
    arena: Arena,
) -> None:
    store = FileStore(arena.data, durable=False)
    store.save(make_doc("acme", 1))
    outside = arena.decoys[0] / "linked.json"
    os.link(arena.data / "acme" / "1.json", outside)
    before = outside.read_bytes()
    store.save(make_doc("acme", 1, metadata={"new": True}))
    store.approve("acme", 1)
    assert outside.read_bytes() == before
    assert store.get_strategy("acme", 1) != make_doc("acme", 1)


# -- hand-broken files ----------------------------------------------------------------

_GOOD = make_doc("acme", 1).to_json_bytes()


def _edited(**changes: object) -> bytes:
    fields = json.loads(_GOOD)
    for key, value in changes.items():
        if value is _DROP:
            fields.pop(key)
        else:
            fields[key] = value
    return json.dumps(fields, indent=2).encode() + b"\n"


_DROP = object()

BROKEN: dict[str, bytes] = {
    "truncated": _GOOD[: len(_GOOD) // 2],
    "truncated by one byte": _GOOD[:-2],
    "not json": b"this is not JSON\n",
    "empty": b"",
    "only whitespace": b"\n\n  \n",
    "binary": bytes(range(256)) * 4,
    "invalid utf-8": _GOOD.replace(b"Grow", b"Gr\xff\xfeow"),
    "byte order mark": b"\xef\xbb\xbf" + _GOOD,
    "json null": b"null\n",
    "json array": b"[]\n",
    "version as text": _edited(version="1"),
    "version as float": _edited(version=1.0),
    "version as bool": _edited(version=True),
    "unknown status": _edited(status="published"),
    "timestamp as number": _edited(created_at=1_768_469_400),
    "naive timestamp": _edited(created_at="2026-01-15T09:30:00", updated_at="2026-01-15T09:30:00"),
    "updated before created": _edited(updated_at="2020-01-01T00:00:00Z"),
    "sections as object": _edited(sections={}),
    "duplicate section keys": _edited(
        sections=[{"key": "a", "title": "A", "body": ""}, {"key": "a", "title": "B", "body": ""}]
    ),
    "empty section key": _edited(sections=[{"key": "", "title": "A", "body": ""}]),
    "metadata as list": _edited(metadata=[]),
    "NaN in metadata": _GOOD.replace(b'"score": 0.5', b'"score": NaN'),
    "unknown field": _edited(owner="someone"),
    "missing field": _edited(brief_id=_DROP),
    "conflict markers": (
        b"<<<<<<< HEAD\n" + _GOOD + b"=======\n" + _edited(status="approved") + b">>>>>>> theirs\n"
    ),
    "conflict markers inside": _GOOD.replace(b'  "status"', b'<<<<<<< HEAD\n  "status"', 1),
    "wrong version for its path": make_doc("acme", 2).to_json_bytes(),
    "wrong brief for its path": make_doc("beta", 1).to_json_bytes(),
    "other case of the brief": make_doc("ACME", 1).to_json_bytes(),
    "trailing garbage": _GOOD + b"garbage",
    "two documents": _GOOD + _GOOD,
    "deeply nested": b'{"metadata": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "padded with blank lines": _GOOD.replace(
        b'  "brief_id"', b"\n" * 300_000 + b'  "brief_id"'
    ).replace(b'"version": 1', b'"version": "one"'),
    # Written at test time, not built here: see _content.
    "huge": b"",
}


def _content(kind: str) -> bytes:
    if kind == "huge":
        return b'{"brief_id": "' + b"a" * 30_000_000 + b'"}'
    return BROKEN[kind]


#: The kinds whose message must point at a line, as DESIGN.md section 4 asks.
_WITH_LINE = {"truncated", "not json", "conflict markers", "conflict markers inside"}


@pytest.fixture
def broken_store(tmp_path: Path) -> tuple[FileStore, Path]:
    store = FileStore(tmp_path / "data", durable=False, lock_timeout=2.0)
    store.save(make_doc("acme", 1))
    store.save(make_doc("acme", 2))
    store.save(make_doc("beta", 1))
    return store, tmp_path / "data" / "acme" / "1.json"


@pytest.mark.parametrize("kind", list(BROKEN))
def test_a_hand_broken_document_is_reported_never_overwritten_and_the_rest_works(
    kind: str, broken_store: tuple[FileStore, Path]
) -> None:
    store, path = broken_store
    content = _content(kind)
    path.write_bytes(content)
    identity = (path.stat().st_ino, path.stat().st_mtime_ns, path.stat().st_size)
    started = time.monotonic()
    with pytest.raises(CorruptDocumentError) as reported:
        store.get_strategy("acme", 1)
    assert time.monotonic() - started < 10
    assert reported.value.path == path
    assert str(path) in str(reported.value)
    if kind in _WITH_LINE:
        assert "line" in reported.value.reason, reported.value.reason
    calls: list[Callable[[], object]] = [
        lambda: store.list_versions_by_brief("acme"),
        lambda: store.save(make_doc("acme", 1, metadata={"fixed": True})),
        lambda: store.create(make_doc("acme", 1)),
        lambda: store.update(make_doc("acme", 1), expected=make_doc("acme", 1)),
        lambda: store.approve("acme", 1),
        lambda: store.reject("acme", 1),
        lambda: store.withdraw("acme", 1),
        lambda: store.delete("acme", 1),
    ]
    for call in calls:
        with pytest.raises(CorruptDocumentError):
            call()
        count("hostile: calls against hand-broken files refused")
    assert path.read_bytes() == content
    assert (path.stat().st_ino, path.stat().st_mtime_ns, path.stat().st_size) == identity
    assert store.get_strategy("acme", 2) == make_doc("acme", 2)
    assert store.create_next("acme").version == 3
    assert store.get_latest("acme") is not None
    assert store.list_briefs() == ["acme", "beta"]
    store.save(make_doc("beta", 2))
    assert store.list_version_numbers("beta") == [2, 1]
    count("hostile: kinds of hand-broken file tried")


def test_every_prefix_of_a_document_reads_as_corrupt_or_as_the_whole_document(
    broken_store: tuple[FileStore, Path],
) -> None:
    store, path = broken_store
    whole = make_doc("acme", 1)
    for end in range(len(_GOOD)):
        path.write_bytes(_GOOD[:end])
        try:
            found = store.get_strategy("acme", 1)
        except CorruptDocumentError:
            count("hostile: torn prefixes reported as corrupt")
            continue
        assert found == whole, f"a prefix of {end} bytes read as another document"
