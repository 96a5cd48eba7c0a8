"""Power loss, modelled: with ``durable=True`` every write that returned survives a cut."""

from __future__ import annotations

import errno
import os
import random
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

import strategystore._fsio
import strategystore._syncfs
from strategystore import FileStore, MemoryStore
from strategystore.store import BaseStore
from tests.reliability._powerloss import Cut, PowerLossRecorder, recording_syncfs, violations
from tests.reliability._support import T0, T1, changed, count, disk_state, make_doc, scaled
from tests.reliability._workers import StreamOp, run_stream_op, stream_choices

Write = Callable[[BaseStore], object]

#: Every kind of write, a new brief and the removal of one included.
EVERY_KIND_OF_WRITE: list[Write] = [
    lambda s: s.create_next("alpha", now=T0),
    lambda s: s.create_next("alpha", now=T0),
    lambda s: s.save(make_doc("alpha", 3)),
    lambda s: s.save(changed(make_doc("alpha", 3))),
    lambda s: s.update(
        changed(make_doc("alpha", 3), "again"), expected=changed(make_doc("alpha", 3))
    ),
    lambda s: s.approve("alpha", 1, now=T1),
    lambda s: s.reject("alpha", 2, reason="no", now=T1),
    lambda s: s.withdraw("alpha", 1, reason="recalled", now=T1),
    lambda s: s.create(make_doc("beta", 1)),
    lambda s: s.create_next("beta", now=T0),
    lambda s: s.delete("alpha", 3),
    lambda s: s.delete("beta", 2),
    lambda s: s.delete("beta", 1),
    lambda s: s.import_documents(
        [make_doc("gamma", 1), make_doc("gamma", 2), make_doc("alpha", 3)]
    ),
    lambda s: s.create_next("beta", now=T0),
]


def _random_writes(seed: int, length: int) -> list[Write]:
    """A random stream of writes, planned on a ``MemoryStore`` so each one is valid."""
    rng = random.Random(seed)
    planner = MemoryStore()
    writes: list[Write] = []
    for n in range(length):
        op = rng.choice(stream_choices(planner, rng))
        now = T1.replace(second=n % 60, minute=n // 60)
        run_stream_op(planner, op, now)
        writes.append(_stream_write(op, now))
    return writes


def _stream_write(op: StreamOp, now: datetime) -> Write:
    def write(store: BaseStore) -> object:
        return run_stream_op(store, op, now)

    return write


def _record(
    data: Path,
    writes: list[Write],
    monkeypatch: pytest.MonkeyPatch,
    *,
    durable: bool,
    skip_dir_fsync: bool = False,
    skip_file_fsync: bool = False,
) -> tuple[list[Cut], list[dict[str, bytes]]]:
    """Run ``writes`` under a recorder; the cuts, and the state after each write returned."""
    store = FileStore(data, durable=durable)
    recorder = PowerLossRecorder(
        data, skip_dir_fsync=skip_dir_fsync, skip_file_fsync=skip_file_fsync
    )
    states = [disk_state(data)]
    with monkeypatch.context() as patch:
        patch.setattr(strategystore._fsio, "os", recorder.os)
        syncfs = recording_syncfs(recorder, strategystore._syncfs.syncfs)
        patch.setattr(strategystore._syncfs, "syncfs", syncfs)
        for write in writes:
            recorder.begin()
            write(store)
            recorder.acknowledge()
            states.append(disk_state(data))
    return recorder.cuts, states


def _describe(found: list[tuple[Cut, str, str]]) -> str:
    return "; ".join(
        f"cut after {cut.after} (write {cut.acknowledged + 1}): {path} {what}"
        for cut, path, what in found[:5]
    )


def _sequences() -> list[list[Write]]:
    return [EVERY_KIND_OF_WRITE] + [_random_writes(seed, 40) for seed in range(scaled(3))]


def test_with_durable_writes_every_returned_write_survives_a_power_cut_at_any_moment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n, writes in enumerate(_sequences()):
        cuts, states = _record(tmp_path / f"data-{n}", writes, monkeypatch, durable=True)
        assert len(cuts) > 5 * len(writes)
        for model in ("strict", "eager_names"):
            found = violations(cuts, states, model, in_flight=False)
            assert found == [], f"sequence {n}, {model} model: {_describe(found)}"
        count("power: cuts simulated with durable=True", 2 * len(cuts))
        count("power: writes checked with durable=True", len(writes))
    count("power: returned writes lost with durable=True", 0)


def test_with_durable_writes_a_power_cut_mid_write_leaves_each_document_old_or_new(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n, writes in enumerate(_sequences()):
        cuts, states = _record(tmp_path / f"data-{n}", writes, monkeypatch, durable=True)
        for model in ("strict", "eager_names"):
            found = violations(cuts, states, model, in_flight=True)
            count("power: documents torn mid-write with durable=True", len(found))
            assert found == [], f"sequence {n}, {model} model: {_describe(found)}"


def test_without_durable_writes_a_power_cut_loses_returned_writes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cuts, states = _record(tmp_path / "data", EVERY_KIND_OF_WRITE, monkeypatch, durable=False)
    lost = violations(cuts, states, "strict", in_flight=False)
    torn = [v for v in violations(cuts, states, "eager_names", in_flight=False) if v[2] == "empty"]
    final = [v for v in lost if v[0] is cuts[-1]]
    assert final, "with durable=False the model should lose the returned writes"
    assert torn, "with durable=False a name may outlive its data: the model should see empty files"
    count("power: files lost at the last cut with durable=False", len(final))
    count("power: torn files seen with durable=False", len(torn))


def test_the_model_catches_a_store_that_skips_the_directory_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cuts, states = _record(
        tmp_path / "data", EVERY_KIND_OF_WRITE, monkeypatch, durable=True, skip_dir_fsync=True
    )
    assert violations(cuts, states, "strict", in_flight=False), "unsynced renames must be lost"
    assert violations(cuts, states, "eager_names", in_flight=False) == []


def test_the_model_catches_a_store_that_skips_the_file_fsync(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cuts, states = _record(
        tmp_path / "data", EVERY_KIND_OF_WRITE, monkeypatch, durable=True, skip_file_fsync=True
    )
    found = violations(cuts, states, "eager_names", in_flight=False)
    torn = [v for v in found if v[2] == "empty"]
    assert torn, "a published name whose data was never fsynced must show as an empty file"


def _cut_after_failed_staging(
    data: Path, monkeypatch: pytest.MonkeyPatch, *, fail: bool, syncfs: bool
) -> tuple[list[Cut], list[dict[str, bytes]], FileStore]:
    """An import that fails part-way (or, with ``fail=False``, a crashed one), then a save.

    The import's brief directories were made by a writer that never made
    them durable; the durable ``save`` that follows must, whoever made them.
    """
    store = FileStore(data)
    recorder = PowerLossRecorder(data)
    states = [disk_state(data)]
    with monkeypatch.context() as patch:
        patch.setattr(strategystore._fsio, "os", recorder.os)
        patch.setattr(
            strategystore._syncfs,
            "syncfs",
            recording_syncfs(recorder, strategystore._syncfs.syncfs) if syncfs else lambda _: False,
        )
        temporaries = [0]

        def no_space_for_the_second(step: str, path: Path) -> None:
            if step == "temp-create":
                temporaries[0] += 1
                if temporaries[0] == 2:
                    raise OSError(errno.ENOSPC, "No space left on device", str(path))
            if step == "stage-sync" and not fail:
                raise KeyboardInterrupt  # the process dies here, its directories left

        store.on_step = no_space_for_the_second
        recorder.begin()
        with pytest.raises((OSError, KeyboardInterrupt)):
            store.import_documents([make_doc("fresh-a", 1), make_doc("fresh-b", 1)])
        store.on_step = None
        recorder.acknowledge()
        states.append(disk_state(data))
        recorder.begin()
        FileStore(data).save(make_doc("fresh-a", 1))
        recorder.acknowledge()
        states.append(disk_state(data))
    return recorder.cuts, states, store


@pytest.mark.parametrize(
    ("fail", "syncfs"),
    [(True, True), (True, False), (False, True), (False, False)],
    ids=["failed import", "failed import without syncfs", "killed import", "killed without syncfs"],
)
def test_a_durable_save_into_a_directory_an_import_left_behind_survives_a_power_cut(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail: bool, syncfs: bool
) -> None:
    cuts, states, _ = _cut_after_failed_staging(
        tmp_path / "data", monkeypatch, fail=fail, syncfs=syncfs
    )
    last = cuts[-1]
    assert last.strict.get("fresh-a/1.json") == make_doc("fresh-a", 1).to_json_bytes()
    found = violations(cuts, states, "strict", in_flight=False)
    assert found == [], _describe(found)
    count("power: saves into directories an interrupted import made, kept", 1)


def test_a_failed_import_leaves_no_empty_brief_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    _cut_after_failed_staging(data, monkeypatch, fail=True, syncfs=False)
    assert sorted(p.name for p in data.iterdir() if not p.name.startswith(".")) == [
        "fresh-a",
        "strategystore.json",
    ]


class _CoarseCtime:
    """An ``os`` whose ``fstat`` gives ctimes only to the grain of a coarser file system."""

    def __init__(self, inner: Any, grain_ns: int) -> None:
        self._inner = inner
        self._grain = grain_ns

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def fstat(self, fd: int) -> os.stat_result:
        info = self._inner.fstat(fd)
        fields = list(info)
        coarse = info.st_ctime_ns // self._grain * self._grain
        return os.stat_result(
            (*fields[:9], coarse / 1e9),
            {"st_ctime_ns": coarse}
            | {
                name: getattr(info, name)
                for name in ("st_atime", "st_mtime", "st_atime_ns", "st_mtime_ns")
            },
        )


@pytest.mark.parametrize(
    "grain_ns", [1, 1_000_000_000], ids=["ctime as the kernel gives it", "whole-second ctime"]
)
def test_a_brief_directory_removed_and_made_again_by_another_writer_is_made_durable(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, grain_ns: int
) -> None:
    # With a coarse ctime a directory removed and made again at once, under
    # the inode number the old one had, would show the same ctime too.
    data = tmp_path / "data"
    store = FileStore(data)
    monkeypatch.setattr(strategystore._fsio, "os", _CoarseCtime(os, grain_ns))
    for round_no in range(scaled(5)):
        store.save(make_doc("acme", 1))  # this store now knows acme/ durable
        FileStore(data).delete("acme", 1)  # the brief goes, its directory too
        recorder = PowerLossRecorder(data)
        with monkeypatch.context() as patch:
            patch.setattr(strategystore._fsio, "os", _CoarseCtime(recorder.os, grain_ns))
            # Made again by a writer that never makes it durable.
            FileStore(data, durable=False).save(make_doc("acme", 1))
            recorder.begin()
            store.save(make_doc("acme", 2))
            recorder.acknowledge()
        survivors = recorder.cuts[-1].strict
        assert survivors.get("acme/2.json") == make_doc("acme", 2).to_json_bytes(), round_no
        count("power: saves into a directory removed and made again", 1)
        FileStore(data).delete("acme", 2)
        FileStore(data).delete("acme", 1)
