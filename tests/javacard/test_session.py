"""The host's own code (WalletSession, its APDU processors) drives the applet as it drives the
Python card: the applet is just another Transport."""

from __future__ import annotations

import os

import pytest

from apdu import wallet as w
from apdu.sw import InvalidPinError, PinBlockedError
from card import SimulatedCard
from host.session import UnblockRefusedError, WalletSession
from host.transport import Transport
from host.transport.inprocess import connect_card

from ..conftest import PIN, PUK
from .applet import NO_KIT, AppletTransport

if not os.environ.get("JC_HOME"):
    pytest.skip(NO_KIT, allow_module_level=True)


@pytest.fixture(params=["python card", "applet"])
def fresh_card(request: pytest.FixtureRequest) -> Transport:
    """A new, unpersonalized card: the Python card, then the applet (the same test for both)."""
    if request.param == "applet":
        applet: AppletTransport = request.getfixturevalue("applet")
        return applet
    return connect_card(SimulatedCard.manufacture())


def test_personalize_verify_change_and_unblock(fresh_card: Transport) -> None:
    session = WalletSession(fresh_card)
    info = session.info()
    assert info.life_cycle == w.LifeCycle.PERSONALIZATION and len(info.card_id) == 8
    assert session.personalize(PIN, PUK) == PUK
    assert session.info().life_cycle == w.LifeCycle.OPERATIONAL
    assert session.pin_tries_remaining() == 3
    with pytest.raises(InvalidPinError):
        session.verify_pin("9999")
    assert session.pin_tries_remaining() == 2
    session.verify_pin(PIN)
    assert session.pin_tries_remaining() is None
    session.change_pin(PIN, "5678")
    session.release()
    assert session.pin_tries_remaining() == 3
    for _ in range(3):
        with pytest.raises((InvalidPinError, PinBlockedError)):
            session.verify_pin(PIN)
    assert session.info().pin_tries_remaining == 0
    with pytest.raises(UnblockRefusedError):
        session.unblock_pin("11111111", "2468")
    session.unblock_pin(PUK, "2468")
    session.verify_pin("2468")
    assert session.info().pin_tries_remaining == 3
