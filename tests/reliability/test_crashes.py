"""Crashes: a writer killed at random moments, and at every I/O step of every write."""

from __future__ import annotations

import fcntl
import os
import random
import shutil
import time
from multiprocessing.connection import Connection
from pathlib import Path

import pytest

from strategystore import FileStore, StrategyDocument
from tests.reliability._support import (
    SCENARIOS,
    T1,
    count,
    digest,
    disk_state,
    is_temporary,
    scaled,
    temporary_files,
)
from tests.reliability._workers import CRASHED, STREAM_BRIEFS, context, crash_at_step, writer_stream

#: Kill rounds made on one data directory before starting a fresh one, so
#: each round's check stays cheap while restarts still meet earlier rounds' leftovers.
ROUNDS_PER_DIRECTORY = 5

Key = tuple[str, int]


def _receive(conn: Connection, messages: list[bytes], seconds: float, until: bytes = b"") -> None:
    """Collect messages for ``seconds``, until end of file, or until ``until`` arrives."""
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        if conn.poll(left):
            try:
                messages.append(conn.recv_bytes())
            except EOFError:
                return
            if messages[-1] == until:
                return


def _documents_on_disk(data: Path, problems: list[str]) -> dict[Key, str]:
    """Every document file as ``(brief, version) -> digest``; torn ones are problems."""
    found: dict[Key, str] = {}
    for brief_dir in sorted(data.iterdir()):
        if brief_dir.name.startswith(".") or not brief_dir.is_dir():
            continue
        for path in sorted(brief_dir.iterdir()):
            if is_temporary(path.name):
                continue
            raw = path.read_bytes()
            try:
                doc = StrategyDocument.from_json_bytes(raw)
            except ValueError as exc:
                problems.append(f"{path} is torn or invalid: {exc}")
                continue
            if f"{doc.brief_id}/{doc.version}.json" != f"{brief_dir.name}/{path.name}":
                problems.append(f"{path} holds {doc.key}")
            found[doc.key] = digest(raw)
    return found


def _check_locks_are_free(data: Path, problems: list[str]) -> None:
    for lock in sorted((data / ".locks").iterdir()):
        fd = os.open(lock, os.O_RDWR)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            problems.append(f"{lock} is still locked after its writer was killed")
        finally:
            os.close(fd)


def _kill_round(data: Path, rng: random.Random, round_no: int) -> list[bytes]:
    """Start a writer on ``data``, kill it at a random moment, return what it said."""
    ctx = context()
    receiver, sender = ctx.Pipe(duplex=False)
    # Every fourth round is durable, so both write paths meet the kill.
    durable = round_no % 4 == 0
    writer = ctx.Process(
        target=writer_stream,
        args=(str(data), sender, rng.randrange(2**32), durable, round_no * 100_000),
    )
    writer.start()
    sender.close()
    messages: list[bytes] = []
    _receive(receiver, messages, 60, until=b"ready")
    assert b"ready" in messages, f"round {round_no}: the writer never became ready"
    _receive(receiver, messages, rng.uniform(0.0, 0.05))
    writer.kill()
    writer.join(30)
    _receive(receiver, messages, 0.5)
    receiver.close()
    assert writer.exitcode == -9, f"round {round_no}: the writer exited with {writer.exitcode}"
    return messages


def _with(model: dict[Key, str], write: tuple[Key, str]) -> dict[Key, str]:
    key, what = write
    after = dict(model)
    if what == "-":
        after.pop(key, None)
    else:
        after[key] = what
    return after


def _replay(messages: list[bytes], model: dict[Key, str]) -> tuple[int, tuple[Key, str] | None]:
    """Apply each acknowledged write to ``model``; how many there were, and the one in flight."""
    acknowledged = 0
    pending: tuple[Key, str] | None = None
    for message in messages:
        text = message.decode()
        assert not text.startswith("mismatch"), text
        if text.startswith("intent "):
            _, brief, version, what = text.split()
            pending = ((brief, int(version)), what)
        elif text == "ack":
            assert pending is not None
            after = _with(model, pending)
            model.clear()
            model.update(after)
            acknowledged += 1
            pending = None
    return acknowledged, pending


def _check_after_kill(
    data: Path, model: dict[Key, str], pending: tuple[Key, str] | None
) -> list[str]:
    """Compare the disk with the acknowledged writes; take in the write in flight if it landed."""
    problems: list[str] = []
    found = _documents_on_disk(data, problems)
    if pending is not None and found == _with(model, pending):
        count("crash: unacknowledged writes found complete")
        model.clear()
        model.update(found)
    elif found != model:
        problems.append(f"disk {found} is neither the acknowledged state {model} nor one more")
        count("crash: acknowledged writes lost", sum(found.get(k) != v for k, v in model.items()))
    for brief in {b for b, _ in found}:
        versions = sorted(v for b, v in found if b == brief)
        if versions != list(range(1, len(versions) + 1)):
            problems.append(f"versions of {brief} are not contiguous: {versions}")
    _check_locks_are_free(data, problems)
    count("crash: torn files found", sum("torn" in p for p in problems))
    return problems


def test_a_writer_killed_at_random_moments_loses_no_acknowledged_write(tmp_path: Path) -> None:
    seed = random.randrange(2**32)
    rng = random.Random(seed)
    model: dict[Key, str] = {}
    data = tmp_path
    acknowledged = 0
    temporaries: set[str] = set()
    for round_no in range(scaled(200)):
        if round_no % ROUNDS_PER_DIRECTORY == 0:
            data = tmp_path / f"data-{round_no}"
            FileStore(data, durable=False)
            model = {}
            temporaries = set()
        where = f"round {round_no} (seed {seed})"
        messages = _kill_round(data, rng, round_no)
        acked, pending = _replay(messages, model)
        acknowledged += acked
        problems = _check_after_kill(data, model, pending)
        assert not problems, f"{where}: " + "; ".join(problems)
        left = set(temporary_files(data))
        count("crash: temporary files left by kills", len(left - temporaries))
        temporaries = left
        count("crash: kill rounds")
        count("crash: writes acknowledged before a kill", acked)

    assert acknowledged >= scaled(200), "too few writes were acknowledged to mean anything"
    count("crash: acknowledged writes lost", 0)
    survivor = FileStore(data, durable=False, lock_timeout=5.0)
    for brief in STREAM_BRIEFS:
        top = max((v for b, v in model if b == brief), default=0)
        assert survivor.create_next(brief).version == top + 1


def _copy(source: Path, target: Path) -> Path:
    shutil.copytree(source, target, symlinks=True)
    return target


def _leftovers(data: Path, state: dict[str, bytes]) -> list[str]:
    """What a crash left besides documents: neither temporary files nor empty directories."""
    odd = []
    for dirpath, dirnames, filenames in os.walk(data):
        rel = Path(dirpath).relative_to(data)
        if rel.parts[:1] == (".locks",):
            continue
        if rel.parts and not dirnames and not filenames:
            # A brief directory made just before the crash: with no document
            # in it, it is no brief, and git does not record it.
            continue
        odd += [
            (rel / n).as_posix()
            for n in filenames
            if not is_temporary(n) and (rel / n).as_posix() not in state
        ]
    return odd


@pytest.mark.parametrize("durable", [True, False], ids=["durable", "not-durable"])
@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_a_crash_at_any_io_step_leaves_the_old_or_the_new_state(
    scenario: str, durable: bool, base_dir: Path, tmp_path: Path
) -> None:
    old = disk_state(base_dir)
    reference = _copy(base_dir, tmp_path / "reference")
    SCENARIOS[scenario].run(FileStore(reference, durable=durable))
    new = disk_state(reference)
    assert new != old
    several = SCENARIOS[scenario].several
    ctx = context()
    for crash_at in range(1, 100):
        data = _copy(base_dir, tmp_path / f"crash-{crash_at}")
        worker = ctx.Process(target=crash_at_step, args=(str(data), scenario, durable, crash_at))
        worker.start()
        worker.join(60)
        assert worker.exitcode in (CRASHED, 0), f"step {crash_at}: exit {worker.exitcode}"
        state = disk_state(data)
        where = f"{scenario}, crash before step {crash_at}"
        if several:
            for path in old.keys() | new.keys() | state.keys():
                assert state.get(path) in (old.get(path), new.get(path)), f"{where}: {path} mixed"
        else:
            assert state in (old, new), f"{where}: the state is neither the old nor the new one"
        assert _leftovers(data, state) == [], where
        store = FileStore(data, durable=durable, lock_timeout=2.0)
        briefs = sorted({p.split("/")[0] for p in state if "/" in p})
        assert store.list_briefs() == briefs, where
        for brief in briefs:
            on_disk = {p for p in state if p.startswith(f"{brief}/")}
            assert len(store.list_versions_by_brief(brief)) == len(on_disk), where
        # The crashed writer's lock must not stand in the way of the next one.
        top = max(store.list_version_numbers("acme"))
        assert store.create_next("acme", now=T1).version == top + 1, where
        count("crash: crash points tried")
        if worker.exitcode == 0:
            assert state == new, f"{scenario}: the completed write left {state}"
            break
        count(f"crash: crashes leaving the {'new' if state == new else 'old'} state")
    else:  # pragma: no cover - a write with a hundred steps
        pytest.fail(f"{scenario} never completed")
