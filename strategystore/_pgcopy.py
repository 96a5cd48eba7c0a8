"""An import batch's new rows, sent by ``COPY`` while the batch is still worked through.

The server inserts the rows already sent while the client validates and
serialises the next ones, so its work and the client's overlap instead of
following each other at the end of the batch. The rows go in ``COPY``'s
text format. In the binary format the server held every row of a batch (up
to a thousand) until the ``COPY`` ended, and inserted them only then: it
measures the rows it buffers by the length of their text lines, which
binary rows lack, so none of its work overlapped the client's. Escaping a
document's bytes for the text format is a few ``bytes.replace`` calls.
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager
from datetime import datetime
from typing import Any

import psycopg
from psycopg import Copy
from psycopg.copy import LibpqWriter

from strategystore.models import StrategyDocument

__all__ = ["CopyStream", "text_row"]

#: Rows wait in the buffer until it holds this many bytes, then go to the server.
_SEND_AT = 64 * 1024
_NULL = b"\\N"


def _escaped(value: bytes) -> bytes:
    """``value`` as a field of ``COPY``'s text format: backslash, newline, CR and tab escaped."""
    if b"\\" in value:
        value = value.replace(b"\\", b"\\\\")
    if b"\n" in value:
        value = value.replace(b"\n", b"\\n")
    if b"\r" in value:
        value = value.replace(b"\r", b"\\r")
    if b"\t" in value:
        value = value.replace(b"\t", b"\\t")
    return value


def _timestamp(value: datetime | None) -> bytes:
    return _NULL if value is None else value.isoformat().encode()


def text_row(doc: StrategyDocument, data: bytes) -> bytes:
    """The store's row for ``doc``, stored as ``data``, as a line of ``COPY``'s text format.

    The columns are ``COLUMNS``'s, in its order. The text is UTF-8, the store's
    connections' encoding; the reason column shows NUL as U+FFFD, as ``row_of`` does.
    """
    reason = doc.status_reason
    digest = doc.content_digest
    return b"\t".join(
        [
            _escaped(doc.brief_id.encode()),
            b"%d" % doc.version,
            doc.status.value.encode(),
            _NULL if reason is None else _escaped(reason.replace("\0", "\ufffd").encode()),
            _timestamp(doc.created_at),
            _timestamp(doc.updated_at),
            _NULL if digest is None else digest.encode(),
            _escaped(data) + b"\n",
        ]
    )


class CopyStream:
    """Rows for ``statement`` (a ``COPY … FROM STDIN``) on ``conn``, sent as they add up.

    The ``COPY`` begins with the first send and ends with ``finish``; while
    it runs, ``conn`` can run nothing else. A failure while sending is kept
    and raised by ``finish``, which also reads the server's own error.
    """

    def __init__(self, conn: psycopg.Connection[Any], statement: bytes) -> None:
        self._conn = conn
        self._statement = statement
        self._buffer = bytearray()
        self._rows = 0
        self._block: AbstractContextManager[Copy] | None = None
        self._copy: Copy | None = None
        self._failed: psycopg.Error | None = None

    @property
    def active(self) -> bool:
        """Whether a ``COPY`` is under way on the connection."""
        return self._block is not None

    def add(self, doc: StrategyDocument, data: bytes) -> None:
        """Add the row of ``doc``, stored as ``data``; send the rows held once they are many."""
        self._buffer += text_row(doc, data)
        self._rows += 1
        if len(self._buffer) >= _SEND_AT:
            self._send()

    def _send(self) -> None:
        if self._failed is not None:
            self._buffer.clear()
            return
        try:
            if self._copy is None:
                cursor = self._conn.cursor()
                # Each send is flushed to the server at once: psycopg would
                # hold up to a megabyte, and the server would wait for it.
                writer = LibpqWriter(cursor, flush_threshold=0)
                self._block = cursor.copy(self._statement, writer=writer)
                self._copy = self._block.__enter__()
            self._copy.write(bytes(self._buffer))
        except psycopg.Error as exc:
            # Said by ``finish``, with the server's reason when it gave one.
            self._failed = exc
        self._buffer.clear()

    def finish(self) -> None:
        """Send what is left and end the ``COPY``; raise what made it fail.

        Afterwards the stream is empty again, and a later ``add`` begins another ``COPY``.
        """
        if not self._rows:
            return
        self._send()
        block, failed = self._block, self._failed
        self._reset()
        if block is not None:
            # Ending it raises the server's error, which says more than a failed send.
            block.__exit__(None, None, None)
        if failed is not None:
            raise failed

    def abort(self, exc: BaseException) -> None:
        """End a ``COPY`` under way without storing its rows (``exc`` is why); raise nothing."""
        block = self._block
        self._reset()
        if block is not None:
            # The transaction is rolled back anyway: what ending it raises says nothing more.
            with contextlib.suppress(Exception):
                block.__exit__(type(exc), exc, exc.__traceback__)

    def _reset(self) -> None:
        self._buffer = bytearray()
        self._rows = 0
        self._block = None
        self._copy = None
        self._failed = None
