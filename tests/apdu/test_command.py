"""Command and response APDUs (ISO/IEC 7816-4 5.1): the four cases in short and extended
form as known answers, malformed bytes refused with their status word, and hypothesis round
trips for every case and for chaining split/join (5.3.3)."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apdu import SW
from apdu.command import (
    EXTENDED_MAX_NE,
    ApduFormatError,
    CommandApdu,
    ResponseApdu,
    join_chain,
    split_chain,
)

D3 = bytes.fromhex("A0B0C0")
D256 = bytes(range(256))

VECTORS = [  # (name, command, wire hex)
    ("case 1", CommandApdu(0x00, 0xA4, 0x04, 0x00), "00A40400"),
    ("case 2 short", CommandApdu(0x80, 0x10, ne=0x13), "8010000013"),
    ("case 2 short Ne=256", CommandApdu(0x00, 0xB0, ne=256), "00B0000000"),
    ("case 3 short", CommandApdu(0x00, 0x20, 0x00, 0x81, D3), "0020008103A0B0C0"),
    ("case 4 short", CommandApdu(0x00, 0xA4, 0x04, 0x00, D3, 256), "00A4040003A0B0C000"),
    ("case 2 extended", CommandApdu(0x00, 0xB0, ne=257), "00B00000000101"),
    ("case 2 extended Ne=65536", CommandApdu(0x00, 0xB0, ne=EXTENDED_MAX_NE), "00B00000000000"),
    ("case 3 extended", CommandApdu(0x80, 0x16, data=D256), "80160000000100" + D256.hex().upper()),
    ("case 4 extended", CommandApdu(0x80, 0x16, data=D256, ne=2), "80160000000100" + D256.hex().upper() + "0002"),
]


@pytest.mark.parametrize(("name", "command", "wire"), VECTORS, ids=[v[0] for v in VECTORS])
def test_vectors(name: str, command: CommandApdu, wire: str) -> None:
    assert command.to_bytes().hex().upper() == wire
    assert CommandApdu.from_bytes(bytes.fromhex(wire)) == command


def test_short_command_in_extended_form() -> None:
    c = CommandApdu(0x00, 0xA4, 0x04, 0x00, D3, 256)
    assert c.to_bytes(extended=True).hex().upper() == "00A4040000000" + "3A0B0C00100"
    assert CommandApdu.from_bytes(c.to_bytes(extended=True)) == c
    with pytest.raises(ValueError, match="short length"):
        CommandApdu(0x00, 0xB0, ne=257).to_bytes(extended=False)


@pytest.mark.parametrize(("wire", "words"), [
    ("00A404", "at least 4 header bytes"),
    ("0020008103A0B0", "Lc does not match"),
    ("0020008102A0B0C0D0E0", "Lc does not match"),
    ("00B0000000", None),  # case 2 short, Ne=256: fine
    ("00B000000000", "extended Lc of zero"),  # two bytes: neither short nor extended
    ("00160000000000", None),  # case 2 extended, Ne=65536: fine
    ("801600000001", "Lc does not match"),
    ("80160000000000AA", "extended Lc of zero"),
    ("801600000000030102", "extended Lc does not match"),
])
def test_malformed_commands_answer_wrong_length(wire: str, words: str | None) -> None:
    if words is None:
        CommandApdu.from_bytes(bytes.fromhex(wire))
        return
    with pytest.raises(ApduFormatError, match=words) as refused:
        CommandApdu.from_bytes(bytes.fromhex(wire))
    assert refused.value.sw == SW.WRONG_LENGTH


@pytest.mark.parametrize(("fields", "words"), [
    ({"cla": 256, "ins": 0}, "cla out of range"),
    ({"cla": 0, "ins": -1}, "ins out of range"),
    ({"cla": 0, "ins": 0, "ne": 0}, "Ne must be"),
    ({"cla": 0, "ins": 0, "ne": 65537}, "Ne must be"),
    ({"cla": 0, "ins": 0, "data": bytes(65536)}, "longer than 65535"),
])
def test_out_of_range_fields(fields: dict[str, object], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        CommandApdu(**fields)  # type: ignore[arg-type]


def test_response() -> None:
    r = ResponseApdu.from_bytes(bytes.fromhex("0102036A82"))
    assert (r.data, r.sw, r.sw1, r.sw2) == (b"\x01\x02\x03", 0x6A82, 0x6A, 0x82)
    assert bytes(r).hex() == "0102036a82"
    assert ResponseApdu.from_bytes(b"\x90\x00") == ResponseApdu(b"", SW.OK)
    with pytest.raises(ApduFormatError):
        ResponseApdu.from_bytes(b"\x90")


header = st.tuples(st.integers(0, 0xFF), st.integers(0, 0xFF), st.integers(0, 0xFF), st.integers(0, 0xFF))
short_data = st.binary(min_size=1, max_size=255)
long_data = st.binary(min_size=256, max_size=1200)


@given(header, st.sampled_from([1, 2, 3, 4]), st.booleans(), st.data())
def test_every_case_round_trips(h: tuple[int, int, int, int], case: int, extended: bool, draw: st.DataObject) -> None:
    data = b"" if case in (1, 2) else draw.draw(long_data if extended else short_data)
    ne = None
    if case in (2, 4):
        ne = draw.draw(st.integers(257, EXTENDED_MAX_NE) if extended else st.integers(1, 256))
    c = CommandApdu(*h, data=data, ne=ne)
    assert c.case == case
    wire = c.to_bytes()
    assert c.needs_extended == (extended and case != 1)
    assert CommandApdu.from_bytes(wire) == c
    assert CommandApdu.from_bytes(c.to_bytes(extended=True)) == c  # the extended form always works


@given(st.binary(max_size=2000), st.integers(1, 255), st.one_of(st.none(), st.integers(1, 256)))
def test_chaining_split_then_join(data: bytes, max_nc: int, ne: int | None) -> None:
    c = CommandApdu(0x80, 0x16, 0x01, 0x02, data, ne)
    links = split_chain(c, max_nc)
    assert all(len(x.data) <= max_nc for x in links) or len(links) == 1
    assert all(x.chained and x.ne is None for x in links[:-1]) and not links[-1].chained
    assert join_chain(links) == c


def test_join_refuses_broken_chains() -> None:
    a = CommandApdu(0x90, 0x16, data=b"a")
    with pytest.raises(ApduFormatError, match="one unchained link"):
        join_chain([a, a])
    with pytest.raises(ApduFormatError, match="differ"):
        join_chain([a, CommandApdu(0x80, 0x18, data=b"b")])
