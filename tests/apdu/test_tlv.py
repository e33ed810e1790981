"""BER-TLV as the card uses it: 1-3 byte tags, definite lengths up to 65535 in minimal form;
vectors at every length boundary, malformed input refused, hypothesis round trips."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apdu import tlv


@pytest.mark.parametrize(("tag", "length", "head"), [
    (0x80, 0, "8000"),
    (0x80, 127, "807F"),
    (0x80, 128, "808180"),
    (0x80, 255, "8081FF"),
    (0x80, 256, "80820100"),
    (0x80, 65535, "8082FFFF"),
    (0x9F1F, 1, "9F1F01"),
    (0x5F2D, 2, "5F2D02"),
    (0xBF8101, 0, "BF810100"),
])
def test_vectors(tag: int, length: int, head: str) -> None:
    value = bytes(length)
    raw = bytes(tlv.Tlv(tag, value))
    assert raw[: len(head) // 2].hex().upper() == head
    assert tlv.decode(raw) == [tlv.Tlv(tag, value)]


@pytest.mark.parametrize(("raw", "words"), [
    ("80", "truncated length"),
    ("8002AA", "runs past the end"),
    ("8081", "truncated length"),
    ("808105", "non-minimal length"),
    ("80820080" + "00" * 128, "non-minimal length"),
    ("8083000001", "unsupported length form"),
    ("8080", "unsupported length form"),  # indefinite length
    ("9F", "truncated tag"),
    ("9F1E00", "non-minimal tag number"),
    ("9F8001" "00", "non-minimal tag number"),
    ("9F818181" "00", "longer than 3 bytes"),
])
def test_malformed(raw: str, words: str) -> None:
    with pytest.raises(tlv.TlvError, match=words):
        tlv.decode(bytes.fromhex(raw))


def test_decode_map_refuses_repeated_tags_and_locate_finds_values() -> None:
    with pytest.raises(tlv.TlvError, match="repeated"):
        tlv.decode_map(bytes.fromhex("800101800102"))
    raw = tlv.encode([(0x81, b"\x01"), (0x83, b"Movie")])
    assert tlv.locate(raw, 0x83) == (5, 5) and tlv.locate(raw, 0x84) is None


tags = st.one_of(
    st.integers(0x00, 0xFF).filter(lambda t: t & 0x1F != 0x1F),
    st.integers(0x1F, 0x7F).map(lambda n: 0x9F00 | n),
    st.integers(0x80, 0x3FFF).map(lambda n: 0xBF0000 | (0x80 | n >> 7) << 8 | (n & 0x7F)),
)
items = st.lists(st.tuples(tags, st.binary(max_size=300)), max_size=6)


@given(items)
def test_round_trip(pairs: list[tuple[int, bytes]]) -> None:
    raw = tlv.encode(pairs)
    assert [(t.tag, t.value) for t in tlv.decode(raw)] == pairs
