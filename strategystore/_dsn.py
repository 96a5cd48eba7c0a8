"""PostgreSQL DSNs as the store and the command line take them; imports no driver."""

from __future__ import annotations

import re
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from strategystore.errors import ConfigurationError

__all__ = ["DEFAULT_TABLE", "is_postgres_dsn", "is_postgres_url", "split_table"]

#: The table a store uses when told no other.
DEFAULT_TABLE = "strategy_document"

#: The start of a libpq ``key=value`` connection string: one of libpq's
#: keywords, then ``=``. A directory whose name starts so is spelled ``./NAME``.
_CONNINFO = re.compile(
    r"\s*(?:host|hostaddr|port|dbname|user|password|passfile|service|sslmode|sslnegotiation"
    r"|sslcert|sslkey|sslrootcert|sslcrl|sslcrldir|sslpassword|sslcertmode|sslsni"
    r"|sslcompression|sslkeylogfile|requirepeer|require_auth|channel_binding|connect_timeout"
    r"|client_encoding|options|application_name|fallback_application_name|keepalives"
    r"|keepalives_idle|keepalives_interval|keepalives_count|tcp_user_timeout|replication"
    r"|gssencmode|gsslib|gssdelegation|krbsrvname|target_session_attrs|load_balance_hosts"
    r"|ssl_min_protocol_version|ssl_max_protocol_version|min_protocol_version"
    r"|max_protocol_version)\s*="
)


def is_postgres_url(text: str) -> bool:
    """Whether ``text`` is a PostgreSQL URL (``postgresql://`` or ``postgres://``)."""
    return text.startswith(("postgresql://", "postgres://"))


def is_postgres_dsn(text: str) -> bool:
    """Whether ``text`` names a PostgreSQL server: a URL, or libpq ``key=value`` pairs."""
    return is_postgres_url(text) or _CONNINFO.match(text) is not None


def split_table(dsn: str) -> tuple[str, str | None]:
    """``dsn`` without its ``table`` query parameter, and that parameter (``None`` if absent).

    Raises:
        ConfigurationError: the URL is malformed, or names its table more than once.
    """
    if not is_postgres_url(dsn):
        return dsn, None
    try:
        parts = urlsplit(dsn)
    except ValueError as exc:
        # The reason is urllib's own ("Invalid IPv6 URL"), never a part of the URL.
        raise ConfigurationError(f"not a PostgreSQL URL: {exc}") from None
    if parts.netloc.count("@") > 1:
        # libpq ends the user and password at the first "@" and takes the
        # rest for the host, which a message would then quote.
        raise ConfigurationError(
            "not a PostgreSQL URL: its user or password holds an '@'; write it as %40"
        )
    query = parse_qsl(parts.query, keep_blank_values=True)
    tables = [value for name, value in query if name == "table"]
    if not tables:
        return dsn, None
    if len(tables) > 1:
        raise ConfigurationError("the URL names its table more than once")
    rest = urlencode([(name, value) for name, value in query if name != "table"])
    return urlunsplit(parts._replace(query=rest)), tables[0]
