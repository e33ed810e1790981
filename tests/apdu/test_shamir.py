"""Shamir k-of-n over GF(2^8): field known answers, any k shares recover, fewer reveal nothing
usable (every secret stays equally possible), malformed share sets refused."""

from __future__ import annotations

import itertools
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apdu import shamir


def test_field_known_answers() -> None:
    """FIPS 197 section 4.2: {57} x {83} = {c1}; {57} x {13} = {fe}; inverses multiply to 1."""
    assert shamir._mul(0x57, 0x83) == 0xC1 and shamir._mul(0x57, 0x13) == 0xFE
    assert all(shamir._mul(a, shamir._div(1, a)) == 1 for a in range(1, 256))


def test_known_answer_split() -> None:
    shares = shamir.split(b"\x42", 2, 3, randomness=b"\x07")
    assert shares == [b"\x01\x45", b"\x02\x4c", b"\x03\x4b"]  # y = 42 + 07·x in GF(2^8)
    assert shamir.combine(shares[1:]) == b"\x42"


@given(st.binary(min_size=1, max_size=40), st.integers(1, 5), st.integers(0, 4), st.data())
def test_any_k_of_n_recover(secret: bytes, k: int, extra: int, data: st.DataObject) -> None:
    n = k + extra
    shares = shamir.split(secret, k, n)
    chosen = data.draw(st.permutations(shares)).__getitem__(slice(0, k))
    assert shamir.combine(list(chosen)) == secret


@given(st.binary(min_size=16, max_size=32), st.integers(2, 4))
def test_fewer_than_k_do_not_recover(secret: bytes, k: int) -> None:
    shares = shamir.split(secret, k, k + 1)
    for subset in itertools.combinations(shares, k - 1):
        assert shamir.combine(list(subset)) != secret  # a 16+ byte match by chance: 2^-128


def test_one_share_of_two_says_nothing() -> None:
    """For a fixed share 1, every one of the 256 secrets of a byte is equally possible."""
    seen = Counter()
    for secret in range(256):
        for r in range(256):
            share = shamir.split(bytes((secret,)), 2, 3, randomness=bytes((r,)))[0]
            if share == b"\x01\x00":
                seen[secret] += 1
    assert set(seen) == set(range(256)) and set(seen.values()) == {1}


@pytest.mark.parametrize(("shares", "words"), [
    ([], "no shares"),
    ([b"\x01\xaa", b"\x01\xbb"], "distinct"),
    ([b"\x00\xaa", b"\x01\xbb"], "distinct"),
    ([b"\x01\xaa", b"\x02\xbb\xcc"], "one length"),
])
def test_bad_share_sets(shares: list[bytes], words: str) -> None:
    with pytest.raises(shamir.ShareError, match=words):
        shamir.combine(shares)


@pytest.mark.parametrize(("k", "n"), [(0, 3), (4, 3), (2, 256)])
def test_bad_parameters(k: int, n: int) -> None:
    with pytest.raises(shamir.ShareError):
        shamir.split(b"x", k, n)
