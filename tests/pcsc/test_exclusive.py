"""evb as a good PC/SC citizen (issue 16), against a second program sharing the card through pcscd:
while an evb operation has the PIN verified the card is held in a PC/SC transaction, so the other
program's command waits and then finds the PIN forgotten; evb waits politely for a card another
program holds; and evb leaves the card powered, so another program's session (its verified PIN
included) survives evb's exit. ``evb readers`` reads the reader state without connecting."""

from __future__ import annotations

import json
import select
import subprocess
import sys
from collections.abc import Iterator

import pytest

from apdu import wallet as w
from card import SimulatedCard
from card.bridge.vpcd import VpcdBridge
from host.demo import FIG15
from host.session import WalletSession
from host.transport import CardBusyError
from host.transport.inprocess import connect_card
from host.transport.pcsc import connect_reader, wait_for_card

from ..card.helpers import clone
from ..conftest import PIN
from ..readers import SLOT0, PcscReader
from .test_serve import evb

# The other program: one APDU (hex) per line in, the response (hex) or the PC/SC error out;
# BEGIN and END hold and release a PC/SC transaction.
OTHER = r"""
import sys
from smartcard.scard import *
_, context = SCardEstablishContext(SCARD_SCOPE_USER)
hresult, card, protocol = SCardConnect(context, sys.argv[1], SCARD_SHARE_SHARED, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1)
print("connected" if hresult == SCARD_S_SUCCESS else "error " + SCardGetErrorMessage(hresult), flush=True)
for line in sys.stdin:
    line = line.strip()
    if line == "BEGIN":
        hresult = SCardBeginTransaction(card)
        print("began" if hresult == SCARD_S_SUCCESS else "error " + SCardGetErrorMessage(hresult), flush=True)
    elif line == "END":
        hresult = SCardEndTransaction(card, SCARD_LEAVE_CARD)
        print("ended" if hresult == SCARD_S_SUCCESS else "error " + SCardGetErrorMessage(hresult), flush=True)
    else:
        hresult, response = SCardTransmit(card, protocol, list(bytes.fromhex(line)))
        print(bytes(response).hex().upper() if hresult == SCARD_S_SUCCESS
              else "error " + SCardGetErrorMessage(hresult), flush=True)
SCardDisconnect(card, SCARD_LEAVE_CARD)
"""
DELETE_1 = "801A0001"


class Other:
    def __init__(self) -> None:
        self.proc = subprocess.Popen([sys.executable, "-c", OTHER, SLOT0], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.answer() == "connected"

    def send(self, line: str) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def answer(self) -> str:
        assert self.proc.stdout is not None
        return self.proc.stdout.readline().strip()

    def ask(self, line: str) -> str:
        self.send(line)
        return self.answer()

    def answered_within(self, seconds: float) -> bool:
        """Whether an answer is ready (a chance for the other program's command to run, no more)."""
        assert self.proc.stdout is not None
        return bool(select.select([self.proc.stdout], [], [], seconds)[0])

    def close(self) -> None:
        self.proc.communicate(timeout=30)  # closes its stdin (it disconnects and ends) and our pipes


@pytest.fixture
def in_reader(pcsc_bridge: VpcdBridge, card: SimulatedCard) -> Iterator[SimulatedCard]:
    s = WalletSession(connect_card(card))
    s.verify_pin(PIN)
    s.store(FIG15[0])  # value 1
    card.power_off()
    reader = PcscReader(pcsc_bridge)
    reader.insert(card).close()
    yield card
    reader.close()


@pytest.fixture
def other(in_reader: SimulatedCard) -> Iterator[Other]:
    o = Other()
    yield o
    o.close()


def test_another_program_cannot_use_the_pin_evb_verified(in_reader: SimulatedCard, other: Other) -> None:
    transport = connect_reader(SLOT0)
    session = WalletSession(transport)
    session.verify_pin(PIN)  # evb's operation holds the card from here
    other.send(DELETE_1)  # the other program, which never gave the PIN, tries to use evb's
    other.answered_within(2.0)  # its chance to run while evb's operation runs
    assert [e.id for e in session.list()] == [1]  # it did not: value 1 is still there
    session.release()  # the operation ends: the card forgets the PIN, then lets go
    transport.close()
    assert other.answer() == "6982"  # the command ran only then, and found no verified PIN
    assert [e.id for e in WalletSession(connect_card(clone(in_reader.eeprom.snapshot()))).list()] == [1]


def test_evb_waits_politely_while_another_program_holds_the_card(in_reader: SimulatedCard, other: Other) -> None:
    assert other.ask("BEGIN") == "began"
    proc = subprocess.Popen([sys.executable, "-m", "host.cli", "card", "delete", "1", "--reader", SLOT0,
                             "--pin", PIN], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    notice = proc.stderr.readline()  # evb says why it waits (and does not fail)
    assert "in use by another program: waiting for it" in notice, notice
    assert other.ask(w.select().to_bytes().hex())[-4:] == "9000"  # the other program still works meanwhile
    assert other.ask("END") == "ended"
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert "Deleted value 1" in out


def test_evb_leaves_other_programs_sessions_alone(in_reader: SimulatedCard, other: Other) -> None:
    assert other.ask(w.select().to_bytes().hex())[-4:] == "9000"
    assert other.ask(w.verify(PIN).to_bytes().hex()) == "9000"
    listed = json.loads(evb("readers", "--json").stdout)  # reads the reader state: no connection
    ours = next(r for r in listed if r["name"] == SLOT0)
    assert ours["atr"] and ours["in_use"]  # the other program is connected
    assert other.ask("00200081") == "9000"  # its PIN is still verified
    evb("card", "info", "--reader", SLOT0)  # connects, selects, reads, and leaves the card powered
    info = other.ask(w.get_card_info().to_bytes().hex())
    assert info[-4:] == "9000", info  # no reset: the other program's connection carries on


def test_evb_gives_up_on_a_card_held_too_long_with_one_clear_error(in_reader: SimulatedCard, other: Other) -> None:
    assert other.ask("BEGIN") == "began"  # and never ends it while we wait
    notices: list[str] = []
    with pytest.raises(CardBusyError) as busy:
        wait_for_card(SLOT0, notices.append, patience=0.5)
    assert notices == [f"The card in {SLOT0} is in use by another program: waiting for it (Ctrl-C to give up)."]
    assert "stayed in use by another program" in str(busy.value)
    assert other.ask("END") == "ended"
    wait_for_card(SLOT0, notices.append)  # free again: no wait, no notice
    assert len(notices) == 1
