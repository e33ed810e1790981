"""Cut power at every EEPROM page write of each mutating command, then power on again.

After recovery the card must be exactly as before the command or exactly as after it, and its
index consistent. The one documented exception is the PIN retry counter, which is spent and
committed before the PIN is compared: a torn PIN change may leave the old PIN with one try used.
(The unblocking code's counter works the same way; a host does not see it, so a torn unblock
shows as before or after.)
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from apdu.records import ValueRecord, ValueType
from card import CardMute, SimulatedCard
from host.demo import FIG15
from host.session import WalletSession
from host.transport import CardRemovedError
from host.transport.inprocess import connect_card

from ..conftest import FULL, ISSUER, PUK
from ..readers import Reader
from .helpers import Observed, cells_with, clone, observe

PIN, NEW_PIN = "1234", "87654321"
PCSC_POINTS = 16
Op = Callable[[WalletSession], object]


def fig15_card(size: int = 32768) -> bytes:
    return cells_with(FIG15, size, index_capacity=32)


def fragmented_card() -> bytes:
    """A small card whose free space is only in holes: the next large store must compact."""
    card = SimulatedCard.manufacture(size=8192, index_capacity=32)
    s = WalletSession(connect_card(card))
    ISSUER.personalize(s, PIN)
    s.verify_pin(PIN)
    ids = []
    try:
        while True:
            ids.append(s.store(ValueRecord(ValueType.COUPON, f"C{len(ids)}", payload=bytes(300))))
    except Exception:
        pass
    for i in ids[:-1:2]:
        s.delete(i)
    card.power_off()
    return card.eeprom.snapshot()


@dataclass(frozen=True)
class Case:
    name: str
    image: Callable[[], bytes]
    op: Op
    verify_first: bool = True


WIDE = ValueRecord(ValueType.COUPON, "Wide", payload=bytes(range(256)) * 2)
CASES = [
    Case("store", fig15_card, lambda s: s.store(replace(FIG15[0], name="New ticket"))),
    Case("store-with-compaction", fragmented_card, lambda s: s.store(WIDE)),
    Case("modify-spend", fig15_card, lambda s: s.spend(3, 300)),
    Case("modify-use", fig15_card, lambda s: s.use(2, 1)),
    Case("delete", fig15_card, lambda s: s.delete(2)),
    Case("pin-change", fig15_card, lambda s: s.change_pin(PIN, NEW_PIN), verify_first=False),
    Case("pin-unblock", fig15_card, lambda s: s.unblock_pin(PUK, NEW_PIN), verify_first=False),
]


def run(cells: bytes, case: Case, tear_after: int | None, reader: Reader) -> tuple[SimulatedCard, int]:
    """Run the case's command on a clone in ``reader``; answer the card and its page writes."""
    card = clone(cells)
    session = WalletSession(reader.insert(card))
    if case.verify_first:
        session.verify_pin(PIN)
    start = card.eeprom.page_writes
    card.eeprom.cut_power_after(tear_after)
    try:
        case.op(session)
    except CardRemovedError:
        assert tear_after is not None
    card.eeprom.cut_power_after(None)
    return card, card.eeprom.page_writes - start


def recovered(card: SimulatedCard) -> Observed:
    card.power_on()
    card.power_off()
    return observe(card, pins=(PIN, NEW_PIN))


def tear_points(total: int, reader: Reader) -> list[int]:
    """Every write in-process; over PC/SC each tear costs a pcscd presence poll (~0.4 s), so the
    CI size takes 16 spread points including both ends (``EVB_TEST_SIZE=full``: every write)."""
    if FULL or reader.name == "inprocess" or total <= PCSC_POINTS:
        return list(range(total))
    return sorted({round(i * (total - 1) / (PCSC_POINTS - 1)) for i in range(PCSC_POINTS)})


@pytest.mark.python_only("torn at each EEPROM page write: the applet's sweeps are tests/javacard/test_tearing*.py")
@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_tearing_at_every_write(case: Case, reader: Reader) -> None:
    cells = case.image()
    before = observe(clone(cells), pins=(PIN, NEW_PIN))
    done, total = run(cells, case, None, reader)
    after = recovered(done)
    assert after != before and total > 0
    allowed = [before, after]
    if case.name == "pin-change":  # the retry counter is spent before the comparison
        allowed.append(replace(before, pin_tries=(before.pin_tries or 0) - 1))
    seen = set()
    for n in tear_points(total, reader):
        card, _ = run(cells, case, n, reader)
        state = recovered(card)
        assert state in allowed, f"{case.name}: torn after {n} of {total} writes"
        seen.add(allowed.index(state))
    assert {0, 1} <= seen, "both sides of the commit point were reached"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_tearing_at_every_write_of_an_image_card(case: Case, tmp_path: Path) -> None:
    """The same sweep on a card whose EEPROM is an image file: the torn cells are what the file
    holds, and the card is reopened from it by a process that knows nothing else."""
    cells = case.image()
    image = tmp_path / "card.img"
    before = observe(clone(cells), pins=(PIN, NEW_PIN))
    allowed = [before]
    if case.name == "pin-change":
        allowed.append(replace(before, pin_tries=(before.pin_tries or 0) - 1))

    def run(tear_after: int | None) -> tuple[Observed, int]:
        image.write_bytes(cells)
        card = SimulatedCard.open(image)
        session = WalletSession(connect_card(card))
        if case.verify_first:
            session.verify_pin(PIN)
        start = card.eeprom.page_writes
        card.eeprom.cut_power_after(tear_after)
        try:
            case.op(session)
        except CardRemovedError:
            assert tear_after is not None
        writes = card.eeprom.page_writes - start
        card.close()
        reopened = SimulatedCard.open(image)
        state = observe(reopened, pins=(PIN, NEW_PIN))
        reopened.close()
        return state, writes

    after, total = run(None)
    allowed.insert(1, after)
    assert after != before and total > 0
    seen = set()
    for n in range(total):
        state, _ = run(n)
        assert state in allowed, f"{case.name}: torn after {n} of {total} writes"
        seen.add(allowed.index(state))
    assert {0, 1} <= seen, "both sides of the commit point were reached"


def test_tear_survives_the_image_file(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A card pulled mid-command and reopened from its image file recovers the same way."""
    image = tmp_path / "card.img"
    cells = fig15_card()
    image.write_bytes(cells)
    for n in range(0, 12):
        image.write_bytes(cells)
        card = SimulatedCard.open(image)
        session = WalletSession(connect_card(card))
        session.verify_pin(PIN)
        card.eeprom.cut_power_after(n)
        try:
            session.delete(1)
        except CardRemovedError:
            pass
        card.close()  # the process holding it dies: only the image file remains
        reopened = SimulatedCard.open(image)
        ids = [e.id for e in WalletSession(connect_card(reopened)).list()]
        assert ids in ([1, 2, 3, 4], [2, 3, 4]), f"torn after {n} writes"
        reopened.close()


def test_mute_card_needs_power_on() -> None:
    card = clone(fig15_card())
    session = WalletSession(connect_card(card))
    session.verify_pin(PIN)
    card.eeprom.cut_power_after(0)
    with pytest.raises(CardRemovedError):
        session.delete(1)
    with pytest.raises(CardMute):
        card.transmit(bytes.fromhex("80100000"))
