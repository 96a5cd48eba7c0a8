"""The command line's input: closed standard streams, VERSION and SECONDS arguments, messages.

Closed streams are tested with real processes, since only a process started
without a stream (``<&-``, ``>&-``) has ``sys.stdin`` or ``sys.stdout`` set to
``None``.
"""

from __future__ import annotations

import json
import os
import threading
import time
from pathlib import Path

import pytest
from pydantic import ValidationError

from strategystore import FileStore, Section, Status
from strategystore.cli import main
from strategystore.models import describe_validation_error
from tests.conftest import Result, feed_stdin, make_doc, run_module

NEW_SHAPE = '{"sections": [...], "metadata": {...}}'


def run_closing(*args: str, closed: tuple[str, ...], cwd: Path) -> Result:
    """Run ``python -m strategystore`` for real with the ``closed`` standard streams closed."""
    done = run_module(*args, cwd=cwd, closed=closed)
    return Result(done.returncode, done.stdout, done.stderr)


def snapshot(root: Path) -> dict[str, bytes]:
    """Every document and the marker under ``root``, by relative path."""
    return {
        str(path.relative_to(root)): path.read_bytes()
        for path in sorted(root.rglob("*"))
        if path.is_file() and not any(part.startswith(".") for part in path.relative_to(root).parts)
    }


@pytest.fixture
def store(data_dir: Path) -> FileStore:
    return FileStore(data_dir, create=False)


def run(capsys: pytest.CaptureFixture[str], data_dir: Path, *args: str) -> Result:
    """Run ``main`` in this process on ``data_dir``."""
    status = main(["--dir", str(data_dir), *args])
    captured = capsys.readouterr()
    return Result(status, captured.out, captured.err)


# -- closed standard streams -------------------------------------------------


@pytest.mark.parametrize(
    "command",
    [["put", "-"], ["import", "-"], ["new", "B", "-"]],
    ids=lambda command: command[0],
)
def test_reading_a_closed_standard_input_is_one_line_and_changes_nothing(
    data_dir: Path, command: list[str]
) -> None:
    before = snapshot(data_dir)
    result = run_closing("--dir", str(data_dir), *command, closed=("stdin",), cwd=data_dir.parent)
    assert result.status == 1
    assert result.error_line == "strategystore: standard input is closed; nothing was done"
    assert snapshot(data_dir) == before


@pytest.mark.parametrize(
    "command",
    [
        ["export"],
        ["show", "--json", "acme"],
        ["show", "acme"],
        ["briefs"],
        ["versions", "acme"],
        ["approve", "acme", "1"],
        ["reject", "acme", "1"],
        ["delete", "acme", "1"],
        ["diff", "acme", "1", "1"],
        ["put", "doc.json"],
        ["new", "acme", "new.json"],
        ["check"],
        ["schema"],
        ["--version"],
        ["--help"],
        ["show", "--help"],
    ],
    ids=" ".join,
)
def test_a_command_that_prints_refuses_a_closed_standard_output_before_doing_anything(
    data_dir: Path, store: FileStore, command: list[str]
) -> None:
    store.create(make_doc("acme", 1))
    (data_dir.parent / "doc.json").write_bytes(make_doc("acme", 2).to_json_bytes())
    (data_dir.parent / "new.json").write_text('{"sections": []}')
    before = snapshot(data_dir)
    result = run_closing("--dir", str(data_dir), *command, closed=("stdout",), cwd=data_dir.parent)
    assert result.status == 1
    assert result.error_line == "strategystore: standard output is closed; nothing was done"
    assert snapshot(data_dir) == before


def test_approve_with_a_closed_standard_output_leaves_the_draft_a_draft(
    data_dir: Path, store: FileStore
) -> None:
    store.create(make_doc("acme", 1))
    result = run_closing(
        "--dir", str(data_dir), "approve", "acme", "1", closed=("stdout",), cwd=data_dir.parent
    )
    assert result.status == 1
    assert "standard output is closed" in result.error_line
    doc = store.get_strategy("acme", 1)
    assert doc is not None
    assert doc.status is Status.DRAFT


def test_init_with_a_closed_standard_output_creates_nothing(tmp_path: Path) -> None:
    target = tmp_path / "fresh"
    result = run_closing("--dir", str(target), "init", closed=("stdout",), cwd=tmp_path)
    assert result.status == 1
    assert "standard output is closed" in result.error_line
    assert not target.exists()


def test_import_reports_on_standard_error_so_it_runs_with_standard_output_closed(
    data_dir: Path, store: FileStore
) -> None:
    lines = data_dir.parent / "docs.jsonl"
    lines.write_text(make_doc("acme", 1).model_dump_json() + "\n")
    result = run_closing(
        "--dir", str(data_dir), "import", str(lines), closed=("stdout",), cwd=data_dir.parent
    )
    assert result.status == 0
    assert result.error_line == "1 written, 0 skipped, 0 refused"
    assert store.list_version_numbers("acme") == [1]


@pytest.mark.parametrize(
    "command",
    [["approve", "acme", "1"], ["put", "-"], ["export"], ["--version"], ["show", "acme", "x"]],
    ids=" ".join,
)
def test_with_every_standard_stream_closed_a_command_exits_without_doing_anything(
    data_dir: Path, store: FileStore, command: list[str]
) -> None:
    store.create(make_doc("acme", 1))
    before = snapshot(data_dir)
    result = run_closing(
        "--dir", str(data_dir), *command, closed=("stdin", "stdout", "stderr"), cwd=data_dir.parent
    )
    assert result.status == (2 if command[-1] == "x" else 1)
    assert (result.out, result.err) == ("", "")
    assert snapshot(data_dir) == before


@pytest.mark.parametrize(
    ("command", "status"),
    [
        pytest.param(["show", "acme", "9"], 1, id="not-found"),
        pytest.param(["show", "acme", "x"], 2, id="usage"),
        pytest.param(["approve", "acme", "9"], 1, id="refused"),
    ],
)
def test_an_error_with_standard_error_closed_is_not_printed_on_standard_output(
    data_dir: Path, store: FileStore, command: list[str], status: int
) -> None:
    store.create(make_doc("acme", 1))
    result = run_closing("--dir", str(data_dir), *command, closed=("stderr",), cwd=data_dir.parent)
    assert result.status == status
    assert result.out == ""


# -- VERSION arguments -------------------------------------------------------

# Each of these is something int() accepts; none is a plain decimal version.
NOT_VERSIONS = ["1_0", "+1", " 1", "1 ", "\u0661", "01", "\uff11", "1\n"]


@pytest.mark.parametrize("text", NOT_VERSIONS)
@pytest.mark.parametrize(
    "command",
    [["delete", "acme"], ["show", "acme"], ["diff", "acme", "1"], ["approve", "acme"]],
    ids=lambda command: command[0],
)
def test_a_version_argument_that_is_not_plain_ascii_decimal_is_a_usage_error(
    data_dir: Path,
    store: FileStore,
    capsys: pytest.CaptureFixture[str],
    command: list[str],
    text: str,
) -> None:
    store.create(make_doc("acme", 1))
    store.create(make_doc("acme", 10))
    before = snapshot(data_dir)
    result = run(capsys, data_dir, *command, text)
    assert result.status == 2
    assert f"{text!r} is not a version number (1 to 2147483647)" in result.err
    assert result.out == ""
    assert snapshot(data_dir) == before


def test_delete_1_0_does_not_delete_version_10(
    data_dir: Path, store: FileStore, capsys: pytest.CaptureFixture[str]
) -> None:
    store.create(make_doc("acme", 10))
    assert run(capsys, data_dir, "delete", "acme", "1_0").status == 2
    assert store.list_version_numbers("acme") == [10]


@pytest.mark.parametrize(
    "text",
    ["0", "-1", "2147483648", pytest.param("9" * 5000, id="5000-digits"), ""],
)
def test_a_version_outside_1_to_2_31_minus_1_is_a_usage_error_naming_it(
    data_dir: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    result = run(capsys, data_dir, "show", "acme", text)
    assert result.status == 2
    assert f"{text!r} is not a version number" in result.err


def test_the_largest_version_is_a_version(
    data_dir: Path, store: FileStore, capsys: pytest.CaptureFixture[str]
) -> None:
    store.create(make_doc("acme", 2**31 - 1))
    result = run(capsys, data_dir, "show", "acme", "2147483647")
    assert result.status == 0
    assert "version 2147483647" in result.out


# -- messages about the input ------------------------------------------------


def test_put_of_an_empty_standard_input_says_the_input_is_empty_not_to_restore_it(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    feed_stdin(monkeypatch, b"")
    result = run(capsys, data_dir, "put", "-")
    assert result.status == 1
    assert result.error_line == "strategystore: <stdin>: is empty; expected a JSON document"


def test_put_of_an_empty_file_says_the_file_is_empty_not_to_restore_it(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    empty = data_dir.parent / "empty.json"
    empty.write_text("\n")
    result = run(capsys, data_dir, "put", str(empty))
    assert result.status == 1
    assert result.error_line == f"strategystore: {empty}: is empty; expected a JSON document"


@pytest.mark.parametrize("text", ["", " \n\n"], ids=["empty", "blank"])
def test_new_of_an_empty_input_says_it_is_empty_and_what_it_expects(
    data_dir: Path, store: FileStore, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    spec = data_dir.parent / "new.json"
    spec.write_text(text)
    result = run(capsys, data_dir, "new", "acme", str(spec))
    assert result.status == 1
    assert result.error_line == (
        f"strategystore: {spec}: is empty; expected a JSON object like {NEW_SHAPE}"
    )
    assert store.list_briefs() == []


def test_new_of_dev_null_says_it_is_empty(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    result = run(capsys, data_dir, "new", "acme", os.devnull)
    assert result.status == 1
    assert result.error_line == (
        f"strategystore: {os.devnull}: is empty; expected a JSON object like {NEW_SHAPE}"
    )


def test_new_names_the_line_and_column_of_invalid_json(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    feed_stdin(monkeypatch, b'{"sections": [],\n  oops}')
    result = run(capsys, data_dir, "new", "acme", "-")
    assert result.status == 1
    assert result.error_line == (
        "strategystore: <stdin>: not valid JSON: "
        "Expecting property name enclosed in double quotes at line 2 column 3"
    )


def test_new_of_a_number_too_long_to_read_gives_no_python_advice(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    feed_stdin(monkeypatch, b'{"metadata": {"x": ' + b"1" * 5000 + b"}}")
    result = run(capsys, data_dir, "new", "acme", "-")
    assert result.status == 1
    assert result.error_line == (
        "strategystore: <stdin>: not valid JSON: a number has too many digits to read"
    )


def test_new_describes_an_invalid_section_with_the_shared_formatter(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = {"key": "", "title": 1, "body": 2, "x": 1, "y": 1, "z": 1}
    with pytest.raises(ValidationError) as caught:
        Section.model_validate(raw)
    expected = describe_validation_error(caught.value)
    assert expected.endswith("(and 1 more)")
    feed_stdin(monkeypatch, json.dumps({"sections": [raw]}).encode())
    result = run(capsys, data_dir, "new", "acme", "-")
    assert result.status == 1
    assert result.error_line == f"strategystore: <stdin>: section 1: {expected}"


def test_put_and_import_describe_an_invalid_document_alike_without_pydantic_prefixes(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = '{"brief_id": "../x", "version": 1}'
    path = data_dir.parent / "bad.json"
    path.write_text(bad + "\n")
    put = run(capsys, data_dir, "put", str(path)).error_line
    imported = run(capsys, data_dir, "import", str(path)).err.splitlines()[0]
    assert "Value error" not in put
    assert put.removeprefix(f"strategystore: {path}: ") == imported.removeprefix(
        f"strategystore: {path}:1: "
    )


# -- --lock-timeout ----------------------------------------------------------


@pytest.mark.parametrize(
    "where", ["before", "after"], ids=["before-the-command", "after-the-command"]
)
def test_a_held_lock_times_out_after_lock_timeout_with_a_hint_to_wait_longer(
    data_dir: Path, store: FileStore, capsys: pytest.CaptureFixture[str], where: str
) -> None:
    store.create(make_doc("acme", 1))
    option = ["--lock-timeout", "0.2"]
    command = ["approve", "acme", "1"]
    argv = [*option, *command] if where == "before" else [*command, *option]
    holder = FileStore(data_dir, create=False)
    with holder._locked("acme"):
        started = time.monotonic()
        result = run(capsys, data_dir, *argv)
        elapsed = time.monotonic() - started
    assert result.status == 1
    line = result.error_line
    assert "within 0.2 s" in line
    assert line.endswith("; retry, or wait longer with --lock-timeout SECONDS")
    assert "lock_timeout" not in line
    assert elapsed < 5
    doc = store.get_strategy("acme", 1)
    assert doc is not None
    assert doc.status is Status.DRAFT


def test_a_write_waits_up_to_lock_timeout_for_a_lock_released_meanwhile(
    data_dir: Path, store: FileStore, capsys: pytest.CaptureFixture[str]
) -> None:
    store.create(make_doc("acme", 1))
    holder = FileStore(data_dir, create=False)
    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        with holder._locked("acme"):
            held.set()
            release.wait(10)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        assert held.wait(10)
        threading.Timer(0.3, release.set).start()
        result = run(capsys, data_dir, "--lock-timeout", "5", "approve", "acme", "1")
    finally:
        release.set()
        thread.join()
    assert result.status == 0
    assert result.out == "approved version 1 of acme\n"


def test_lock_timeout_defaults_to_10_seconds_and_reaches_the_store(
    data_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[float] = []

    class Recording(FileStore):
        def __init__(self, data_dir: Path, *, lock_timeout: float = 10.0, **kwargs: bool) -> None:
            seen.append(lock_timeout)
            super().__init__(data_dir, lock_timeout=lock_timeout, **kwargs)

    monkeypatch.setattr("strategystore._console.FileStore", Recording)
    assert run(capsys, data_dir, "briefs").status == 0
    assert run(capsys, data_dir, "--lock-timeout", "2.5", "briefs").status == 0
    assert run(capsys, data_dir, "briefs", "--lock-timeout", "0").status == 0
    assert seen == [10.0, 2.5, 0.0]


@pytest.mark.parametrize("text", ["-1", "nan", "inf", "1e400", "abc", "", "1_0", "\u0661"])
def test_lock_timeout_must_be_a_finite_number_of_seconds_not_below_0(
    data_dir: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    result = run(capsys, data_dir, f"--lock-timeout={text}", "briefs")
    assert result.status == 2
    assert f"{text!r} is not a number of seconds (0 or more)" in result.err
