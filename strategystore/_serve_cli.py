"""The ``serve`` command: the review page over the store the arguments name."""

from __future__ import annotations

import argparse
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from strategystore._console import error, open_store

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "cmd_serve"]

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765

_MISSING = "the review page needs Jinja2 and markdown-it-py: pip install 'strategystore[web]'"


class _Stop(BaseException):
    """Raised in the serving thread when the process is told to stop.

    A ``BaseException``, like ``KeyboardInterrupt``: the server catches every
    ``Exception`` raised while it takes a connection and keeps serving.
    """


def cmd_serve(args: argparse.Namespace) -> int:
    """``serve``: answer the review page until interrupted (Ctrl-C, SIGTERM).

    Prints the address to open, once the socket is bound; a port of 0 picks
    a free one and prints that.
    """
    try:
        from strategystore.web import make_server  # noqa: PLC0415 (the web extra)
    except ImportError as exc:
        error(f"{_MISSING} ({exc})")
        return 1
    store = open_store(args)
    try:
        server = make_server(store, host=args.host, port=args.port, allow_write=args.allow_write)
    except OSError as exc:
        bare = ":" in args.host and not args.host.startswith("[")
        where = f"[{args.host}]" if bare else args.host
        error(f"cannot serve on {where}:{args.port}: {exc.strerror or exc}")
        return 1
    address = server.address
    if not address.loopback:
        error(
            f"serving on {args.host}, which other machines may reach: anyone who can "
            "reach it can read every document"
            + (" and change statuses" if args.allow_write else "")
            + "; prefer the default, --host 127.0.0.1",
            prefix="strategystore: warning: ",
        )
    mode = "changes allowed" if args.allow_write else "read-only"
    print(f"Serving strategies at {address.url} ({mode}; Ctrl-C to stop)", flush=True)
    try:
        with _stopped_by_signals():
            server.serve_forever()
    except (_Stop, KeyboardInterrupt):
        pass  # the way a server is stopped, not an error
    finally:
        server.server_close()
    error("stopped", prefix="strategystore: serve: ")
    return 0


@contextmanager
def _stopped_by_signals() -> Iterator[None]:
    """SIGTERM (and SIGINT) raise ``_Stop`` in the serving thread while inside."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return

    def stop(signum: int, frame: FrameType | None) -> None:
        raise _Stop(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        sys.stderr.flush()
