"""``strategystore migrate``: a format-1 directory built by hand becomes format 2, resumably."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from strategystore import (
    CorruptDocumentError,
    FileStore,
    Status,
    StoreFormatError,
    StrategyDocument,
)
from strategystore._fsio import Writer
from strategystore._migrate import migrate
from tests.conftest import make_doc, run_module


def _format_1_bytes(doc: StrategyDocument) -> bytes:
    """What a format-1 store wrote: the canonical bytes without content_digest."""
    data = doc.to_json_bytes()
    head, _, _ = data.rpartition(b',\n  "content_digest"')
    return head + b"\n}\n"


def _format_1_directory(root: Path) -> dict[tuple[str, int], StrategyDocument]:
    """A format-1 data directory, written file by file as that format had it."""
    docs = {
        ("acme", 1): make_doc("acme", 1, status=Status.APPROVED),
        ("acme", 2): make_doc("acme", 2),
        ("acme", 3): make_doc("acme", 3, status=Status.WITHDRAWN, status_reason="paused"),
        ("beta", 1): make_doc("beta", 1, status=Status.REJECTED, status_reason="no"),
        ("beta", 2): make_doc("beta", 2, metadata={"n": 1.0}),
    }
    root.mkdir()
    (root / "strategystore.json").write_text('{\n  "format": 1\n}\n')
    (root / ".gitignore").write_text(".locks/\n.*.tmp\n")
    for (brief, version), doc in docs.items():
        (root / brief).mkdir(exist_ok=True)
        (root / brief / f"{version}.json").write_bytes(_format_1_bytes(doc))
    return docs


def test_the_format_1_bytes_are_what_format_1_wrote() -> None:
    data = _format_1_bytes(make_doc())
    assert b"content_digest" not in data
    assert list(json.loads(data)) == list(StrategyDocument.model_fields)


def test_a_format_1_directory_is_refused_until_migrated(tmp_path: Path) -> None:
    root = tmp_path / "data"
    docs = _format_1_directory(root)
    with pytest.raises(StoreFormatError, match=r"format 1.*migrate"):
        FileStore(root)
    migration = migrate(root)
    assert migration.done and migration.format_before == 1
    assert migration.sealed == {Status.APPROVED: 1, Status.WITHDRAWN: 1, Status.REJECTED: 1}
    assert migration.drafts == 2
    store = FileStore(root)
    assert {doc.key: doc for doc in store.iter_documents()} == docs
    for (brief, version), doc in docs.items():
        # Every file now holds its canonical format-2 bytes, sealed where not a draft.
        assert store.document_path(brief, version).read_bytes() == doc.to_json_bytes()
    assert json.loads((root / "strategystore.json").read_text()) == {"format": 2}
    assert "*.json text eol=lf -merge" in (root / ".gitattributes").read_text().splitlines()


def test_an_interrupted_migration_is_simply_run_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "data"
    docs = _format_1_directory(root)
    real = Writer.write_document
    calls = [0]

    def crash_on_the_third(self: Writer, *args: object, **kwargs: object) -> bool:
        calls[0] += 1
        if calls[0] == 3:
            raise KeyboardInterrupt
        return real(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Writer, "write_document", crash_on_the_third)
    with pytest.raises(KeyboardInterrupt):
        migrate(root)
    monkeypatch.undo()
    # Still format 1 (the marker goes last), with two files converted already.
    with pytest.raises(StoreFormatError, match="format 1"):
        FileStore(root)
    again = migrate(root)
    assert again.done and again.already == 2 and sum(again.sealed.values()) + again.drafts == 3
    assert {doc.key: doc for doc in FileStore(root).iter_documents()} == docs


def test_a_damaged_file_keeps_the_directory_in_format_1_until_fixed(tmp_path: Path) -> None:
    root = tmp_path / "data"
    docs = _format_1_directory(root)
    broken = root / "beta" / "1.json"
    good = broken.read_bytes()
    broken.write_text("<<<<<<< HEAD\n")
    before = {path: path.read_bytes() for path in root.rglob("*") if path.is_file()}
    migration = migrate(root)
    assert not migration.done
    assert [path for path, _ in migration.damaged] == [broken]
    assert "conflict marker" in migration.damaged[0][1]
    # Nothing was changed: an old strategystore still reads every other file.
    assert {path: path.read_bytes() for path in root.rglob("*") if path.is_file()} == before
    broken.write_bytes(good)
    assert migrate(root).done
    assert FileStore(root).get_strategy("beta", 1) == docs[("beta", 1)]


def test_an_approved_version_edited_before_migrating_is_sealed_as_it_stands(
    tmp_path: Path,
) -> None:
    # Format 1 kept no record of what was approved: the seal covers the file as it is.
    root = tmp_path / "data"
    _format_1_directory(root)
    path = root / "acme" / "1.json"
    path.write_bytes(path.read_bytes().replace(b"Grow **fast**.", b"Grow slowly."))
    migrate(root)
    approved = FileStore(root).get_strategy("acme", 1)
    assert approved is not None and approved.sections[0].body == "Grow slowly."
    assert approved.content_digest is not None


def test_the_command_reports_what_it_sealed_and_is_idempotent(tmp_path: Path) -> None:
    root = tmp_path / "data"
    _format_1_directory(root)
    done = run_module("--dir", str(root), "migrate", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [
        "sealed 3 versions (1 approved, 1 rejected, 1 withdrawn) and rewrote 2 drafts",
        f"{root} is in format 2 now",
    ]
    again = run_module("--dir", str(root), "migrate", cwd=tmp_path)
    assert again.returncode == 0
    assert again.stdout.strip() == f"{root} is in format 2 already; nothing to do"
    check = run_module("--dir", str(root), "check", cwd=tmp_path)
    assert check.returncode == 0, check.stdout


def test_the_command_on_a_missing_or_foreign_directory_says_so(tmp_path: Path) -> None:
    missing = run_module("--dir", str(tmp_path / "nope"), "migrate", cwd=tmp_path)
    assert missing.returncode == 1
    assert "does not exist" in missing.stderr and "Traceback" not in missing.stderr
    (tmp_path / "other").mkdir()
    foreign = run_module("--dir", str(tmp_path / "other"), "migrate", cwd=tmp_path)
    assert foreign.returncode == 1
    assert "not a data directory" in foreign.stderr


def test_on_format_2_it_converts_drafts_an_old_writer_left_and_names_unsealed_others(
    tmp_path: Path,
) -> None:
    root = tmp_path / "data"
    store = FileStore(root)
    store.create(make_doc("acme", 1))
    late_draft, late_approval = make_doc("acme", 2), make_doc("acme", 3, status=Status.APPROVED)
    for doc in (late_draft, late_approval):  # as a process running format 1 still wrote them
        store.document_path("acme", doc.version).write_bytes(_format_1_bytes(doc))
    with pytest.raises(CorruptDocumentError, match=r"older than format 2.*migrate"):
        store.get_strategy("acme", 2)
    migration = migrate(root)
    # The unsealed approval might cover an edit: it is named, and nothing is changed.
    assert [path.name for path, _ in migration.damaged] == ["3.json"]
    assert "has no seal" in migration.damaged[0][1]
    store.document_path("acme", 3).unlink()
    migration = migrate(root)
    assert migration.done and migration.drafts == 1 and migration.already == 1
    assert store.get_strategy("acme", 2) == late_draft
