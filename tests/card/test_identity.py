"""The card's identity at the APDU level, in-process and through pcscd + vpcd: the issuer's
attestation (written once, before the PIN), and INTERNAL AUTHENTICATE signing only for the
server the card pinned, always in the one canonical signature form."""

from __future__ import annotations

import pytest

from apdu import SW, ApduError
from apdu.backup import Attestation, Audience, auth_message
from apdu.signature import is_canonical, verify
from card import SimulatedCard
from host.session import WalletSession

from ..conftest import ISSUER, PIN
from ..readers import Reader
from .cards import AnyCard, Cards, state
from .test_backup_commands import VAULT


def blank(reader: Reader, cards: Cards) -> tuple[AnyCard, WalletSession]:
    card = cards.blank()
    return card, WalletSession(reader.insert(card))


def test_the_issuer_attests_once_before_the_pin(reader: Reader, cards: Cards) -> None:
    card, s = blank(reader, cards)
    with pytest.raises(ApduError) as none:
        s.attestation()
    assert none.value.sw == SW.REFERENCE_DATA_NOT_FOUND
    identity = s.identity()  # readable in the personalization state, for the issuer
    attestation = ISSUER.attestation(identity)
    s.put_attestation(attestation)
    assert s.attestation() == attestation
    assert verify(attestation.issuer_key, attestation.signature, Attestation.message(identity))
    before = state(card)
    with pytest.raises(ApduError) as again:  # once for the card's life
        s.put_attestation(ISSUER.attestation(identity))
    assert again.value.sw == SW.CONDITIONS_NOT_SATISFIED and state(card) == before
    s.personalize(PIN)
    with pytest.raises(ApduError) as after:
        s.put_attestation(attestation)
    assert after.value.sw == SW.CONDITIONS_NOT_SATISFIED and s.attestation() == attestation


@pytest.mark.parametrize("case", ["another card's", "tampered", "malformed"])
def test_a_wrong_attestation_is_refused_and_changes_nothing(reader: Reader, cards: Cards, case: str) -> None:
    card, s = blank(reader, cards)
    good = ISSUER.attestation(s.identity())
    other = ISSUER.attestation(SimulatedCard.manufacture().applets[0].identity)  # type: ignore[attr-defined]
    bad, sw = {
        "another card's": (other, SW.VERIFICATION_FAILED),
        "tampered": (Attestation(good.issuer_key, good.signature[:-1] + b"\x01"), SW.VERIFICATION_FAILED),
        "malformed": (Attestation(b"\x04" + bytes(64), b"\x30\x00"), SW.VERIFICATION_FAILED),
    }[case]
    before = state(card)
    with pytest.raises(ApduError) as refused:
        s.put_attestation(bad)
    assert refused.value.sw == sw and state(card) == before


def test_internal_authenticate_signs_for_the_pinned_server_only(reader: Reader, card: AnyCard) -> None:
    s = WalletSession(reader.insert(card))
    s.verify_pin(PIN)
    challenge = bytes(range(32))
    for audience in Audience:  # nothing pinned yet: the card signs for nobody
        with pytest.raises(ApduError) as refused:
            s.authenticate(audience, challenge)
        assert refused.value.sw == SW.REFERENCE_DATA_NOT_USABLE
    s.put_vault_key(VAULT.public_key)
    me = s.identity()
    signature = s.authenticate(Audience.VAULT, challenge)
    assert verify(me.public_key, signature, auth_message(Audience.VAULT, VAULT.public_key, me.card_id, challenge))
    assert not verify(me.public_key, signature,
                      auth_message(Audience.KEY_MANAGER, VAULT.public_key, me.card_id, challenge))
    assert not verify(me.public_key, signature, auth_message(Audience.VAULT, ISSUER.public_key, me.card_id, challenge))


@pytest.mark.parametrize("p1p2, sw", [("0000", SW.INCORRECT_P1P2), ("0300", SW.INCORRECT_P1P2),
                                      ("0101", SW.INCORRECT_P1P2)])
def test_internal_authenticate_refuses_unknown_audiences(reader: Reader, card: AnyCard, p1p2: str,
                                                         sw: SW) -> None:
    from .helpers import send

    link = reader.insert(card)
    s = WalletSession(link)
    s.verify_pin(PIN)
    s.put_vault_key(VAULT.public_key)
    assert send(link, f"0088{p1p2}20" + "00" * 32 + "00").sw == sw


def test_the_card_signs_in_the_canonical_form(card: AnyCard) -> None:
    from host.transport.inprocess import connect_card

    s = WalletSession(connect_card(card))
    s.verify_pin(PIN)
    s.put_vault_key(VAULT.public_key)
    signatures = [s.authenticate(Audience.VAULT, i.to_bytes(16, "big")) for i in range(64)]
    assert all(is_canonical(sig) for sig in signatures)  # about half would be high-s otherwise
