"""The review page: a local web page over any store, for people who review strategies.

``strategystore serve`` runs it; from Python::

    from strategystore import FileStore
    from strategystore.web import make_server

    server = make_server(FileStore("strategy-data"), port=0)
    print(server.address.url)
    server.serve_forever()

``App`` answers one ``Request`` with one ``Response`` and needs no socket,
so tests drive it directly. It needs the ``web`` extra (Jinja2 and
markdown-it-py); the rest of the package does not.
"""

from __future__ import annotations

import socket
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

from strategystore.store import BaseStore
from strategystore.web._app import ACTIONS, App
from strategystore.web._http import MAX_FORM_BYTES, Address, Request, Response

__all__ = [
    "ACTIONS",
    "Address",
    "App",
    "Request",
    "Response",
    "ReviewServer",
    "make_server",
]

#: Seconds a connection may sit idle before the server drops it.
_IDLE_TIMEOUT = 30.0


class _Handler(BaseHTTPRequestHandler):
    """Turns each HTTP request into a ``Request`` for the server's ``App``."""

    server: ReviewServer
    server_version = "strategystore"
    sys_version = ""
    protocol_version = "HTTP/1.1"
    timeout = _IDLE_TIMEOUT

    def do_GET(self) -> None:
        self._answer()

    def do_HEAD(self) -> None:
        self._answer(body=False)

    def do_POST(self) -> None:
        self._answer()

    def do_PUT(self) -> None:
        self._answer()

    def do_DELETE(self) -> None:
        self._answer()

    def do_PATCH(self) -> None:
        self._answer()

    def do_OPTIONS(self) -> None:
        self._answer()

    def _answer(self, *, body: bool = True) -> None:
        headers = {name.lower(): value for name, value in self.headers.items()}
        if len(self.headers.get_all("Host") or ()) > 1:
            headers["host"] = ""  # two Hosts name no one server; refused as none
        data = self._read_body()
        response = self.server.app(Request(self.command, self.path, headers, data))
        self.send_response(response.status)
        for name, value in response.all_headers():
            self.send_header(name, value)
        if response.status >= 400:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        if body:
            self.wfile.write(response.body)

    def _read_body(self) -> bytes:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            length = 0
        if length <= 0:
            return b""
        # A body larger than any form is cut short; the form check refuses it.
        return self.rfile.read(min(length, MAX_FORM_BYTES + 1))

    def log_message(self, format: str, *args: object) -> None:
        # The request line is client text: keep it on one line, escaped.
        text = (format % args).encode("unicode_escape").decode("ascii")
        super().log_message("%s", text)


class ReviewServer(ThreadingHTTPServer):
    """The review page on a socket: one thread per connection, each calling ``app``.

    Args:
        store: the store the pages read.
        host: the address to bind (loopback by default).
        port: the port; 0 picks a free one, which ``address.port`` then names.
        allow_write: accept the actions (approve, reject, withdraw, new draft).
    """

    daemon_threads = True
    allow_reuse_address = True
    block_on_close = False
    _families: ClassVar[dict[bool, socket.AddressFamily]] = {
        False: socket.AF_INET,
        True: socket.AF_INET6,
    }

    def __init__(
        self, store: BaseStore, host: str, port: int, *, allow_write: bool = False
    ) -> None:
        self.address_family = self._families[":" in host]
        super().__init__((host, port), _Handler)
        self.address = Address(host, int(self.server_address[1]))
        self.app = App(store, self.address, allow_write=allow_write)


def make_server(
    store: BaseStore, *, host: str = "127.0.0.1", port: int = 8765, allow_write: bool = False
) -> ReviewServer:
    """A bound ``ReviewServer`` over ``store``; call ``serve_forever()`` to answer.

    Raises:
        OSError: the address cannot be bound (in use, or not this machine's).
    """
    return ReviewServer(store, host, port, allow_write=allow_write)
