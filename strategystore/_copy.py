"""``copy SOURCE TARGET``: every document of one store into another, directory or PostgreSQL.

It streams: the source is read one brief at a time and the target written in
the import's batches, each durable when the target says so (a file store's
flush, a database's commit), and everything durable when the command
returns. Identical documents are skipped, so a copy that was interrupted is
simply run again.
"""

from __future__ import annotations

import argparse
import getpass
import os
from pathlib import Path

from strategystore import _render
from strategystore._arguments import check_brief_id
from strategystore._bulk import readable_documents, refusal
from strategystore._console import error, open_location, without_password
from strategystore._dsn import DEFAULT_TABLE, is_postgres_dsn, split_table
from strategystore.errors import ConfigurationError, StrategyStoreError
from strategystore.models import StrategyDocument
from strategystore.store import ImportOutcome

__all__ = ["cmd_copy"]


def cmd_copy(args: argparse.Namespace) -> int:
    """``copy SOURCE TARGET``: copy every document (or the briefs named) from SOURCE to TARGET.

    SOURCE must exist; TARGET is created when missing. A document that
    cannot be read, or that TARGET refuses (another document of the same
    key is there), is named on standard error and the exit status is 1.
    """
    source_at = _location(args.source)
    target_at = _location(args.target)
    if _same(source_at, target_at):
        error(f"SOURCE and TARGET are the same store ({_shown(source_at)}); nothing was copied")
        return 1
    status = 0
    copied = 0
    progress = _render.Progress("copied", "documents")

    def say(message: str) -> None:
        nonlocal status
        progress.clear()
        error(message)
        status = 1

    def on_result(
        doc: StrategyDocument, outcome: ImportOutcome, problem: StrategyStoreError | None
    ) -> None:
        nonlocal copied
        copied += 1
        if outcome == "refused" and problem is not None:
            say(f"{doc.brief_id} version {doc.version}: {refusal(problem)}")
        progress.update(copied)

    with (
        open_location(source_at, create=False, lock_timeout=args.lock_timeout) as source,
        open_location(target_at, create=True, lock_timeout=args.lock_timeout) as target,
    ):
        named = sorted({check_brief_id(brief) for brief in args.briefs})
        briefs = named or source.list_briefs()
        documents = readable_documents(source, briefs, say)
        summary = target.import_documents(documents, upsert=args.upsert, on_result=on_result)
    progress.clear()
    error(
        f"{summary.written} written, {summary.skipped} skipped, {summary.refused} refused "
        f"({_shown(source_at)} to {_shown(target_at)})",
        prefix="",
    )
    return status


def _location(text: str) -> Path | str:
    return text if is_postgres_dsn(text) else Path(text)


def _same(one: Path | str, other: Path | str) -> bool:
    """Whether two locations are one store: one resolved directory, or one server's table."""
    if isinstance(one, Path) and isinstance(other, Path):
        return one.resolve() == other.resolve()
    if isinstance(one, str) and isinstance(other, str):
        return _identity(one) == _identity(other)
    return False


def _identity(dsn: str) -> tuple[str, ...]:
    """The host, port, database and table a DSN names, with libpq's defaults filled in.

    Two spellings of one store (a URL and ``key=value`` pairs, a port left to
    its default or given) have one identity; a DSN that cannot be read is
    only itself.
    """
    try:
        from psycopg import Error  # noqa: PLC0415
        from psycopg.conninfo import conninfo_to_dict  # noqa: PLC0415
    except ImportError:
        return (dsn,)
    try:
        conninfo, table = split_table(dsn)
        params = conninfo_to_dict(conninfo)
    except (ConfigurationError, Error):  # opening the store says what is wrong with it
        return (dsn,)
    user = str(params.get("user") or os.environ.get("PGUSER") or _os_user())
    return (
        str(params.get("host") or params.get("hostaddr") or os.environ.get("PGHOST") or ""),
        str(params.get("port") or os.environ.get("PGPORT") or "5432"),
        str(params.get("dbname") or os.environ.get("PGDATABASE") or user),
        table or DEFAULT_TABLE,
    )


def _os_user() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no name for this uid (a container's)
        return ""


def _shown(where: Path | str) -> str:
    return str(where) if isinstance(where, Path) else without_password(where)
