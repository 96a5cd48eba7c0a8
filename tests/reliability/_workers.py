"""Code that runs in worker processes: writers to kill, crashers, lock holders, racers.

Workers start from a ``forkserver`` that has already imported this module
and strategystore, so a new process costs a few milliseconds instead of a
fresh interpreter; that is what makes hundreds of kill rounds and races
affordable. Nothing here imports pytest.
"""

from __future__ import annotations

import contextlib
import errno
import multiprocessing
import multiprocessing.context
import multiprocessing.pool
import multiprocessing.synchronize
import os
import random
import shutil
import time
from collections.abc import Callable, Iterator
from datetime import timedelta
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from strategystore import (
    ConcurrentUpdateError,
    DuplicateVersionError,
    FileStore,
    MemoryStore,
    Status,
    StrategyDocument,
)
from strategystore.store import BaseStore
from tests.reliability._linearizability import Op, Outcome, apply
from tests.reliability._support import SCENARIOS, T0, T1, changed, digest, make_doc

#: Exit status of a worker that crashed itself on purpose.
CRASHED = 86

_CONTEXT: list[multiprocessing.context.ForkServerContext] = []


def context() -> multiprocessing.context.ForkServerContext:
    """The multiprocessing context every reliability test starts workers from."""
    if not _CONTEXT:
        ctx = multiprocessing.get_context("forkserver")
        # The forkserver skips a module it cannot import, so this costs the
        # file tests nothing where psycopg is not installed.
        ctx.set_forkserver_preload([__name__, "strategystore.postgres"])
        _CONTEXT.append(ctx)
    return _CONTEXT[0]


@contextlib.contextmanager
def racing_pool(processes: int) -> Iterator[multiprocessing.pool.Pool]:
    """``processes`` workers whose tasks start together (see ``init_racer``)."""
    ctx = context()
    pool = ctx.Pool(processes, initializer=init_racer, initargs=(ctx.Barrier(processes),))
    try:
        yield pool
    except BaseException:
        # Tasks may still wait at the barrier for a racer that failed.
        pool.terminate()
        raise
    else:
        pool.close()
    finally:
        pool.join()


def race(pool: multiprocessing.pool.Pool, task: Callable[..., Any], args: list[Any]) -> list[Any]:
    """Run ``task`` once per argument tuple, each in its own worker; what each returned."""
    return pool.starmap_async(task, args, chunksize=1).get(timeout=300)


#: Where racers write: a data directory, or a PostgreSQL DSN and a table.
Where = str | tuple[str, str]

#: This process's ``PostgresStore`` for each (DSN, table), kept for later tasks.
_PG_STORES: dict[tuple[str, str], BaseStore] = {}


def racer_store(where: Where, *, durable: bool, lock_timeout: float = 60.0) -> BaseStore:
    """The store a racer writes through.

    For a data directory, a new ``FileStore`` on it. For ``(dsn, table)``, this
    process's own ``PostgresStore`` (with its own pool), opened by the
    process's first task and kept, as a worker on another machine would keep
    it; ``durable`` is the server's business there.
    """
    if isinstance(where, str):
        return FileStore(where, durable=durable, lock_timeout=lock_timeout)
    if where not in _PG_STORES:
        from strategystore.postgres import PostgresStore  # noqa: PLC0415 - needs the extra

        # A new table means a new test: the store of the last one is done.
        for done in _PG_STORES.values():
            done.close()
        _PG_STORES.clear()
        dsn, table = where
        _PG_STORES[where] = PostgresStore(dsn, table=table, lock_timeout=lock_timeout)
    return _PG_STORES[where]


# -- a stream of writes, killed at random ------------------------------------

STREAM_BRIEFS = ("kill-a", "kill-b", "kill-c", "kill-d", "kill-e", "kill-f")
STREAM_CAP = 12

#: ``(method, brief, version, tag)``; version 0 where the store picks it.
StreamOp = tuple[str, str, int, str]


def stream_choices(mirror: MemoryStore, rng: random.Random) -> list[StreamOp]:
    tag = f"t{rng.randrange(10**6)}"
    choices: list[StreamOp] = []
    for brief in STREAM_BRIEFS:
        docs = mirror.list_versions_by_brief(brief)
        top = len(docs)
        if top < STREAM_CAP:
            choices += [("create_next", brief, 0, tag)] * 3
            choices += [("create", brief, top + 1, tag), ("save", brief, top + 1, tag)]
        for doc in docs:
            if doc.status is Status.DRAFT:
                for method in ("save", "update", "approve", "reject"):
                    choices.append((method, brief, doc.version, tag))
            elif doc.status is Status.APPROVED:
                choices.append(("withdraw", brief, doc.version, tag))
        # Only the newest version is ever deleted, so versions stay 1..n.
        if docs and docs[0].status is Status.DRAFT:
            choices += [("delete", brief, top, tag)] * 2
    return choices


def run_stream_op(store: BaseStore, op: StreamOp, now: Any) -> object:
    """Apply one operation of the kill stream to ``store``."""
    method, brief, version, tag = op
    if method == "create_next":
        return store.create_next(brief, metadata={"tag": tag}, now=now)
    if method == "create":
        store.create(make_doc(brief, version, metadata={"tag": tag}))
        return None
    if method == "save":
        store.save(make_doc(brief, version, metadata={"tag": tag}))
        return None
    if method == "update":
        current = store.get_strategy(brief, version)
        assert current is not None
        store.update(changed(current, tag), expected=current)
        return None
    if method == "approve":
        return store.approve(brief, version, now=now)
    if method == "reject":
        return store.reject(brief, version, reason=tag, now=now)
    if method == "withdraw":
        return store.withdraw(brief, version, reason=tag, now=now)
    if method == "delete":
        return store.delete(brief, version)
    raise AssertionError(f"unknown method {method}")  # pragma: no cover


def _comparable(value: object) -> object:
    return value.to_json_bytes() if isinstance(value, StrategyDocument) else value


def writer_stream(
    data_dir: str, conn: Connection, seed: int, durable: bool, clock_start: int
) -> None:
    """Write forever, announcing each write before it starts and after it returns.

    Messages: ``ready``; ``intent BRIEF VERSION DIGEST`` (``-`` for a
    deletion) before a write; ``ack`` once it returned; ``saturated`` when
    nothing is left to write. The parent kills this process at random.
    A ``MemoryStore`` mirror, loaded from the disk, computes each write's
    outcome first, so the intent names exactly what the write will leave.
    """
    rng = random.Random(seed)
    store = FileStore(data_dir, durable=durable, lock_timeout=10.0)
    mirror = MemoryStore()
    for brief in store.list_briefs():
        for doc in store.list_versions_by_brief(brief):
            mirror.save(doc)
    conn.send_bytes(b"ready")
    clock = clock_start
    while True:
        choices = stream_choices(mirror, rng)
        if not choices:
            conn.send_bytes(b"saturated")
            time.sleep(60)
            continue
        clock += 1
        now = T0 + timedelta(seconds=clock)
        op = rng.choice(choices)
        expected = run_stream_op(mirror, op, now)
        version = expected.version if isinstance(expected, StrategyDocument) else op[2]
        after = mirror.get_strategy(op[1], version)
        what = "-" if after is None else digest(after.to_json_bytes())
        conn.send_bytes(f"intent {op[1]} {version} {what}".encode())
        actual = run_stream_op(store, op, now)
        if _comparable(actual) != _comparable(expected):
            conn.send_bytes(f"mismatch {op} returned {actual!r}, model {expected!r}".encode())
            os._exit(3)
        conn.send_bytes(b"ack")


# -- crashing at an exact step -----------------------------------------------


def crash_at_step(data_dir: str, scenario: str, durable: bool, crash_at: int) -> None:
    """Run a scenario and die (``os._exit``) just before its ``crash_at``-th I/O step.

    Exits normally when the write has fewer steps: then it completed.
    """
    store = FileStore(data_dir, durable=durable, lock_timeout=10.0)
    steps = 0

    def crash(step: str, path: Path) -> None:
        nonlocal steps
        steps += 1
        if steps == crash_at:
            os._exit(CRASHED)

    store.on_step = crash
    SCENARIOS[scenario].run(store)


# -- holding a lock ----------------------------------------------------------


def hold_lock(data_dir: str, brief: str, conn: Connection, step: str) -> None:
    """Start a ``create_next`` and stop at ``step`` with the brief's lock held.

    Says ``holding`` there and waits for any message before finishing (or
    for the parent to kill it); says ``done`` once the write returned.
    """
    store = FileStore(data_dir, durable=True, lock_timeout=10.0)

    def pause(name: str, path: Path) -> None:
        if name == step:
            conn.send_bytes(b"holding")
            conn.recv_bytes()

    store.on_step = pause
    store.create_next(brief, now=T1)
    conn.send_bytes(b"done")


def write_as_nobody(data_dir: str, conn: Connection) -> None:
    """As the unprivileged user ``nobody``, read a document, then try three writes.

    Reports ``read ok``, then for each write the exception class and errno
    name it raised (or ``written``).
    """
    # Whatever loads lazily (pydantic builds a model's validator on first use)
    # is loaded first: the interpreter's own files may be out of nobody's reach.
    store = FileStore(data_dir, create=False)
    expected = make_doc("acme", 1)
    store.get_strategy("acme", 1)
    os.setgid(65534)
    os.setuid(65534)
    read = store.get_strategy("acme", 1) == expected
    conn.send_bytes(b"read ok" if read else b"read wrong")
    writes: list[Callable[[], object]] = [
        lambda: store.save(make_doc("acme", 2)),
        lambda: store.create_next("acme"),
        lambda: store.create_next("brand-new"),
    ]
    for write in writes:
        try:
            write()
        except OSError as exc:
            name = errno.errorcode.get(exc.errno or 0, str(exc.errno))
            conn.send_bytes(f"{type(exc).__name__} {name}".encode())
        else:
            conn.send_bytes(b"written")


def save_as_nobody(data_dir: str, conn: Connection) -> None:
    """As the unprivileged user ``nobody`` (umask 002), save version 2 of ``acme``.

    Reports ``written``, or the exception class and message it raised.
    """
    store = FileStore(data_dir, create=False)
    doc = make_doc("acme", 2)
    store.get_strategy("acme", 1)
    os.umask(0o002)
    os.setgid(65534)
    os.setuid(65534)
    try:
        store.save(doc)
    except Exception as exc:  # the outcome is the report
        conn.send_bytes(f"{type(exc).__name__}: {exc}".encode())
    else:
        conn.send_bytes(b"written")


# -- racers (pool workers released together by a barrier) --------------------

_RACE: dict[str, multiprocessing.synchronize.Barrier] = {}


def init_racer(barrier: multiprocessing.synchronize.Barrier) -> None:
    """Pool initializer: keep the barrier every task waits at."""
    _RACE["barrier"] = barrier


def _start_together() -> None:
    # Each task holds its worker until all have arrived, so the N tasks of a
    # round always run in N distinct processes.
    _RACE["barrier"].wait(timeout=120)


def race_create(where: Where, brief: str, index: int, durable: bool) -> tuple[str, bytes, int]:
    """Create version 1 of ``brief``; say whether this process won, and with what."""
    store = racer_store(where, durable=durable)
    doc = make_doc(brief, 1, metadata={"writer": index})
    _start_together()
    try:
        store.create(doc)
    except DuplicateVersionError as exc:
        return ("duplicate", exc.existing.to_json_bytes(), os.getpid())
    return ("won", doc.to_json_bytes(), os.getpid())


def race_create_next(
    where: Where, brief: str, index: int, durable: bool, count: int
) -> list[bytes]:
    """``count`` ``create_next``s on ``brief``; what each returned."""
    store = racer_store(where, durable=durable)
    _start_together()
    return [
        store.create_next(brief, metadata={"writer": index, "n": n}).to_json_bytes()
        for n in range(count)
    ]


def race_update(where: Where, brief: str, index: int, durable: bool) -> tuple[str, bytes]:
    """Update version 1 expecting the seeded document; say whether this process won."""
    store = racer_store(where, durable=durable)
    expected = make_doc(brief, 1)
    doc = changed(expected, f"writer-{index}")
    _start_together()
    try:
        store.update(doc, expected=expected)
    except ConcurrentUpdateError as exc:
        return ("conflict", exc.current.to_json_bytes())
    return ("won", doc.to_json_bytes())


def race_delete_or_create_next(
    where: Where, brief: str, index: int, durable: bool
) -> tuple[str, list[Any]]:
    """Half the tasks delete versions 1, 2, 1 and 3; the others call ``create_next`` twice."""
    store = racer_store(where, durable=durable)
    _start_together()
    if index % 2 == 0:
        return ("deleter", [(v, store.delete(brief, v)) for v in (1, 2, 1, 3)])
    return ("creator", [store.create_next(brief).to_json_bytes() for _ in range(2)])


def race_read_write(
    data_dir: str, brief: str, index: int, durable: bool, writes: int
) -> tuple[str, int, list[bytes]]:
    """Even tasks write, odd tasks read until every writer is done.

    Writers return every document they may have stored; readers return every
    document they saw. Any exception fails the round.
    """
    store = FileStore(data_dir, durable=durable, lock_timeout=60.0)
    passing = f"{brief}-tmp"
    done = Path(data_dir) / f".done-{brief}"
    _start_together()
    if index % 2 == 0:
        try:
            return ("writer", writes, _write_for_readers(store, brief, passing, index, writes))
        finally:
            # Even a failed writer says it is done, so the readers stop.
            done.mkdir(exist_ok=True)
            (done / str(index)).touch()
    return _read_until_writers_finish(store, brief, passing, done)


def _write_for_readers(
    store: FileStore, brief: str, passing: str, index: int, writes: int
) -> list[bytes]:
    wrote: list[bytes] = []
    mine: list[int] = []
    for j in range(writes):
        kind = j % 6
        if kind == 0:
            doc = make_doc(brief, 1, metadata={"writer": index, "j": j})
            wrote.append(doc.to_json_bytes())
            store.save(doc)
        elif kind == 1:
            created = store.create_next(brief, metadata={"writer": index, "j": j})
            wrote.append(created.to_json_bytes())
            mine.append(created.version)
        elif kind == 2:
            current = store.get_strategy(brief, 1)
            assert current is not None
            new = changed(current, f"{index}-{j}")
            wrote.append(new.to_json_bytes())
            with contextlib.suppress(ConcurrentUpdateError):
                store.update(new, expected=current)
        elif kind == 3 and mine:
            wrote.append(store.approve(brief, mine[-1]).to_json_bytes())
        elif kind == 4:
            temporary = store.create_next(passing, metadata={"writer": index})
            wrote.append(temporary.to_json_bytes())
            assert store.delete(passing, temporary.version)
        else:
            extra = store.create_next(brief, metadata={"writer": index, "j": j, "gone": True})
            wrote.append(extra.to_json_bytes())
            assert store.delete(brief, extra.version)
    return wrote


def _read_until_writers_finish(
    store: FileStore, brief: str, passing: str, done: Path
) -> tuple[str, int, list[bytes]]:
    seen: set[bytes] = set()
    reads = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        finished = len(os.listdir(done)) if done.exists() else 0
        found: list[StrategyDocument | None] = [
            store.get_strategy(brief, 1),
            store.get_latest(brief),
            store.get_latest(brief, status=Status.APPROVED),
            store.get_strategy(passing, 1),
        ]
        history = store.list_versions_by_brief(brief)
        numbers = store.list_version_numbers(brief)
        assert numbers == sorted(set(numbers), reverse=True), numbers
        versions = [d.version for d in history]
        assert versions == sorted(set(versions), reverse=True), versions
        found += history + store.list_versions_by_brief(passing)
        store.list_briefs()
        reads += 8
        seen.update(d.to_json_bytes() for d in found if d is not None)
        if finished >= 4:
            return ("reader", reads, sorted(seen))
    raise AssertionError("the writers did not finish within 120 s")


def run_history(
    where: Where, brief: str, process: int, ops: list[Op], pause: float
) -> list[tuple[int, int, int, Op, Outcome]]:
    """Run ``ops`` on a store of this process's own and time each one.

    Sleeps ``pause`` seconds halfway through.
    """
    store = racer_store(where, durable=False)
    events = []
    _start_together()
    for n, op in enumerate(ops):
        if n == len(ops) // 2:
            # Every process pauses here together, so the second half still
            # races, on files old enough for the read caches to trust.
            time.sleep(pause)
        invoked = time.monotonic_ns()
        outcome = apply(store, brief, op)
        events.append((process, invoked, time.monotonic_ns(), op, outcome))
    return events


# -- writers while .locks/ keeps being removed ---------------------------------


def cas_increments(data_dir: str, brief: str, updates: int) -> int:
    """Add 1 to the draft's ``count`` ``updates`` times by compare-and-swap.

    Returns how many updates the store acknowledged (always ``updates``).
    """
    store = FileStore(data_dir, durable=False, lock_timeout=30.0)
    done = 0
    while done < updates:
        current = store.get_strategy(brief, 1)
        assert current is not None
        count = current.metadata["count"]
        assert isinstance(count, int)
        new = current.model_copy(update={"metadata": {"count": count + 1}})
        try:
            store.update(new, expected=current)
        except ConcurrentUpdateError:
            continue
        done += 1
    return done


def create_next_many(data_dir: str, brief: str, count: int) -> list[int]:
    """``count`` versions from ``create_next``, as numbered."""
    store = FileStore(data_dir, durable=False, lock_timeout=30.0)
    return [store.create_next(brief).version for _ in range(count)]


def remove_locks_until(
    data_dir: str, stop: multiprocessing.synchronize.Event, conn: Connection, how: str
) -> None:
    """Remove or replace ``.locks/`` and its files again and again until ``stop``.

    ``how`` is ``remove`` (as ``git clean -X`` does), ``touch`` (each lock
    file removed and made again empty, by hand), ``copy`` (each replaced by a
    copy of itself) or ``swap`` (the directory moved aside and a new one made
    with the same file names). Sends how many times it changed something.
    """
    changed = 0
    locks = Path(data_dir, ".locks")
    aside = Path(data_dir, ".locks-aside")
    while not stop.is_set():
        with contextlib.suppress(OSError):
            if how == "remove":
                for path in locks.glob("*"):
                    with contextlib.suppress(OSError):
                        path.unlink()
                locks.rmdir()
            elif how in ("touch", "copy"):
                for path in locks.glob("*.lock"):
                    content = path.read_bytes() if how == "copy" else b""
                    path.unlink()
                    path.write_bytes(content)
            else:
                names = [path.name for path in locks.glob("*.lock")]
                shutil.rmtree(aside, ignore_errors=True)
                locks.rename(aside)
                locks.mkdir()
                for name in names:
                    (locks / name).write_bytes((aside / name).read_bytes())
            changed += 1
    conn.send(changed)


def list_as_nobody(data_dir: str, conn: Connection) -> None:
    """As the unprivileged user ``nobody``: ``list_briefs``, then ``export``, ``briefs``, ``check``.

    Sends ``{"list_briefs": [...], "export": (status, stdout, stderr), ...}``.
    """
    import io  # noqa: PLC0415 - only this worker captures output

    from strategystore.cli import main  # noqa: PLC0415 - loaded before dropping privileges

    def run(*argv: str) -> tuple[int, str, str]:
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            status = main(["--dir", data_dir, *argv])
        return status, out.getvalue(), err.getvalue()

    # Whatever loads lazily is loaded while the interpreter's files are in reach.
    for argv in (["export"], ["briefs"], ["check"]):
        run(*argv)
    os.setgid(65534)
    os.setuid(65534)
    store = FileStore(data_dir, create=False)
    results: dict[str, object] = {"list_briefs": store.list_briefs()}
    for command in ("export", "briefs", "check"):
        results[command] = run(command)
    conn.send(results)
