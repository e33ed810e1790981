"""One tearing sweep for both cards: the Python card (power cut at a page write of its EEPROM)
and the applet (power cut at a persistent write, javacard/harness), driven by the same APDUs.

A sweep takes a card holding some state, runs the command once whole to count its writes, then
once per tear point: the state back, the power cut after ``n`` writes, the card powered again,
and what a terminal can then observe (``probes``: APDU sequences, each from the recovered state)
recorded. Both cards' observations are comparable byte for byte (the card id masked).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from apdu import idcard as i
from apdu import wallet as w
from card import CardMute, SimulatedCard
from card.card import T1
from card.eeprom import Eeprom
from card.javacard import AppletCard

from ..conftest import FULL

SPREAD_POINTS = 16  # tear points in CI when a command writes more (EVB_TEST_SIZE=full: every one)

Answer = tuple[str, str]  # (data hex, SW hex)
Observation = tuple[tuple[Answer, ...], ...]


class Tearable(Protocol):
    """A card a sweep can snapshot, restore, count the writes of and cut the power of."""

    name: str

    def send(self, apdu: bytes) -> Answer: ...
    def power_cycle(self) -> None: ...
    def snapshot(self) -> object: ...
    def restore(self, snapshot: object) -> None: ...
    def writes(self) -> int: ...
    def cut_power_after(self, n: int | None) -> None: ...


def masked(command: bytes, answer: Answer) -> Answer:
    """What two cards answer alike: GET CARD INFO with the card id (bytes 3-10) zeroed, each
    card makes its own; an ID card's GET DATA (its key, its document) without its data."""
    data = bytes.fromhex(answer[0])
    if command[:2] == bytes((w.CLA_PROPRIETARY, w.INS_GET_CARD_INFO)) and len(data) == 29:
        data = data[:3] + bytes(8) + data[11:]
    if command[:2] == bytes((0x00, i.INS_GET_DATA)):
        data = b""
    return data.hex(), answer[1]


def _answer(raw: bytes) -> Answer:
    return raw[:-2].hex(), raw[-2:].hex().upper()


class PythonCard:
    """The Python card: snapshots are its EEPROM cells; writes are page writes."""

    name = "python"

    def __init__(self, idcard: bool = False) -> None:
        self.card = SimulatedCard.manufacture_idcard() if idcard else SimulatedCard.manufacture()
        self.power_cycle()

    def send(self, apdu: bytes) -> Answer:
        return _answer(self.card.transmit(apdu))

    def power_cycle(self) -> None:
        self.card.power_off()
        self.card.power_on()
        self.card.select_protocol(T1)

    def snapshot(self) -> object:
        self.card.power_off()
        cells = self.card.eeprom.snapshot()
        self.power_cycle()
        return cells

    def restore(self, snapshot: object) -> None:
        assert isinstance(snapshot, bytes)
        self.card = SimulatedCard(Eeprom(bytearray(snapshot)))
        self.power_cycle()

    def writes(self) -> int:
        return self.card.eeprom.page_writes

    def cut_power_after(self, n: int | None) -> None:
        self.card.eeprom.cut_power_after(n)


class AppletOnHarness:
    """The applet in one JVM: snapshots are heap images in ``folder``; writes are persistent
    writes of the applet (each store, field write, arrayCopy, setShort...)."""

    name = "applet"

    def __init__(self, card: AppletCard, folder: Path) -> None:
        self.card = card
        self.folder = folder
        self._names = itertools.count()
        card.new_card()
        card.select_protocol(T1)

    def send(self, apdu: bytes) -> Answer:
        return _answer(self.card.transmit(apdu))

    def power_cycle(self) -> None:
        self.card.reset()
        self.card.select_protocol(T1)  # as the Python card's reader negotiates after each power-on

    def snapshot(self) -> object:
        path = self.folder / f"heap-{next(self._names)}"
        self.card.save_heap(path)
        return path

    def restore(self, snapshot: object) -> None:
        assert isinstance(snapshot, Path)
        self.card.load_heap(snapshot)

    def writes(self) -> int:
        return self.card.writes

    def cut_power_after(self, n: int | None) -> None:
        self.card.cut_power_after(n)


# an APDU, or one made for the card at hand (an ID card's document names the card's own key)
Step = bytes | Callable[[Tearable], bytes]


def _made(card: Tearable, step: Step) -> bytes:
    return step if isinstance(step, bytes) else step(card)


@dataclass(frozen=True)
class Case:
    """A command to tear: ``prepare`` from a new card, ``setup`` after each power-on (not torn),
    ``op`` torn; ``spent``, from the prepared state, reaches the one state a tear may leave
    besides before and after: a PIN or unblocking try spent before its comparison. Steps made
    for the card are made once per sweep, from the prepared card."""

    name: str
    prepare: Sequence[Step]
    setup: Sequence[bytes]
    op: Sequence[Step]
    probes: Sequence[Sequence[bytes]]
    spent: Sequence[bytes] = ()
    idcard: bool = False


@dataclass(frozen=True)
class Sweep:
    card: str
    writes: int
    answers: tuple[Answer, ...]
    before: Observation
    after: Observation
    spent: Observation | None
    outcomes: tuple[tuple[int, Observation], ...]

    def unexpected(self) -> list[int]:
        allowed = {self.before, self.after} | ({self.spent} if self.spent is not None else set())
        return [n for n, seen in self.outcomes if seen not in allowed]

    def reached(self) -> set[str]:
        names = {self.before: "before", self.after: "after"}
        if self.spent is not None:
            names.setdefault(self.spent, "spent")
        return {names.get(seen, "other") for _, seen in self.outcomes}


def tear_points(total: int) -> list[int]:
    """0..total: a cut at each write, and one armed after the last (the command completes)."""
    if FULL or total < SPREAD_POINTS:
        return list(range(total + 1))
    return sorted({round(i * total / (SPREAD_POINTS - 1)) for i in range(SPREAD_POINTS)})


def exchange(card: Tearable, apdu: bytes) -> Answer:
    """One command and, while the card answers 61xx, GET RESPONSE for the rest (T=1 terms)."""
    data, sw = card.send(apdu)
    while sw.startswith("61"):
        more, sw = card.send(bytes(w.get_response(int(sw[2:], 16) or 256)))
        data += more
    return data, sw


def observe(card: Tearable, state: object, probes: Sequence[Sequence[bytes]]) -> Observation:
    seen = []
    for probe in probes:
        card.restore(state)
        seen.append(tuple(masked(apdu, exchange(card, apdu)) for apdu in probe))
    return tuple(seen)


def sweep(card: Tearable, case: Case) -> Sweep:
    for step in case.prepare:
        card.send(_made(card, step))
    op = [_made(card, step) for step in case.op]
    base = card.snapshot()
    before = observe(card, base, case.probes)
    spent = None
    if case.spent:
        card.restore(base)
        for apdu in [*case.setup, *case.spent]:
            card.send(apdu)
        spent = observe(card, card.snapshot(), case.probes)

    def run(n: int | None) -> tuple[tuple[Answer, ...], int, Observation]:
        card.restore(base)
        for apdu in case.setup:
            card.send(apdu)
        start = card.writes()
        card.cut_power_after(n)
        answers = []
        try:
            for apdu in op:
                answers.append(masked(apdu, card.send(apdu)))
        except CardMute:
            assert n is not None
        card.cut_power_after(None)
        total = card.writes() - start
        card.power_cycle()
        return tuple(answers), total, observe(card, card.snapshot(), case.probes)

    answers, total, after = run(None)
    outcomes = tuple((n, run(n)[2]) for n in tear_points(total))
    return Sweep(card.name, total, answers, before, after, spent, outcomes)


def sweep_both(case: Case, applet: AppletCard, folder: Path) -> tuple[Sweep, Sweep]:
    """The sweep on the Python card and on the applet: each card exactly before or exactly after
    at every tear point, both sides reached, and both cards' answers and states alike. Prints
    the tear-point counts (``-s``)."""
    python = sweep(PythonCard(case.idcard), case)
    on_applet = sweep(AppletOnHarness(applet, folder), case)
    for result in (python, on_applet):
        assert result.writes > 0
        assert not result.unexpected(), f"{result.card}, {case.name}: torn after {result.unexpected()} writes"
        assert result.reached() == {"before", "after"}, f"{result.card}, {case.name}: both sides of the commit"
    assert on_applet.answers == python.answers
    assert (on_applet.before, on_applet.after) == (python.before, python.after)
    print(f"\n{case.name}: python card {python.writes} page writes; applet {on_applet.writes} persistent writes")
    return python, on_applet
