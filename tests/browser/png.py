"""Pixels of a PNG as Chromium writes a screenshot, read with the standard library only."""

from __future__ import annotations

import struct
import zlib
from collections import Counter
from dataclasses import dataclass

_SIGNATURE = b"\x89PNG\r\n\x1a\n"

#: Bytes per pixel of each 8-bit colour type: grey, RGB, grey and alpha, RGBA.
_CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}


@dataclass(frozen=True)
class Image:
    """A decoded image: its size and one ``bytes`` per pixel, row by row."""

    width: int
    height: int
    pixels: list[bytes]

    def colours(self) -> Counter[bytes]:
        """How many pixels have each colour."""
        return Counter(self.pixels)

    def foreground_share(self) -> float:
        """The share of pixels that differ from the most common colour, the background."""
        counts = self.colours()
        background = counts.most_common(1)[0][1]
        return 1 - background / len(self.pixels)


def decode(data: bytes) -> Image:
    """Decode a non-interlaced 8-bit PNG.

    Raises:
        ValueError: not a PNG, or one of a kind a screenshot never is.
    """
    if not data.startswith(_SIGNATURE):
        raise ValueError("not a PNG")
    offset = len(_SIGNATURE)
    header = b""
    compressed = bytearray()
    while offset < len(data):
        (length,) = struct.unpack_from(">I", data, offset)
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        offset += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            compressed += body
        elif kind == b"IEND":
            break
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    if depth != 8 or colour not in _CHANNELS or interlace:
        raise ValueError(f"unsupported PNG: depth {depth}, colour type {colour}")
    bpp = _CHANNELS[colour]
    raw = zlib.decompress(bytes(compressed))
    stride = width * bpp
    previous = bytearray(stride)
    pixels: list[bytes] = []
    for y in range(height):
        start = y * (stride + 1)
        row = _unfilter(raw[start], bytearray(raw[start + 1 : start + 1 + stride]), previous, bpp)
        pixels.extend(bytes(row[x : x + bpp]) for x in range(0, stride, bpp))
        previous = row
    return Image(width, height, pixels)


def _unfilter(kind: int, row: bytearray, above: bytearray, bpp: int) -> bytearray:
    """Undo one row's filter (PNG specification, section 9), in place."""
    if kind == 1:
        for i in range(bpp, len(row)):
            row[i] = (row[i] + row[i - bpp]) & 0xFF
    elif kind == 2:
        for i in range(len(row)):
            row[i] = (row[i] + above[i]) & 0xFF
    elif kind == 3:
        for i in range(len(row)):
            left = row[i - bpp] if i >= bpp else 0
            row[i] = (row[i] + ((left + above[i]) >> 1)) & 0xFF
    elif kind == 4:
        for i in range(len(row)):
            a = row[i - bpp] if i >= bpp else 0
            b = above[i]
            c = above[i - bpp] if i >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            predictor = a if pa <= pb and pa <= pc else b if pb <= pc else c
            row[i] = (row[i] + predictor) & 0xFF
    elif kind != 0:
        raise ValueError(f"unknown PNG filter {kind}")
    return row
