"""The ID card applet at the APDU level, in-process and through pcscd + vpcd: its document, its
signature over a challenge (the private key made on the card), the optional PIN."""

from __future__ import annotations

from datetime import date

import pytest

from apdu import SW, ApduError
from apdu import idcard as i
from card import SimulatedCard, crypto
from host.idcard import IdCardSession

from ..readers import Reader

EXPIRY = date(2031, 3, 31)


def test_document_and_signature(reader: Reader) -> None:
    card = SimulatedCard.issue_idcard("Hanako Yamada", "DL-123456789", EXPIRY)
    s = IdCardSession(reader.insert(card))
    doc = s.document()
    assert (doc.holder, doc.number, doc.expiry, doc.has_pin) == ("Hanako Yamada", "DL-123456789", EXPIRY, False)
    challenge = bytes(range(32))
    assert crypto.verify(doc.public_key, s.authenticate(challenge), i.auth_message(doc.number, challenge))
    assert not crypto.verify(doc.public_key, s.authenticate(challenge), i.auth_message(doc.number, bytes(32)))


def test_each_card_makes_its_own_key() -> None:
    keys = {SimulatedCard.issue_idcard("A", "N1", EXPIRY).applets[0].document.public_key  # type: ignore[attr-defined]
            for _ in range(3)}
    assert len(keys) == 3


def test_a_pin_guards_the_signature(reader: Reader) -> None:
    card = SimulatedCard.issue_idcard("Taro Sato", "P-0001", EXPIRY, pin="2468")
    s = IdCardSession(reader.insert(card))
    assert s.document().has_pin
    with pytest.raises(ApduError) as locked:
        s.authenticate(bytes(16))
    assert locked.value.sw == SW.SECURITY_STATUS_NOT_SATISFIED
    with pytest.raises(ApduError) as wrong:
        s.verify_pin("1111")
    assert wrong.value.sw == 0x63C2
    s.verify_pin("2468")
    assert s.authenticate(bytes(16))


@pytest.mark.parametrize("apdu, sw", [
    ("00880000", SW.WRONG_LENGTH),  # no challenge
    ("00CA0101", SW.INCORRECT_P1P2),
    ("00B00000", SW.INS_NOT_SUPPORTED),
    ("80CA0000", SW.CLA_NOT_SUPPORTED),
])
def test_bad_commands(reader: Reader, apdu: str, sw: SW) -> None:
    from ..card.helpers import send

    link = reader.insert(SimulatedCard.issue_idcard("A", "N1", EXPIRY))
    send(link, "00A4040007" + i.AID_IDCARD.hex())
    assert send(link, apdu).sw == sw


def test_the_wallet_is_not_on_an_id_card() -> None:
    from apdu import wallet as w
    from host.transport.inprocess import connect_card

    link = connect_card(SimulatedCard.issue_idcard("A", "N1", EXPIRY))
    data, sw = link.send_and_receive(bytes(w.select()))
    assert sw == SW.FILE_NOT_FOUND
