"""Answer-To-Reset building and reading, ISO/IEC 7816-3 section 8 and 7816-4 8.1.1.

Our card answers ``3B 85 80 01 | 80 73 80 21 C0 | TCK``: direct convention; TD1 = 80 and TD2 = 01 offer T=0 and
T=1; five historical bytes in compact-TLV after category indicator 80: card capabilities
(tag 7, ISO 7816-4 8.1.1.2.7) saying selection by full DF name, and in the third byte
"command chaining" and "extended Lc and Le". TCK is present because T=1 is offered.
"""

from __future__ import annotations

from functools import reduce

HISTORICAL = bytes.fromhex("80738021C0")
CAP_CHAINING = 0x80
CAP_EXTENDED = 0x40


def build_atr(historical: bytes = HISTORICAL) -> bytes:
    if len(historical) > 15:
        raise ValueError("at most 15 historical bytes")
    body = bytes((0x80 | len(historical), 0x80, 0x01)) + historical
    return b"\x3b" + body + bytes((reduce(lambda a, b: a ^ b, body, 0),))


def capabilities(atr: bytes) -> tuple[bool, bool]:
    """(extended length, command chaining) as the historical bytes declare them.

    A host uses this to pick extended APDUs or chaining; cards that say nothing get neither.
    """
    t0 = atr[1]
    k = t0 & 0x0F
    hist = atr[len(atr) - k - (1 if _has_tck(atr) else 0) : len(atr) - (1 if _has_tck(atr) else 0)]
    if not hist or hist[0] != 0x80:
        return False, False
    pos = 1
    while pos < len(hist):
        tag, n = hist[pos] >> 4, hist[pos] & 0x0F
        value = hist[pos + 1 : pos + 1 + n]
        if tag == 0x7 and len(value) >= 3:
            return bool(value[2] & CAP_EXTENDED), bool(value[2] & CAP_CHAINING)
        pos += 1 + n
    return False, False


def _has_tck(atr: bytes) -> bool:
    """TCK follows when any TDi names a protocol other than T=0."""
    pos, y = 1, atr[1] >> 4
    while y:
        present = [bit for bit in (0x1, 0x2, 0x4) if y & bit]
        pos += len(present)
        if y & 0x8:
            pos += 1
            td = atr[pos]
            if td & 0x0F:
                return True
            y = td >> 4
        else:
            break
    return False
