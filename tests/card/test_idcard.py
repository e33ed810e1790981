"""The ID card applet at the APDU level, in-process and through pcscd + vpcd: its document, its
signature over a challenge (the private key made on the card), the optional PIN."""

from __future__ import annotations

from datetime import date

import pytest

from apdu import SW, ApduError, CommandApdu, PinBlockedError
from apdu import idcard as i
from apdu import wallet as w
from apdu.context import audience
from card import SimulatedCard, crypto
from host.idcard import IdCardSession
from host.transport.inprocess import connect_card

from ..conftest import ISSUER
from ..readers import Reader
from .cards import AnyCard, Cards, state

EXPIRY = date(2031, 3, 31)
KEYMGR = ISSUER.public_key  # any P-256 key serves as the audience here


def test_document_and_signature(reader: Reader, cards: Cards) -> None:
    card = cards.id_issued("Hanako Yamada", "DL-123456789", EXPIRY)
    s = IdCardSession(reader.insert(card))
    doc = s.document()
    assert (doc.holder, doc.number, doc.expiry, doc.has_pin) == ("Hanako Yamada", "DL-123456789", EXPIRY, False)
    assert crypto.verify(ISSUER.public_key, doc.signature, doc.message())  # the issuer's word
    challenge = bytes(range(32))
    signature = s.authenticate(KEYMGR, challenge)
    assert crypto.verify(doc.public_key, signature, i.auth_message(audience(KEYMGR), doc.number, challenge))
    assert not crypto.verify(doc.public_key, signature, i.auth_message(audience(KEYMGR), doc.number, bytes(32)))
    assert not crypto.verify(doc.public_key, signature, i.auth_message(audience(doc.public_key), doc.number,
                                                                       challenge))  # for one key manager only


def test_each_card_makes_its_own_key(cards: Cards) -> None:
    keys = {IdCardSession(connect_card(cards.id_issued("A", "N1", EXPIRY))).public_key() for _ in range(3)}
    assert len(keys) == 3


def test_a_pin_guards_the_signature(reader: Reader, cards: Cards) -> None:
    card = cards.id_issued("Taro Sato", "P-0001", EXPIRY, pin="2468")
    s = IdCardSession(reader.insert(card))
    assert s.document().has_pin
    with pytest.raises(ApduError) as locked:
        s.authenticate(KEYMGR, bytes(16))
    assert locked.value.sw == SW.SECURITY_STATUS_NOT_SATISFIED
    with pytest.raises(ApduError) as wrong:
        s.verify_pin("1111")
    assert wrong.value.sw == 0x63C2
    s.verify_pin("2468")
    assert s.authenticate(KEYMGR, bytes(16))


def test_a_blocked_id_card_pin_does_not_send_the_holder_to_the_wallet_unblock(cards: Cards) -> None:
    s = IdCardSession(connect_card(cards.id_issued("Taro Sato", "P-0002", EXPIRY, pin="2468")))
    for _ in range(3):
        with pytest.raises(ApduError):
            s.verify_pin("1111")
    with pytest.raises(PinBlockedError) as blocked:
        s.verify_pin("2468")
    assert "issuer" in str(blocked.value) and "evb card pin unblock" not in str(blocked.value)


@pytest.mark.parametrize("apdu, sw", [
    ("00880000", SW.WRONG_LENGTH),  # no challenge
    ("0088000020" + "00" * 32, SW.WRONG_LENGTH),  # an audience and no challenge
    ("00CA0101", SW.INCORRECT_P1P2),
    ("00B00000", SW.INS_NOT_SUPPORTED),
    ("80CA0000", SW.CLA_NOT_SUPPORTED),
])
def test_bad_commands(reader: Reader, cards: Cards, apdu: str, sw: SW) -> None:
    from ..card.helpers import send

    link = reader.insert(cards.id_issued("A", "N1", EXPIRY))
    send(link, "00A4040007" + i.AID_IDCARD.hex())
    assert send(link, apdu).sw == sw


def test_the_wallet_is_not_on_an_id_card(cards: Cards) -> None:
    link = connect_card(cards.id_issued("A", "N1", EXPIRY))
    data, sw = link.send_and_receive(bytes(w.select()))
    assert sw != SW.OK and not data
    if cards.python:  # with no applet selected a Java Card's OS answers (jCardSim 6999: docs/APDU.md 3.1)
        assert sw == SW.FILE_NOT_FOUND


# --- issuing a blank card (PUT DATA), as on a Java Card -------------------------------------


def blank_session(cards: Cards) -> tuple[AnyCard, IdCardSession]:
    card = cards.id_blank()
    return card, IdCardSession(connect_card(card))


def test_a_blank_card_shows_its_key_and_nothing_else(cards: Cards) -> None:
    _, s = blank_session(cards)
    assert len(s.public_key()) == 65
    for attempt, sw in ((s.document, SW.REFERENCE_DATA_NOT_FOUND), (lambda: s.verify_pin("1234"),
                        SW.CONDITIONS_NOT_SATISFIED), (lambda: s.authenticate(KEYMGR, bytes(16)),
                                                        SW.CONDITIONS_NOT_SATISFIED)):
        with pytest.raises(ApduError) as refused:
            attempt()
        assert refused.value.sw == sw


def test_issue_through_the_cards_commands(cards: Cards) -> None:
    _, s = blank_session(cards)
    key = s.public_key()
    doc = s.issue("Hanako Yamada", "DL-1", EXPIRY, ISSUER.sign, pin="2468")
    assert s.document() == doc and doc.public_key == key and doc.has_pin
    assert crypto.verify(ISSUER.public_key, doc.signature, doc.message())
    assert s.public_key() == key  # the key does not change when the card is issued
    s.verify_pin("2468")
    challenge = bytes(range(16))
    assert crypto.verify(key, s.authenticate(KEYMGR, challenge), i.auth_message(audience(KEYMGR), "DL-1", challenge))


def _document(key: bytes, has_pin: bool = False) -> i.IdDocument:
    return i.IdDocument.signed("Mallory", "X-1", EXPIRY, key, has_pin, ISSUER.sign)


def _raw(key: bytes, **fields: bytes) -> bytes:
    """A document TLV with some fields replaced (tags 80..84, 9E by name), signature or not."""
    tags = {"holder": 0x80, "number": 0x81, "expiry": 0x82, "key": 0x83, "flag": 0x84, "signature": 0x9E}
    values = {"holder": b"Mallory", "number": b"X-1", "expiry": bytes.fromhex("20310331"), "key": key,
              "flag": b"\x00", "signature": bytes(70)} | fields
    return b"".join(bytes((tags[name], len(value))) + value for name, value in values.items())


STRUCTURE = {
    "holder too long": {"holder": b"H" * 65}, "empty number": {"number": b""},
    "number not printable": {"number": b"X\x01"}, "no such date": {"expiry": bytes.fromhex("20311301")},
    "PIN flag 02": {"flag": b"\x02"}, "empty signature": {"signature": b""},
    "signature too long": {"signature": bytes(73)},
}


@pytest.mark.parametrize("case", ["another card's key", "PIN flag without a PIN", "PIN without the flag",
                                  "bad PIN block", "not a document", "P1P2", "long length form",
                                  *STRUCTURE])
def test_a_bad_issue_changes_nothing(cards: Cards, case: str) -> None:
    """Every refused PUT DATA leaves the card blank: the same EEPROM, byte for byte (on the
    applet: the same key, no document). The card checks structure, sizes and its own key
    (docs/APDU.md 7.2), as the applet does."""
    card, s = blank_session(cards)
    key = s.public_key()
    other = crypto.generate()[1]
    command = {
        "another card's key": i.put_document(_document(other)),
        "PIN flag without a PIN": i.put_document(_document(key, has_pin=True)),
        "PIN without the flag": i.put_document(_document(key), w.pin_block("1234")),
        "bad PIN block": i.put_document(_document(key, has_pin=True), bytes(8)),
        "not a document": CommandApdu(0x00, i.INS_PUT_DATA, 0, 0, bytes.fromhex("800141")),
        "P1P2": CommandApdu(0x00, i.INS_PUT_DATA, 0, 1, _document(key).to_bytes()),
        "long length form": CommandApdu(0x00, i.INS_PUT_DATA, 0, 0, _raw(key).replace(b"\x80\x07", b"\x80\x81\x07", 1)),
        **{name: CommandApdu(0x00, i.INS_PUT_DATA, 0, 0, _raw(key, **fields)) for name, fields in STRUCTURE.items()},
    }[case]
    before = state(card)
    _, sw = s.protocol.transport.send_and_receive(bytes(command))
    assert sw == (SW.INCORRECT_P1P2 if case == "P1P2" else SW.WRONG_DATA)
    assert state(card) == before


def test_a_card_is_issued_once(cards: Cards) -> None:
    _, s = blank_session(cards)
    s.issue("Hanako Yamada", "DL-1", EXPIRY, ISSUER.sign)
    with pytest.raises(ApduError) as again:
        s.issue("Mallory", "DL-2", EXPIRY, ISSUER.sign)
    assert again.value.sw == SW.CONDITIONS_NOT_SATISFIED
    assert s.document().holder == "Hanako Yamada"


def test_issue_torn_at_every_write_is_blank_or_issued() -> None:
    """Power cut after each EEPROM write of PUT DATA: the card comes back blank (and can be
    issued again) or issued with the whole document and its PIN, never in between."""
    from card import Eeprom
    from host.transport import CardRemovedError

    blank = SimulatedCard.manufacture_idcard().eeprom.snapshot()

    def run(tear_after: int | None) -> tuple[SimulatedCard, int]:
        card = SimulatedCard(Eeprom(bytearray(blank)))
        s = IdCardSession(connect_card(card))
        start = card.eeprom.page_writes
        card.eeprom.cut_power_after(tear_after)
        try:
            s.issue("Hanako Yamada", "DL-1", EXPIRY, ISSUER.sign, pin="2468")
        except CardRemovedError:
            assert tear_after is not None
        card.eeprom.cut_power_after(None)
        return card, card.eeprom.page_writes - start

    _, total = run(None)
    outcomes = set()
    for n in range(total):
        card, _ = run(n)
        s = IdCardSession(connect_card(card))
        try:
            doc = s.document()
        except ApduError as exc:
            assert exc.sw == SW.REFERENCE_DATA_NOT_FOUND
            s.issue("Hanako Yamada", "DL-1", EXPIRY, ISSUER.sign, pin="2468")  # blank: issue it again
            outcomes.add("blank")
        else:
            assert doc.holder == "Hanako Yamada" and doc.has_pin
            outcomes.add("issued")
        s.verify_pin("2468")
        assert s.authenticate(KEYMGR, bytes(16))
    assert outcomes == {"blank", "issued"} and total > 1


def test_a_well_formed_document_the_card_takes(cards: Cards) -> None:
    """The structure check's positive twin: the same builder, nothing replaced, is issued."""
    _, s = blank_session(cards)
    s.protocol.send(CommandApdu(0x00, i.INS_PUT_DATA, 0, 0, _raw(s.public_key())))
    assert s.protocol.send(i.get_document()) == _raw(s.public_key())
