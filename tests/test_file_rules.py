"""A document file states every field and repeats no key; the store and ``check`` agree.

A careless hand merge, or a conflict "resolved" by deleting only the marker
lines, leaves a key twice; JSON readers keep the last, so a file could read
as a draft while it says "approved" too. Such files, and files with a field
left out, are corrupt in the store and problems in ``check``.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from strategystore import CorruptDocumentError, FileStore, ImmutableVersionError, Status
from strategystore.check import DataDirCheck
from strategystore.cli import main
from tests.conftest import make_doc

GOOD = make_doc("acme", 1, status=Status.APPROVED).to_json_bytes().decode()


@pytest.fixture
def store(tmp_path: Path) -> FileStore:
    store = FileStore(tmp_path / "data", durable=False)
    store.create(make_doc("acme", 1, status=Status.APPROVED))
    store.create(make_doc("acme", 2))
    return store


def _write(store: FileStore, text: str) -> Path:
    path = store.data_dir / "acme" / "1.json"
    path.write_text(text)
    return path


REPEATED = {
    "status": GOOD.replace('"status": "approved",', '"status": "approved",\n  "status": "draft",'),
    "a metadata key": GOOD.replace('"model": "gpt",', '"model": "gpt",\n    "model": "other",'),
    "a key spelled with an escape": GOOD.replace(
        '"model": "gpt",', '"model": "gpt",\n    "m\\u006fdel": "other",'
    ),
    "a section field": GOOD.replace('"body": "Grow **fast**."', '"body": "a",\n "body": "b"'),
}


@pytest.mark.parametrize("kind", list(REPEATED))
def test_a_repeated_key_is_corrupt_naming_the_key_and_its_line(store: FileStore, kind: str) -> None:
    text = REPEATED[kind]
    path = _write(store, text)
    with pytest.raises(CorruptDocumentError) as refused:
        store.get_strategy("acme", 1)
    repeated_line = next(
        n
        for n, line in enumerate(text.splitlines(), start=1)
        if n > 1 and _key(line) is not None and _key(line) in _keys_before(text, n)
    )
    assert f"{repeated_line}" in refused.value.reason
    assert "twice" in refused.value.reason
    assert refused.value.path == path


def _key(line: str) -> str | None:
    stripped = line.strip()
    if not stripped.startswith('"') or '":' not in stripped:
        return None
    return str(json.loads(stripped.split(":", 1)[0]))


def _keys_before(text: str, number: int) -> set[str]:
    lines = text.splitlines()[: number - 1]
    return {k for k in map(_key, lines[-6:]) if k is not None}


def test_a_repeated_status_never_lets_delete_remove_an_approved_version(store: FileStore) -> None:
    path = _write(store, REPEATED["status"])
    with pytest.raises(CorruptDocumentError):
        store.delete("acme", 1)
    with pytest.raises(CorruptDocumentError):
        store.save(make_doc("acme", 1))
    assert path.read_text() == REPEATED["status"]


@pytest.mark.parametrize(
    "field", ["created_at", "updated_at", "status", "status_reason", "sections", "metadata"]
)
def test_a_file_that_leaves_a_field_out_is_corrupt(store: FileStore, field: str) -> None:
    fields = json.loads(GOOD)
    del fields[field]
    path = _write(store, json.dumps(fields, indent=2) + "\n")
    with pytest.raises(CorruptDocumentError, match=field) as refused:
        store.get_strategy("acme", 1)
    assert refused.value.path == path
    assert store.get_strategy("acme", 2) == make_doc("acme", 2)


def test_an_approved_file_without_timestamps_cannot_be_read_as_now(store: FileStore) -> None:
    fields = json.loads(GOOD)
    del fields["updated_at"]
    _write(store, json.dumps(fields, indent=2) + "\n")
    with pytest.raises(CorruptDocumentError, match="updated_at"):
        store.get_strategy("acme", 1)
    with pytest.raises((CorruptDocumentError, ImmutableVersionError)):
        store.save(make_doc("acme", 1, status=Status.APPROVED))


def test_a_hand_edited_layout_that_states_everything_once_still_reads(store: FileStore) -> None:
    fields = json.loads(GOOD)
    reordered = {key: fields[key] for key in reversed(list(fields))}
    _write(store, json.dumps(reordered, separators=(",", ":")))
    assert store.get_strategy("acme", 1) == make_doc("acme", 1, status=Status.APPROVED)


def test_check_reports_a_repeated_key_with_its_line(store: FileStore) -> None:
    path = _write(store, REPEATED["status"])
    found = list(DataDirCheck(store.data_dir).findings())
    assert [(f.path, f.line) for f in found] == [(path, 5)]
    assert "'status' appears twice" in found[0].message


def test_check_reports_a_field_left_out(store: FileStore) -> None:
    fields = json.loads(GOOD)
    del fields["created_at"]
    path = _write(store, json.dumps(fields, indent=2) + "\n")
    found = list(DataDirCheck(store.data_dir).findings())
    assert [f.path for f in found] == [path]
    assert "created_at" in found[0].message


UNCHECKABLE = {
    "nested 100,000 levels": '{"metadata": ' + "[" * 100_000 + "]" * 100_000 + "}",
    "a 4,301-digit integer": GOOD.replace('"score": 0.5', '"score": ' + "7" * 4301),
}


@pytest.mark.parametrize("kind", list(UNCHECKABLE))
def test_check_reports_what_the_reader_refuses_and_goes_on(
    store: FileStore, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _write(store, UNCHECKABLE[kind])
    status = main(["--dir", str(store.data_dir), "check"])
    out, err = capsys.readouterr()
    assert (status, err) == (1, "")
    assert out.startswith(f"{path}:")
    assert "not valid JSON" in out
    assert "1 document in 1 brief; 1 problem" in out


def test_check_reports_a_directory_named_like_a_document(
    store: FileStore, capsys: pytest.CaptureFixture[str]
) -> None:
    (store.data_dir / "acme" / "9.json").mkdir()
    status = main(["--dir", str(store.data_dir), "check"])
    out, err = capsys.readouterr()
    assert (status, err) == (1, "")
    assert f"{store.data_dir / 'acme' / '9.json'}: is a directory" in out
    assert "2 documents in 1 brief; 1 problem" in out


OUT_OF_RANGE = GOOD.replace(
    '"updated_at": "2026-01-15T09:30:00Z"', '"updated_at": "9999-12-31T23:59:59-01:00"'
)


def test_a_file_whose_timestamp_leaves_the_range_in_utc_is_corrupt_not_an_overflow(
    store: FileStore, capsys: pytest.CaptureFixture[str]
) -> None:
    assert OUT_OF_RANGE != GOOD
    path = _write(store, OUT_OF_RANGE)
    with pytest.raises(CorruptDocumentError, match="years 1 to 9999") as refused:
        store.get_strategy("acme", 1)
    assert refused.value.path == path
    store.create(make_doc("beta", 1))
    # check reports it; export goes on to the briefs after it.
    assert main(["--dir", str(store.data_dir), "check"]) == 1
    assert "years 1 to 9999" in capsys.readouterr().out
    assert main(["--dir", str(store.data_dir), "export"]) == 1
    out, err = capsys.readouterr()
    assert [json.loads(line)["brief_id"] for line in out.splitlines()] == ["acme", "beta"]
    assert str(path) in err


def test_an_import_line_whose_timestamp_leaves_the_range_is_refused_and_the_rest_imported(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = tmp_path / "in.jsonl"
    bad = json.dumps(json.loads(OUT_OF_RANGE))
    good = make_doc("beta", 1).model_dump_json()
    lines.write_text(f"{bad}\n{good}\n")
    FileStore(tmp_path / "data")
    assert main(["--dir", str(tmp_path / "data"), "import", str(lines)]) == 1
    err = capsys.readouterr().err
    assert f"{lines}:1: " in err and "years 1 to 9999" in err
    assert "1 written, 0 skipped, 1 refused" in err
    assert FileStore(tmp_path / "data").list_briefs() == ["beta"]
