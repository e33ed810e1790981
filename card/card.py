"""The simulated IC card: a pure APDU processor with power semantics.

What lives here is what a card OS does below the applets: the ATR, power on/off/reset (RAM
state is lost, the EEPROM journal is recovered), the transmission protocol (T=0 unless a PPS
chose T=1), SELECT by AID, command chaining, response chaining with ``61xx``/GET RESPONSE,
``6Cxx`` for a wrong Le, and the rule that a Python exception never becomes a reply: every
failure is a status word and changes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import IO, TYPE_CHECKING

from apdu import SW, ApduFormatError, CommandApdu, ResponseApdu
from apdu import wallet as w
from apdu.atr import build_atr
from apdu.deferred import deferred
from apdu.wallet import INS_GET_RESPONSE, INS_SELECT, P1_SELECT_BY_DF_NAME

from .applet import Applet, CardError
from .eeprom import DEFAULT_SIZE, Eeprom, ImageError, PowerLoss, TransactionError, lock_image
from .wallet import DEFAULT_INDEX_CAPACITY, WalletApplet
from .wallet import MAGIC as WALLET_MAGIC

if TYPE_CHECKING:
    from apdu import idcard as i

    from . import idcard
else:  # run for an ID card only: a wallet boots without the ID card's applet and codec
    i, idcard = map(deferred, ("apdu.idcard", "card.idcard"))

log = logging.getLogger(__name__)

ATR = build_atr()
MAX_CHAIN = 4096  # bytes a command chain may accumulate, like a JavaCard APDU buffer
T0, T1 = "T=0", "T=1"
# GET RESPONSE is served under the classes the card's commands use: a host (the JDK's
# javax.smartcardio) sends it with the class of the command it follows
GET_RESPONSE_CLASSES = (0x00, 0x80)


class CardMute(Exception):
    """The card gives no answer: it is not powered (or power was just cut)."""


def _applet_for(eeprom: Eeprom) -> Applet:
    """The applet the EEPROM was personalized for: an ID card, or else the wallet (a wallet's
    magic is compared first, so booting a wallet never runs the ID card's module)."""
    magic = eeprom.read(eeprom.app_offset, 4)
    if magic != WALLET_MAGIC and magic == idcard.MAGIC:
        return idcard.IdCardApplet(eeprom)
    return WalletApplet(eeprom)


class SimulatedCard:
    def __init__(self, eeprom: Eeprom) -> None:
        self.eeprom = eeprom
        self.atr = ATR
        self.applets: list[Applet] = [_applet_for(eeprom)]
        self._selected: Applet | None = None
        self._chain: list[CommandApdu] = []
        self._pending: bytes = b""  # response bytes waiting for GET RESPONSE
        self._image_lock: IO[str] | None = None
        self.protocol = T0  # ISO 7816-3: the first protocol the ATR offers, until a PPS

    # --- manufacture -------------------------------------------------------------------------

    @classmethod
    def manufacture(
        cls,
        size: int = DEFAULT_SIZE,
        index_capacity: int = DEFAULT_INDEX_CAPACITY,
        image: Path | None = None,
    ) -> SimulatedCard:
        eeprom = Eeprom.blank(size)
        eeprom.power_on()
        WalletApplet.format(eeprom, index_capacity)
        eeprom.power_off()
        if image is not None:
            eeprom.save(image)
        return cls(eeprom)

    @classmethod
    def manufacture_idcard(cls, image: Path | None = None) -> SimulatedCard:
        """A blank ID card (seed E5): its key pair made on the card, no document yet."""
        eeprom = Eeprom.blank(8192)
        eeprom.power_on()
        idcard.IdCardApplet.make(eeprom)
        eeprom.power_off()
        if image is not None:
            eeprom.save(image)
        return cls(eeprom)

    @classmethod
    def issue_idcard(cls, holder: str, number: str, expiry: date, sign: Callable[[bytes], bytes],
                     pin: str | None = None, image: Path | None = None) -> SimulatedCard:
        """An ID card as its issuer personalizes it, through its own commands (the terminal's
        flow is :func:`host.idcard.issue`): the document names the key the card made, and the
        issuer (``sign``) signs it."""
        card = cls.manufacture_idcard()
        card.power_on()

        def send(command: CommandApdu) -> bytes:
            answer = card.transmit(command.to_bytes())
            if answer[-2:] != b"\x90\x00":
                raise ValueError(f"the blank ID card refused to be issued: {answer[-2:].hex()}")
            return answer[:-2]

        send(w.select(i.AID_IDCARD))
        public = i.parse_public_key(send(i.get_public_key()))
        send(i.put_document(i.IdDocument.signed(holder, number, expiry, public, pin is not None, sign),
                            w.pin_block(pin) if pin is not None else None))
        card.power_off()
        if image is not None:
            card.eeprom.save(image)
        return card

    @classmethod
    def open(cls, image: Path) -> SimulatedCard:
        """The card whose EEPROM is ``image``, held exclusively until :meth:`close`."""
        lock = lock_image(image)
        try:
            eeprom = Eeprom.load(image)
            eeprom.power_on()  # recover a journal left by a tear before reading the layout
            eeprom.power_off()
            card = cls(eeprom)
        except ValueError as exc:  # not our wallet, or an older layout
            lock.close()
            raise ImageError(f"{image}: {exc}") from exc
        except BaseException:
            lock.close()
            raise
        card._image_lock = lock
        return card

    def close(self) -> None:
        """Release the image for other processes (the card is as if taken out of the reader)."""
        if self.powered:
            self.power_off()
        self.eeprom.close()
        if self._image_lock is not None:
            self._image_lock.close()
            self._image_lock = None

    # --- power -------------------------------------------------------------------------------

    @property
    def powered(self) -> bool:
        return self.eeprom.powered

    def power_on(self) -> bytes:
        self.eeprom.power_on()
        self._reset_ram()
        return self.atr

    def power_off(self) -> None:
        self.eeprom.power_off()
        self._reset_ram()

    def reset(self) -> bytes:
        self.power_off()
        return self.power_on()

    def select_protocol(self, protocol: str) -> None:
        """The PPS exchange after the ATR (ISO 7816-3 9): the reader picks T=0 or T=1.

        The in-process reader calls this; pcscd's vpcd driver passes no PPS to the card, so a
        card in the virtual reader stays in T=0, the protocol its ATR offers first.
        """
        if protocol not in (T0, T1):
            raise ValueError(f"the card offers T=0 and T=1, not {protocol}")
        self.protocol = protocol

    def _reset_ram(self) -> None:
        if self._selected is not None:
            self._selected.deselect()
        self._selected = None
        self._chain = []
        self._pending = b""
        self.protocol = T0

    # --- APDU processing ---------------------------------------------------------------------

    def transmit(self, apdu: bytes) -> bytes:
        """One command APDU in, one response APDU out. Raises only :class:`CardMute`."""
        if not self.powered:
            raise CardMute("card not powered")
        writes_before = self.eeprom.page_writes
        try:
            response = self._process(apdu, writes_before)
        except PowerLoss as exc:
            self._reset_ram()
            raise CardMute(str(exc)) from exc
        if self.eeprom.in_transaction:  # an applet bug must not leave half a command behind
            self.eeprom.abort()
            response = ResponseApdu(b"", SW.NO_PRECISE_DIAGNOSIS)
        return bytes(response)

    def _process(self, raw: bytes, writes_before: int) -> ResponseApdu:
        try:
            command = CommandApdu.from_bytes(raw)
        except ApduFormatError as exc:
            self._chain, self._pending = [], b""
            return ResponseApdu(b"", exc.sw)

        if command.ins == INS_GET_RESPONSE:
            # A refused GET RESPONSE (class, P1-P2) is not a new command: the waiting data stays
            # for a corrected one. Any other command ends the wait (ISO 7816-4 5.3.4, and what
            # a JavaCard runtime does).
            return self._get_response(command)
        self._pending = b""

        if command.cla & 0x03 or command.cla & 0x0C:
            return ResponseApdu(
                b"", SW.LOGICAL_CHANNEL_NOT_SUPPORTED if command.cla & 0x03 else SW.CLA_NOT_SUPPORTED
            )
        if command.cla & 0x60 or command.cla not in (0x00, 0x10, 0x80, 0x90):
            return ResponseApdu(b"", SW.CLA_NOT_SUPPORTED)

        if command.chained:
            if self._chain and (self._chain[0].ins, self._chain[0].p1, self._chain[0].p2) != (
                command.ins,
                command.p1,
                command.p2,
            ):
                self._chain = []
                return ResponseApdu(b"", SW.LAST_COMMAND_OF_CHAIN_EXPECTED)
            if sum(len(c.data) for c in self._chain) + len(command.data) > MAX_CHAIN:
                self._chain = []
                return ResponseApdu(b"", SW.WRONG_LENGTH)
            self._chain.append(command)
            return ResponseApdu(b"", SW.OK)
        if self._chain:
            head = self._chain[0]
            if (head.ins, head.p1, head.p2) != (command.ins, command.p1, command.p2):
                self._chain = []
                return ResponseApdu(b"", SW.LAST_COMMAND_OF_CHAIN_EXPECTED)
            data = b"".join(c.data for c in self._chain) + command.data
            self._chain = []
            if len(data) > MAX_CHAIN:
                return ResponseApdu(b"", SW.WRONG_LENGTH)
            command = CommandApdu(command.cla, command.ins, command.p1, command.p2, data, command.ne)

        try:
            data = self._dispatch(command)
        except CardError as exc:
            if self.eeprom.in_transaction:
                self.eeprom.abort()
            return ResponseApdu(b"", exc.sw)
        except PowerLoss:
            raise
        except TransactionError:
            log.exception("transaction failure in %02X", command.ins)
            self.eeprom.abort()
            return ResponseApdu(b"", SW.NOT_ENOUGH_MEMORY)
        except Exception:  # a card never answers with a traceback
            log.exception("unexpected error in %02X", command.ins)
            self.eeprom.abort()
            return ResponseApdu(b"", SW.NO_PRECISE_DIAGNOSIS)
        return self._shape(command, data, read_only=self.eeprom.page_writes == writes_before)

    def _dispatch(self, command: CommandApdu) -> bytes:
        if command.ins == INS_SELECT and command.cla == 0x00:
            if command.p1 != P1_SELECT_BY_DF_NAME or command.p2 not in (0x00, 0x0C):
                raise CardError(SW.INCORRECT_P1P2)
            applet = next((a for a in self.applets if a.aid == command.data), None)
            if applet is None:
                raise CardError(SW.FILE_NOT_FOUND)
            if self._selected is not None:
                self._selected.deselect()
            self._selected = applet
            fci = applet.select()
            return b"" if command.p2 == 0x0C else fci
        if self._selected is None:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED)
        return self._selected.process(command)

    def _shape(self, command: CommandApdu, data: bytes, read_only: bool) -> ResponseApdu:
        """Fit response data to Ne (ISO 7816-4 5.1, 7816-3 12.2.5 for T=0).

        No Le field means Ne = 0. On T=1 the card then answers the status alone. On T=0 a case-4
        command always arrives without Le (the reader strips it: the TPDU has one length byte),
        so the card answers ``61xx`` and waits for GET RESPONSE. With an Le too short for the
        data, ``6Cxx`` asks for a re-issue of a read-only case-2 command, and otherwise Ne bytes
        come with ``61xx`` for the rest.
        """
        if not data:
            return ResponseApdu(b"", SW.OK)
        if command.ne is None and self.protocol == T1:
            return ResponseApdu(b"", SW.OK)
        ne = command.ne or 0
        if len(data) <= ne:
            return ResponseApdu(data, SW.OK)
        if command.case == 2 and ne and read_only and len(data) <= 256:
            # Wrong Le on a command that changed nothing: ask for a re-issue with the exact Le.
            return ResponseApdu(b"", 0x6C00 | (len(data) & 0xFF))
        self._pending = data[ne:]
        return ResponseApdu(data[:ne], 0x6100 | min(len(self._pending), 256) & 0xFF)

    def _get_response(self, command: CommandApdu) -> ResponseApdu:
        if command.cla & 0x03:
            return ResponseApdu(b"", SW.LOGICAL_CHANNEL_NOT_SUPPORTED)
        if command.chained:
            return ResponseApdu(b"", SW.CHAINING_NOT_SUPPORTED)
        if command.cla not in GET_RESPONSE_CLASSES:
            return ResponseApdu(b"", SW.CLA_NOT_SUPPORTED)
        if command.p1 or command.p2:
            return ResponseApdu(b"", SW.INCORRECT_P1P2)
        if command.data:
            return ResponseApdu(b"", SW.WRONG_LENGTH)
        if not self._pending:
            return ResponseApdu(b"", SW.CONDITIONS_NOT_SATISFIED)
        ne = command.ne or 256
        chunk, self._pending = self._pending[:ne], self._pending[ne:]
        if self._pending:
            return ResponseApdu(chunk, 0x6100 | min(len(self._pending), 256) & 0xFF)
        return ResponseApdu(chunk, SW.OK)
