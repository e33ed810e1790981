"""The fingerprint sample encoding shared by the terminal and the key manager: vectors both ways,
and what is not a print."""

from __future__ import annotations

import math

import pytest

from apdu.fingerprint import MAX_MINUTIAE, PrintError, decode, encode

VECTORS = [
    ([(0.0, 0.0, 0.0)], "01" "0000" "0000" "0000"),
    ([(12.3, 45.6, 1.0), (299.9, 399.9, 6.0)], "02" "007b" "01c8" "2710" "0bb7" "0f9f" "ea60"),
    ([(10.0, 20.0, 2 * math.pi + 0.5)], "01" "0064" "00c8" "1388"),  # directions wrap at 2 pi
]


@pytest.mark.parametrize(("minutiae", "hex_"), VECTORS)
def test_vectors_encode_and_decode(minutiae: list[tuple[float, float, float]], hex_: str) -> None:
    assert encode(minutiae).hex() == hex_
    again = decode(bytes.fromhex(hex_))
    assert [(x, y) for x, y, _ in again] == [(round(x, 1), round(y, 1)) for x, y, _ in minutiae]
    assert all(abs(a - b % (2 * math.pi)) < 1e-4 for (_, _, a), (_, _, b) in zip(again, minutiae, strict=True))


@pytest.mark.parametrize("raw", ["", "00", "01" "0000" "0000", "02" "0000" "0000" "0000",
                                 "51" + "000000000000" * 81])
def test_what_is_not_a_print_is_refused(raw: str) -> None:
    with pytest.raises(PrintError):
        decode(bytes.fromhex(raw))


@pytest.mark.parametrize("count", [0, MAX_MINUTIAE + 1])
def test_a_print_has_one_to_the_most_minutiae(count: int) -> None:
    with pytest.raises(PrintError):
        encode([(1.0, 2.0, 3.0)] * count)
