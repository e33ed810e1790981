"""The typed messages of the command set round-trip through their bytes (hypothesis), and the
certificate parses only its one canonical encoding."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apdu import tlv
from apdu import wallet as w
from apdu.certificate import (
    Certificate,
    CertificateError,
    DigestField,
    Mode,
    digest_matches,
    make_digest,
    value_hash,
)
from apdu.records import MAX_TEXT, Tag, ValueFlags, ValueRecord, ValueType

text = st.text(st.characters(codec="utf-8"), max_size=MAX_TEXT // 4)
dates = st.dates(date(1990, 1, 1), date(2099, 12, 31))
u32 = st.integers(0, 2**32 - 1)
records = st.builds(
    ValueRecord,
    type=st.sampled_from(list(ValueType)),
    name=text.filter(bool),
    issuer=text,
    quantity=u32,
    face_value=u32,
    balance=u32,
    currency=st.sampled_from(["JPY", "EUR", "USD"]),
    valid_from=st.none(),
    valid_to=st.one_of(st.none(), dates),
    place=text,
    acquired_at=st.one_of(st.none(), st.datetimes(datetime(1990, 1, 1), datetime(2099, 1, 1)).map(
        lambda t: t.replace(microsecond=0))),
    payload=st.binary(max_size=512),
    total=u32,
    remarks=text,
)


@given(records)
def test_value_record_round_trip(r: ValueRecord) -> None:
    assert ValueRecord.from_bytes(r.body()) == r
    stored = r.stored(7, ValueFlags.BACKED_UP)
    assert ValueRecord.from_bytes(stored.to_bytes()) == stored


@given(st.builds(w.ListEntry, st.integers(1, 0xFFFF), st.sampled_from(list(ValueType)),
                 st.sampled_from(list(ValueFlags)), st.integers(0, 0xFFFF), st.one_of(st.none(), dates),
                 text), st.integers(0, 3))
def test_listing_round_trip(entry: w.ListEntry, n: int) -> None:
    assert w.parse_listing(bytes(entry) * n) == [entry] * n


ENTRY = bytes(w.ListEntry(3, ValueType.TICKET, ValueFlags.NONE, 10, date(2027, 1, 31), "Zoé"))


@pytest.mark.parametrize("raw", [
    ENTRY[:-1],  # the name cut short
    ENTRY[:5],  # the fixed part cut short
    ENTRY + b"\x00",  # a byte left over
    ENTRY[:11] + b"\xff" + ENTRY[12:],  # a name that is not UTF-8
    ENTRY[:2] + b"\x63" + ENTRY[3:],  # an unknown value type
    ENTRY[:6] + bytes.fromhex("20279999") + ENTRY[10:],  # not a date
], ids=["name short", "head short", "trailing", "not utf-8", "unknown type", "bad date"])
def test_a_malformed_listing_is_a_message_error(raw: bytes) -> None:
    with pytest.raises(w.MessageError, match="malformed listing"):
        w.parse_listing(raw)


@given(st.one_of(st.none(), st.sampled_from(list(ValueType))), st.booleans(),
       st.one_of(st.none(), st.tuples(dates, st.integers(0, 0xFFFF))))
def test_list_filter_round_trip(vtype: ValueType | None, certs: bool, expiry: tuple[date, int] | None) -> None:
    f = w.ListFilter(vtype, certs, *(expiry or (None, None)))
    assert w.ListFilter.from_bytes(bytes(f)) == f


@given(st.binary(min_size=8, max_size=8), u32, st.binary(min_size=32, max_size=32), st.binary(max_size=100),
       st.sampled_from(list(Mode)), st.binary(min_size=8, max_size=72))
def test_certificate_round_trip(card_id: bytes, counter: int, x: bytes, digest: bytes, mode: Mode,
                                signature: bytes) -> None:
    cert = Certificate(card_id, counter, x, digest, mode, signature)
    assert Certificate.from_bytes(cert.to_bytes()) == cert
    assert cert.to_bytes().startswith(cert.signed_part())


CERT = Certificate(bytes(8), 5, bytes(32), b"", Mode.PLAIN, bytes(70)).to_bytes()
ITEMS = tlv.decode(CERT)


@pytest.mark.parametrize(("raw", "words"), [
    (CERT + b"\x00", "not TLV|order|canonical"),
    (CERT[:-1], "not TLV"),
    (CERT.replace(bytes.fromhex("800101"), bytes.fromhex("800102"), 1), "version"),
    (tlv.encode([ITEMS[1], ITEMS[0], *ITEMS[2:]]), "order"),
    (tlv.encode([*ITEMS, ITEMS[-1]]), "order"),
])
def test_certificate_refuses_other_encodings(raw: bytes, words: str) -> None:
    with pytest.raises(CertificateError, match=words):
        Certificate.from_bytes(raw)


def test_fig_2a_total_and_remarks_are_stored_fields() -> None:
    r = ValueRecord(ValueType.TICKET, "Concert ticket C", quantity=2, face_value=4500, total=9000,
                    remarks="row 12, seats 5-6")
    body = r.body()
    assert bytes.fromhex("8F0400002328") in body and bytes.fromhex("9011") + b"row 12, seats 5-6" in body
    assert ValueRecord.from_bytes(body) == r
    assert {Tag.TOTAL, Tag.REMARKS}.isdisjoint(tlv.decode_map(ValueRecord(ValueType.TICKET, "none").body()))


def test_the_digest_can_carry_the_whole_validity_range() -> None:
    """Fig. 2(b): the digest's expiry as a from-to range, not valid-to alone."""
    r = ValueRecord(ValueType.TICKET, "Movie ticket A", valid_from=date(2000, 4, 1), valid_to=date(2000, 5, 31))
    body = r.body()
    digest = make_digest(body, (DigestField.START, DigestField.EXPIRY))
    assert digest == bytes.fromhex("870420000401" "880420000531")
    shifted = ValueRecord(ValueType.TICKET, "Movie ticket A", valid_from=date(2000, 4, 2), valid_to=date(2000, 5, 31))
    assert digest_matches(digest, body) and not digest_matches(digest, shifted.body())


def test_digest_and_hash() -> None:
    r = ValueRecord(ValueType.TICKET, "Movie ticket A", quantity=1, valid_to=date(2000, 5, 31), place="B")
    body = r.body()
    d = make_digest(body, (DigestField.NAME, DigestField.EXPIRY))
    assert digest_matches(d, body) and digest_matches(b"", body)
    other = ValueRecord(ValueType.TICKET, "Movie ticket G", quantity=1, valid_to=date(2000, 5, 31)).body()
    assert not digest_matches(d, other)
    assert value_hash(body) != value_hash(other) and len(value_hash(body)) == 32


def test_bcd_dates_keep_the_leading_zeros_of_early_years() -> None:
    """strftime drops them on glibc (year 1 became "1"): a card must not fail on a date it accepted."""
    from apdu.records import decode_bcd_date, decode_bcd_datetime, encode_bcd_date, encode_bcd_datetime

    assert encode_bcd_date(date(1, 2, 3)) == bytes.fromhex("00010203")
    assert decode_bcd_date(bytes.fromhex("00010203")) == date(1, 2, 3)
    assert encode_bcd_datetime(datetime(999, 1, 2, 3, 4, 5)) == bytes.fromhex("09990102030405")
    assert decode_bcd_datetime(bytes.fromhex("09990102030405")) == datetime(999, 1, 2, 3, 4, 5)
