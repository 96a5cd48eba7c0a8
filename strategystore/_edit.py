"""``strategystore edit``: a draft in the user's editor, written back with compare-and-swap."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from pydantic import ValidationError

from strategystore._commands import read_named
from strategystore._console import PROG, describe, error, open_store
from strategystore._layout import describe_invalid
from strategystore.errors import ConcurrentUpdateError, StrategyStoreError
from strategystore.models import Status, StrategyDocument, utc_now
from strategystore.store import BaseStore

__all__ = ["cmd_edit"]


def cmd_edit(args: argparse.Namespace) -> int:
    """``edit BRIEF [VERSION]``: edit a draft (the latest by default) in ``$VISUAL``/``$EDITOR``.

    The editor works on a temporary copy outside the data directory. What it
    saves must be a valid document and the same draft (same brief, version
    and status); when it is not, the problem is shown and, on a terminal, the
    editor can be opened again. The result is written with compare-and-swap:
    a change someone made meanwhile is reported and never overwritten, and
    whenever nothing was saved after an edit the edited copy is kept and named.
    """
    store = open_store(args)
    original = read_named(store, args)
    if original is None:
        return 1
    if original.status is not Status.DRAFT:
        error(
            f"version {original.version} of {original.brief_id} is {original.status.value}, "
            "and only a draft can be edited; start a new draft from it with "
            f"`{PROG} new {original.brief_id} --from {original.version}`"
        )
        return 1
    command = _editor_command()
    if isinstance(command, str):
        error(command)
        return 1
    handle, name = tempfile.mkstemp(
        prefix=f"{original.brief_id}.v{original.version}.", suffix=".json"
    )
    copy = Path(name)
    with os.fdopen(handle, "wb") as stream:
        stream.write(original.to_json_bytes())
    session = _EditSession(store, original, copy, command)
    try:
        return session.run()
    finally:
        if not session.keep:
            copy.unlink(missing_ok=True)


class _EditSession:
    """One ``edit``: the editor on a temporary copy, until it is saved, unchanged or given up."""

    def __init__(
        self, store: BaseStore, original: StrategyDocument, copy: Path, command: list[str]
    ) -> None:
        self.store = store
        self.original = original
        self.copy = copy
        self.command = command
        #: Whether the copy holds an edit that was not saved, and must stay.
        self.keep = False
        self.where = f"version {original.version} of {original.brief_id}"

    def run(self) -> int:
        """Edit until saved, unchanged or given up; the exit status."""
        original_bytes = self.original.to_json_bytes()
        while True:
            try:
                returncode = _run_editor(self.command, self.copy)
            except OSError as exc:
                error(f"cannot run the editor {shlex.join(self.command)}: {describe(exc)}")
                return 1
            data = self.copy.read_bytes()
            if returncode != 0:
                how = (
                    f"was stopped by signal {-returncode}"
                    if returncode < 0
                    else f"exited with status {returncode}"
                )
                return self._give_up(f"the editor {how}", changed=data != original_bytes)
            if data == original_bytes:
                print(f"no changes to draft {self.where}")
                return 0
            edited = _edited_document(data, self.original)
            if isinstance(edited, str):
                problem = f"{self.copy}: {edited}"
                if not _on_a_terminal():
                    return self._give_up(problem, changed=True)
                error(problem)
                if _ask("edit again? [Y/n] "):
                    continue
                return self._give_up("the edited copy is not valid", changed=True)
            if edited == self.original:
                print(f"no changes to draft {self.where}")
                return 0
            return self._save(edited)

    def _save(self, edited: StrategyDocument) -> int:
        try:
            self.store.update(edited, expected=self.original)
        except ConcurrentUpdateError:
            return self._give_up(
                f"{self.where} was changed by someone else while it was being edited, "
                "and that change stays",
                changed=True,
            )
        except (StrategyStoreError, ValueError, OSError) as exc:
            return self._give_up(describe(exc), changed=True)
        print(f"saved draft {self.where}")
        return 0

    def _give_up(self, reason: str, *, changed: bool) -> int:
        """Say why nothing was saved, keeping the copy when it holds an edit; status 1."""
        if changed:
            self.keep = True
            error(f"{reason}; nothing was saved; the edited copy is kept at {self.copy}")
        else:
            error(f"{reason}; nothing was saved")
        return 1


def _editor_command() -> list[str] | str:
    """The editor to run (``$VISUAL``, else ``$EDITOR``, split as a shell would), or why none."""
    for variable in ("VISUAL", "EDITOR"):
        value = os.environ.get(variable, "")
        if not value.strip():
            continue
        try:
            return shlex.split(value)
        except ValueError as exc:
            return f"cannot read ${variable} ({value!r}): {exc}"
    return "no editor to run: set $VISUAL or $EDITOR to the command that starts yours"


def _run_editor(command: list[str], path: Path) -> int:
    """Run the editor on ``path``, the terminal inherited; its exit status (negative: a signal)."""
    process = subprocess.Popen([*command, str(path)])
    with _interrupts_left_to_the_editor():
        return process.wait()


@contextmanager
def _interrupts_left_to_the_editor() -> Iterator[None]:
    """Ignore Ctrl-C and Ctrl-\\ in this process while the editor runs (as git does).

    The terminal sends them to the editor too, which handles them; were they
    to end this process, the editor would be left running without it.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    numbers = [signal.SIGINT]
    if hasattr(signal, "SIGQUIT"):
        numbers.append(signal.SIGQUIT)
    previous = {number: signal.signal(number, signal.SIG_IGN) for number in numbers}
    try:
        yield
    finally:
        for number, handler in previous.items():
            if handler is not None:
                signal.signal(number, handler)


def _edited_document(data: bytes, original: StrategyDocument) -> StrategyDocument | str:
    """The document an editor saved, or why it cannot replace the draft ``original``."""
    data = data.removeprefix(b"\xef\xbb\xbf")  # a BOM is no data
    status_rule = (
        "status changes go through "
        f"`{PROG} approve`, `{PROG} reject` and `{PROG} withdraw`, not an edit"
    )
    try:
        given = json.loads(data)
    except (ValueError, RecursionError):
        given = None
    # Said before validation, which would complain first of the missing seal
    # that every status but draft needs.
    if isinstance(given, dict) and given.get("status", Status.DRAFT.value) != Status.DRAFT.value:
        return f"status must stay draft: {status_rule}"
    try:
        doc = StrategyDocument.from_json_bytes(data)
    except ValidationError as exc:
        return describe_invalid(data, exc, stored=False)
    if doc.key != original.key:
        return (
            f"brief_id and version must stay {original.brief_id!r} and {original.version}; "
            f"to start another version, use `{PROG} new {original.brief_id} --from "
            f"{original.version}`"
        )
    if doc.status is not Status.DRAFT:
        return f"status must stay draft: {status_rule}"
    if doc.updated_at == original.updated_at and doc != original:
        # The edit is a change: it is dated now, unless the editor set a date itself.
        doc = StrategyDocument.model_validate(
            {**dict(doc), "updated_at": max(utc_now(), doc.created_at)}
        )
    return doc


def _on_a_terminal() -> bool:
    """Whether a question can be asked: standard input is a terminal, and standard error open."""
    return sys.stdin is not None and sys.stdin.isatty() and sys.stderr is not None


def _ask(question: str) -> bool:
    """Ask a yes-or-no question on standard error (yes by default); ``False`` at end of input."""
    if not _on_a_terminal():
        return False
    sys.stderr.write(question)
    sys.stderr.flush()
    try:
        answer = sys.stdin.readline()
    except KeyboardInterrupt:
        sys.stderr.write("\n")
        return False
    if not answer:  # end of input
        sys.stderr.write("\n")
        return False
    return answer.strip().lower() in {"", "y", "yes"}
