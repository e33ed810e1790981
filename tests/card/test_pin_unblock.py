"""PIN unblock (issue 16): the unblocking code set at personalization, RESET RETRY COUNTER with
its own try counter spent before the comparison, refusals that change nothing, and tearing at
every write of RESET RETRY COUNTER and of PERSONALIZE."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from apdu import SW, ApduError, PinBlockedError
from apdu import wallet as w
from card import SimulatedCard
from card.wallet import PUK_MAX_TRIES
from host.session import WalletSession, new_puk
from host.transport import CardRemovedError
from host.transport.inprocess import connect_card

from ..conftest import ISSUER, PIN, PUK
from .cards import AnyCard, Cards, state
from .helpers import clone, observe, send

NEW_PIN = "5678"
WRONG_PUK = "11111111"


def block_pin(s: WalletSession) -> None:
    for _ in range(3):
        with pytest.raises(ApduError):
            s.verify_pin("9999")
    with pytest.raises(PinBlockedError):
        s.verify_pin(PIN)


def test_a_blocked_pin_is_unblocked_with_the_puk(card: AnyCard) -> None:
    s = WalletSession(connect_card(card))
    block_pin(s)
    assert s.info().pin_tries_remaining == 0
    s.unblock_pin(PUK, NEW_PIN)
    assert s.info().pin_tries_remaining == 3
    with pytest.raises(ApduError) as not_verified:
        s.delete(1)
    assert not_verified.value.sw == SW.SECURITY_STATUS_NOT_SATISFIED  # unblocking verifies nothing
    with pytest.raises(ApduError):
        s.verify_pin(PIN)  # the old PIN is gone
    s.verify_pin(NEW_PIN)


def test_wrong_puks_count_down_its_own_counter_and_block_it(card: AnyCard) -> None:
    s = WalletSession(connect_card(card))
    block_pin(s)
    answers = []
    for _ in range(PUK_MAX_TRIES + 1):
        with pytest.raises(ApduError) as refused:
            s.unblock_pin(WRONG_PUK, NEW_PIN)
        answers.append(refused.value.sw)
    assert answers == [0x63C0 | n for n in range(PUK_MAX_TRIES - 1, 0, -1)] + [SW.AUTH_METHOD_BLOCKED] * 2
    before = observe(card, (PIN, NEW_PIN))
    with pytest.raises(ApduError) as blocked:
        s.unblock_pin(PUK, NEW_PIN)  # the right code, too late
    assert blocked.value.sw == SW.AUTH_METHOD_BLOCKED and observe(card, (PIN, NEW_PIN)) == before


def test_a_right_puk_restores_its_counter(card: AnyCard) -> None:
    s = WalletSession(connect_card(card))
    with pytest.raises(ApduError) as wrong:
        s.unblock_pin(WRONG_PUK, NEW_PIN)
    assert wrong.value.sw == 0x63C0 | (PUK_MAX_TRIES - 1)
    s.unblock_pin(PUK, NEW_PIN)  # also works on a PIN that is not blocked
    for _ in range(PUK_MAX_TRIES - 1):
        with pytest.raises(ApduError):
            s.unblock_pin(WRONG_PUK, NEW_PIN)
    s.unblock_pin(PUK, PIN)  # still one try left: the right code had restored all ten
    s.verify_pin(PIN)


@pytest.mark.python_only("page writes and a power cut at one: the applet's is tests/javacard/test_tearing.py")
def test_the_puk_try_is_spent_before_the_comparison(card: SimulatedCard) -> None:
    """Cutting power just after the counter's own transaction still costs the try: no free guesses."""
    link = connect_card(card)
    send(link, w.select().to_bytes().hex())
    wrong = w.reset_retry_counter(WRONG_PUK, NEW_PIN).to_bytes()
    probe = clone(card.eeprom.snapshot())
    probe_link = connect_card(probe)
    send(probe_link, w.select().to_bytes().hex())
    start = probe.eeprom.page_writes
    send(probe_link, wrong.hex())
    counter_writes = probe.eeprom.page_writes - start  # a wrong code writes the counter only
    card.eeprom.cut_power_after(counter_writes)  # ... and power goes just before the answer
    assert send(link, wrong.hex()).sw == 0x63C0 | (PUK_MAX_TRIES - 1)
    card.eeprom.cut_power_after(None)
    card.reset()
    s = WalletSession(connect_card(card))
    with pytest.raises(ApduError) as again:
        s.unblock_pin(WRONG_PUK, NEW_PIN)
    assert again.value.sw == 0x63C0 | (PUK_MAX_TRIES - 2)


REFUSALS: list[tuple[str, str, int]] = [
    ("wrong-length", "002C008108" + PUK.encode().hex(), SW.WRONG_LENGTH),
    ("wrong-p1", "002C0181" + "10" + PUK.encode().hex() + w.pin_block(NEW_PIN).hex(), SW.INCORRECT_P1P2),
    ("wrong-p2", "002C0082" + "10" + PUK.encode().hex() + w.pin_block(NEW_PIN).hex(), SW.REFERENCE_DATA_NOT_FOUND),
    ("bad-new-pin", "002C0081" + "10" + PUK.encode().hex() + "3132FFFFFFFFFFFF", SW.WRONG_DATA),
    ("bad-puk", "002C0081" + "10" + "31323334FFFFFFFF" + w.pin_block(NEW_PIN).hex(), SW.WRONG_DATA),
]


@pytest.mark.parametrize(("name", "apdu", "sw"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refused_unblocks_change_nothing_and_cost_no_try(card: AnyCard, name: str, apdu: str, sw: int) -> None:
    link = connect_card(card)
    send(link, w.select().to_bytes().hex())
    before = state(card)
    assert send(link, apdu).sw == sw, name
    assert state(card) == before


def test_unblock_needs_an_operational_card(cards: Cards) -> None:
    link = connect_card(cards.blank())
    send(link, w.select().to_bytes().hex())
    assert send(link, w.reset_retry_counter(PUK, NEW_PIN).to_bytes().hex()).sw == SW.CONDITIONS_NOT_SATISFIED


def test_new_puks_are_eight_random_digits() -> None:
    puks = {new_puk() for _ in range(50)}
    assert all(len(p) == 8 and p.isdigit() for p in puks) and len(puks) > 45


def test_the_blocked_pin_error_says_what_to_do(card: AnyCard) -> None:
    s = WalletSession(connect_card(card))
    block_pin(s)
    with pytest.raises(PinBlockedError) as blocked:
        s.verify_pin(PIN)
    assert "evb card pin unblock" in str(blocked.value) and "unblocking code" in str(blocked.value)


# --- tearing ---------------------------------------------------------------------------------


def tear_every_write(cells: bytes, op: Callable[[WalletSession], object],
                     state: Callable[[SimulatedCard], object]) -> int:
    """Cut power after each write of ``op`` on a clone of ``cells``: the card recovers to exactly
    the state before or after. Answers the number of writes."""

    def run(tear_after: int | None) -> object:
        card = clone(cells)
        s = WalletSession(connect_card(card))
        card.eeprom.cut_power_after(tear_after)
        try:
            op(s)
        except CardRemovedError:
            assert tear_after is not None
        card.eeprom.cut_power_after(None)
        card.power_on()
        card.power_off()
        return state(card)

    before = state(clone(cells))
    card = clone(cells)
    s = WalletSession(connect_card(card))
    start = card.eeprom.page_writes
    op(s)
    total = card.eeprom.page_writes - start
    after = state(card)
    assert before != after and total > 0
    seen = set()
    for n in range(total):
        got = run(n)
        assert got in (before, after), f"torn after {n} of {total} writes"
        seen.add(got == after)
    assert seen == {False, True}, "both sides of the commit point were reached"
    return total


def pins_and_puks(card: SimulatedCard) -> object:
    """Which PIN verifies and whether the PUK unblocks, each tried on a throwaway clone."""
    cells = card.eeprom.snapshot()

    def works(step: Callable[[WalletSession], object]) -> bool:
        try:
            step(WalletSession(connect_card(clone(cells))))
            return True
        except ApduError:
            return False

    info = WalletSession(connect_card(clone(cells))).info()
    return (info.life_cycle, works(lambda s: s.verify_pin(PIN)), works(lambda s: s.verify_pin(NEW_PIN)),
            works(lambda s: s.unblock_pin(PUK, "2468")))


def test_tearing_at_every_write_of_personalize() -> None:
    blank = SimulatedCard.manufacture()
    ISSUER.attest(WalletSession(connect_card(blank)))
    blank.power_off()
    writes = tear_every_write(blank.eeprom.snapshot(), lambda s: s.personalize(PIN, PUK), pins_and_puks)
    assert writes >= 3


# RESET RETRY COUNTER is torn at every write in tests/card/test_tearing.py (case pin-unblock).
