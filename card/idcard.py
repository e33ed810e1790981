"""The ID card applet (seed E5, see :mod:`apdu.idcard`): a document whose key pair is made on
the card when it is made, and which signs a server's challenge to prove the holder has it.

A card leaves the factory blank: its key pair made, no document. The issuer reads the public
key, signs a document naming it and writes it once (PUT DATA), as it would on a Java Card."""

from __future__ import annotations

from apdu import SW, CommandApdu, tlv
from apdu import idcard as i
from apdu import wallet as w

from . import crypto
from .applet import CardError
from .eeprom import Eeprom
from .pin import Pin

MAGIC = b"EVBI"
LAYOUT_VERSION = 2
PIN_MAX_TRIES = 3
# header: magic (4), layout (1), PIN set (1), PIN tries (1), PIN max (1), PIN hash (32),
# private scalar (32), public key (65), document length (2, 0 while blank), document TLV
H_MAGIC, H_LAYOUT, H_HAS_PIN, H_PIN_TRIES, H_PIN_MAX, H_PIN_HASH = 0, 4, 5, 6, 7, 8
H_SCALAR, H_PUBLIC, H_DOC_LEN, H_DOC = 40, 72, 137, 139


class IdCardApplet:
    aid = i.AID_IDCARD

    def __init__(self, eeprom: Eeprom) -> None:
        self.eeprom = eeprom
        self.base = eeprom.app_offset
        if eeprom.read(self.base + H_MAGIC, 4) != MAGIC:
            raise ValueError("EEPROM holds no ID card")
        if eeprom.read(self.base + H_LAYOUT, 1)[0] != LAYOUT_VERSION:
            raise ValueError("an ID card of another layout")
        self.pin_verified = False

    @staticmethod
    def make(eeprom: Eeprom) -> None:
        """The card maker's step: the key pair generated here, on the card; no document yet."""
        scalar, public = crypto.generate()
        base = eeprom.app_offset
        with eeprom.transaction():
            eeprom.write(base + H_MAGIC, MAGIC + bytes((LAYOUT_VERSION, 0, PIN_MAX_TRIES, PIN_MAX_TRIES)))
            eeprom.write(base + H_SCALAR, scalar)
            eeprom.write(base + H_PUBLIC, public)
            eeprom.write_u16(base + H_DOC_LEN, 0)

    @property
    def document(self) -> bytes:
        """The issued document TLV, as the issuer wrote it; empty while the card is blank."""
        return self.eeprom.read(self.base + H_DOC, self.eeprom.read_u16(self.base + H_DOC_LEN))

    @property
    def has_pin(self) -> bool:
        return self.eeprom.read(self.base + H_HAS_PIN, 1)[0] == 1

    def _number(self, document: bytes) -> bytes:
        return tlv.decode_map(document)[0x81]

    def _pin(self, number: bytes) -> Pin:
        return Pin(self.eeprom, self.base + H_PIN_TRIES, self.base + H_PIN_MAX, self.base + H_PIN_HASH, number)

    def select(self) -> bytes:
        self.pin_verified = False
        return b""

    def deselect(self) -> None:
        self.pin_verified = False

    def process(self, command: CommandApdu) -> bytes:
        if command.cla & ~0x10 & 0xFF != w.CLA_ISO:
            raise CardError(SW.CLA_NOT_SUPPORTED)
        if command.ins == i.INS_GET_DATA:
            return self._get_data(command)
        if command.ins == i.INS_PUT_DATA:
            return self._issue(command)
        if command.ins not in (w.INS_VERIFY, i.INS_INTERNAL_AUTHENTICATE):
            raise CardError(SW.INS_NOT_SUPPORTED)
        document = self.document
        if not document:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED)  # blank: nothing to prove yet
        number = self._number(document)
        if command.ins == w.INS_VERIFY:
            try:
                self.pin_verified = (self._pin(number).verify(command, self.pin_verified)
                                     if self.has_pin else True)
            except (CardError, w.MessageError) as exc:
                self.pin_verified = False
                raise exc if isinstance(exc, CardError) else CardError(SW.WRONG_DATA) from exc
            return b""
        if self.has_pin and not self.pin_verified:
            raise CardError(SW.SECURITY_STATUS_NOT_SATISFIED)
        try:
            audience, challenge = i.split_authenticate(command.data)
        except w.MessageError as exc:
            raise CardError(SW.WRONG_LENGTH) from exc
        scalar = self.eeprom.read(self.base + H_SCALAR, 32)
        return crypto.sign(scalar, i.auth_message(audience, number.decode("ascii"), challenge))

    def _get_data(self, command: CommandApdu) -> bytes:
        if command.p1 == 0 and command.p2 == i.TAG_PUBLIC_KEY:
            return tlv.encode([(i.TAG_PUBLIC_KEY, self.eeprom.read(self.base + H_PUBLIC, 65))])
        if command.p1 or command.p2:
            raise CardError(SW.INCORRECT_P1P2)
        document = self.document
        if not document:
            raise CardError(SW.REFERENCE_DATA_NOT_FOUND)
        return document

    def _issue(self, command: CommandApdu) -> bytes:
        """PUT DATA: the document, once, naming this card's key, with the PIN it promises."""
        if command.p1 or command.p2:
            raise CardError(SW.INCORRECT_P1P2)
        if self.document:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED)
        try:
            issue = i.parse_issue(command.data)
            digits = w.parse_pin_block(issue.pin_block) if issue.pin_block is not None else None
        except w.MessageError as exc:
            raise CardError(SW.WRONG_DATA) from exc
        if issue.public_key != self.eeprom.read(self.base + H_PUBLIC, 65):
            raise CardError(SW.WRONG_DATA)
        with self.eeprom.transaction():
            if digits is not None:
                self.eeprom.write(self.base + H_HAS_PIN, b"\x01")
                self._pin(issue.number.encode()).set(digits)
            self.eeprom.write(self.base + H_DOC, issue.document)
            self.eeprom.write_u16(self.base + H_DOC_LEN, len(issue.document))
        return b""
