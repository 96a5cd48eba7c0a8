"""FileStore only: the on-disk format, bad files, links, locks and opening a data directory."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

import strategystore._fsio
import strategystore._lockmark
import strategystore._locks
from strategystore import (
    ConfigurationError,
    CorruptDocumentError,
    FileStore,
    LockTimeoutError,
    MemoryStore,
    Status,
    StoreFormatError,
    open_store,
)
from tests.conftest import make_doc

GOLDEN = Path(__file__).parent / "golden" / "acme-q3-1.json"


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# -- the on-disk format


def test_a_document_file_matches_the_golden_file_byte_for_byte(file_store: FileStore) -> None:
    doc = make_doc(metadata={"score": 0.5, "model": "gpt", "tags": ["ß", "東京"]})
    file_store.save(doc)
    path = file_store.data_dir / "acme-q3" / "1.json"
    assert path.read_bytes() == GOLDEN.read_bytes()


def test_a_new_data_directory_has_a_marker_git_files_and_a_locks_directory(
    tmp_path: Path,
) -> None:
    store = FileStore(tmp_path / "data")
    assert tree(store.data_dir) == [
        ".gitattributes",
        ".gitignore",
        ".locks",
        "strategystore.json",
    ]
    assert json.loads((store.data_dir / "strategystore.json").read_text()) == {"format": 2}
    ignored = (store.data_dir / ".gitignore").read_text().splitlines()
    assert ".locks/" in ignored and ".*.tmp" in ignored
    attributes = (store.data_dir / ".gitattributes").read_text().splitlines()
    assert "*.json text eol=lf -merge" in attributes


def test_documents_live_at_brief_and_plain_decimal_version(file_store: FileStore) -> None:
    file_store.save(make_doc(version=12))
    assert (file_store.data_dir / "acme-q3" / "12.json").is_file()
    assert file_store.document_path("acme-q3", 12) == file_store.data_dir / "acme-q3" / "12.json"


def test_other_names_in_a_brief_directory_are_not_documents(file_store: FileStore) -> None:
    file_store.save(make_doc(version=1))
    brief = file_store.data_dir / "acme-q3"
    (brief / "012.json").write_bytes(make_doc(version=12).to_json_bytes())
    (brief / "notes.md").write_text("thoughts")
    (brief / "0.json").write_text("{}")
    (brief / ".2.json.abc.tmp").write_text("half a docu")
    assert file_store.list_version_numbers("acme-q3") == [1]
    assert [d.version for d in file_store.list_versions_by_brief("acme-q3")] == [1]


def test_saving_an_unchanged_document_leaves_the_file_untouched(file_store: FileStore) -> None:
    file_store.save(make_doc())
    path = file_store.data_dir / "acme-q3" / "1.json"
    before = path.stat()
    time.sleep(0.01)
    doc = file_store.get_strategy("acme-q3", 1)
    assert doc is not None
    file_store.save(doc)
    file_store.update(doc, expected=doc)
    after = path.stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_ctime_ns) == (
        before.st_ino,
        before.st_mtime_ns,
        before.st_ctime_ns,
    )


def test_a_hand_formatted_but_valid_file_reads_and_is_not_rewritten_by_an_equal_save(
    file_store: FileStore,
) -> None:
    file_store.save(make_doc())
    path = file_store.data_dir / "acme-q3" / "1.json"
    compact = json.dumps(json.loads(path.read_bytes())).encode()
    path.write_bytes(compact)
    assert file_store.get_strategy("acme-q3", 1) == make_doc()
    file_store.save(make_doc())
    assert path.read_bytes() == compact


def test_deleting_the_last_version_removes_the_brief_directory(file_store: FileStore) -> None:
    file_store.save(make_doc())
    file_store.delete("acme-q3", 1)
    assert not (file_store.data_dir / "acme-q3").exists()


def test_a_non_durable_store_writes_the_same_bytes(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "data", durable=False)
    store.save(make_doc())
    assert (store.data_dir / "acme-q3" / "1.json").read_bytes() == make_doc().to_json_bytes()


def test_no_temporary_file_outlives_a_write(file_store: FileStore) -> None:
    file_store.create_next("acme-q3")
    file_store.save(make_doc(version=1, metadata={"v": 2}))
    file_store.approve("acme-q3", 1)
    assert [p.name for p in (file_store.data_dir / "acme-q3").iterdir()] == ["1.json"]


# -- files that are broken by hand


def _plant(store: FileStore, content: bytes, name: str = "1.json", brief: str = "acme-q3") -> Path:
    directory = store.data_dir / brief
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_bytes(content)
    return path


BROKEN = {
    "not json": (b'{"brief_id": "acme-q3",\n  "version": 1,\n  oops\n}\n', "line 3"),
    "truncated": (make_doc().to_json_bytes()[:40], "not valid JSON"),
    "empty": (b"", "empty"),
    "binary": (b"\x00\xff\xfe\x01garbage", "not valid JSON"),
    "wrong type": (
        make_doc().to_json_bytes().replace(b'"version": 1', b'"version": "one"'),
        "version",
    ),
    "unknown field": (
        make_doc().to_json_bytes().replace(b'"status": "draft"', b'"status": "draft", "x": 1'),
        "x: Extra inputs",
    ),
    "naive timestamp": (
        make_doc().to_json_bytes().replace(b'30:00Z"', b'30:00"', 1),
        "timezone",
    ),
    "conflict markers": (
        make_doc()
        .to_json_bytes()
        .replace(
            b'  "status": "draft",\n',
            b'<<<<<<< HEAD\n  "status": "draft",\n=======\n  "status": "approved",\n'
            b">>>>>>> theirs\n",
        ),
        "merge-conflict marker at line 4",
    ),
    "wrong path": (make_doc(version=2).to_json_bytes(), "belongs at acme-q3/2.json"),
    "other brief": (make_doc(brief_id="other").to_json_bytes(), "belongs at other/1.json"),
}


@pytest.mark.parametrize("kind", list(BROKEN))
def test_a_broken_file_is_reported_with_its_path_and_never_overwritten(
    file_store: FileStore, kind: str
) -> None:
    content, expected = BROKEN[kind]
    path = _plant(file_store, content)
    for call in (
        lambda: file_store.get_strategy("acme-q3", 1),
        lambda: file_store.list_versions_by_brief("acme-q3"),
        lambda: file_store.get_latest("acme-q3"),
        lambda: file_store.save(make_doc()),
        lambda: file_store.create(make_doc()),
        lambda: file_store.approve("acme-q3", 1),
        lambda: file_store.delete("acme-q3", 1),
        lambda: file_store.update(make_doc(), expected=make_doc()),
    ):
        with pytest.raises(CorruptDocumentError) as info:
            call()
        assert info.value.path == path
        assert expected in info.value.reason
        assert str(path) in str(info.value)
    assert path.read_bytes() == content


def test_the_rest_of_the_store_stays_usable_beside_a_broken_file(file_store: FileStore) -> None:
    _plant(file_store, b"{ nope")
    file_store.save(make_doc(brief_id="other"))
    assert file_store.create_next("acme-q3").version == 2
    assert file_store.list_version_numbers("acme-q3") == [2, 1]
    assert file_store.list_briefs() == ["acme-q3", "other"]


def test_a_huge_body_round_trips(file_store: FileStore) -> None:
    from strategystore import Section  # noqa: PLC0415

    big = make_doc(sections=[Section(key="k", title="t", body="x" * 5_000_000)])
    file_store.save(big)
    assert file_store.get_strategy("acme-q3", 1) == big


# -- symbolic links and special files


def test_a_brief_directory_that_is_a_link_is_refused(file_store: FileStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "1.json").write_bytes(make_doc().to_json_bytes())
    (file_store.data_dir / "acme-q3").symlink_to(outside)
    with pytest.raises(CorruptDocumentError, match="symbolic link"):
        file_store.get_strategy("acme-q3", 1)
    with pytest.raises(CorruptDocumentError, match="symbolic link"):
        file_store.list_version_numbers("acme-q3")
    with pytest.raises(CorruptDocumentError, match="symbolic link"):
        file_store.save(make_doc(version=2))
    assert file_store.list_briefs() == []
    assert tree(outside) == ["1.json"]


def test_a_document_that_is_a_link_is_refused(file_store: FileStore, tmp_path: Path) -> None:
    secret = tmp_path / "secret.json"
    secret.write_bytes(make_doc().to_json_bytes())
    (file_store.data_dir / "acme-q3").mkdir()
    (file_store.data_dir / "acme-q3" / "1.json").symlink_to(secret)
    with pytest.raises(CorruptDocumentError, match="symbolic link"):
        file_store.get_strategy("acme-q3", 1)
    with pytest.raises(CorruptDocumentError, match="symbolic link"):
        file_store.save(make_doc(metadata={"x": 1}))
    assert secret.read_bytes() == make_doc().to_json_bytes()


def test_a_locks_directory_that_is_a_link_is_refused(file_store: FileStore, tmp_path: Path) -> None:
    outside = tmp_path / "outside-locks"
    outside.mkdir()
    shutil.rmtree(file_store.data_dir / ".locks")
    (file_store.data_dir / ".locks").symlink_to(outside)
    with pytest.raises(CorruptDocumentError, match="symbolic link"):
        file_store.create_next("acme-q3")
    assert tree(outside) == []


def test_a_lock_file_that_is_a_link_is_refused(file_store: FileStore, tmp_path: Path) -> None:
    target = tmp_path / "victim"
    target.write_text("keep me")
    (file_store.data_dir / ".locks" / "acme-q3.lock").symlink_to(target)
    with pytest.raises(CorruptDocumentError, match="symbolic link"):
        file_store.create_next("acme-q3")
    assert target.read_text() == "keep me"


def test_a_pipe_named_like_a_document_is_refused_without_blocking(file_store: FileStore) -> None:
    (file_store.data_dir / "acme-q3").mkdir()
    os.mkfifo(file_store.data_dir / "acme-q3" / "1.json")
    result: list[BaseException] = []

    def read() -> None:
        try:
            file_store.get_strategy("acme-q3", 1)
        except CorruptDocumentError as exc:
            result.append(exc)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    reader.join(timeout=10)
    assert not reader.is_alive(), "reading a pipe blocked"
    assert len(result) == 1 and "not a regular file" in str(result[0])


# -- two stores, reopening, git


def test_two_file_stores_on_one_directory_agree(tmp_path: Path) -> None:
    first, second = FileStore(tmp_path / "data"), FileStore(tmp_path / "data")
    first.create_next("acme-q3")
    assert second.create_next("acme-q3").version == 2
    second.approve("acme-q3", 1)
    got = first.get_strategy("acme-q3", 1)
    assert got is not None and got.status is Status.APPROVED
    assert first.list_versions_by_brief("acme-q3") == second.list_versions_by_brief("acme-q3")


def test_reopening_the_directory_sees_everything(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "data")
    for brief in ("a", "b"):
        for _ in range(3):
            store.create_next(brief, metadata={"brief": brief})
    store.approve("b", 2)
    reopened = FileStore(tmp_path / "data", create=False)
    assert reopened.list_briefs() == ["a", "b"]
    for brief in ("a", "b"):
        assert reopened.list_versions_by_brief(brief) == store.list_versions_by_brief(brief)


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_in_a_git_repository_only_documents_marker_and_gitignore_show(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    repo.mkdir()
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    store = FileStore(repo)  # only .git inside: initialised in place
    store.create_next("acme-q3")
    store.create_next("acme-q3")
    (repo / "acme-q3" / ".3.json.deadbeef.tmp").write_text("left by a crash")
    status = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=all"],
        cwd=repo,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split("\n")
    assert sorted(line for line in status if line) == [
        "?? .gitattributes",
        "?? .gitignore",
        "?? acme-q3/1.json",
        "?? acme-q3/2.json",
        "?? strategystore.json",
    ]


# -- opening a data directory


def test_a_missing_directory_is_created_and_initialised(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "a" / "b" / "data")
    assert (store.data_dir / "strategystore.json").is_file()


def test_a_directory_with_only_dot_files_is_initialised(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / ".git").mkdir()
    (tmp_path / "data" / ".editorconfig").write_text("")
    FileStore(tmp_path / "data")
    assert (tmp_path / "data" / "strategystore.json").is_file()


def test_a_directory_with_other_content_and_no_marker_is_refused(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "thesis.docx").write_text("mine")
    with pytest.raises(StoreFormatError, match=r"not a strategystore data directory.*thesis.docx"):
        FileStore(tmp_path / "data")
    assert tree(tmp_path / "data") == ["thesis.docx"]


def test_a_newer_format_is_refused(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "data")
    (store.data_dir / "strategystore.json").write_text('{"format": 3}\n')
    with pytest.raises(StoreFormatError, match="format 3 is newer"):
        FileStore(tmp_path / "data")


@pytest.mark.parametrize("content", ["", "{}", '{"format": "1"}', "[1]", '{"format": true}'])
def test_a_broken_marker_is_refused(tmp_path: Path, content: str) -> None:
    store = FileStore(tmp_path / "data")
    (store.data_dir / "strategystore.json").write_text(content)
    with pytest.raises(StoreFormatError, match=r"strategystore\.json"):
        FileStore(tmp_path / "data")


def test_without_create_a_missing_or_empty_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(StoreFormatError, match="does not exist"):
        FileStore(tmp_path / "missing", create=False)
    (tmp_path / "empty").mkdir()
    with pytest.raises(StoreFormatError, match="not initialised"):
        FileStore(tmp_path / "empty", create=False)
    assert not (tmp_path / "missing").exists()
    assert tree(tmp_path / "empty") == []


def test_a_file_where_the_directory_should_be_is_refused(tmp_path: Path) -> None:
    (tmp_path / "data").write_text("")
    with pytest.raises(StoreFormatError, match="not a directory"):
        FileStore(tmp_path / "data")


INIT_RACE = textwrap.dedent(
    """
    import sys, time
    from strategystore import FileStore
    deadline = float(sys.argv[2])
    while time.time() < deadline:
        pass
    store = FileStore(sys.argv[1])
    store.create_next("race")
    """
)


def test_two_processes_initialising_one_directory_at_once_both_succeed(tmp_path: Path) -> None:
    for round_ in range(5):
        data = tmp_path / f"data{round_}"
        start = str(time.time() + 0.5)
        procs = [
            subprocess.Popen([sys.executable, "-c", INIT_RACE, str(data), start]) for _ in range(3)
        ]
        assert [p.wait(timeout=60) for p in procs] == [0, 0, 0]
        assert FileStore(data, create=False).list_version_numbers("race") == [3, 2, 1]


# -- locks


def test_a_held_lock_times_out_with_an_error_naming_the_lock_file(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "data", lock_timeout=0.2)
    lock_path = store.data_dir / ".locks" / "acme-q3.lock"
    with open(lock_path, "a") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        started = time.monotonic()
        with pytest.raises(LockTimeoutError) as info:
            store.create_next("Acme-Q3")
        waited = time.monotonic() - started
    assert info.value.lock_path == lock_path
    assert str(lock_path) in str(info.value)
    assert isinstance(info.value, TimeoutError)
    assert 0.15 < waited < 5
    # Released: the next write goes through, and reads never waited.
    assert store.create_next("acme-q3").version == 1


def test_a_lock_is_handed_over_as_soon_as_it_is_released(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "data", lock_timeout=10)
    lock_path = store.data_dir / ".locks" / "acme-q3.lock"
    with open(lock_path, "a") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        timer = threading.Timer(0.3, lambda: fcntl.flock(holder, fcntl.LOCK_UN))
        timer.start()
        assert store.create_next("acme-q3").version == 1
        timer.join()


def test_reads_take_no_lock(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "data", lock_timeout=0.1)
    store.create_next("acme-q3")
    with open(store.data_dir / ".locks" / "acme-q3.lock", "a") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        assert store.list_version_numbers("acme-q3") == [1]
        assert store.get_latest("acme-q3") is not None


def test_a_deleted_locks_directory_is_recreated(file_store: FileStore) -> None:
    shutil.rmtree(file_store.data_dir / ".locks")
    file_store.create_next("acme-q3")
    assert (file_store.data_dir / ".locks" / "acme-q3.lock").is_file()


# -- open_store


def test_open_store_defaults_to_a_file_store_in_strategy_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("STRATEGYSTORE_MODE", raising=False)
    monkeypatch.delenv("STRATEGYSTORE_DIR", raising=False)
    store = open_store()
    assert isinstance(store, FileStore)
    assert store.data_dir == tmp_path / "strategy-data"


def test_open_store_reads_mode_and_directory_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("STRATEGYSTORE_DIR", str(tmp_path / "elsewhere"))
    monkeypatch.setenv("STRATEGYSTORE_MODE", "file")
    store = open_store(durable=False, lock_timeout=1)
    assert isinstance(store, FileStore)
    assert (store.data_dir, store.durable, store.lock_timeout) == (
        tmp_path / "elsewhere",
        False,
        1.0,
    )
    monkeypatch.setenv("STRATEGYSTORE_MODE", "memory")
    assert isinstance(open_store(), MemoryStore)
    assert isinstance(open_store("file", tmp_path / "explicit"), FileStore)


def test_open_store_names_the_valid_values_of_a_bad_setting(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(ConfigurationError, match="'file' or 'memory'"):
        open_store("sql")
    monkeypatch.setenv("STRATEGYSTORE_MODE", "disk")
    with pytest.raises(ConfigurationError, match=r"\$STRATEGYSTORE_MODE is 'disk'"):
        open_store()
    with pytest.raises(ConfigurationError, match="takes create, durable and lock_timeout"):
        open_store("file", fast=True)
    with pytest.raises(ConfigurationError, match="no options"):
        open_store("memory", durable=False)


# -- found in review: locks across fork, timeouts, interrupts, .locks removal


def test_a_forked_child_does_not_keep_a_brief_locked(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "data", lock_timeout=5)
    with store.locks.hold("acme-q3"):
        pid = os.fork()
        if pid == 0:  # the child outlives the parent's critical section
            time.sleep(3)
            os._exit(0)
    try:
        other = FileStore(tmp_path / "data", lock_timeout=0.5)
        assert other.create_next("acme-q3").version == 1
    finally:
        os.kill(pid, 9)
        os.waitpid(pid, 0)


def test_timeouts_against_a_stuck_holder_do_not_pile_up_threads(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "data", lock_timeout=0.01)
    before = threading.active_count()
    with open(store.data_dir / ".locks" / "acme-q3.lock", "a") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        for _ in range(50):
            with pytest.raises(LockTimeoutError):
                store.create_next("acme-q3")
        assert threading.active_count() <= before + 1
    deadline = time.monotonic() + 5
    while threading.active_count() > before and time.monotonic() < deadline:
        time.sleep(0.01)
    assert threading.active_count() == before
    store.lock_timeout = 5
    assert store.create_next("acme-q3").version == 1


def test_an_interrupt_just_as_the_lock_is_granted_leaves_it_free(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStore(tmp_path / "data", lock_timeout=5)
    lock_path = store.data_dir / ".locks" / "acme-q3.lock"

    class InterruptedAfterTheGrant(threading.Event):
        def wait(self, timeout: float | None = None) -> bool:
            granted = super().wait(timeout)
            if timeout is None:  # Thread.start waiting for its thread, not the lock
                return granted
            raise KeyboardInterrupt

    with open(lock_path, "a") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        threading.Timer(0.2, lambda: fcntl.flock(holder, fcntl.LOCK_UN)).start()
        monkeypatch.setattr(threading, "Event", InterruptedAfterTheGrant)
        with pytest.raises(KeyboardInterrupt):
            store.create_next("acme-q3")
        monkeypatch.undo()
    store.lock_timeout = 0.5
    assert store.create_next("acme-q3").version == 1


def test_removing_the_locks_directory_while_writers_run_keeps_locks_inside_it(
    tmp_path: Path,
) -> None:
    store = FileStore(tmp_path / "data", durable=False)
    errors: list[BaseException] = []
    stop = threading.Event()

    def write(brief: str) -> None:
        try:
            while not stop.is_set():
                store.create_next(brief)
        except BaseException as exc:
            errors.append(exc)

    writers = [threading.Thread(target=write, args=(f"b{n}",)) for n in range(3)]
    for writer in writers:
        writer.start()
    for _ in range(30):
        shutil.rmtree(store.data_dir / ".locks", ignore_errors=True)
        time.sleep(0.01)
    stop.set()
    for writer in writers:
        writer.join(timeout=30)
    stray = [p for p in store.data_dir.rglob("*.lock") if p.parent.name != ".locks"]
    assert stray == []
    assert errors == []
    for n in range(3):
        versions = store.list_version_numbers(f"b{n}")
        assert versions == list(range(len(versions), 0, -1))


def test_a_marker_published_by_another_process_mid_check_is_accepted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    real = FileStore._read_marker
    calls = [0]

    def racing(self: FileStore) -> bool:
        calls[0] += 1
        if calls[0] == 1:  # the other process finishes right after this look
            (data / "strategystore.json").write_text('{\n  "format": 2\n}\n')
            return False
        return real(self)

    monkeypatch.setattr(FileStore, "_read_marker", racing)
    FileStore(data)
    assert calls[0] >= 2


def test_creating_a_data_directory_makes_each_new_directory_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[Path] = []
    real = strategystore._fsio.fsync_dir

    def record(path: Path) -> None:
        synced.append(Path(path))
        real(path)

    monkeypatch.setattr(strategystore._fsio, "fsync_dir", record)
    FileStore(tmp_path / "a" / "b" / "data")
    assert {tmp_path, tmp_path / "a", tmp_path / "a" / "b"} <= set(synced)


def test_an_io_error_names_the_whole_path(file_store: FileStore) -> None:
    import errno  # noqa: PLC0415

    def full_disk(step: str, path: Path) -> None:
        if step == "write":
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), path.name)

    file_store.on_step = full_disk
    with pytest.raises(OSError, match="No space") as info:
        file_store.create_next("acme-q3")
    assert str(file_store.data_dir / "acme-q3") in str(info.value)


@pytest.mark.parametrize("timeout", [-1, float("nan"), "10s", None, True])
def test_a_bad_lock_timeout_is_refused(tmp_path: Path, timeout: object) -> None:
    with pytest.raises(ValueError, match="lock_timeout"):
        FileStore(tmp_path / "data", lock_timeout=timeout)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="lock_timeout"):
        open_store("file", tmp_path / "data", lock_timeout=timeout)


def test_an_infinite_lock_timeout_waits_for_the_holder(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "data", lock_timeout=float("inf"))
    with open(store.data_dir / ".locks" / "acme-q3.lock", "a") as holder:
        fcntl.flock(holder, fcntl.LOCK_EX)
        threading.Timer(0.2, lambda: fcntl.flock(holder, fcntl.LOCK_UN)).start()
        assert store.create_next("acme-q3").version == 1


def test_initialising_a_directory_with_a_gitignore_adds_only_the_missing_lines(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / ".gitignore").write_text("*.pyc\n.locks/")  # no final newline
    FileStore(data)
    lines = (data / ".gitignore").read_text().splitlines()
    assert lines[:2] == ["*.pyc", ".locks/"]
    assert lines.count(".locks/") == 1
    assert ".*.tmp" in lines
    assert (data / ".gitignore").read_text().endswith("\n")


def test_initialising_a_directory_with_gitattributes_adds_only_the_missing_line(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / ".gitattributes").write_text("*.png binary\n*.json text")
    FileStore(data)
    lines = (data / ".gitattributes").read_text().splitlines()
    # The user's lines stay first; the store's line comes later, so it wins.
    assert lines[:2] == ["*.png binary", "*.json text"]
    assert lines[-1] == "*.json text eol=lf -merge"
    FileStore(data).write_git_files()
    assert (data / ".gitattributes").read_text().splitlines() == lines


def test_a_format_1_directory_is_refused_with_the_way_to_migrate(tmp_path: Path) -> None:
    data = tmp_path / "data"
    FileStore(data).create_next("acme")
    (data / "strategystore.json").write_text('{\n  "format": 1\n}\n')
    with pytest.raises(StoreFormatError, match=r"format 1.*strategystore --dir .* migrate"):
        FileStore(data)


def test_initialising_keeps_a_gitignore_that_already_has_every_line(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / ".gitignore").write_text(".*.tmp\n.locks/\n")
    FileStore(data)
    assert (data / ".gitignore").read_text() == ".*.tmp\n.locks/\n"


def test_with_the_added_lines_git_status_shows_no_lock_or_temporary_file(tmp_path: Path) -> None:
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    data = tmp_path / "data"
    data.mkdir()
    subprocess.run(["git", "init", "-q", str(data)], check=True)
    (data / ".gitignore").write_text("notes.txt\n")
    store = FileStore(data)
    store.create_next("acme")
    (data / "acme" / ".1.json.1-1.tmp").write_text("")
    shown = subprocess.run(
        ["git", "-C", str(data), "status", "--porcelain", "--untracked-files=all"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    assert sorted(line[3:] for line in shown if line) == [
        ".gitattributes",
        ".gitignore",
        "acme/1.json",
        "strategystore.json",
    ]


def _descriptors_on(path: Path) -> int:
    """How many of this process's descriptors are open on ``path``."""
    found = 0
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            if os.readlink(f"/proc/self/fd/{name}") == str(path):
                found += 1
    return found


@contextlib.contextmanager
def _data_directory_locked(store: FileStore) -> Iterator[None]:
    """Hold the data directory's exclusive flock, as a store does while making a lock file."""
    blocker = os.open(store.data_dir, os.O_RDONLY | os.O_DIRECTORY)
    try:
        fcntl.flock(blocker, fcntl.LOCK_EX)
        yield
    finally:
        os.close(blocker)


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc/self/fd")
def test_a_timeout_creating_a_lock_file_leaves_the_waiter_its_descriptor(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "data", lock_timeout=0.2)
    with _data_directory_locked(store):
        with pytest.raises(LockTimeoutError):
            store.create_next("fresh")
        # The thread still waiting for the data directory owns its descriptor:
        # closed now, its number could be reused and then closed by the waiter.
        assert _descriptors_on(store.data_dir) == 2
    deadline = time.monotonic() + 5
    while _descriptors_on(store.data_dir) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert _descriptors_on(store.data_dir) == 0
    assert store.create_next("fresh").version == 1


def test_ctrl_c_while_waiting_for_the_data_directory_releases_the_briefs_lock(
    tmp_path: Path,
) -> None:
    store = FileStore(tmp_path / "data", lock_timeout=5.0)
    store.create_next("acme")
    with _data_directory_locked(store):
        threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT)).start()
        with pytest.raises(KeyboardInterrupt):
            store.create_next("acme")  # holds acme's lock, waits for the directory
    other = FileStore(store.data_dir, lock_timeout=1.0)
    assert other.create_next("acme").version == 2


def test_a_lock_timeout_beyond_what_a_wait_can_take_waits_as_long_as_it_takes(
    tmp_path: Path,
) -> None:
    store = FileStore(tmp_path / "data", lock_timeout=1e10)
    store.create_next("acme")
    holder = FileStore(store.data_dir)
    done: list[object] = []
    with holder.locks.hold("acme"):
        writer = threading.Thread(target=lambda: done.append(store.create_next("acme").version))
        writer.start()
        time.sleep(0.3)  # the writer waits for the lock now
    writer.join(timeout=30)
    assert done == [2]


def test_an_error_a_write_names_no_file_for_is_named_after_the_document(
    file_store: FileStore,
) -> None:
    def full(step: str, path: Path) -> None:
        if step == "write":
            raise OSError(errno.ENOSPC, "No space left on device")

    file_store.on_step = full
    with pytest.raises(OSError, match="No space left") as failed:
        file_store.create_next("acme")
    path = file_store.data_dir / "acme" / "1.json"
    assert str(failed.value) == f"[Errno 28] No space left on device: '{path}'"


def test_another_briefs_lock_file_renamed_into_place_does_not_let_a_second_writer_in(
    tmp_path: Path,
) -> None:
    store = FileStore(tmp_path / "data", durable=False)
    store.create_next("acme")
    store.create_next("beta")
    locks = store.data_dir / ".locks"
    other = FileStore(store.data_dir, durable=False, lock_timeout=0.3)
    with store.locks.hold("acme"):
        os.replace(locks / "beta.lock", locks / "acme.lock")  # by hand, while acme is held
        with pytest.raises(LockTimeoutError):
            other.create_next("acme")
    assert other.create_next("acme").version == 2


def _file_on_inode(path: Path, content: bytes, inode: int, mtime_ns: int | None = None) -> bool:
    """Write ``path`` anew (keeping ``mtime_ns``, as ``cp -p`` does); whether it got ``inode``."""
    path.write_bytes(content)
    if mtime_ns is not None:
        os.utime(path, ns=(mtime_ns, mtime_ns))
    return path.stat().st_ino == inode


@pytest.mark.parametrize(
    "copy", ["cp -p", "cp -p, generations remembered", "cp, on a file system without generations"]
)
def test_an_old_copy_of_a_lock_file_landing_on_its_freed_inode_does_not_let_a_second_writer_in(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, copy: str
) -> None:
    # A copy carries the mark of the file it was copied from, and the file
    # system may give a new file the inode number of one freed since: the
    # generation of the inode tells them apart, and where there is none, the
    # modification time the store gave its file.
    if copy.startswith("cp,"):
        for module in (strategystore._locks, strategystore._lockmark):
            monkeypatch.setattr(module, "generation", lambda fd, info: "-")
    if copy.endswith("remembered"):  # as if every lock file were old
        monkeypatch.setattr(strategystore._lockmark, "_GENERATION_SETTLED_NS", -(10**18))
    store = FileStore(tmp_path / "data", durable=False)
    store.create_next("acme")
    locks = store.data_dir / ".locks"
    lock = locks / "acme.lock"
    copied, was = lock.read_bytes(), lock.stat()
    kept = was.st_mtime_ns if copy.startswith("cp -p") else None
    lock.unlink()
    if not _file_on_inode(locks / "keeps-the-inode", b"", was.st_ino):
        pytest.skip("this file system does not hand a freed inode number out again at once")
    other = FileStore(store.data_dir, durable=False, lock_timeout=0.3)
    with store.locks.hold("acme"):  # a new lock file, on another inode
        lock.unlink()  # by hand, while acme is held
        (locks / "keeps-the-inode").unlink()
        if not _file_on_inode(lock, copied, was.st_ino, kept):
            pytest.skip("this file system gave the copy another inode")
        with pytest.raises(LockTimeoutError):
            other.create_next("acme")
    assert other.create_next("acme").version == 2


def test_a_writer_that_wrote_before_locks_directory_was_swapped_locks_the_new_one(
    tmp_path: Path,
) -> None:
    store = FileStore(tmp_path / "data", durable=False, lock_timeout=0.3)
    store.create_next("acme")  # this thread now keeps .locks/ open between writes
    locks = store.data_dir / ".locks"
    locks.rename(tmp_path / "aside")
    locks.mkdir()
    holder = FileStore(store.data_dir, durable=False)
    # holder makes a new lock file in the new .locks/
    with holder.locks.hold("acme"), pytest.raises(LockTimeoutError):
        store.create_next("acme")
    assert store.create_next("acme").version == 2
    assert (locks / "acme.lock").is_file()


def test_a_lock_file_touched_in_place_is_adopted_again_and_still_excludes(
    tmp_path: Path,
) -> None:
    store = FileStore(tmp_path / "data", durable=False)
    store.create_next("acme")
    lock = store.data_dir / ".locks" / "acme.lock"
    inode = lock.stat().st_ino
    other = FileStore(store.data_dir, durable=False, lock_timeout=0.3)
    with store.locks.hold("acme"):
        os.utime(lock)  # touched by hand: its mark no longer holds
        with pytest.raises(LockTimeoutError):
            other.create_next("acme")
    assert other.create_next("acme").version == 2
    assert lock.stat().st_ino == inode  # adopted where it was, marked anew
    assert str(lock.stat().st_mtime_ns).encode() in lock.read_bytes()


def test_a_file_system_that_does_not_keep_a_lock_files_time_is_refused_by_name(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStore(tmp_path / "data", durable=False)
    monkeypatch.setattr(os, "utime", lambda fd, ns: None)
    with pytest.raises(ConfigurationError, match="does not keep the modification time") as info:
        store.create_next("acme")
    assert str(store.data_dir / ".locks" / "acme.lock") in str(info.value)
    monkeypatch.undo()
    assert store.create_next("acme").version == 1


def test_one_stuck_writer_does_not_hold_up_the_writers_of_other_briefs(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "data", durable=False)
    for brief in ("stuck", "other"):
        store.create_next(brief)
    released = threading.Event()
    held = threading.Event()

    def stuck() -> None:
        with FileStore(store.data_dir).locks.hold("stuck"):
            held.set()
            released.wait(10)

    def fresh() -> None:
        # Makes a new brief's lock file, so waits for the stuck writer.
        with contextlib.suppress(LockTimeoutError):
            FileStore(store.data_dir, lock_timeout=2.0).create_next("fresh")

    holder = threading.Thread(target=stuck)
    holder.start()
    held.wait(10)
    maker = threading.Thread(target=fresh)
    maker.start()
    time.sleep(0.2)
    try:
        for _ in range(5):
            FileStore(store.data_dir, lock_timeout=1.0).create_next("other")
    finally:
        released.set()
        holder.join(timeout=10)
        maker.join(timeout=10)
    assert store.list_version_numbers("other")[0] == 6


def test_a_failed_fsync_of_the_data_directory_leaves_the_previous_state(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = FileStore(tmp_path / "data")
    store.create_next("acme")
    other = FileStore(store.data_dir)
    other.create_next("acme")  # another writer touched acme/: the next write syncs the root
    before = sorted(p.name for p in (store.data_dir / "acme").iterdir())
    real = strategystore._fsio.fsync_dir

    def failing(path: Path) -> None:
        if Path(path) == store.data_dir:
            raise OSError(errno.EIO, "Input/output error", str(path))
        real(path)

    with monkeypatch.context() as patch:
        patch.setattr(strategystore._fsio, "fsync_dir", failing)
        with pytest.raises(OSError, match="Input/output error"):
            store.create_next("acme")
    assert sorted(p.name for p in (store.data_dir / "acme").iterdir()) == before
    assert store.create_next("acme").version == 3


def _open_locks_dirs() -> int:
    """How many of this process's descriptors are of a ``.locks`` directory."""
    return sum(
        os.path.realpath(f"/proc/self/fd/{fd}").endswith("/.locks")
        for fd in os.listdir("/proc/self/fd")
    )


def test_closing_a_store_closes_the_lock_directory_every_writing_thread_kept(
    tmp_path: Path,
) -> None:
    before = _open_locks_dirs()
    store = FileStore(tmp_path / "data", durable=False)
    for n in range(4):
        store.create_next(f"b{n}")  # makes the lock files
    store.create_next("b0")  # this thread now keeps .locks/ open between writes
    written, finish = threading.Barrier(5), threading.Event()

    def write(brief: str) -> None:
        store.create_next(brief)  # and so does each of these
        written.wait()
        finish.wait()  # still running, as a pool's threads are

    threads = [threading.Thread(target=write, args=(f"b{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    try:
        written.wait(30)
        assert _open_locks_dirs() == before + 5
        store.close()
        assert _open_locks_dirs() == before
    finally:
        finish.set()
        for thread in threads:
            thread.join()


def test_a_lock_taken_after_the_store_closed_keeps_no_lock_directory_open(
    tmp_path: Path,
) -> None:
    before = _open_locks_dirs()
    store = FileStore(tmp_path / "data", durable=False)
    store.create_next("acme")
    store.create_next("acme")
    store.close()
    # As a write under way while the store closed would.
    with store.locks.hold("acme"):
        pass
    assert _open_locks_dirs() == before
