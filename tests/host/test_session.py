from __future__ import annotations

import pytest

from apdu import SW, ApduError, InvalidPinError, PinBlockedError
from card import SimulatedCard
from host.demo import FIG15
from host.session import ValueRefusedError, WalletSession
from host.transport import CardRemovedError
from host.transport.inprocess import connect_card


def test_typed_errors(card: SimulatedCard) -> None:
    s = WalletSession(connect_card(card))
    with pytest.raises(ApduError) as info:
        s.store(FIG15[0])
    assert info.value.known == SW.SECURITY_STATUS_NOT_SATISFIED
    assert "security status not satisfied" in str(info.value)
    with pytest.raises(InvalidPinError) as wrong:
        s.verify_pin("0000")
    assert wrong.value.tries_remaining == 2
    assert str(wrong.value) == "wrong PIN, 2 tries left"
    assert s.pin_tries_remaining() == 2
    for _ in range(2):
        with pytest.raises((InvalidPinError, PinBlockedError)):
            s.verify_pin("0000")
    assert s.pin_tries_remaining() == 0
    with pytest.raises(PinBlockedError):
        s.verify_pin("1234")


def test_refused_spend_names_the_value(session: WalletSession) -> None:
    ids = [session.store(r) for r in FIG15]
    with pytest.raises(ValueRefusedError, match=f"value {ids[2]} has no balance left for 900"):
        session.spend(ids[2], 900)
    with pytest.raises(ValueRefusedError, match="tickets or uses left"):
        session.use(ids[1], 3)
    assert session.read(ids[2]).balance == 800


def test_verified_session_reports_no_tries(session: WalletSession) -> None:
    assert session.pin_tries_remaining() is None


def test_pulled_card_is_a_transport_error(session: WalletSession, card: SimulatedCard) -> None:
    card.power_off()
    with pytest.raises(CardRemovedError):
        session.info()
