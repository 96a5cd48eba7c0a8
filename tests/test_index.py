"""The listing index (``.locks/index.v1``): a cache of what listings and ``check`` learnt.

Every answer of ``briefs``, ``versions`` and ``check`` must be byte-identical
with and without the index (``STRATEGYSTORE_NO_INDEX=1``), whatever happened
to the files or to the index itself. These tests mirror the read cache's
(tests/test_cache.py): each changes files behind the index's back, in every
way a person or program does, and checks that the very next command sees it.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

import strategystore._cache as cache_module
from strategystore import FileStore, Section, Status
from strategystore import _index as index_module
from strategystore import _unchanged as unchanged_module
from strategystore import _verdict as verdict_module
from strategystore._index import INDEX_NAME, NO_INDEX_ENV, ListingIndex
from strategystore._listing import Lister, VersionRow
from strategystore.cli import main
from tests.conftest import T0, make_doc

SETTLE = cache_module.FINE_RACY_WINDOW_NS / 1e9 + 0.05

#: The commands whose answers the index must not change.
COMMANDS = [
    ("briefs", "--json"),
    ("briefs",),
    ("versions", "acme-q3", "--json"),
    ("versions", "acme-q3"),
    ("check",),
]

Outcome = tuple[int, str, str]


@pytest.fixture
def run(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Outcome]:
    """Run the command line in this process, with or without the index."""

    def run_it(data: Path, *args: str, index: bool = True) -> Outcome:
        if index:
            monkeypatch.delenv(NO_INDEX_ENV, raising=False)
        else:
            monkeypatch.setenv(NO_INDEX_ENV, "1")
        capsys.readouterr()
        status = main(["--dir", str(data), *args])
        captured = capsys.readouterr()
        monkeypatch.delenv(NO_INDEX_ENV, raising=False)
        return status, captured.out, captured.err

    return run_it


@pytest.fixture
def hits(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Counts the index's lookups that answered: ``hits[0]``."""
    count = [0]
    real = ListingIndex.lookup

    def counting(self: ListingIndex, *args: object) -> object:
        found = real(self, *args)  # type: ignore[arg-type]
        count[0] += found is not None
        return found

    monkeypatch.setattr(ListingIndex, "lookup", counting)
    return count


def index_path(data: Path) -> Path:
    return data / ".locks" / INDEX_NAME


def same_answers(run: Callable[..., Outcome], data: Path) -> None:
    """Every command answers alike without the index and with it (twice: recording, reading)."""
    for command in COMMANDS:
        truth = run(data, *command, index=False)
        assert run(data, *command) == truth, command
        assert run(data, *command) == truth, command


@pytest.fixture
def data(tmp_path: Path) -> Path:
    """A data directory with two briefs and one damaged file, settled and indexed."""
    store = FileStore(tmp_path / "data", durable=False)
    store.save(make_doc(metadata={"rev": "a"}))
    store.create(make_doc(version=2, metadata={"rev": "b"}))
    store.approve("acme-q3", 2, now=T0)
    store.create(make_doc(version=3))
    store.reject("acme-q3", 3, reason="too vague", now=T0)
    store.create(make_doc("zeta", 1))
    (tmp_path / "data" / "zeta" / "2.json").write_bytes(b'{"brief_id": "zeta",\n<<<<<<< HEAD\n')
    time.sleep(SETTLE)
    return tmp_path / "data"


def _path(data: Path, version: int = 1) -> Path:
    return data / "acme-q3" / f"{version}.json"


# -- the index answers, and answers alike -------------------------------------------


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_every_command_answers_byte_for_byte_alike_with_and_without_the_index(
    run: Callable[..., Outcome], data: Path, hits: list[int], command: tuple[str, ...]
) -> None:
    truth = run(data, *command, index=False)
    assert run(data, *command) == truth
    assert index_path(data).is_file()
    hits[0] = 0
    assert run(data, *command) == truth
    assert hits[0] > 0  # answered from the index


def test_a_damaged_file_shows_as_damaged_with_the_same_message(
    run: Callable[..., Outcome], data: Path
) -> None:
    run(data, "check")
    status, out, err = run(data, "versions", "zeta", "--json")
    assert status == 1
    assert "git merge-conflict marker at line 2" in out
    assert "2.json:2: git merge-conflict marker" in run(data, "check")[1]
    assert (status, out, err) == run(data, "versions", "zeta", "--json", index=False)


def test_an_unchanged_directory_is_answered_from_the_index_without_reading_a_document(
    run: Callable[..., Outcome], data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    truth = [run(data, *command, index=False) for command in COMMANDS]
    for command in COMMANDS:
        run(data, *command)

    def no_reading(*args: object, **kwargs: object) -> None:
        raise AssertionError("a document was read")

    monkeypatch.setattr(FileStore, "_read_document", no_reading)
    monkeypatch.setattr(verdict_module, "decode_document_file", no_reading)
    monkeypatch.setattr("strategystore.check.decode_document_file", no_reading)
    for command, expected in zip(COMMANDS, truth, strict=True):
        assert run(data, *command) == expected


def test_a_file_changed_within_the_racy_window_is_never_trusted(
    run: Callable[..., Outcome], tmp_path: Path, hits: list[int]
) -> None:
    store = FileStore(tmp_path / "data")
    store.save(make_doc())
    data = store.data_dir
    run(data, "versions", "acme-q3", "--json")
    hits[0] = 0
    run(data, "versions", "acme-q3", "--json")
    assert hits[0] == 0  # recorded too soon after the write, so never kept


# -- every change is seen -------------------------------------------------------------


def test_a_write_by_another_store_is_seen(run: Callable[..., Outcome], data: Path) -> None:
    same_answers(run, data)
    FileStore(data).save(make_doc(metadata={"rev": "changed"}))
    same_answers(run, data)


def test_a_write_by_another_process_is_seen(run: Callable[..., Outcome], data: Path) -> None:
    same_answers(run, data)
    script = (
        "import sys; from strategystore import FileStore; "
        "s = FileStore(sys.argv[1]); s.approve('acme-q3', 1); s.create_next('acme-q3')"
    )
    subprocess.run([sys.executable, "-c", script, str(data)], check=True)
    same_answers(run, data)
    assert '"latest_approved_version": 1' not in run(data, "briefs", "--json")[1]


def test_a_file_replaced_like_git_checkout_does_is_seen(
    run: Callable[..., Outcome], data: Path
) -> None:
    same_answers(run, data)
    replacement = _path(data).with_name(".checkout")
    doc = make_doc(metadata={"rev": "z"}, sections=[])
    replacement.write_bytes(doc.to_json_bytes())
    os.replace(replacement, _path(data))
    same_answers(run, data)
    assert '"section_count": 0' in run(data, "versions", "acme-q3", "--json")[1]


def test_an_editor_writing_in_place_with_the_old_mtime_put_back_is_seen(
    run: Callable[..., Outcome], data: Path
) -> None:
    same_answers(run, data)
    path = _path(data)
    before = path.stat()
    text = path.read_bytes()
    edited = text.replace(b'"status": "draft"', b'"status": "drop!"')
    assert len(edited) == len(text)
    with open(path, "r+b") as file:  # same inode, same size
        file.write(edited)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    after = path.stat()
    assert (after.st_ino, after.st_size, after.st_mtime_ns) == (
        before.st_ino,
        before.st_size,
        before.st_mtime_ns,
    )
    same_answers(run, data)
    assert "damaged" in run(data, "versions", "acme-q3")[1]


def test_a_deleted_file_is_seen_as_gone(run: Callable[..., Outcome], data: Path) -> None:
    same_answers(run, data)
    _path(data).unlink()
    same_answers(run, data)


def test_a_file_broken_by_hand_is_reported_not_answered_from_the_index(
    run: Callable[..., Outcome], data: Path
) -> None:
    same_answers(run, data)
    _path(data, 2).write_bytes(b"<<<<<<< HEAD\n")
    same_answers(run, data)
    assert "acme-q3/2.json:1: git merge-conflict marker" in run(data, "check")[1]


def test_a_file_repaired_by_hand_is_seen(run: Callable[..., Outcome], data: Path) -> None:
    same_answers(run, data)
    (data / "zeta" / "2.json").write_bytes(make_doc("zeta", 2).to_json_bytes())
    same_answers(run, data)
    assert run(data, "check")[0] == 0


def test_a_version_added_behind_the_index_is_seen(run: Callable[..., Outcome], data: Path) -> None:
    same_answers(run, data)
    time.sleep(SETTLE)
    _path(data, 7).write_bytes(make_doc(version=7).to_json_bytes())
    same_answers(run, data)


def test_a_misplaced_file_is_damaged_alike(run: Callable[..., Outcome], data: Path) -> None:
    _path(data, 9).write_bytes(make_doc(version=8).to_json_bytes())
    time.sleep(SETTLE)
    same_answers(run, data)
    assert "belongs at acme-q3/8.json" in run(data, "versions", "acme-q3")[2]


@pytest.fixture
def whole_briefs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The briefs the index proved unchanged in one pass (``unchanged`` or a ``proven``)."""
    proved: list[str] = []

    def counted(real: Callable[..., object]) -> Callable[..., object]:
        def counting(self: ListingIndex, brief_id: str, *args: object, **kwargs: object) -> object:
            found = real(self, brief_id, *args, **kwargs)
            if found is not None:
                proved.append(brief_id)
            return found

        return counting

    monkeypatch.setattr(ListingIndex, "unchanged", counted(ListingIndex.unchanged))

    def counted_many(real: Callable[..., dict[str, Any]]) -> Callable[..., dict[str, Any]]:
        def counting(self: ListingIndex, root: str, names: Sequence[str]) -> dict[str, Any]:
            found = real(self, root, names)
            proved.extend(found)
            return found

        return counting

    monkeypatch.setattr(ListingIndex, "proven_many", counted_many(ListingIndex.proven_many))
    monkeypatch.setattr(ListingIndex, "proven_counts", counted_many(ListingIndex.proven_counts))
    return proved


def test_check_proves_an_unchanged_brief_whole_and_answers_alike(
    run: Callable[..., Outcome], data: Path, whole_briefs: list[str]
) -> None:
    same_answers(run, data)
    whole_briefs.clear()
    assert run(data, "check")[1:] == run(data, "check", index=False)[1:]
    assert whole_briefs == ["acme-q3"]  # zeta holds a damaged file
    before = index_path(data).stat().st_mtime_ns
    run(data, "check")
    assert index_path(data).stat().st_mtime_ns == before  # nothing new: not rewritten


def test_a_brief_of_hundreds_of_versions_is_kept_and_proved_by_its_directory(
    run: Callable[..., Outcome], tmp_path: Path
) -> None:
    """What ``briefs`` shows of a brief is kept with its directory, whatever its versions."""
    store = FileStore(tmp_path / "data", durable=False)
    store.import_documents(make_doc("long", v) for v in range(1, 301))
    store.approve("long", 150)
    time.sleep(SETTLE)
    truth = run(store.data_dir, "briefs", "--json", index=False)
    run(store.data_dir, "check")
    assert index_path(store.data_dir).exists()
    index = ListingIndex(store.data_dir).load()
    assert index.loaded == 300
    proven = index.proven_many(str(store.data_dir), ["long"])
    assert proven["long"][0] == 300
    assert (proven["long"][1].version, proven["long"][1].approved) == (300, 150)
    assert run(store.data_dir, "briefs", "--json") == truth


def test_an_edit_in_place_with_its_mtime_put_back_is_seen_in_a_whole_brief(
    run: Callable[..., Outcome], data: Path, whole_briefs: list[str]
) -> None:
    same_answers(run, data)
    path = _path(data, 1)
    info = path.stat()
    path.write_bytes(path.read_bytes().replace(b'"a"', b'"x"'))
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    whole_briefs.clear()
    run(data, "check")
    # Judged afresh: its ctime changed. (Later commands may prove the brief
    # whole again once the new identity is recorded and settled.)
    assert "acme-q3" not in whole_briefs
    same_answers(run, data)


def test_other_names_beside_unchanged_documents_are_still_judged(
    run: Callable[..., Outcome], data: Path, whole_briefs: list[str]
) -> None:
    same_answers(run, data)
    (data / "acme-q3" / "notes.txt").write_text("x")
    (data / "acme-q3" / "01.json").write_text("{}")
    (data / "acme-q3" / "4.json~").write_text("{}")
    time.sleep(SETTLE)
    same_answers(run, data)
    whole_briefs.clear()
    out = run(data, "check")[1]
    assert whole_briefs == ["acme-q3"]
    assert "notes.txt: note:" in out and "01.json" in out and "4.json~" in out


# -- file systems with coarse timestamps ---------------------------------------------


def _whole_seconds(info: os.stat_result) -> cache_module.Identity:
    second = 1_000_000_000
    return cache_module.Identity(
        info.st_dev,
        info.st_ino,
        info.st_size,
        info.st_mtime_ns // second * second,
        info.st_ctime_ns // second * second,
    )


def _coarse(monkeypatch: pytest.MonkeyPatch, racy_ns: int) -> None:
    monkeypatch.setattr(cache_module, "identity", _whole_seconds)
    monkeypatch.setattr(cache_module, "racy_window_ns", lambda root: racy_ns)


def _edit_in_place(path: Path, old: bytes, new: bytes) -> None:
    text = path.read_bytes()
    assert len(old) == len(new)
    with open(path, "r+b") as file:
        file.write(text.replace(old, new))


def _wait_for_a_fresh_second() -> None:
    time.sleep(1 - time.time() % 1 + 0.01)


def test_with_coarse_timestamps_an_edit_in_the_same_second_as_the_index_is_seen(
    run: Callable[..., Outcome], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _coarse(monkeypatch, cache_module.COARSE_RACY_WINDOW_NS)
    _wait_for_a_fresh_second()
    store = FileStore(tmp_path / "data", durable=False)
    store.save(make_doc(metadata={"rev": "a"}))
    run(store.data_dir, "check")
    run(store.data_dir, "versions", "acme-q3", "--json")
    _edit_in_place(_path(store.data_dir), b'"draft"', b'"drop!"')
    for command in COMMANDS:
        assert run(store.data_dir, *command) == run(store.data_dir, *command, index=False)


def test_without_the_racy_rule_that_same_edit_would_be_missed(
    run: Callable[..., Outcome], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The counterfactual: it shows the test above can fail, and why the rule exists.
    _coarse(monkeypatch, -(10**18))
    _wait_for_a_fresh_second()
    second = int(time.time())
    store = FileStore(tmp_path / "data", durable=False)
    store.save(make_doc(metadata={"rev": "a"}))
    before = run(store.data_dir, "versions", "acme-q3", "--json")
    _edit_in_place(_path(store.data_dir), b'"draft"', b'"drop!"')
    stale = run(store.data_dir, "versions", "acme-q3", "--json")
    if int(time.time()) != second:
        pytest.skip("the second ended during the edit; the counterfactual needs one second")
    assert stale == before
    assert stale != run(store.data_dir, "versions", "acme-q3", "--json", index=False)


def test_with_coarse_timestamps_a_settled_entry_still_sees_an_in_place_edit(
    run: Callable[..., Outcome], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _coarse(monkeypatch, cache_module.COARSE_RACY_WINDOW_NS)
    store = FileStore(tmp_path / "data", durable=False)
    store.save(make_doc(metadata={"rev": "a"}))
    path = _path(store.data_dir)
    old = path.stat()
    os.utime(path, ns=(old.st_atime_ns, old.st_mtime_ns - 10 * 10**9))
    real_time_ns = time.time_ns
    monkeypatch.setattr(time, "time_ns", lambda: real_time_ns() + 10 * 10**9)
    run(store.data_dir, "versions", "acme-q3", "--json")
    assert ListingIndex(store.data_dir).load().loaded == 1  # settled, so kept
    monkeypatch.setattr(time, "time_ns", real_time_ns)
    aged = path.stat()
    time.sleep(1.01)  # the edit's ctime falls in a later second than the recorded one
    _edit_in_place(path, b'"draft"', b'"drop!"')
    os.utime(path, ns=(aged.st_atime_ns, aged.st_mtime_ns))
    for command in COMMANDS:
        assert run(store.data_dir, *command) == run(store.data_dir, *command, index=False)


# -- the index file is only a cache -----------------------------------------------------


@pytest.mark.parametrize(
    "damage",
    [
        "delete",
        "truncate",
        "garbage",
        "empty",
        "flip-records",
        "one-bit-of-a-timestamp",
        "another-format",
        "directory",
    ],
)
def test_a_damaged_or_missing_index_changes_no_answer(
    run: Callable[..., Outcome], data: Path, damage: str
) -> None:
    truth = [run(data, *command, index=False) for command in COMMANDS]
    for command in COMMANDS:
        run(data, *command)
    path = index_path(data)
    raw = path.read_bytes()
    if damage == "delete":
        path.unlink()
    elif damage == "truncate":
        path.write_bytes(raw[: len(raw) // 2])
    elif damage == "garbage":
        path.write_bytes(os.urandom(len(raw)))
    elif damage == "empty":
        path.write_bytes(b"")
    elif damage == "flip-records":
        # The header and the JSON part intact, every record's bytes scrambled.
        body = raw.index(b"\n") + 1
        header = raw[:body]
        start = body + int(header.split(b'"json": ')[1].split(b",")[0])
        path.write_bytes(raw[:start] + bytes(b ^ 0x5A for b in raw[start:]))
    elif damage == "one-bit-of-a-timestamp":
        # Structurally sound, so only the checksum can tell: created_at of the first record.
        body = raw.index(b"\n") + 1
        spot = body + int(raw[:body].split(b'"json": ')[1].split(b",")[0]) + 62
        path.write_bytes(raw[:spot] + bytes([raw[spot] ^ 1]) + raw[spot + 1 :])
    elif damage == "another-format":
        path.write_bytes(raw.replace(b'"index": 2', b'"index": 9', 1))
    else:
        path.unlink()
        path.mkdir()
    for command, expected in zip(COMMANDS, truth, strict=True):
        assert run(data, *command) == expected, command
        assert run(data, *command) == expected, command
    if damage != "directory":
        assert ListingIndex(data).load().loaded == 5  # rebuilt whole


def test_an_index_of_other_code_is_rebuilt(
    run: Callable[..., Outcome], data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(data, "check")
    assert ListingIndex(data).load().loaded == 5
    monkeypatch.setattr(index_module, "_code_stamp", lambda: [1, 2, 3])
    assert ListingIndex(data).load().loaded == 0
    assert run(data, "check") == run(data, "check", index=False)
    assert ListingIndex(data).load().loaded == 5


def test_an_index_over_the_size_bound_is_not_read(
    run: Callable[..., Outcome], data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    run(data, "check")
    monkeypatch.setattr(index_module, "MAX_INDEX_BYTES", 100)
    assert ListingIndex(data).load().loaded == 0
    assert run(data, "check") == run(data, "check", index=False)


def test_an_index_that_is_a_symbolic_link_is_never_followed(
    run: Callable[..., Outcome], data: Path, tmp_path: Path
) -> None:
    run(data, "check")
    outside = tmp_path / "outside"
    index_path(data).rename(outside)
    kept = outside.read_bytes()
    index_path(data).symlink_to(outside)
    assert ListingIndex(data).load().loaded == 0
    same_answers(run, data)
    assert outside.read_bytes() == kept  # never written through the link
    assert not index_path(data).is_symlink()  # the link was replaced by a file


def test_a_locks_directory_that_is_a_link_is_never_followed(
    run: Callable[..., Outcome], data: Path, tmp_path: Path
) -> None:
    run(data, "check")
    outside = tmp_path / "outside-locks"
    (data / ".locks").rename(outside)
    (data / ".locks").symlink_to(outside)
    assert ListingIndex(data).load().loaded == 0
    before = (outside / INDEX_NAME).read_bytes()
    index_module.ListingIndex(data).load().save(full=True)
    assert (outside / INDEX_NAME).read_bytes() == before


@pytest.mark.parametrize("errno_name", ["ENOSPC", "EROFS", "EACCES"])
def test_an_index_that_cannot_be_written_fails_no_command(
    run: Callable[..., Outcome], data: Path, monkeypatch: pytest.MonkeyPatch, errno_name: str
) -> None:
    import errno  # noqa: PLC0415

    code = getattr(errno, errno_name)

    def refuse(*args: object, **kwargs: object) -> None:
        raise OSError(code, os.strerror(code))

    monkeypatch.setattr(os, "replace", refuse)
    same_answers(run, data)
    assert not index_path(data).exists()
    assert not [p for p in (data / ".locks").iterdir() if p.name.endswith(".tmp")]


def test_a_read_only_data_directory_is_listed_without_an_index(
    run: Callable[..., Outcome], data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_open = os.open

    def read_only(path: object, flags: int, *args: object, **kwargs: object) -> int:
        if flags & os.O_CREAT:
            raise OSError(30, "Read-only file system")
        return real_open(path, flags, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(os, "open", read_only)
    same_answers(run, data)


def test_two_processes_writing_the_index_at_once_change_no_answer(
    run: Callable[..., Outcome], data: Path
) -> None:
    truth = run(data, "check", index=False)
    for round_ in range(3):
        index_path(data).unlink(missing_ok=True)
        processes = [
            subprocess.Popen(
                [sys.executable, "-m", "strategystore", "--dir", str(data), *command],
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            for command in [("check",), ("briefs", "--json"), ("check",), ("briefs",)] * 2
        ]
        for process in processes:
            process.communicate()
        assert run(data, "check") == truth, round_
        assert ListingIndex(data).load().loaded == 5


def test_the_index_never_holds_more_entries_than_documents(
    run: Callable[..., Outcome], data: Path
) -> None:
    run(data, "check")
    assert ListingIndex(data).load().loaded == 5
    _path(data, 3).unlink()
    _path(data, 1).unlink()
    run(data, "versions", "acme-q3")  # a partial look drops what it saw gone
    assert ListingIndex(data).load().loaded == 3
    run(data, "briefs")
    assert ListingIndex(data).load().loaded == 3


def test_a_partial_look_keeps_the_other_briefs_entries(
    run: Callable[..., Outcome], data: Path, hits: list[int], whole_briefs: list[str]
) -> None:
    run(data, "check")
    FileStore(data).save(make_doc(metadata={"rev": "new"}))
    time.sleep(SETTLE)
    run(data, "versions", "acme-q3")
    run(data, "check", str(data / "acme-q3"))
    assert ListingIndex(data).load().loaded == 5
    hits[0] = 0
    whole_briefs.clear()
    run(data, "briefs")
    assert whole_briefs == ["acme-q3"]  # its 3 versions proved at once
    assert hits[0] == 2  # zeta's, one by one (one is damaged)


def test_the_bypass_variable_leaves_the_index_alone(
    run: Callable[..., Outcome], data: Path
) -> None:
    for command in COMMANDS:
        run(data, *command, index=False)
    assert not index_path(data).exists()


def test_check_does_not_report_the_index_among_the_lock_files(
    run: Callable[..., Outcome], data: Path
) -> None:
    run(data, "check")
    (data / ".locks" / f".{INDEX_NAME}.123-4.tmp").write_bytes(b"left over")
    status, out, _ = run(data, "check")
    assert INDEX_NAME not in out
    assert (status, out) == run(data, "check", index=False)[:2]


# -- check: the comparison, the named paths, many files ----------------------------------


def _git(cwd: Path, *args: str) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


def test_check_against_a_revision_answers_alike(run: Callable[..., Outcome], data: Path) -> None:
    _git(data, "init", "-q")
    _git(data, "add", "-A")
    _git(data, "commit", "-q", "-m", "start")
    _edit_in_place(_path(data, 2), b'"approved"', b'"rejected"')
    os.utime(_path(data, 2))
    time.sleep(SETTLE)
    for _ in range(3):
        truth = run(data, "check", "--against", "HEAD", index=False)
        assert run(data, "check", "--against", "HEAD") == truth
    assert truth[0] == 1


def test_check_of_named_paths_answers_alike(run: Callable[..., Outcome], data: Path) -> None:
    named = [str(_path(data, 1)), str(data / "zeta" / "2.json")]
    for _ in range(2):
        assert run(data, "check", *named) == run(data, "check", *named, index=False)


def _many(tmp_path: Path) -> Path:
    store = FileStore(tmp_path / "data", durable=False)
    store.import_documents(
        make_doc(f"brief-{b}", v, sections=[Section(key="k", title="T", body="b" * v)])
        for b in range(12)
        for v in range(1, 6)
    )
    (tmp_path / "data" / "brief-3" / "2.json").write_bytes(b"{}")
    time.sleep(SETTLE)
    return store.data_dir


def test_a_cold_check_of_many_files_spreads_over_processes_and_answers_alike(
    run: Callable[..., Outcome], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hits: list[int]
) -> None:
    data = _many(tmp_path)
    truth = run(data, "check", index=False)
    monkeypatch.setattr(verdict_module, "PARALLEL_FROM", 10)
    monkeypatch.setattr(verdict_module, "_CHUNK", 7)
    monkeypatch.setattr(verdict_module, "_workers", lambda: 2)
    answered: list[object] = []
    take, take_valid = verdict_module.JudgedNow.take, verdict_module.JudgedNow.take_valid

    def taken(self: Any, brief_id: str, version: int) -> object:
        found = take(self, brief_id, version)
        answered.extend([found] if found is not None else [])
        return found

    def taken_valid(self: Any, brief_id: str, versions: Any) -> set[int]:
        valid = take_valid(self, brief_id, versions)
        answered.extend(valid)
        return valid

    monkeypatch.setattr(verdict_module.JudgedNow, "take", taken)
    monkeypatch.setattr(verdict_module.JudgedNow, "take_valid", taken_valid)
    hits[0] = 0
    assert run(data, "check") == truth
    assert len(answered) == 60  # every file was judged by the workers, and not read again
    assert hits[0] == 0


def test_a_cold_check_where_processes_cannot_start_answers_alike(
    run: Callable[..., Outcome], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import concurrent.futures  # noqa: PLC0415

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError(11, "Resource temporarily unavailable")

    data = _many(tmp_path)
    truth = run(data, "check", index=False)
    monkeypatch.setattr(verdict_module, "PARALLEL_FROM", 10)
    monkeypatch.setattr(verdict_module, "_workers", lambda: 2)
    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", broken)
    assert run(data, "check") == truth
    assert ListingIndex(data).load().loaded == 60


# -- the review page ----------------------------------------------------------------------


def test_the_review_pages_front_page_shows_alike_with_and_without_the_index(
    data: Path, monkeypatch: pytest.MonkeyPatch, hits: list[int]
) -> None:
    from strategystore.web._pages import brief_rows  # noqa: PLC0415

    store = FileStore(data)
    monkeypatch.setenv(NO_INDEX_ENV, "1")
    truth = brief_rows(store, 1)
    monkeypatch.delenv(NO_INDEX_ENV)
    assert brief_rows(FileStore(data), 1) == truth
    hits[0] = 0
    assert brief_rows(FileStore(data), 1) == truth
    assert hits[0] > 0
    _path(data, 1).write_bytes(b"[]")
    monkeypatch.setenv(NO_INDEX_ENV, "1")
    truth = brief_rows(FileStore(data), 1)
    monkeypatch.delenv(NO_INDEX_ENV)
    assert brief_rows(FileStore(data), 1) == truth


# -- indexes that must not be believed ----------------------------------------------------


def test_an_index_made_under_another_pydantic_is_rebuilt(
    run: Callable[..., Outcome], data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pydantic_core  # noqa: PLC0415

    # Its messages are part of what a damaged file's entry says.
    run(data, "check")
    assert ListingIndex(data).load().loaded == 5
    monkeypatch.setattr(pydantic_core, "__version__", "0.0.1")
    assert ListingIndex(data).load().loaded == 0


def _rewrite_records(data: Path, change: Callable[[list[object]], None]) -> None:
    """Change every record of the index, keeping its checksum right (a crafted index)."""
    import json  # noqa: PLC0415
    import zlib  # noqa: PLC0415

    raw = index_path(data).read_bytes()
    end = raw.index(b"\n")
    header = json.loads(raw[:end])
    body = end + 1 + header["json"]
    layout = index_module._RECORD
    end_of_records = body + header["records"] * layout.size
    records = bytearray(raw[body:end_of_records])
    for offset in range(0, len(records), layout.size):
        record = list(layout.unpack_from(records, offset))
        change(record)
        layout.pack_into(records, offset, *record)
    rest = raw[end + 1 : body] + bytes(records) + raw[end_of_records:]
    header["crc"] = zlib.crc32(rest)
    index_path(data).write_bytes(json.dumps(header).encode() + b"\n" + rest)


@pytest.mark.parametrize("field", ["created", "updated", "status"])
def test_a_crafted_index_with_impossible_records_changes_no_answer(
    run: Callable[..., Outcome], data: Path, field: str
) -> None:
    truth = [run(data, *command, index=False) for command in COMMANDS]
    run(data, "check")

    def change(record: list[object]) -> None:
        if field == "status":
            record[8] = -1  # damaged, yet naming no problem
        else:
            record[11 if field == "created" else 12] = 2**62  # past any datetime

    _rewrite_records(data, change)
    assert ListingIndex(data).load().loaded == 5
    for command, expected in zip(COMMANDS, truth, strict=True):
        assert run(data, *command) == expected, command


def test_an_index_with_a_repeated_string_is_not_read(
    run: Callable[..., Outcome], data: Path
) -> None:
    import json  # noqa: PLC0415
    import zlib  # noqa: PLC0415

    run(data, "check")
    raw = index_path(data).read_bytes()
    end = raw.index(b"\n")
    header = json.loads(raw[:end])
    part = json.loads(raw[end + 1 : end + 1 + header["json"]])
    part["strings"] += part["strings"]
    encoded = json.dumps(part).encode()
    rest = encoded + raw[end + 1 + header["json"] :]
    header.update(json=len(encoded), crc=zlib.crc32(rest))
    index_path(data).write_bytes(json.dumps(header).encode() + b"\n" + rest)
    assert ListingIndex(data).load().loaded == 0


def test_an_index_written_by_another_user_is_not_read(
    run: Callable[..., Outcome], data: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its entries may vouch for files that this user cannot read.
    run(data, "check")
    owner = index_path(data).stat().st_uid
    monkeypatch.setattr(os, "geteuid", lambda: owner + 1000)
    assert ListingIndex(data).load().loaded == 0
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert ListingIndex(data).load().loaded == 5  # root reads every file anyway


# -- briefs proved whole --------------------------------------------------------------


def _summary_by_rows(store: FileStore, brief_id: str) -> tuple[int, VersionRow, int | None]:
    """What ``briefs`` shows of a brief, from its rows read file by file."""
    with Lister(store, use_index=False) as lister:
        numbers = lister.numbers(brief_id)
        rows = list(lister.rows(brief_id, numbers))
    approved = next((row.version for row in rows if row.status is Status.APPROVED), None)
    return len(numbers), rows[0], approved


def test_briefs_proves_an_unchanged_brief_whole_with_the_rows_read_file_by_file(
    run: Callable[..., Outcome], data: Path, whole_briefs: list[str], hits: list[int]
) -> None:
    same_answers(run, data)
    store = FileStore(data)
    with Lister(store) as lister:
        summary = lister.summary("acme-q3", lister.numbers("acme-q3"))
        assert summary is not None
        assert lister.summary("zeta", lister.numbers("zeta")) is None  # one is damaged
    assert (summary.versions, summary.latest, summary.approved) == _summary_by_rows(
        store, "acme-q3"
    )
    whole_briefs.clear()
    hits[0] = 0
    for args in (("briefs",), ("briefs", "--json")):
        assert run(data, *args) == run(data, *args, index=False)
    assert whole_briefs == ["acme-q3", "acme-q3"]
    assert hits[0] == 4  # only zeta's files, one by one, twice


def test_briefs_sees_an_edit_in_place_with_its_mtime_put_back(
    run: Callable[..., Outcome], data: Path, whole_briefs: list[str]
) -> None:
    same_answers(run, data)
    path = _path(data, 3)
    info = path.stat()
    _edit_in_place(path, b'"rejected"', b'"approved"')
    os.utime(path, ns=(info.st_atime_ns, info.st_mtime_ns))
    whole_briefs.clear()
    for args in (("briefs", "--json"), ("briefs",)):
        truth = run(data, *args, index=False)
        assert run(data, *args) == truth
    assert "acme-q3" not in whole_briefs  # its ctime changed: read again
    assert '"latest_approved_version": 3' in run(data, "briefs", "--json")[1]


# -- brief directories proved by their own identity ----------------------------------------


@pytest.fixture
def trusted(run: Callable[..., Outcome], data: Path, whole_briefs: list[str]) -> Path:
    """``data`` after ``check`` recorded acme-q3's directory, and proved it by it once."""
    same_answers(run, data)
    whole_briefs.clear()
    run(data, "check")
    assert whole_briefs == ["acme-q3"]
    return data


def test_a_file_added_to_an_unchanged_brief_directory_is_seen(
    run: Callable[..., Outcome], trusted: Path
) -> None:
    (trusted / "acme-q3" / "notes.txt").write_text("x")
    assert "notes.txt: note:" in run(trusted, "check")[1]
    same_answers(run, trusted)


def test_a_version_added_to_an_unchanged_brief_directory_is_listed(
    run: Callable[..., Outcome], trusted: Path
) -> None:
    _path(trusted, 4).write_bytes(make_doc(version=4).to_json_bytes())
    assert '"versions": 4' in run(trusted, "briefs", "--json")[1]
    same_answers(run, trusted)


@pytest.mark.parametrize("change", ["remove", "rename", "replace-directory"])
def test_a_brief_directory_changed_between_two_commands_is_seen(
    run: Callable[..., Outcome], trusted: Path, change: str
) -> None:
    directory = trusted / "acme-q3"
    if change == "remove":
        _path(trusted, 2).unlink()
    elif change == "rename":
        _path(trusted, 3).rename(_path(trusted, 5))
    else:
        # Another directory in its place (git checkout of another branch, say),
        # holding a copy of the same documents and one more file.
        moved = trusted.parent / "moved"
        directory.rename(moved)
        directory.mkdir()
        for path in moved.iterdir():
            (directory / path.name).write_bytes(path.read_bytes())
        (directory / "4.json").write_bytes(make_doc(version=4).to_json_bytes())
    same_answers(run, trusted)


def test_a_new_brief_directory_beside_unchanged_ones_is_seen(
    run: Callable[..., Outcome], trusted: Path
) -> None:
    (trusted / "new-brief").mkdir()
    (trusted / "new-brief" / "1.json").write_bytes(make_doc("new-brief").to_json_bytes())
    assert "new-brief" in run(trusted, "briefs")[1]
    same_answers(run, trusted)


def test_briefs_proves_a_brief_by_its_directory_without_listing_it(
    run: Callable[..., Outcome], trusted: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    truth = run(trusted, "briefs", "--json", index=False)
    real = os.listdir
    listed: list[str] = []

    def listing(path: str | int = ".") -> list[str]:
        listed.append(str(path))
        return real(path)

    monkeypatch.setattr(os, "listdir", listing)
    assert run(trusted, "briefs", "--json") == truth
    assert listed == []  # acme-q3 proved by its directory, zeta by its listing recorded


def test_with_coarse_timestamps_a_file_added_to_a_settled_brief_directory_is_seen(
    run: Callable[..., Outcome], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _coarse(monkeypatch, cache_module.COARSE_RACY_WINDOW_NS)
    store = FileStore(tmp_path / "data", durable=False)
    store.save(make_doc(metadata={"rev": "a"}))
    real_time_ns = time.time_ns
    monkeypatch.setattr(time, "time_ns", lambda: real_time_ns() + 10 * 10**9)
    run(store.data_dir, "check")  # everything counts as settled: the directory is recorded
    monkeypatch.setattr(time, "time_ns", real_time_ns)
    time.sleep(1.01)  # the addition falls in a later second than the recorded mtime
    (store.data_dir / "acme-q3" / "notes.txt").write_text("x")
    for command in COMMANDS:
        assert run(store.data_dir, *command) == run(store.data_dir, *command, index=False)


# -- many briefs proved with a second process -------------------------------------------


def _proofs_in_this_process(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The briefs whose files this process checked (a forked child's checks are not seen)."""
    checked: list[str] = []
    real = unchanged_module.dir_proves

    def counting(root: str, item: tuple[str, Any]) -> bool:
        checked.append(item[0])
        return real(root, item)

    monkeypatch.setattr(unchanged_module, "dir_proves", counting)
    monkeypatch.setattr(verdict_module, "SPLIT_FROM", 4)
    monkeypatch.setattr(verdict_module, "_workers", lambda: 2)
    return checked


def test_briefs_shares_the_proof_of_many_briefs_with_a_child_and_answers_alike(
    run: Callable[..., Outcome], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _many(tmp_path)
    run(data, "check")  # records each brief directory
    truth = run(data, "briefs", "--json", index=False)
    checked = _proofs_in_this_process(monkeypatch)
    assert run(data, "briefs", "--json") == truth
    # brief-3 holds a damaged file, so it is not proved by its directory; of
    # the other 11, the child checked the second half.
    assert 0 < len(checked) < 11
    (data / "brief-7" / "6.json").write_bytes(make_doc("brief-7", 6).to_json_bytes())
    assert run(data, "briefs", "--json") == run(data, "briefs", "--json", index=False)


def test_when_the_child_does_not_answer_this_process_checks_its_half(
    run: Callable[..., Outcome], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = _many(tmp_path)
    run(data, "check")
    truth = run(data, "briefs", "--json", index=False)
    checked = _proofs_in_this_process(monkeypatch)

    def broken_pipe(fd: int, data: bytes) -> None:
        raise OSError(32, "broken pipe")

    monkeypatch.setattr(verdict_module, "write_all", broken_pipe)  # the child's answer
    assert run(data, "briefs", "--json") == truth
    assert sorted(checked) == sorted(set(checked)) and len(checked) == 11
