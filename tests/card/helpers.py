"""Black-box views of a card for the card tests: what a terminal could observe."""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from apdu import ApduError, ResponseApdu
from apdu.records import ValueRecord
from card import Eeprom, SimulatedCard
from card.javacard import AppletCard
from host.session import WalletSession
from host.transport import CardRemovedError, Transport
from host.transport.inprocess import connect_card

from ..conftest import ISSUER, PUK
from .cards import AnyCard, AppletPool

PIN = "1234"


def clone(cells: bytes) -> SimulatedCard:
    return SimulatedCard(Eeprom(bytearray(cells)))


def personalized(size: int = 32768, index_capacity: int = 16) -> tuple[SimulatedCard, WalletSession]:
    """A new card with PIN 1234, verified, in an in-process reader."""
    card = SimulatedCard.manufacture(size=size, index_capacity=index_capacity)
    session = WalletSession(connect_card(card))
    ISSUER.personalize(session, PIN, PUK)
    session.verify_pin(PIN)
    return card, session


def cells_with(records: Iterable[ValueRecord], size: int = 32768, index_capacity: int = 16) -> bytes:
    """The EEPROM of a personalized card holding ``records``, powered off: clone it per test."""
    card, session = personalized(size, index_capacity)
    for r in records:
        session.store(r)
    card.power_off()
    return card.eeprom.snapshot()


def send(link: Transport, hex_apdu: str) -> ResponseApdu:
    """A raw APDU through a transport: no processors, so the card's 61xx/6Cxx show as they are."""
    data, sw = link.send_and_receive(bytes.fromhex(hex_apdu))
    return ResponseApdu(data, sw)


@dataclass(frozen=True)
class Observed:
    values: tuple[tuple[object, ...], ...]
    free_memory: int
    index_used: int
    pin_tries: int | None
    pin_ok: dict[str, bool]


def observe(card: AnyCard, pins: tuple[str, ...] = ()) -> Observed:
    """Everything the host can see, read without writing (PIN checks run on a throwaway clone)."""
    if isinstance(card, AppletCard):
        return observe_applet(card, pins)
    cells = card.eeprom.snapshot()
    probe = clone(cells)
    values, free, used, tries = _seen(WalletSession(connect_card(probe)))
    pin_ok = {}
    for pin in pins:
        trial = WalletSession(connect_card(clone(cells)))
        try:
            trial.verify_pin(pin)
            pin_ok[pin] = True
        except ApduError:
            pin_ok[pin] = False
    probe.applets[0].index.check()  # type: ignore[attr-defined]
    return Observed(values, free, used, tries, pin_ok)


def _seen(session: WalletSession) -> tuple[tuple[tuple[object, ...], ...], int, int, int | None]:
    info = session.info()
    values = tuple((e.id, e.type, e.flags, e.size, e.name, session.read(e.id)) for e in session.list())
    return values, info.free_memory, info.index_used, session.pin_tries_remaining()


def observe_applet(card: AppletCard, pins: tuple[str, ...] = ()) -> Observed:
    """:func:`observe` through APDUs alone, on a copy of the applet's heap in the pool's
    observer JVM (tests/card/cards.py), so the card under test keeps its session."""
    assert AppletPool.current is not None, "an applet outside the tests' pool"
    observer = AppletPool.current.observer()
    with tempfile.TemporaryDirectory(prefix="evb-observe-") as folder:
        heap = Path(folder) / "heap"
        card.save_heap(heap)
        observer.load_heap(heap)
        values, free, used, tries = _seen(WalletSession(connect_card(observer)))
        pin_ok = {}
        for pin in pins:
            observer.load_heap(heap)
            try:
                WalletSession(connect_card(observer)).verify_pin(pin)
                pin_ok[pin] = True
            except ApduError:
                pin_ok[pin] = False
    return Observed(values, free, used, tries, pin_ok)


def tear_every_write(cells: bytes, op: Callable[[WalletSession], object], state: Callable[[WalletSession], object],
                     prepare: Callable[[WalletSession], object] | None = None) -> int:
    """Cut power after each write of ``op`` on a clone of ``cells`` (after ``prepare``): the card
    recovers to its state before or after ``op``, with a consistent index. Answers the writes."""
    if prepare is not None:
        base = clone(cells)
        session = WalletSession(connect_card(base))
        session.verify_pin(PIN)
        prepare(session)
        base.power_off()
        cells = base.eeprom.snapshot()

    def unlocked(card: SimulatedCard) -> WalletSession:
        s = WalletSession(connect_card(card))
        s.verify_pin(PIN)
        return s

    def run(tear_after: int | None) -> tuple[object, int]:
        card = clone(cells)
        s = unlocked(card)
        start = card.eeprom.page_writes
        card.eeprom.cut_power_after(tear_after)
        try:
            op(s)
        except CardRemovedError:
            assert tear_after is not None
        card.eeprom.cut_power_after(None)
        card.power_on()
        card.power_off()
        observe(card)  # the index is consistent
        return state(unlocked(card)), card.eeprom.page_writes - start

    before = state(unlocked(clone(cells)))
    after, total = run(None)
    assert before != after and total > 0
    seen = set()
    for n in range(total):
        got, _ = run(n)
        assert got in (before, after), f"torn after {n} of {total} writes"
        seen.add(got == after)
    assert seen == {False, True}, "both sides of the commit point were reached"
    return total
