"""Shared fixtures and the size knob.

``EVB_TEST_SIZE`` scales the heavy suites: ``ci`` (default) runs sizes that still mean
something in a few minutes; ``full`` runs the sizes reported in closing notes.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, settings

from card import SimulatedCard
from host.session import WalletSession
from host.transport.inprocess import connect_card

SIZE = os.environ.get("EVB_TEST_SIZE", "ci")
FULL = SIZE == "full"

settings.register_profile("ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("full", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("full" if FULL else "ci")

PIN = "1234"


@pytest.fixture
def card() -> SimulatedCard:
    """A personalized card in the reader, powered, with nothing on it."""
    c = SimulatedCard.manufacture()
    session = WalletSession(connect_card(c))
    session.personalize(PIN)
    c.power_off()
    return c


@pytest.fixture
def session(card: SimulatedCard) -> Iterator[WalletSession]:
    """A session on ``card`` with the PIN verified."""
    s = WalletSession(connect_card(card))
    s.verify_pin(PIN)
    yield s
