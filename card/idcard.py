"""The ID card applet (seed E5, see :mod:`apdu.idcard`): a document whose key pair is made on
the card at issue, and which signs a server's challenge to prove the holder has it."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from apdu import SW, CommandApdu
from apdu import idcard as i
from apdu import wallet as w

from . import crypto
from .applet import CardError
from .eeprom import Eeprom
from .pin import Pin

MAGIC = b"EVBI"
LAYOUT_VERSION = 1
PIN_MAX_TRIES = 3
# header: magic (4), layout (1), PIN set (1), PIN tries (1), PIN max (1), PIN hash (32),
# private scalar (32), document length (2), document TLV
H_MAGIC, H_LAYOUT, H_HAS_PIN, H_PIN_TRIES, H_PIN_MAX, H_PIN_HASH = 0, 4, 5, 6, 7, 8
H_SCALAR, H_DOC_LEN, H_DOC = 40, 72, 74


class IdCardApplet:
    aid = i.AID_IDCARD

    def __init__(self, eeprom: Eeprom) -> None:
        self.eeprom = eeprom
        self.base = eeprom.app_offset
        if eeprom.read(self.base + H_MAGIC, 4) != MAGIC:
            raise ValueError("EEPROM holds no ID card: issue it first")
        if eeprom.read(self.base + H_LAYOUT, 1)[0] != LAYOUT_VERSION:
            raise ValueError("an ID card of another layout")
        self.document = i.IdDocument.from_bytes(
            eeprom.read(self.base + H_DOC, eeprom.read_u16(self.base + H_DOC_LEN)))
        self.pin = Pin(eeprom, self.base + H_PIN_TRIES, self.base + H_PIN_MAX, self.base + H_PIN_HASH,
                       self.document.number.encode())
        self.pin_verified = False

    @staticmethod
    def issue(eeprom: Eeprom, holder: str, number: str, expiry: date, sign: Callable[[bytes], bytes],
              pin: str | None = None) -> i.IdDocument:
        """The issuer's personalization: the key pair is generated here, on the card, and the
        document issuer signs the document with its public key (``sign`` is the issuer's)."""
        scalar, public = crypto.generate()
        unsigned = i.IdDocument(holder, number, expiry, public, pin is not None)
        document = i.IdDocument(holder, number, expiry, public, pin is not None, sign(unsigned.message()))
        raw = document.to_bytes()
        base = eeprom.app_offset
        with eeprom.transaction():
            eeprom.write(base + H_MAGIC, MAGIC + bytes((LAYOUT_VERSION, int(pin is not None), PIN_MAX_TRIES,
                                                         PIN_MAX_TRIES)))
            eeprom.write(base + H_SCALAR, scalar)
            eeprom.write_u16(base + H_DOC_LEN, len(raw))
            eeprom.write(base + H_DOC, raw)
            if pin is not None:
                Pin(eeprom, base + H_PIN_TRIES, base + H_PIN_MAX, base + H_PIN_HASH,
                    number.encode()).set(w.parse_pin_block(w.pin_block(pin)))
        return document

    def select(self) -> bytes:
        self.pin_verified = False
        return b""

    def deselect(self) -> None:
        self.pin_verified = False

    def process(self, command: CommandApdu) -> bytes:
        if command.cla & ~0x10 & 0xFF != w.CLA_ISO:
            raise CardError(SW.CLA_NOT_SUPPORTED)
        if command.ins == i.INS_GET_DATA:
            if command.p1 or command.p2:
                raise CardError(SW.INCORRECT_P1P2)
            return self.document.to_bytes()
        if command.ins == w.INS_VERIFY:
            try:
                self.pin_verified = self.pin.verify(command, self.pin_verified) if self.document.has_pin else True
            except (CardError, w.MessageError) as exc:
                self.pin_verified = False
                raise exc if isinstance(exc, CardError) else CardError(SW.WRONG_DATA) from exc
            return b""
        if command.ins == i.INS_INTERNAL_AUTHENTICATE:
            if self.document.has_pin and not self.pin_verified:
                raise CardError(SW.SECURITY_STATUS_NOT_SATISFIED)
            try:
                audience, challenge = i.split_authenticate(command.data)
            except w.MessageError as exc:
                raise CardError(SW.WRONG_LENGTH) from exc
            scalar = self.eeprom.read(self.base + H_SCALAR, 32)
            return crypto.sign(scalar, i.auth_message(audience, self.document.number, challenge))
        raise CardError(SW.INS_NOT_SUPPORTED)
