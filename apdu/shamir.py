"""Shamir secret sharing over GF(2^8), byte by byte (seed E4, claims 7-8, generalised to k of n).

A share is ``x || y_1 .. y_len`` with x in 1..255: any k shares give the secret back by
Lagrange interpolation at 0; fewer give every secret with equal probability. The field is
AES's (x^8 + x^4 + x^3 + x + 1), so a JavaCard does it with table lookups.
"""

from __future__ import annotations

import os

EXP = [0] * 512
LOG = [0] * 256
_x = 1
for _i in range(255):
    EXP[_i] = _x
    LOG[_x] = _i
    _x ^= (_x << 1) ^ (0x11B if _x & 0x80 else 0)  # multiply by the generator 3
    _x &= 0xFF
for _i in range(255, 512):
    EXP[_i] = EXP[_i - 255]


class ShareError(ValueError):
    pass


def _mul(a: int, b: int) -> int:
    return 0 if a == 0 or b == 0 else EXP[LOG[a] + LOG[b]]


def _div(a: int, b: int) -> int:
    if b == 0:
        raise ZeroDivisionError
    return 0 if a == 0 else EXP[LOG[a] - LOG[b] + 255]


def split(secret: bytes, k: int, n: int, *, randomness: bytes | None = None) -> list[bytes]:
    """n shares, any k of which recover ``secret``; ``randomness`` only for known answers."""
    if not 1 <= k <= n <= 255:
        raise ShareError("shares are k of n with 1 <= k <= n <= 255")
    rand = randomness if randomness is not None else os.urandom(len(secret) * (k - 1))
    if len(rand) != len(secret) * (k - 1):
        raise ShareError("wrong amount of randomness")
    shares = []
    for x in range(1, n + 1):
        ys = bytearray()
        for i, s in enumerate(secret):
            coefficients = rand[i * (k - 1):(i + 1) * (k - 1)]
            y, power = s, 1
            for c in coefficients:
                power = _mul(power, x)
                y ^= _mul(c, power)
            ys.append(y)
        shares.append(bytes((x,)) + bytes(ys))
    return shares


def combine(shares: list[bytes]) -> bytes:
    """The secret from k shares (of one split, distinct x); garbage from fewer, by design."""
    if not shares:
        raise ShareError("no shares")
    xs = [s[0] for s in shares]
    if 0 in xs or len(set(xs)) != len(xs) or len({len(s) for s in shares}) != 1:
        raise ShareError("shares must be distinct, of one split and of one length")
    secret = bytearray()
    for i in range(1, len(shares[0])):
        acc = 0
        for j, sj in enumerate(shares):
            num, den = 1, 1
            for m, xm in enumerate(xs):
                if m != j:
                    num = _mul(num, xm)
                    den = _mul(den, xm ^ xs[j])
            acc ^= _mul(sj[i], _div(num, den))
        secret.append(acc)
    return bytes(secret)
