"""The card under test: the Python card (card/) or the applet (javacard/, jCardSim in a JVM child).

The card suite is one spec for both (docs/APDU.md): a test takes ``card`` (or ``cards`` for more
than one) and talks APDUs; both objects have what ``connect_card`` and the vpcd bridge need
(power, protocol, transmit). What only the Python card has (its EEPROM, page writes, index
checks, geometry) stays in tests marked ``python_only`` (tests/card/conftest.py).

The applet's JVM is slow to start and quick to give a new card (``NEW``): the run keeps one JVM
per card a test needs at once (two, to move a key from one card to another) and each test takes
them afresh.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from datetime import date
from pathlib import Path

from apdu import ApduError
from apdu import idcard as i
from apdu.wallet import AID_WALLET
from card import Eeprom, SimulatedCard
from card.javacard import APPLET_CLASS, ID_APPLET_CLASS, AppletBuild, AppletCard
from host.idcard import IdCardSession
from host.session import WalletSession
from host.transport.inprocess import connect_card

from ..conftest import ISSUER, PIN, PUK

AnyCard = SimulatedCard | AppletCard
PYTHON, APPLET = "python", "applet"


def state(card: AnyCard) -> object:
    """What a refusal must not change: the Python card's EEPROM cells; of the applet, whose heap
    also holds scratch key objects that a signature check fills (a persistent ECPublicKey is how
    3.0.4 verifies), everything a terminal can read, read on a copy of its heap in another JVM so
    the card under test keeps its selection, PIN status and waiting answer."""
    if isinstance(card, SimulatedCard):
        return card.eeprom.snapshot()
    pool = AppletPool.current
    assert pool is not None, "an applet outside the tests' pool"
    id_card = pool.holds_id_card(card)
    observer = pool.observer(ID_APPLET_CLASS if id_card else APPLET_CLASS)
    with tempfile.TemporaryDirectory(prefix="evb-heap-") as folder:
        path = Path(folder) / "heap"
        card.save_heap(path)
        observer.load_heap(path)
    if id_card:
        return id_readable(IdCardSession(connect_card(observer)))
    return readable(WalletSession(connect_card(observer)))


def _answer(read: Callable[[], object]) -> object:
    try:
        return read()
    except ApduError as refused:
        return refused.sw


def id_readable(s: IdCardSession) -> tuple[object, ...]:
    """What an ID card shows: its key and its document (or that it has none)."""
    return _answer(s.public_key), _answer(s.document)


def readable(s: WalletSession) -> tuple[object, ...]:
    """Every answer a terminal can get without changing the card, then (on a throwaway copy) what
    PIN 1234 opens: the card's info, PIN tries, identity, attestation, import counter, each value
    listed and read, the key, the next key, the triggers and the memory map."""

    seen: list[object] = [_answer(s.info), _answer(s.pin_tries_remaining), _answer(s.identity),
                          _answer(s.attestation), _answer(s.import_counter)]
    listing = _answer(s.list)
    seen.append(listing)
    if isinstance(listing, list):
        seen += [_answer(lambda value_id=e.id: s.read(value_id)) for e in listing]
    seen.append(_answer(lambda: s.verify_pin(PIN)))
    seen += [_answer(s.key_info), _answer(lambda: s.key_info(next_key=True)), _answer(s.triggers),
             _answer(s.memory_map)]
    return tuple(seen)


class AppletPool:
    """The run's JVMs, by applet class; :meth:`take` hands out the next one of a class not yet
    taken in this test, as a new card."""

    current: AppletPool | None = None  # the run's: :func:`state` reads on its observer

    def __init__(self, build: AppletBuild) -> None:
        self.build = build
        self._jvms: dict[str, list[AppletCard]] = {}
        self._taken: dict[str, int] = {}
        self._observers: dict[str, AppletCard] = {}
        AppletPool.current = self

    def observer(self, applet_class: str = APPLET_CLASS) -> AppletCard:
        """A JVM of the pool's own, never handed to a test: :func:`state` loads heaps into it."""
        if applet_class not in self._observers:
            aid = i.AID_IDCARD if applet_class == ID_APPLET_CLASS else AID_WALLET
            self._observers[applet_class] = AppletCard(self.build, applet_class, aid)
        return self._observers[applet_class]

    def holds_id_card(self, card: AppletCard) -> bool:
        return any(card is c for c in self._jvms.get(ID_APPLET_CLASS, []))

    def begin_test(self) -> None:
        self._taken.clear()

    def take(self, applet_class: str, aid: bytes) -> AppletCard:
        jvms = self._jvms.setdefault(applet_class, [])
        n = self._taken.get(applet_class, 0)
        if n == len(jvms):
            jvms.append(AppletCard(self.build, applet_class, aid))
        self._taken[applet_class] = n + 1
        card = jvms[n]
        card.new_card()
        card.powered = False
        return card

    def close(self) -> None:
        for jvms in self._jvms.values():
            for card in jvms:
                card.close()
        self._jvms.clear()
        for observer in self._observers.values():
            observer.close()
        self._observers.clear()
        AppletPool.current = None


class Cards:
    """New cards of one implementation, as a test needs them: blank, personalized, prepared.

    ``prepared(name, fill)`` runs ``fill`` once per run and implementation on a personalized,
    verified card and hands out copies of the result (cells of the Python card, the applet's saved
    heap), so a module's common starting point costs one build, not one per test."""

    def __init__(self, kind: str, pool: AppletPool | None, saved: dict[tuple[str, str], object],
                 heaps: Path) -> None:
        self.kind = kind
        self._pool = pool
        self._saved = saved
        self._heaps = heaps

    @property
    def python(self) -> bool:
        return self.kind == PYTHON

    def blank(self) -> AnyCard:
        """A new wallet card in the personalization state, powered off."""
        if self._pool is None:
            return SimulatedCard.manufacture()
        return self._pool.take(APPLET_CLASS, AID_WALLET)

    def new(self) -> AnyCard:
        """A new wallet card attested by the tests' issuer, PIN 1234 and the tests' PUK, powered off."""
        card = self.blank()
        ISSUER.personalize(WalletSession(connect_card(card)), PIN, PUK)
        card.power_off()
        return card

    def prepared(self, name: str, fill: Callable[[WalletSession], object]) -> AnyCard:
        """A personalized card after ``fill`` ran on it with the PIN verified (once per run and
        implementation, keyed by ``name``), powered off."""
        key = (self.kind, name)
        if key not in self._saved:
            card = self.new()
            session = WalletSession(connect_card(card))
            session.verify_pin(PIN)
            fill(session)
            card.power_off()
            if isinstance(card, SimulatedCard):
                self._saved[key] = card.eeprom.snapshot()
            else:
                heap = self._heaps / f"{len(self._saved)}.heap"
                card.save_heap(heap)
                self._saved[key] = heap
        saved = self._saved[key]
        if isinstance(saved, bytes):
            return SimulatedCard(Eeprom(bytearray(saved)))
        assert self._pool is not None and isinstance(saved, Path)
        card = self._pool.take(APPLET_CLASS, AID_WALLET)
        card.load_heap(saved)
        card.powered = False
        return card

    def id_blank(self) -> AnyCard:
        """A new ID card, not issued: its key pair made, nothing else (seed E5)."""
        if self._pool is None:
            return SimulatedCard.manufacture_idcard()
        return self._pool.take(ID_APPLET_CLASS, i.AID_IDCARD)

    def id_issued(self, holder: str, number: str, expiry: date, pin: str | None = None) -> AnyCard:
        """An ID card issued by the tests' issuer through its own commands, powered off."""
        card = self.id_blank()
        IdCardSession(connect_card(card)).issue(holder, number, expiry, ISSUER.sign, pin=pin)
        card.power_off()
        return card


def python_cards() -> Cards:
    """Python cards for a test of the Python card alone (its tearing by page, say)."""
    return Cards(PYTHON, None, {}, Path(tempfile.gettempdir()))
