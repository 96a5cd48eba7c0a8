"""PostgreSQL DSNs as the store and the command line take them; imports no driver."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from strategystore.errors import ConfigurationError

__all__ = ["is_postgres_url", "split_table"]


def is_postgres_url(text: str) -> bool:
    """Whether ``text`` names a PostgreSQL server (``postgresql://`` or ``postgres://``)."""
    return text.startswith(("postgresql://", "postgres://"))


def split_table(dsn: str) -> tuple[str, str | None]:
    """``dsn`` without its ``table`` query parameter, and that parameter (``None`` if absent)."""
    if not is_postgres_url(dsn):
        return dsn, None
    parts = urlsplit(dsn)
    query = parse_qsl(parts.query, keep_blank_values=True)
    tables = [value for name, value in query if name == "table"]
    if not tables:
        return dsn, None
    if len(tables) > 1:
        raise ConfigurationError("the URL names its table more than once")
    rest = urlencode([(name, value) for name, value in query if name != "table"])
    return urlunsplit(parts._replace(query=rest)), tables[0]
