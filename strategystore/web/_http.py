"""Requests, responses and the rules every request must pass before a page is built.

A local server is reachable by any page the reviewer's browser opens, so:
the ``Host`` and (when sent) ``Origin`` of every request must name the served
address (DNS rebinding, cross-site forms); a write needs the process's token;
every answer carries a Content-Security-Policy without script and the headers
that keep it from being framed, sniffed or followed by a referrer.
"""

from __future__ import annotations

import hmac
import ipaddress
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

__all__ = [
    "MAX_FORM_BYTES",
    "SECURITY_HEADERS",
    "Address",
    "Refusal",
    "Request",
    "Response",
    "new_token",
    "same_token",
]

#: The largest form body a POST may carry.
MAX_FORM_BYTES = 64 * 1024

#: Sent with every answer. No script may run at all; styles and images come
#: from this server only; forms post back to it only.
SECURITY_HEADERS: tuple[tuple[str, str], ...] = (
    (
        "Content-Security-Policy",
        "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'",
    ),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cross-Origin-Resource-Policy", "same-origin"),
    ("Cache-Control", "no-store"),
)

_LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
# A Host header's whole value: a name or address literal and a port, nothing more.
_HOST_AND_PORT = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+):[0-9]+")


class Refusal(Exception):
    """A request refused before any page is built: its 4xx status and the reason shown."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True)
class Request:
    """One HTTP request as the application sees it.

    Attributes:
        method: ``GET``, ``POST`` …, upper case.
        target: the request target, path and query (``/briefs/acme?x=1``).
        headers: the request headers, names in lower case.
        body: the request body (a POST's form).
    """

    method: str
    target: str
    headers: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""

    @property
    def path(self) -> str:
        """The path of the target, still percent-encoded."""
        if self.target.startswith("/"):  # "//x/y" is a path here, not a host
            return self.target.partition("?")[0]
        return urlsplit(self.target).path

    @property
    def query(self) -> dict[str, str]:
        """The query's parameters, the first value of each."""
        query = self.target.partition("?")[2]
        return {k: v[0] for k, v in parse_qs(query).items()}

    @property
    def authority(self) -> str | None:
        """The ``scheme://host:port`` an absolute-form target names, else ``None``."""
        if self.target.startswith("/"):
            return None
        parts = urlsplit(self.target)
        return f"{parts.scheme}://{parts.netloc}" if parts.scheme else None

    def form(self) -> dict[str, str]:
        """The fields of a url-encoded form body, the first value of each.

        Raises:
            Refusal: the body is too large or not a url-encoded form.
        """
        if len(self.body) > MAX_FORM_BYTES:
            raise Refusal(413, "the form is too large")
        kind = self.headers.get("content-type", "").split(";", 1)[0].strip().lower()
        if kind != "application/x-www-form-urlencoded":
            raise Refusal(415, "a form must be sent as application/x-www-form-urlencoded")
        try:
            text = self.body.decode("utf-8")
        except UnicodeDecodeError:
            raise Refusal(400, "the form is not UTF-8") from None
        try:
            fields = parse_qs(text, keep_blank_values=True, max_num_fields=20)
        except ValueError:
            raise Refusal(413, "the form has too many fields") from None
        return {k: v[0] for k, v in fields.items()}


@dataclass
class Response:
    """One answer: status, content type, body and any further headers."""

    status: int
    body: bytes
    content_type: str = "text/html; charset=utf-8"
    headers: list[tuple[str, str]] = field(default_factory=list)

    def all_headers(self) -> list[tuple[str, str]]:
        """Every header to send, the security headers included."""
        return [
            ("Content-Type", self.content_type),
            ("Content-Length", str(len(self.body))),
            *SECURITY_HEADERS,
            *self.headers,
        ]

    def header(self, name: str) -> str | None:
        """The value of the header ``name`` (any case) this answer sends, if any."""
        wanted = name.lower()
        for key, value in self.all_headers():
            if key.lower() == wanted:
                return value
        return None


@dataclass(frozen=True)
class Address:
    """The address a server answers on, and the ``Host`` names that name it.

    Attributes:
        host: the host the server is bound to (``127.0.0.1``, ``::1``, ``0.0.0.0``).
        port: the port it listens on.
    """

    host: str
    port: int

    @property
    def url(self) -> str:
        """The address to open in a browser."""
        shown = "127.0.0.1" if self.wildcard else self.host
        if ":" in shown:
            shown = f"[{shown}]"
        return f"http://{shown}:{self.port}/"

    @property
    def wildcard(self) -> bool:
        """Whether the server is bound to every interface."""
        return self.host in ("", "0.0.0.0", "::")

    @property
    def loopback(self) -> bool:
        """Whether only this machine can reach the server."""
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False

    def names(self, host: str) -> bool:
        """Whether ``host`` (a ``Host`` header's name, without port) names this server.

        The bound host always does; on loopback so do ``localhost`` and the
        loopback addresses. Bound to every interface, any address literal
        does too: DNS rebinding needs a name, never a literal address.
        """
        host = host.lower().removeprefix("[").removesuffix("]")
        if host == self.host.lower():
            return True
        if (self.loopback or self.wildcard) and host in _LOOPBACK_NAMES:
            return True
        if self.wildcard:
            try:
                ipaddress.ip_address(host)
            except ValueError:
                return False
            return True
        return False

    def check(self, request: Request) -> None:
        """Refuse a request whose ``Host`` or ``Origin`` is not this server.

        Raises:
            Refusal: 400 without a ``Host``, 421 for a foreign ``Host``, 403
                for a foreign ``Origin``.
        """
        given = request.headers.get("host")
        if not given:
            raise Refusal(400, "the request names no Host")
        if not self._is_self(given):
            raise Refusal(421, f"this server answers only as {self.url}, not as {given!r}")
        named = request.authority
        if named is not None and not self._is_origin(named):
            raise Refusal(421, f"this server answers only as {self.url}, not as {named!r}")
        origin = request.headers.get("origin")
        if origin is None:
            return
        if not self._is_origin(origin):
            raise Refusal(403, f"requests from {origin!r} are refused; open {self.url} instead")

    def _is_origin(self, origin: str) -> bool:
        """Whether ``http://host:port`` (an ``Origin``, or an absolute target's) is this server."""
        parts = urlsplit(origin)
        return parts.scheme == "http" and bool(parts.netloc) and self._is_self(parts.netloc)

    def _is_self(self, netloc: str) -> bool:
        """Whether ``host:port`` is this server (the port must be stated, and be ours)."""
        if _HOST_AND_PORT.fullmatch(netloc) is None:
            return False
        try:
            parts = urlsplit(f"//{netloc}")
            port = parts.port
        except ValueError:
            return False
        if port != self.port or parts.username is not None or parts.hostname is None:
            return False
        return self.names(parts.hostname)


def new_token() -> str:
    """A fresh secret for the forms of one server process."""
    return secrets.token_urlsafe(32)


def same_token(given: str | None, expected: str) -> bool:
    """Whether a form's token is the server's, compared in constant time."""
    if not given:
        return False
    return hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))
