"""The ID card (seed E5): a driver's licence or passport stand-in that proves its holder's
possession to the key manager, shared by card and host.

It is a second card, in a second reader: the holder's name, a document number, an expiry date,
and a P-256 key pair generated on the card, the private half of which never leaves it. An
optional PIN guards the signature. Commands (ISO 7816-4 where ISO has one):

=========================  =========  =====  ===============================================
command                    CLA INS    PIN    data -> response
=========================  =========  =====  ===============================================
SELECT by AID              00 A4 04   no     AID -> (nothing)
GET DATA                   00 CA      no     P1P2 0000 -> the document TLV, below
VERIFY                     00 20      -      P2 81, PIN block (empty: the retry status)
INTERNAL AUTHENTICATE      00 88      if set challenge (16-64) -> ECDSA signature over
                                             ``"EVB-IDCARD-1" || document number || challenge``
=========================  =========  =====  ===============================================

Document TLV: ``80`` holder (UTF-8, 1-64), ``81`` number (ASCII, 1-20), ``82`` expiry (BCD
date), ``83`` public key (65), ``84`` PIN set (1 byte 00/01).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from . import tlv
from .command import CommandApdu
from .records import decode_bcd_date, encode_bcd_date
from .signature import PUBLIC_KEY_LEN
from .wallet import CLA_ISO, MessageError

AID_IDCARD = bytes.fromhex("F0455642494401")  # F0 (unregistered RID) "EVBID" app 01
INS_GET_DATA = 0xCA
INS_INTERNAL_AUTHENTICATE = 0x88
AUTH_CONTEXT = b"EVB-IDCARD-1"
CHALLENGE_MIN, CHALLENGE_MAX = 16, 64


@dataclass(frozen=True)
class IdDocument:
    holder: str
    number: str
    expiry: date
    public_key: bytes = b""
    has_pin: bool = False

    def __post_init__(self) -> None:
        if not 1 <= len(self.holder.encode()) <= 64 or not self.holder.isprintable():
            raise MessageError("a holder name is 1-64 bytes of printable text")
        if not 1 <= len(self.number) <= 20 or not self.number.isascii() or not self.number.isprintable():
            raise MessageError("a document number is 1-20 printable ASCII characters")

    def to_bytes(self) -> bytes:
        return tlv.encode([(0x80, self.holder.encode()), (0x81, self.number.encode()),
                           (0x82, encode_bcd_date(self.expiry)), (0x83, self.public_key),
                           (0x84, bytes((int(self.has_pin),)))])

    @classmethod
    def from_bytes(cls, raw: bytes) -> IdDocument:
        try:
            items = tlv.decode(raw)
            if [t.tag for t in items] != [0x80, 0x81, 0x82, 0x83, 0x84]:
                raise MessageError("fields missing or out of order")
            holder, number, expiry, key, pin = (t.value for t in items)
            if len(key) != PUBLIC_KEY_LEN or len(pin) != 1:
                raise MessageError("a public key is 65 bytes, the PIN flag one")
            return cls(holder.decode(), number.decode("ascii"), decode_bcd_date(expiry), key, bool(pin[0]))
        except (ValueError, UnicodeDecodeError) as exc:
            raise MessageError(f"not an ID document: {exc}") from exc

    def expired(self, today: date) -> bool:
        return self.expiry < today


def auth_message(number: str, challenge: bytes) -> bytes:
    return AUTH_CONTEXT + number.encode() + challenge


def get_document() -> CommandApdu:
    return CommandApdu(CLA_ISO, INS_GET_DATA, 0, 0, ne=256)


def authenticate(challenge: bytes) -> CommandApdu:
    if not CHALLENGE_MIN <= len(challenge) <= CHALLENGE_MAX:
        raise MessageError(f"a challenge is {CHALLENGE_MIN}..{CHALLENGE_MAX} bytes")
    return CommandApdu(CLA_ISO, INS_INTERNAL_AUTHENTICATE, 0, 0, challenge, ne=256)
