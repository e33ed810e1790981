"""The ID card applet at the APDU level, in-process and through pcscd + vpcd: its document, its
signature over a challenge (the private key made on the card), the optional PIN."""

from __future__ import annotations

from datetime import date

import pytest

from apdu import SW, ApduError, PinBlockedError
from apdu import idcard as i
from apdu.context import audience
from card import SimulatedCard, crypto
from host.idcard import IdCardSession
from host.transport.inprocess import connect_card

from ..conftest import ISSUER
from ..readers import Reader

EXPIRY = date(2031, 3, 31)
KEYMGR = ISSUER.public_key  # any P-256 key serves as the audience here


def test_document_and_signature(reader: Reader) -> None:
    card = SimulatedCard.issue_idcard("Hanako Yamada", "DL-123456789", EXPIRY, ISSUER.sign)
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


def test_each_card_makes_its_own_key() -> None:
    keys = {SimulatedCard.issue_idcard("A", "N1", EXPIRY, ISSUER.sign).applets[0].document.public_key  # type: ignore[attr-defined]
            for _ in range(3)}
    assert len(keys) == 3


def test_a_pin_guards_the_signature(reader: Reader) -> None:
    card = SimulatedCard.issue_idcard("Taro Sato", "P-0001", EXPIRY, ISSUER.sign, pin="2468")
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


def test_a_blocked_id_card_pin_does_not_send_the_holder_to_the_wallet_unblock() -> None:
    s = IdCardSession(connect_card(SimulatedCard.issue_idcard("Taro Sato", "P-0002", EXPIRY, ISSUER.sign, pin="2468")))
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
def test_bad_commands(reader: Reader, apdu: str, sw: SW) -> None:
    from ..card.helpers import send

    link = reader.insert(SimulatedCard.issue_idcard("A", "N1", EXPIRY, ISSUER.sign))
    send(link, "00A4040007" + i.AID_IDCARD.hex())
    assert send(link, apdu).sw == sw


def test_the_wallet_is_not_on_an_id_card() -> None:
    from apdu import wallet as w
    from host.transport.inprocess import connect_card

    link = connect_card(SimulatedCard.issue_idcard("A", "N1", EXPIRY, ISSUER.sign))
    data, sw = link.send_and_receive(bytes(w.select()))
    assert sw == SW.FILE_NOT_FOUND
