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
INTERNAL AUTHENTICATE      00 88      if set audience (32) || challenge (16-64) ->
                                             ECDSA signature, :func:`auth_message`
=========================  =========  =====  ===============================================

Document TLV: ``80`` holder (UTF-8, 1-64), ``81`` number (ASCII, 1-20), ``82`` expiry (BCD
date), ``83`` public key (65), ``84`` PIN set (1 byte 00/01), ``9E`` the document issuer's
signature over the fields before it (:meth:`IdDocument.message`), made when the card is issued:
a key manager that pins the issuer's key believes holder, number and expiry because the issuer
signed them with the card's key, not because the card says so.

The audience of a login signature is the key manager's public key hash, given by the host: an ID
card is a document for any relying party and pins no server. The terminal that holds the card
could have it sign for anyone anyway; what the audience stops is a man in the middle relaying one
key manager's challenge to another.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from . import tlv
from .command import CommandApdu
from .context import ANY_RELYING_PARTY, AUDIENCE_LEN, Purpose, audience, message
from .records import decode_bcd_date, encode_bcd_date
from .signature import PUBLIC_KEY_LEN
from .wallet import CLA_ISO, MessageError

AID_IDCARD = bytes.fromhex("F0455642494401")  # F0 (unregistered RID) "EVBID" app 01
INS_GET_DATA = 0xCA
INS_INTERNAL_AUTHENTICATE = 0x88
CHALLENGE_MIN, CHALLENGE_MAX = 16, 64


@dataclass(frozen=True)
class IdDocument:
    holder: str
    number: str
    expiry: date
    public_key: bytes = b""
    has_pin: bool = False
    signature: bytes = b""  # the document issuer's

    def __post_init__(self) -> None:
        if not 1 <= len(self.holder.encode()) <= 64 or not self.holder.isprintable():
            raise MessageError("a holder name is 1-64 bytes of printable text")
        if not 1 <= len(self.number) <= 20 or not self.number.isascii() or not self.number.isprintable():
            raise MessageError("a document number is 1-20 printable ASCII characters")

    def signed_part(self) -> bytes:
        return tlv.encode([(0x80, self.holder.encode()), (0x81, self.number.encode()),
                           (0x82, encode_bcd_date(self.expiry)), (0x83, self.public_key),
                           (0x84, bytes((int(self.has_pin),)))])

    def message(self) -> bytes:
        """What the document issuer signs: every field, for any relying party."""
        return message(Purpose.ID_DOCUMENT, audience(ANY_RELYING_PARTY), self.signed_part())

    def to_bytes(self) -> bytes:
        return self.signed_part() + bytes(tlv.Tlv(0x9E, self.signature))

    @classmethod
    def from_bytes(cls, raw: bytes) -> IdDocument:
        try:
            items = tlv.decode(raw)
            if [t.tag for t in items] != [0x80, 0x81, 0x82, 0x83, 0x84, 0x9E]:
                raise MessageError("fields missing or out of order")
            holder, number, expiry, key, pin, signature = (t.value for t in items)
            if len(key) != PUBLIC_KEY_LEN or len(pin) != 1 or len(signature) > 72:
                raise MessageError("a public key is 65 bytes, the PIN flag one, a signature at most 72")
            document = cls(holder.decode(), number.decode("ascii"), decode_bcd_date(expiry), key, bool(pin[0]),
                           signature)
        except (ValueError, UnicodeDecodeError) as exc:
            raise MessageError(f"not an ID document: {exc}") from exc
        if document.to_bytes() != raw:
            raise MessageError("not an ID document in its one encoding")
        return document

    def expired(self, today: date) -> bool:
        return self.expiry < today


def auth_message(audience_hash: bytes, number: str, challenge: bytes) -> bytes:
    """What the ID card signs: for one key manager, bound to the document and the challenge."""
    raw = number.encode()
    return message(Purpose.ID_LOGIN, audience_hash, bytes((len(raw),)), raw, challenge)


def get_document() -> CommandApdu:
    return CommandApdu(CLA_ISO, INS_GET_DATA, 0, 0, ne=256)


def authenticate(server_key: bytes, challenge: bytes) -> CommandApdu:
    """Sign ``challenge`` for the key manager whose public key is ``server_key``."""
    if not CHALLENGE_MIN <= len(challenge) <= CHALLENGE_MAX:
        raise MessageError(f"a challenge is {CHALLENGE_MIN}..{CHALLENGE_MAX} bytes")
    return CommandApdu(CLA_ISO, INS_INTERNAL_AUTHENTICATE, 0, 0, audience(server_key) + challenge, ne=256)


def split_authenticate(data: bytes) -> tuple[bytes, bytes]:
    """INTERNAL AUTHENTICATE's data: the audience hash, then the challenge."""
    if not CHALLENGE_MIN <= len(data) - AUDIENCE_LEN <= CHALLENGE_MAX:
        raise MessageError("an audience hash and a 16-64 byte challenge")
    return data[:AUDIENCE_LEN], data[AUDIENCE_LEN:]
