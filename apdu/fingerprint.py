"""The fingerprint sample (and template) encoding (seed E5): what the terminal's sensor sends and
the key manager decodes and keeps. A print is a set of minutiae, each x and y in pixels and a
direction in radians: one byte of count, then per minutia x and y in 1/10 pixel and the
direction in 1/10000 rad, three big-endian 16-bit words. Pure, like the rest of :mod:`apdu`:
the matcher (numpy) stays at the key manager."""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable

MAX_MINUTIAE = 80
_POINT = struct.Struct(">HHH")

Minutia = tuple[float, float, float]


class PrintError(ValueError):
    pass


def encode(minutiae: Iterable[Iterable[float]]) -> bytes:
    """The encoding of ``minutiae`` ((x, y, direction) each; x and y wrap at 6553.6 pixels)."""
    points = [tuple(m) for m in minutiae]
    if not 1 <= len(points) <= MAX_MINUTIAE:
        raise PrintError(f"a print has 1..{MAX_MINUTIAE} minutiae")
    out = bytearray((len(points),))
    for x, y, a in points:
        out += _POINT.pack(int(round(x * 10)) % 65536, int(round(y * 10)) % 65536,
                           int(round((a % (2 * math.pi)) * 10000)))
    return bytes(out)


def decode(raw: bytes) -> list[Minutia]:
    if not raw or len(raw) != 1 + raw[0] * _POINT.size or not 1 <= raw[0] <= MAX_MINUTIAE:
        raise PrintError("not an encoded print")
    points = [_POINT.unpack_from(raw, 1 + i * _POINT.size) for i in range(raw[0])]
    return [(x / 10, y / 10, a / 10000) for x, y, a in points]
