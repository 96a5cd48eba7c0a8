"""What every command of the command line shares.

The program's name, its one-line messages on standard error, JSON on standard
output, and the store its arguments name. The front end (``cli``) and the
command modules import this one; it imports none of them.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from pydantic import ValidationError

from strategystore import _backends
from strategystore.errors import DuplicateVersionError, LockTimeoutError
from strategystore.files import FileStore
from strategystore.models import describe_validation_error

__all__ = ["PROG", "data_dir", "describe", "error", "exit_status", "open_store", "print_json"]

PROG = "strategystore"


def data_dir(args: argparse.Namespace) -> Path:
    """The data directory the arguments name (``--dir``), else the default one."""
    return _backends.data_dir(args.dir)


def open_store(args: argparse.Namespace, *, create: bool = False) -> FileStore:
    """The store of the arguments' data directory, which must exist unless ``create``."""
    return FileStore(data_dir(args), create=create, lock_timeout=args.lock_timeout)


def describe(exc: BaseException) -> str:
    """One line naming what is wrong, for stderr."""
    if isinstance(exc, ValidationError):
        message = describe_validation_error(exc)
    elif isinstance(exc, LockTimeoutError):
        # The error's own hint names the Python argument; say what to type instead.
        message = (
            f"could not lock {exc.lock_path} within {exc.timeout:g} s: another writer holds it; "
            "retry, or wait longer with --lock-timeout SECONDS"
        )
    elif isinstance(exc, DuplicateVersionError):
        message = (
            f"version {exc.version} of brief {exc.brief_id!r} already exists "
            f"(status {exc.existing.status.value})"
        )
    elif isinstance(exc, OSError) and exc.filename is not None and exc.strerror:
        message = f"{exc.filename}: {exc.strerror}"
    else:
        message = str(exc) or type(exc).__name__
    return " ".join(message.split("\n"))


def error(message: str, *, prefix: str = f"{PROG}: ") -> None:
    """Write ``message`` on standard error as one line, after ``prefix``."""
    # With standard error closed there is nowhere to say it; print() would
    # fall back to standard output.
    if sys.stderr is None:
        return
    print(f"{prefix}{' '.join(message.splitlines())}", file=sys.stderr)


def print_json(value: object) -> None:
    """Print ``value`` as indented JSON, non-ASCII as is."""
    print(json.dumps(value, ensure_ascii=False, indent=2))


def exit_status(exc: SystemExit) -> int:
    """The exit status an argument parser's ``SystemExit`` stands for."""
    if exc.code is None:
        return 0
    return exc.code if isinstance(exc.code, int) else 2
