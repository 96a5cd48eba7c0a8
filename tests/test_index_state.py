"""The listing index against the disk, by a hypothesis state machine.

It interleaves writes through the store, approvals, in-place rewrites with
the old mtime put back, files replaced as ``git checkout`` does, damaged
files, deletions, other names added to or removed from a brief directory,
brief directories replaced whole, and a deleted, truncated or garbled index, and after every
step compares each answer of ``briefs``, ``versions`` and ``check`` with the
same command run without the index (``STRATEGYSTORE_NO_INDEX=1``).

A fake clock (``settle``) makes every entry count as settled at once, so the
index really answers; every change then waits one clock tick first, as any
change made after an entry was recorded under the real racy window would.
``STRATEGYSTORE_STRESS=1`` runs far more examples.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from strategystore import FileStore, Section, StrategyStoreError
from strategystore._index import INDEX_NAME, NO_INDEX_ENV
from strategystore.cli import main
from tests.conftest import make_doc

STRESS = os.environ.get("STRATEGYSTORE_STRESS", "").strip() not in ("", "0")
BRIEFS = ("acme", "zeta")
VERSIONS = st.integers(min_value=1, max_value=4)
COMMANDS = (
    ("briefs", "--json"),
    ("briefs",),
    ("versions", "acme", "--json"),
    ("versions", "zeta"),
    ("check",),
)
#: Longer than a file system's clock tick, so a change never shares the
#: timestamps of the entry recorded before it.
TICK = 0.005
_real_time_ns = time.time_ns
_offset = [0]


def _fake_time_ns() -> int:
    return _real_time_ns() + _offset[0]


def _run(data: Path, command: tuple[str, ...], *, index: bool) -> tuple[int, str, str]:
    if index:
        os.environ.pop(NO_INDEX_ENV, None)
    else:
        os.environ[NO_INDEX_ENV] = "1"
    out, err = io.StringIO(), io.StringIO()
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(["--dir", str(data), *command])
    finally:
        os.environ.pop(NO_INDEX_ENV, None)
    return status, out.getvalue(), err.getvalue()


class IndexAgreesWithTheDisk(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.tmp = Path(tempfile.mkdtemp(prefix="index-state-"))
        self.data = self.tmp / "data"
        self.store = FileStore(self.data, durable=False)
        self.answered = 0
        _offset[0] = 0
        time.time_ns = _fake_time_ns

    def teardown(self) -> None:
        time.time_ns = _real_time_ns
        _offset[0] = 0
        shutil.rmtree(self.tmp, ignore_errors=True)

    def _path(self, brief: str, version: int) -> Path:
        return self.data / brief / f"{version}.json"

    @staticmethod
    def _tick() -> None:
        time.sleep(TICK)

    # -- changes through the store ---------------------------------------------

    @rule(brief=st.sampled_from(BRIEFS), version=VERSIONS, rev=st.integers(0, 99))
    def save(self, brief: str, version: int, rev: int) -> None:
        self._tick()
        sections = [Section(key="k", title="T", body="x" * (rev % 7))]
        with contextlib.suppress(StrategyStoreError, ValueError):
            self.store.save(make_doc(brief, version, metadata={"rev": rev}, sections=sections))

    @rule(brief=st.sampled_from(BRIEFS), version=VERSIONS, how=st.sampled_from("arw"))
    def change_status(self, brief: str, version: int, how: str) -> None:
        self._tick()
        with contextlib.suppress(StrategyStoreError, ValueError):
            if how == "a":
                self.store.approve(brief, version)
            elif how == "r":
                self.store.reject(brief, version, reason="no")
            else:
                self.store.withdraw(brief, version, reason="gone")

    # -- changes behind the store's back -----------------------------------------------

    @rule(brief=st.sampled_from(BRIEFS), version=VERSIONS, what=st.sampled_from("sdmb"))
    def edit_in_place_keeping_mtime(self, brief: str, version: int, what: str) -> None:
        path = self._path(brief, version)
        if not path.is_file():
            return
        self._tick()
        before = path.stat()
        data = path.read_bytes()
        if what == "s":  # the status, same length: damages a sealed one or a draft
            edited = data.replace(b'"draft"', b'"drop!"').replace(b'"approved"', b'"approve"')
        elif what == "d":  # a digit of the metadata
            edited = data.replace(b'"rev": 1', b'"rev": 2', 1)
        elif what == "m":  # a conflict marker over the first bytes
            edited = b"<<<<<<<" + data[7:]
        else:  # the body of a section, same length
            edited = data.replace(b'"x', b'"y', 1)
        with open(path, "r+b") as file:
            file.write(edited[: len(data)].ljust(len(data), b" "))
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))

    @rule(
        brief=st.sampled_from(BRIEFS),
        version=VERSIONS,
        content=st.sampled_from(["valid", "misplaced", "garbage", "empty"]),
        rev=st.integers(0, 99),
    )
    def checkout(self, brief: str, version: int, content: str, rev: int) -> None:
        self._tick()
        if content == "valid":
            data = make_doc(brief, version, metadata={"rev": rev}).to_json_bytes()
        elif content == "misplaced":
            data = make_doc(brief, version + 1).to_json_bytes()
        elif content == "garbage":
            data = b'{"brief_id": ' + str(rev).encode()
        else:
            data = b""
        path = self._path(brief, version)
        path.parent.mkdir(exist_ok=True)
        replacement = path.with_name(f".checkout-{rev}")
        replacement.write_bytes(data)
        os.replace(replacement, path)

    @rule(brief=st.sampled_from(BRIEFS), version=VERSIONS)
    def delete(self, brief: str, version: int) -> None:
        self._tick()
        with contextlib.suppress(FileNotFoundError):
            self._path(brief, version).unlink()

    @rule(brief=st.sampled_from(BRIEFS), name=st.sampled_from(["notes.md", "07.json", "x.tmp"]))
    def add_or_remove_another_file(self, brief: str, name: str) -> None:
        """A name that is no document, added or removed: only the directory's identity shows it."""
        directory = self.data / brief
        if not directory.is_dir():
            return
        self._tick()
        path = directory / name
        if path.exists():
            path.unlink()
        else:
            path.write_text("{}")

    @rule(brief=st.sampled_from(BRIEFS), extra=st.booleans())
    def replace_the_brief_directory(self, brief: str, extra: bool) -> None:
        """Another directory in its place, as a checkout does: its files copied, maybe one more."""
        directory = self.data / brief
        if not directory.is_dir():
            return
        self._tick()
        moved = self.tmp / f"moved-{brief}"
        shutil.rmtree(moved, ignore_errors=True)
        directory.rename(moved)
        directory.mkdir()
        for path in moved.iterdir():
            (directory / path.name).write_bytes(path.read_bytes())
        if extra:
            (directory / "notes.md").write_text("x")
        shutil.rmtree(moved)

    # -- the index itself ---------------------------------------------------------------

    @rule(
        how=st.sampled_from(["delete", "truncate", "garbage", "bitflip"]), at=st.integers(0, 10**6)
    )
    def damage_the_index(self, how: str, at: int) -> None:
        path = self.data / ".locks" / INDEX_NAME
        if not path.is_file():
            return
        data = path.read_bytes()
        if how == "delete":
            path.unlink()
        elif how == "truncate":
            path.write_bytes(data[: at % (len(data) + 1)])
        elif how == "garbage":
            path.write_bytes(os.urandom(at % 300))
        elif data:
            spot = at % len(data)
            path.write_bytes(data[:spot] + bytes([data[spot] ^ 0xFF]) + data[spot + 1 :])

    @rule(settled=st.booleans())
    def settle(self, settled: bool) -> None:
        """Let every entry count as settled (the fake clock runs ahead), or not."""
        _offset[0] = 10 * 10**9 if settled else 0

    @rule()
    def read_with_the_index(self) -> None:
        for command in COMMANDS:
            _run(self.data, command, index=True)

    # -- every answer agrees ---------------------------------------------------------------

    @invariant()
    def every_answer_is_the_same_without_the_index(self) -> None:
        for command in COMMANDS:
            truth = _run(self.data, command, index=False)
            assert _run(self.data, command, index=True) == truth, command
            assert _run(self.data, command, index=True) == truth, command


IndexAgreesWithTheDisk.TestCase.settings = settings(
    max_examples=100 if STRESS else 12,
    stateful_step_count=40 if STRESS else 20,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestIndexAgreesWithTheDisk = IndexAgreesWithTheDisk.TestCase
