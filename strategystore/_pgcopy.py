"""An import batch's new rows, sent by binary ``COPY`` while the batch is still worked through.

The server inserts the rows already sent while the client validates and
serialises the next ones, so its work and the client's overlap instead of
following each other at the end of the batch. The rows are built here in
``COPY``'s binary format: the document's bytes go as they are (text
``COPY`` would escape every newline of them), and the server parses no
timestamp text.
"""

from __future__ import annotations

import contextlib
import struct
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg import Copy
from psycopg.copy import LibpqWriter

from strategystore.models import StrategyDocument

__all__ = ["CopyStream", "binary_row"]

#: The header of binary ``COPY`` data: its signature, no flags, no extension.
_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + bytes(8)
#: What ends binary ``COPY`` data: a row of -1 fields.
_TRAILER = b"\xff\xff"
_NULL = b"\xff\xff\xff\xff"
#: PostgreSQL's timestamps count microseconds from this instant.
_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)
#: Rows wait in the buffer until it holds this many bytes, then go to the server.
_SEND_AT = 64 * 1024

_LENGTH = struct.Struct(">i")
# A row's field count, then brief_id's length (its bytes follow).
_HEAD = struct.Struct(">hi")
# version (4 bytes), then status's length (its bytes follow).
_VERSION = struct.Struct(">iii")
_TIMESTAMP = struct.Struct(">iq")


def _timestamp(value: datetime) -> bytes:
    delta = value - _EPOCH
    return _TIMESTAMP.pack(8, (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds)


def binary_row(doc: StrategyDocument, data: bytes, out: bytearray) -> None:
    """Append the store's row for ``doc``, stored as ``data``, to ``out`` in binary ``COPY`` form.

    The columns are ``COLUMNS``'s, in its order. The text is UTF-8, the store's
    connections' encoding; the reason column shows NUL as U+FFFD, as ``row_of`` does.
    """
    brief = doc.brief_id.encode()
    status = doc.status.value.encode()
    reason = doc.status_reason
    updated = doc.updated_at
    digest = doc.content_digest
    out += _HEAD.pack(8, len(brief))
    out += brief
    out += _VERSION.pack(4, doc.version, len(status))
    out += status
    if reason is None:
        out += _NULL
    else:
        text = reason.replace("\0", "\ufffd").encode()
        out += _LENGTH.pack(len(text))
        out += text
    out += _timestamp(doc.created_at)
    out += _NULL if updated is None else _timestamp(updated)
    if digest is None:
        out += _NULL
    else:
        sealed = digest.encode()
        out += _LENGTH.pack(len(sealed))
        out += sealed
    out += _LENGTH.pack(len(data))
    out += data


class CopyStream:
    """Rows for ``statement`` (a binary ``COPY … FROM STDIN``) on ``conn``, sent as they add up.

    The ``COPY`` begins with the first send and ends with ``finish``; while
    it runs, ``conn`` can run nothing else. A failure while sending is kept
    and raised by ``finish``, which also reads the server's own error.
    """

    def __init__(self, conn: psycopg.Connection[Any], statement: bytes) -> None:
        self._conn = conn
        self._statement = statement
        self._buffer = bytearray(_SIGNATURE)
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
        binary_row(doc, data, self._buffer)
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
        self._buffer += _TRAILER
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
        self._buffer = bytearray(_SIGNATURE)
        self._rows = 0
        self._block = None
        self._copy = None
        self._failed = None
