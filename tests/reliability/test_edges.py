"""Edges: 10 MB bodies, 10 000 versions of one brief, 10 000 briefs, stray leftovers."""

from __future__ import annotations

import gc
import os
import time
from pathlib import Path

import pytest

from strategystore import FileStore, InvalidBriefIdError, Section, Status
from tests.reliability._support import T0, T1, count, make_doc

MB = 1024 * 1024

#: Seconds a store may take to write 10 000 briefs, or 10 000 versions of one
#: brief, one by one: about 25 s and 5 s on a 2-core machine, while a write
#: whose cost grows with what is already stored takes many minutes.
BUDGET = 60.0


def _milliseconds(started: float) -> int:
    return round((time.monotonic() - started) * 1000)


def _within_budget(done: int, started: float, what: str) -> None:
    elapsed = time.monotonic() - started
    assert elapsed < BUDGET, (
        f"only {done} {what} written in {elapsed:.0f} s: each write costs more than the last"
    )


@pytest.mark.parametrize(
    "body",
    [
        "x" * (10 * MB),
        "é€😀" * (10 * MB // 9),
        ('"\\\n\t\x00\x1f</script>' * (10 * MB // 20)),
    ],
    ids=["ascii", "multi-byte", "escapes"],
)
def test_a_ten_megabyte_body_survives_every_kind_of_write(body: str, tmp_path: Path) -> None:
    store = FileStore(tmp_path / "data")
    big = [Section(key="body", title="Everything", body=body)]
    started = time.monotonic()
    first = store.create_next("huge", big, {"size": len(body)}, now=T0)
    assert store.get_strategy("huge", 1) == first
    store.save(make_doc("huge", 2, sections=big))
    changed = make_doc("huge", 2, sections=big, metadata={"changed": True})
    store.update(changed, expected=make_doc("huge", 2, sections=big))
    approved = store.approve("huge", 1, now=T1)
    assert approved.sections[0].body == body
    assert [d.version for d in store.list_versions_by_brief("huge")] == [2, 1]
    assert (tmp_path / "data" / "huge" / "1.json").stat().st_size >= len(body.encode())
    assert store.get_latest("huge", status=Status.APPROVED) == approved
    assert _milliseconds(started) < 30_000
    count("edge: 10 MB bodies written and read back")


def test_ten_thousand_versions_of_one_brief_stay_listable_and_writable(tmp_path: Path) -> None:
    store = FileStore(tmp_path / "data", durable=False)
    started = time.monotonic()
    for version in range(1, 10_001):
        store.save(make_doc("long", version, metadata={"n": version}))
        if version % 250 == 0:
            _within_budget(version, started, "versions")
    count("edge: ms to save 10 000 versions of one brief", _milliseconds(started))
    started = time.monotonic()
    created = store.create_next("long", now=T1)
    assert created.version == 10_001
    assert time.monotonic() - started < 1.0
    assert store.list_version_numbers("long") == list(range(10_001, 0, -1))
    started = time.monotonic()
    every = store.list_versions_by_brief("long")
    count("edge: ms to read 10 001 versions of one brief", _milliseconds(started))
    assert [d.version for d in every] == list(range(10_001, 0, -1))
    assert every[-1] == make_doc("long", 1, metadata={"n": 1})
    assert store.delete("long", 5_000)
    assert store.create_next("long", now=T1).version == 10_002
    assert store.get_latest("long") == store.get_strategy("long", 10_002)
    assert len(store.list_version_numbers("long")) == 10_001
    count("edge: versions in one brief", 10_002)


def test_ten_thousand_briefs_are_created_listed_and_read_in_reasonable_time(
    tmp_path: Path,
) -> None:
    store = FileStore(tmp_path / "data", durable=False)
    names = [f"brief-{n:05d}" for n in range(10_000)]
    started = time.monotonic()
    for n, name in enumerate(names):
        store.save(make_doc(name, 1))
        if n % 250 == 0:
            _within_budget(n, started, "briefs")
    count("edge: ms to create 10 000 briefs one by one", _milliseconds(started))
    started = time.monotonic()
    assert store.list_briefs() == names
    assert _milliseconds(started) < 10_000
    assert store.get_strategy("brief-04321", 1) == make_doc("brief-04321", 1)
    assert store.create_next("brief-09999", now=T1).version == 2
    with pytest.raises(InvalidBriefIdError, match="differs only by letter case"):
        store.create_next("BRIEF-00042")
    count("edge: briefs in one store", len(names))


def test_a_brief_directory_kept_by_a_stray_file_does_not_let_a_case_variant_in(
    tmp_path: Path,
) -> None:
    store = FileStore(tmp_path / "data", durable=False)
    store.create_next("acme")
    (tmp_path / "data" / "acme" / "notes.md").write_text("kept by hand\n")
    assert store.delete("acme", 1)
    store.create_next("ACME")
    with pytest.raises(InvalidBriefIdError, match="differs only by letter case"):
        store.create_next("acme")
    assert store.list_briefs() == ["ACME"]


def _open_descriptors() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


def test_a_store_that_is_gone_leaves_no_descriptor_open(tmp_path: Path) -> None:
    if not Path("/proc/self/fd").is_dir():
        pytest.skip("needs /proc to count descriptors")
    before = _open_descriptors()
    for n in range(20):
        store = FileStore(tmp_path / f"data-{n}")
        store.create_next("acme")
        store.save(make_doc("acme", 2))
        store.approve("acme", 1)
        store.delete("acme", 2)
        store.list_versions_by_brief("acme")
        store.import_documents([make_doc("beta", 1)])
    del store
    gc.collect()
    leaked = _open_descriptors() - before
    assert not leaked, f"{len(leaked)} descriptors left open by 20 stores no longer in use"
