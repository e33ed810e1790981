"""The card suite's own views of a card (tests/card/cards.py, helpers.py) see what a command
changes, on either card: otherwise "a refusal changes nothing" could not fail on the applet."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

import pytest

from apdu import ApduError
from apdu import keys as k
from apdu import triggers as t
from apdu.records import ValueRecord, ValueType
from host.session import WalletSession
from host.transport.inprocess import connect_card

from ..conftest import PIN
from .cards import AnyCard, state
from .helpers import observe

STEPS: dict[str, Callable[[WalletSession], object]] = {
    "store": lambda s: s.store(ValueRecord(ValueType.COUPON, "C")),
    "spend a PIN try": lambda s: s.verify_pin("9999"),
    "put triggers": lambda s: s.put_triggers(t.TriggerSettings(t.parse_condition("type=coupon"))),
    "generate a key": lambda s: s.generate_key(k.KeyMode.SYMMETRIC),
    "record a run": lambda s: s.record_run(date(2000, 3, 15)),
}


@pytest.mark.parametrize("step", list(STEPS))
def test_state_and_observe_see_a_write_and_leave_the_session_alone(card: AnyCard, step: str) -> None:
    s = WalletSession(connect_card(card))
    s.verify_pin(PIN)
    s.store(ValueRecord(ValueType.TICKET, "T"))
    before, seen = state(card), observe(card, (PIN,))
    assert state(card) == before and observe(card, (PIN,)) == seen  # reading writes nothing
    try:
        STEPS[step](s)
    except ApduError:
        assert step == "spend a PIN try"
    assert state(card) != before
    if step in ("store", "spend a PIN try"):
        assert observe(card, (PIN,)) != seen
    s.verify_pin(PIN)  # the session is the test's still: selected, its answers its own
    assert [e.name for e in s.list()][0] == "T"
