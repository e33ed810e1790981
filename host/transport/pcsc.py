"""PC/SC readers through pyscard: list them from the reader state, pick one, connect T=0 or T=1.

This module and :mod:`host.transport.pyscard` are the only places that talk to pcscd. We are one
program among several on a shared card (a browser's middleware, OpenSC, another terminal), so:
listing readers reads pcscd's reader state and connects to no card; we disconnect leaving the
card powered (``SCARD_LEAVE_CARD``: unpowering it would reset every other program's session);
and an operation that verifies the PIN holds a PC/SC transaction until it ends, so no other
program's command reaches the card while our PIN is verified.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass

from smartcard.CardConnection import CardConnection
from smartcard.Exceptions import CardConnectionException, NoCardException
from smartcard.scard import (
    SCARD_LEAVE_CARD,
    SCARD_PROTOCOL_T0,
    SCARD_PROTOCOL_T1,
    SCARD_S_SUCCESS,
    SCARD_SCOPE_USER,
    SCARD_SHARE_SHARED,
    SCARD_STATE_EXCLUSIVE,
    SCARD_STATE_INUSE,
    SCARD_STATE_PRESENT,
    SCARD_STATE_UNAWARE,
    SCardBeginTransaction,
    SCardConnect,
    SCardDisconnect,
    SCardEndTransaction,
    SCardEstablishContext,
    SCardGetErrorMessage,
    SCardGetStatusChange,
    SCardReleaseContext,
)
from smartcard.System import readers as pcsc_readers

from . import CardBusyError, CardRemovedError, TransportError
from .pyscard import PyscardTransport

PROTOCOLS = {"T0": CardConnection.T0_protocol, "T1": CardConnection.T1_protocol, "any": None}
NOTICE_AFTER = 0.3  # seconds another program may hold the card before we say that we wait
PATIENCE = 60.0  # seconds we wait for it before giving up


@dataclass(frozen=True, slots=True)
class ReaderInfo:
    index: int
    name: str
    atr: bytes | None  # None when no card is present
    in_use: bool  # another program (or we) holds a connection to the card
    exclusive: bool  # and one of them holds it exclusively


class _Context:
    """A PC/SC context of our own, released on exit."""

    def __enter__(self) -> int:
        hresult, self.context = SCardEstablishContext(SCARD_SCOPE_USER)
        if hresult != SCARD_S_SUCCESS:
            raise TransportError(f"cannot reach pcscd: {SCardGetErrorMessage(hresult)}")
        return int(self.context)

    def __exit__(self, *exc: object) -> None:
        SCardReleaseContext(self.context)


def list_readers() -> list[str]:
    try:
        return [str(r) for r in pcsc_readers()]
    except Exception as exc:  # pcscd not running, no readers configured
        raise TransportError(f"cannot list PC/SC readers: {exc}") from exc


def describe_readers() -> list[ReaderInfo]:
    """Every reader and its card's ATR, from pcscd's reader state: no card is connected to, so
    no other program's session is disturbed."""
    names = list_readers()
    if not names:
        return []
    with _Context() as context:
        hresult, states = SCardGetStatusChange(context, 0, [(n, SCARD_STATE_UNAWARE) for n in names])
        if hresult != SCARD_S_SUCCESS:
            raise TransportError(f"cannot read the readers' state: {SCardGetErrorMessage(hresult)}")
    found = []
    for index, (name, state, atr) in enumerate(states):
        present = bool(state & SCARD_STATE_PRESENT) and bool(atr)
        found.append(ReaderInfo(index, str(name), bytes(atr) if present else None,
                                bool(state & SCARD_STATE_INUSE), bool(state & SCARD_STATE_EXCLUSIVE)))
    return found


def pick_reader(wanted: str | None = None) -> str:
    """A reader by exact name, by index, or by unique substring; the only one if not given."""
    wanted = wanted if wanted is not None else os.environ.get("EVB_READER")
    names = list_readers()
    if not names:
        raise TransportError("no PC/SC readers (is pcscd running?)")
    if wanted is None:
        if len(names) > 1:
            raise TransportError(f"{len(names)} readers: choose one with --reader ({', '.join(names)})")
        return names[0]
    if wanted in names:
        return wanted
    if wanted.isdigit() and int(wanted) < len(names):
        return names[int(wanted)]
    matches = [n for n in names if wanted.lower() in n.lower()]
    if len(matches) == 1:
        return matches[0]
    raise TransportError(f"no reader matches {wanted!r} (readers: {', '.join(names)})")


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def wait_for_card(reader_name: str, notice: Callable[[str], None] = _say, patience: float = PATIENCE) -> None:
    """Return once no other program holds the card in a PC/SC transaction (pcscd makes our
    connect and our commands wait until then), saying so when that takes a moment;
    :class:`CardBusyError` after ``patience`` seconds."""
    free = _free(reader_name)
    if not free.wait(NOTICE_AFTER):
        notice(f"The card in {reader_name} is in use by another program: waiting for it (Ctrl-C to give up).")
        if not free.wait(patience):
            raise CardBusyError(f"the card in {reader_name} stayed in use by another program for {patience:.0f} s: "
                                "try again when that program is done")


def _free(reader_name: str) -> threading.Event:
    """Set once no other program holds a transaction on the card. pcsc-lite's SCardConnect and
    SCardBeginTransaction block while another holds one, with the caller's context locked: a
    probe on a context and connection of its own does the blocking, so giving up (or Ctrl-C)
    never leaves a handle of ours stuck."""
    free = threading.Event()

    def probe() -> None:
        try:
            with _Context() as context:
                hresult, card, _protocol = SCardConnect(context, reader_name, SCARD_SHARE_SHARED,
                                                        SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1)
                if hresult == SCARD_S_SUCCESS:
                    if SCardBeginTransaction(card) == SCARD_S_SUCCESS:
                        SCardEndTransaction(card, SCARD_LEAVE_CARD)
                    SCardDisconnect(card, SCARD_LEAVE_CARD)
        except TransportError:
            pass  # pcscd unreachable: the caller's own connection reports the trouble next
        free.set()

    threading.Thread(target=probe, name="pcsc-probe", daemon=True).start()
    return free


class PcscTransport(PyscardTransport):
    """A card in a PC/SC reader: exclusive while an operation needs it, left powered on close."""

    def __init__(self, connection: CardConnection, reader_name: str, notice: Callable[[str], None] = _say,
                 patience: float = PATIENCE) -> None:
        super().__init__(connection)
        self.reader_name = reader_name
        self.notice = notice
        self.patience = patience
        self.exclusive = False

    @property
    def _handle(self) -> int:
        """The SCARDHANDLE under pyscard's connection decorator."""
        return int(getattr(self.connection, "component", self.connection).hcard)

    def begin_exclusive(self) -> None:
        if self.exclusive:
            return
        wait_for_card(self.reader_name, self.notice, self.patience)
        hresult = SCardBeginTransaction(self._handle)
        if hresult != SCARD_S_SUCCESS:
            raise CardRemovedError(f"cannot hold the card in {self.reader_name}: {SCardGetErrorMessage(hresult)}")
        self.exclusive = True

    def close(self) -> None:
        if self.exclusive:
            SCardEndTransaction(self._handle, SCARD_LEAVE_CARD)
            self.exclusive = False
        super().close()  # SCardDisconnect with SCARD_LEAVE_CARD, chosen at connect
        release(self.connection)


def release(connection: CardConnection) -> None:
    """Release the connection's PC/SC context now, not in pyscard's ``__del__``: there a context
    pcscd no longer knows (pcscd restarted meanwhile) raises out of the garbage collector, into
    whatever code runs at that moment."""
    component = getattr(connection, "component", connection)
    try:
        component.release()
    except CardConnectionException:
        pass
    finally:
        component.hcontext = None


def connect_reader(name: str | None = None, protocol: str = "any") -> PcscTransport:
    reader_name = pick_reader(name)
    wait_for_card(reader_name)  # rather than block in SCardConnect without a word
    reader = next(r for r in pcsc_readers() if str(r) == reader_name)
    connection = reader.createConnection()
    try:
        connection.connect(PROTOCOLS[protocol], disposition=SCARD_LEAVE_CARD)
    except NoCardException as exc:
        release(connection)
        raise CardRemovedError(f"no card in {reader_name}") from exc
    except CardConnectionException as exc:
        release(connection)
        raise TransportError(f"cannot connect to the card in {reader_name}: {exc}") from exc
    return PcscTransport(connection, reader_name)
