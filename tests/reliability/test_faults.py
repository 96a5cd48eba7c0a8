"""Faults: I/O errors at every step of every write, real full and read-only disks, locks."""

from __future__ import annotations

import errno
import itertools
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from multiprocessing.context import ForkServerProcess
from pathlib import Path

import pytest

from strategystore import (
    FileStore,
    InvalidBriefIdError,
    LockTimeoutError,
    Section,
    StrategyStoreError,
    _locks,
)
from strategystore._flock import close_lock
from strategystore.cli import main
from tests.reliability._support import (
    SCENARIOS,
    T1,
    WRITE_SCENARIOS,
    count,
    disk_state,
    make_doc,
    scaled,
    temporary_files,
)
from tests.reliability._workers import (
    context,
    hold_lock,
    list_as_nobody,
    save_as_nobody,
    write_as_nobody,
)

ERRNOS = (errno.ENOSPC, errno.EIO, errno.EROFS, errno.EACCES)

#: Steps that run once the write is complete. A fault there cannot undo the
#: write, so it must not report the write as failed either.
AFTER_COMMIT = frozenset({"lock-release"})


def _carries(raised: BaseException | None, injected: OSError) -> bool:
    """Whether ``raised`` is ``injected`` itself, or a store error caused by it."""
    if raised is injected:
        return True
    if not isinstance(raised, StrategyStoreError):
        return False
    seen: BaseException | None = raised
    while seen is not None:
        if seen is injected:
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _difference(found: dict[str, bytes], wanted: dict[str, bytes]) -> str:
    paths = sorted(p for p in found.keys() | wanted.keys() if found.get(p) != wanted.get(p))
    return ", ".join(
        f"{p} {'missing' if p not in found else 'extra' if p not in wanted else 'changed'}"
        for p in paths
    )


States = tuple[dict[str, bytes], dict[str, bytes]]


def _attempt(store: FileStore, run: Callable[[FileStore], object]) -> Exception | None:
    try:
        run(store)
    except Exception as exc:  # every outcome is judged by the caller
        return exc
    return None


def _judge_failure(
    data: Path, step: str, raised: Exception | None, injected: OSError, states: States
) -> list[str]:
    """What the faulty attempt broke: the error it raised, the state it left."""
    old, new = states
    problems = []
    if step in AFTER_COMMIT:
        if raised is not None:
            problems.append(f"the completed write was reported as failed: {raised!r}")
        if disk_state(data) != new:
            problems.append(f"the completed write was undone: {_difference(disk_state(data), new)}")
    else:
        if not _carries(raised, injected):
            problems.append(f"raised {raised!r}, not the injected error")
        if disk_state(data) != old:
            problems.append(f"the previous state changed: {_difference(disk_state(data), old)}")
    if temporary_files(data):
        problems.append(f"temporary files left: {temporary_files(data)}")
    return problems


def _judge_recovery(
    store: FileStore,
    run: Callable[[FileStore], object],
    step: str,
    injected: OSError,
    persistent: bool,
    states: States,
) -> list[str]:
    """Whether a retry fails alike while the fault lasts, and works once it is gone."""
    old, new = states
    problems = []
    if persistent and step not in AFTER_COMMIT:
        raised = _attempt(store, run)
        if raised is None:
            problems.append("a retry under the fault succeeded")
        elif not _carries(raised, injected):
            problems.append(f"a retry under the fault raised {raised!r}")
        if disk_state(store.data_dir) != old:
            problems.append("a retry under the fault changed the previous state")
    store.on_step = None
    if step not in AFTER_COMMIT:
        raised = _attempt(store, run)
        if raised is not None:
            problems.append(f"the write failed once the fault was gone: {raised!r}")
        if disk_state(store.data_dir) != new:
            problems.append(f"the write left {_difference(disk_state(store.data_dir), new)}")
    for brief in ("acme", "solo", "fresh"):
        try:
            store.create_next(brief, now=T1)
        except Exception as exc:  # every brief must take writes again once the fault is gone
            problems.append(f"the next write to {brief} failed: {exc!r}")
    return problems


def _inject(
    data: Path, scenario: str, durable: bool, fault: tuple[int, str, int, bool], states: States
) -> list[str]:
    """Fail the ``at``-th I/O step (once, or it and every later one of its kind) and judge."""
    at, step, code, persistent = fault
    # No other writer exists here, so a lock wait can only mean a leaked lock.
    store = FileStore(data, durable=durable, lock_timeout=0.05)
    injected = OSError(code, os.strerror(code), f"injected at {step}")
    seen: list[str] = []

    def inject(name: str, path: Path) -> None:
        seen.append(name)
        if len(seen) == at or (persistent and len(seen) > at and name == step):
            raise injected

    store.on_step = inject
    run = SCENARIOS[scenario].run
    problems = _judge_failure(data, step, _attempt(store, run), injected, states)
    # A failed fsync may have dropped the dirty pages it was asked to write, so
    # a second fsync that succeeds proves nothing: it must never be retried.
    if step in ("fsync", "dir-fsync") and step in seen[at:]:
        problems.append(f"the failed {step} was retried: {seen[at:]}")
    return problems + _judge_recovery(store, run, step, injected, persistent, states)


@pytest.mark.parametrize("durable", [True, False], ids=["durable", "not-durable"])
@pytest.mark.parametrize("scenario", WRITE_SCENARIOS)
def test_an_io_error_at_any_step_reaches_the_caller_and_leaves_the_previous_document(
    scenario: str, durable: bool, base_dir: Path, tmp_path: Path
) -> None:
    old = disk_state(base_dir)
    reference = Path(shutil.copytree(base_dir, tmp_path / "reference", symlinks=True))
    recorder = FileStore(reference, durable=durable)
    steps: list[str] = []
    recorder.on_step = lambda step, path: steps.append(step)
    SCENARIOS[scenario].run(recorder)
    new = disk_state(reference)
    assert steps, f"{scenario} made no I/O step"
    failures = []
    case = 0
    for at, step in enumerate(steps, start=1):
        for code in ERRNOS:
            for persistent in (False, True):
                case += 1
                data = Path(shutil.copytree(base_dir, tmp_path / f"case-{case}", symlinks=True))
                fault = (at, step, code, persistent)
                problems = _inject(data, scenario, durable, fault, (old, new))
                count("fault: I/O errors injected")
                if problems:
                    how = "persistent" if persistent else "once"
                    failures.append(
                        f"{step} (step {at}), {errno.errorcode[code]} {how}: {problems}"
                    )
                else:
                    count("fault: I/O errors survived")
    assert not failures, f"{len(failures)} of {case} faults broke a promise:\n" + "\n".join(
        failures[:12]
    )


def test_a_failed_first_write_does_not_let_a_case_variant_in_later(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "data", durable=False)

    def fail_once(step: str, path: Path) -> None:
        store.on_step = None
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "injected")

    store.on_step = fail_once
    with pytest.raises(OSError, match="injected"):
        store.create_next("fresh")
    store.create_next("Fresh")
    with pytest.raises(InvalidBriefIdError, match="differs only by letter case"):
        store.create_next("fresh")
    assert store.list_briefs() == ["Fresh"]


# -- real faults -----------------------------------------------------------------


def _mount(*args: str) -> None:
    found = shutil.which("mount")
    if found is None:
        pytest.skip("no mount command on this machine")
    done = subprocess.run([found, *args], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.skip(f"cannot mount here (needs root in a mount-capable namespace): {done.stderr}")


def _unmount(path: Path) -> None:
    # Lazy, so a descriptor someone leaked cannot leave the mount behind.
    subprocess.run(["umount", "--lazy", str(path)], capture_output=True, check=True)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, so a real ENOSPC comes from the kernel."""
    path = tmp_path / "small"
    path.mkdir()
    _mount("-t", "tmpfs", "-o", "size=1m", "tmpfs", str(path))
    try:
        yield path
    finally:
        _unmount(path)


def _fill(disk: Path, leave: int) -> Path:
    """Fill ``disk`` to the brim, then free ``leave`` bytes."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as out:
        try:
            while out.write(b"\0" * 4096):
                pass
        except OSError as exc:
            if exc.errno != errno.ENOSPC:
                raise
    os.truncate(filler, max(0, filler.stat().st_size - leave))
    return filler


def test_a_real_full_disk_fails_the_write_cleanly_and_writes_resume_once_space_is_freed(
    small_disk: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = FileStore(small_disk / "data")
    store.save(make_doc("acme", 1))
    store.save(make_doc("acme", 2))
    before = disk_state(small_disk / "data")
    filler = _fill(small_disk, leave=64 * 1024)
    big = [Section(key="body", title="Body", body="x" * 300_000)]
    with pytest.raises(OSError, match="No space left") as save_error:
        store.save(make_doc("acme", 1, sections=big))
    with pytest.raises(OSError, match="No space left") as next_error:
        store.create_next("acme", big)
    assert save_error.value.errno == next_error.value.errno == errno.ENOSPC
    # A real full disk names no file itself; the store says which document.
    assert save_error.value.filename == str(small_disk / "data" / "acme" / "1.json")
    assert next_error.value.filename == str(small_disk / "data" / "acme" / "3.json")
    assert disk_state(small_disk / "data") == before
    assert temporary_files(small_disk / "data") == []
    assert store.list_version_numbers("acme") == [2, 1]
    count("fault: real ENOSPC errors survived", 2)
    document = small_disk.parent / "brief.json"
    document.write_bytes(make_doc("acme", 1, sections=big).to_json_bytes())
    assert main(["--dir", str(small_disk / "data"), "put", str(document)]) == 1
    assert capsys.readouterr().err == (
        f"strategystore: {small_disk / 'data' / 'acme' / '1.json'}: No space left on device\n"
    )
    document.unlink()
    filler.unlink()
    store.save(make_doc("acme", 1, sections=big))
    assert store.create_next("acme", big).version == 3
    assert store.get_strategy("acme", 1) == make_doc("acme", 1, sections=big)


@pytest.fixture
def read_only_view(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """A data directory and a read-only bind mount of it."""
    data = tmp_path / "data"
    FileStore(data).save(make_doc("acme", 1))
    view = tmp_path / "view"
    view.mkdir()
    _mount("--bind", str(data), str(view))
    try:
        _mount("-o", "remount,bind,ro", str(view))
        yield data, view
    finally:
        _unmount(view)


def test_a_read_only_file_system_refuses_writes_with_erofs_and_still_serves_reads(
    read_only_view: tuple[Path, Path],
) -> None:
    data, view = read_only_view
    before = disk_state(data)
    store = FileStore(view)
    assert store.get_strategy("acme", 1) == make_doc("acme", 1)
    writes: list[Callable[[], object]] = [
        lambda: store.save(make_doc("acme", 2)),
        lambda: store.create_next("acme"),
        lambda: store.approve("acme", 1),
        lambda: store.delete("acme", 1),
        lambda: store.create_next("brand-new"),
    ]
    for write in writes:
        with pytest.raises(OSError, match="Read-only file system") as refused:
            write()
        assert refused.value.errno == errno.EROFS
        count("fault: real EROFS errors survived")
    assert disk_state(data) == before
    assert store.list_versions_by_brief("acme") == [make_doc("acme", 1)]
    FileStore(data).save(make_doc("acme", 2))
    assert store.list_version_numbers("acme") == [2, 1]


@contextmanager
def _reachable_by_nobody() -> Iterator[Path]:
    """A data directory's path in a directory the unprivileged user can reach."""
    if os.geteuid() != 0:
        pytest.skip("dropping to another user needs root")
    # pytest's own temporary directories are private to root.
    outer = Path(tempfile.mkdtemp(prefix="strategystore-perm-"))
    try:
        outer.chmod(0o755)
        yield outer / "data"
    finally:
        shutil.rmtree(outer)


def test_a_user_without_write_permission_gets_eacces_and_the_data_stays_intact() -> None:
    with _reachable_by_nobody() as data:
        FileStore(data).save(make_doc("acme", 1))
        # Locks are open to everyone, so the refusal comes from the document
        # directories themselves, not from the lock files.
        (data / ".locks").chmod(0o777)
        (data / ".locks" / "acme.lock").chmod(0o666)
        before = disk_state(data)
        ctx = context()
        receiver, sender = ctx.Pipe(duplex=False)
        worker = ctx.Process(target=write_as_nobody, args=(str(data), sender))
        worker.start()
        sender.close()
        outcomes = []
        while True:
            try:
                outcomes.append(receiver.recv_bytes().decode())
            except EOFError:
                break
        worker.join(30)
        assert worker.exitcode == 0, outcomes
        assert outcomes[0] == "read ok"
        assert outcomes[1:] == ["PermissionError EACCES"] * 3
        assert disk_state(data) == before
        count("fault: real EACCES errors survived", 3)


def _open_to_everyone(data: Path) -> None:
    for where, _dirs, files in os.walk(data):
        Path(where).chmod(0o777)
        for name in files:
            (Path(where) / name).chmod(0o666)


def _save_as_nobody(data: Path) -> str:
    ctx = context()
    receiver, sender = ctx.Pipe(duplex=False)
    worker = ctx.Process(target=save_as_nobody, args=(str(data), sender))
    worker.start()
    sender.close()
    assert receiver.poll(60), "the worker never reported"
    outcome = receiver.recv_bytes().decode()
    worker.join(30)
    assert worker.exitcode == 0, outcome
    return outcome


@pytest.mark.parametrize(
    "lock_file",
    ["touched by hand", "not writable by the other user"],
)
def test_a_lock_file_another_user_made_is_replaced_by_one_of_this_users_own(
    lock_file: str,
) -> None:
    """Only a file's owner may give it a time, so a user cannot mark another's lock file."""
    with _reachable_by_nobody() as data:
        store = FileStore(data)
        store.save(make_doc("acme", 1))
        _open_to_everyone(data)
        lock = data / ".locks" / "acme.lock"
        if lock_file == "touched by hand":
            os.utime(lock)
        else:
            lock.chmod(0o644)
        assert _save_as_nobody(data) == "written"
        assert lock.stat().st_uid == 65534
        fd = os.open(lock, os.O_RDONLY)
        try:
            info = os.fstat(fd)
            assert _locks.is_marked(fd, "acme.lock", info, _locks.generation(fd, info))
        finally:
            os.close(fd)
        store.save(make_doc("acme", 3))  # and the first user goes on writing
        assert store.list_version_numbers("acme") == [3, 2, 1]
        assert lock.stat().st_uid == 65534, "a lock file root may mark was replaced"
        assert temporary_files(data) == []


def test_a_lock_file_another_user_made_in_a_sticky_directory_is_refused_by_name() -> None:
    with _reachable_by_nobody() as data:
        FileStore(data).save(make_doc("acme", 1))
        _open_to_everyone(data)
        (data / ".locks").chmod(0o1777)  # only a file's owner may rename it away
        lock = data / ".locks" / "acme.lock"
        os.utime(lock)
        before = disk_state(data)
        outcome = _save_as_nobody(data)
        assert outcome.startswith("PermissionError: [Errno 1] this user may not make")
        assert "no sticky bit" in outcome
        assert outcome.endswith(f"'{lock}'")
        assert disk_state(data) == before
        assert lock.stat().st_uid == 0
        assert temporary_files(data) == []


def test_replacing_a_lock_file_passes_over_a_temporary_a_crashed_process_with_this_pid_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    store = FileStore(data)
    store.save(make_doc("acme", 1))
    monkeypatch.setattr(_locks, "_TEMP_NUMBERS", itertools.count())
    left = data / ".locks" / f".acme.lock.{os.getpid()}-0.tmp"
    left.write_bytes(b"")
    opened = store.locks._replace_lock_file("acme.lock")
    assert opened is not None
    fd, made = opened
    try:
        info = os.fstat(fd)
        assert (info.st_ino, made) == (os.stat(data / ".locks" / "acme.lock").st_ino, made)
        assert _locks.is_marked(fd, "acme.lock", info, made)
    finally:
        close_lock(fd)
    assert left.exists()  # check notes it, for removing by hand
    store.save(make_doc("acme", 2))
    assert store.list_version_numbers("acme") == [2, 1]


def test_replacing_a_lock_file_as_lock_files_are_removed_leaves_making_it_to_the_next_try(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    store = FileStore(data)
    store.save(make_doc("acme", 1))
    shutil.rmtree(data / ".locks")  # git clean -X
    assert store.locks._replace_lock_file("acme.lock") is None
    store.save(make_doc("acme", 2))
    assert store.list_version_numbers("acme") == [2, 1]


# -- locks -------------------------------------------------------------------------


def _holding(data: Path, brief: str, step: str) -> tuple[ForkServerProcess, Connection]:
    ctx = context()
    parent, child = ctx.Pipe()
    holder = ctx.Process(target=hold_lock, args=(str(data), brief, child, step))
    holder.start()
    child.close()
    assert parent.poll(30), "the holder never took the lock"
    assert parent.recv_bytes() == b"holding"
    return holder, parent


def test_a_lock_held_past_the_timeout_raises_lock_timeout_error_naming_the_lock_file(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    store = FileStore(data, lock_timeout=0.3)
    # The holder writes the same brief under another case: locks are case-folded.
    holder, conn = _holding(data, "Acme-Q3", "write")
    started = time.monotonic()
    with pytest.raises(LockTimeoutError) as timed_out:
        store.save(make_doc("acme-q3", 1))
    waited = time.monotonic() - started
    lock = data / ".locks" / "acme-q3.lock"
    assert timed_out.value.lock_path == lock
    assert str(lock) in str(timed_out.value)
    assert 0.3 <= waited < 2.0, waited
    assert isinstance(timed_out.value, TimeoutError)
    conn.send_bytes(b"go")
    assert conn.recv_bytes() == b"done"
    holder.join(10)
    # The abandoned waiter must not keep the lock once its holder is gone.
    store.save(make_doc("Acme-Q3", 2))
    assert store.list_version_numbers("Acme-Q3") == [2, 1]
    count("fault: lock timeouts raised")


@pytest.mark.parametrize("step", ["temp-create", "write", "fsync", "link", "dir-fsync"])
def test_a_lock_left_by_a_killed_process_never_blocks(step: str, tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = FileStore(data, lock_timeout=5.0)
    for round_no in range(scaled(5)):
        holder, _ = _holding(data, "acme", step)
        holder.kill()
        holder.join(10)
        started = time.monotonic()
        created = store.create_next("acme")
        # Well under lock_timeout: the dead holder's lock was free at once.
        assert time.monotonic() - started < 4.0, f"round {round_no}: the dead holder's lock blocked"
        assert created.version == store.list_version_numbers("acme")[0]
        assert all(t.startswith("acme/.") for t in temporary_files(data))
        count("fault: locks of killed holders taken over")


def test_a_brief_directory_nobody_can_open_is_reported_never_left_out() -> None:
    with _reachable_by_nobody() as data:
        store = FileStore(data)
        for brief in ("alpha", "beta", "gamma"):
            store.save(make_doc(brief, 1))
        (data / "beta").chmod(0o700)  # root's alone
        ctx = context()
        receiver, sender = ctx.Pipe(duplex=False)
        worker = ctx.Process(target=list_as_nobody, args=(str(data), sender))
        worker.start()
        sender.close()
        results = receiver.recv() if receiver.poll(60) else None
        worker.join(30)
        assert worker.exitcode == 0 and results is not None
        # It may hold versions, so it is listed; reading it says why it cannot be.
        assert results["list_briefs"] == ["alpha", "beta", "gamma"]
        status, out, err = results["export"]
        assert status == 1
        assert [json.loads(line)["brief_id"] for line in out.splitlines()] == ["alpha", "gamma"]
        assert f"{data / 'beta'}: cannot be opened: Permission denied" in err
        status, out, err = results["briefs"]
        assert status == 1
        assert "Permission denied" in err
        assert [line.split()[0] for line in out.splitlines()[1:]] == ["alpha", "beta", "gamma"]
        assert "unreadable" in out.splitlines()[2]
        status, out, err = results["check"]
        assert (status, err) == (1, "")
        assert f"{data / 'beta'}: brief directory cannot be read: Permission denied" in out
        assert "2 documents in 2 briefs; 1 problem" in out
        count("fault: unreadable brief directories reported (export, briefs, check)", 3)
