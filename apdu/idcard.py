"""The ID card (seed E5): a driver's licence or passport stand-in that proves its holder's
possession to the key manager, shared by card and host.

It is a second card, in a second reader: the holder's name, a document number, an expiry date,
and a P-256 key pair generated on the card, the private half of which never leaves it. An
optional PIN guards the signature. Commands (ISO 7816-4 where ISO has one):

=========================  =========  =====  ===============================================
command                    CLA INS    PIN    data -> response
=========================  =========  =====  ===============================================
SELECT by AID              00 A4 04   no     AID -> (nothing)
GET DATA                   00 CA      no     P1P2 0000 -> the document TLV, below (a blank
                                             card: 6A88); P1P2 0083 -> ``83 41`` public key
PUT DATA (issue)           00 DA      no     P1P2 0000, the signed document TLV, then
                                             ``C1 08`` PIN block if it has a PIN; once
VERIFY                     00 20      -      P2 81, PIN block (empty: the retry status)
INTERNAL AUTHENTICATE      00 88      if set audience (32) || challenge (16-64) ->
                                             ECDSA signature, :func:`auth_message`
=========================  =========  =====  ===============================================

Issuing: the card makes its key pair when it is made (blank); the issuer reads the public key
(GET DATA 0083), signs the document naming it, and writes it with PUT DATA, which the card takes
once, only naming its own key, with the PIN flag matching the PIN block sent (``6A80``
otherwise; a second issue ``6985``). A blank card signs nothing and verifies no PIN (``6985``).
A Java Card makes its pair with ``KeyPair.genKeyPair`` the same way, so one spec serves both.

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

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date

from . import tlv
from .command import CommandApdu
from .context import ANY_RELYING_PARTY, AUDIENCE_LEN, Purpose, audience, message
from .records import decode_bcd_date, encode_bcd_date
from .signature import PUBLIC_KEY_LEN
from .wallet import CLA_ISO, MessageError

AID_IDCARD = bytes.fromhex("F0455642574C02")  # the wallet's RID F0 "EVBW" (one CAP holds both applets), app 02
INS_GET_DATA = 0xCA
INS_PUT_DATA = 0xDA
TAG_PUBLIC_KEY = 0x83  # GET DATA P1P2 0083: the card's public key, in any state
TAG_PIN_BLOCK = 0xC1  # after the document in PUT DATA: the PIN the document says it has
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

    @classmethod
    def signed(cls, holder: str, number: str, expiry: date, public_key: bytes, has_pin: bool,
               sign: Callable[[bytes], bytes]) -> IdDocument:
        """The document as its issuer makes it: ``sign`` (the issuer's key) over every field."""
        unsigned = cls(holder, number, expiry, public_key, has_pin)
        return cls(holder, number, expiry, public_key, has_pin, sign(unsigned.message()))

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


def get_public_key() -> CommandApdu:
    return CommandApdu(CLA_ISO, INS_GET_DATA, 0, TAG_PUBLIC_KEY, ne=256)


def parse_public_key(answer: bytes) -> bytes:
    items = tlv.decode_map(answer)
    key = items.get(TAG_PUBLIC_KEY, b"")
    if len(key) != PUBLIC_KEY_LEN or tlv.encode([(TAG_PUBLIC_KEY, key)]) != answer:
        raise MessageError("not an ID card's public key")
    return key


def put_document(document: IdDocument, pin_block: bytes | None = None) -> CommandApdu:
    """Issue a blank card: its signed document, and the PIN block when the document has a PIN."""
    raw = document.to_bytes() + (tlv.encode([(TAG_PIN_BLOCK, pin_block)]) if pin_block is not None else b"")
    return CommandApdu(CLA_ISO, INS_PUT_DATA, 0, 0, raw)


@dataclass(frozen=True)
class Issue:
    """PUT DATA's data as the card checks it: structure only, as a Java Card can (the holder's
    text and the issuer's signature are the issuer's word, which the key manager checks)."""

    document: bytes  # the TLV the card keeps and answers to GET DATA
    number: str
    public_key: bytes
    pin_block: bytes | None


def parse_issue(data: bytes) -> Issue:
    """Tags ``80 81 82 83 84 9E`` in this order, minimal lengths: holder 1-64 bytes, number 1-20
    printable ASCII, expiry a BCD calendar date, key 65, PIN flag 00/01, signature 1-72; then
    ``C1`` with an 8-byte PIN block exactly when the flag is 01."""
    try:
        items = tlv.decode(data)
        if tlv.encode(items) != data:
            raise MessageError("lengths not in their shortest form")
        tags = [t.tag for t in items]
        if tags not in ([0x80, 0x81, 0x82, 0x83, 0x84, 0x9E], [0x80, 0x81, 0x82, 0x83, 0x84, 0x9E, TAG_PIN_BLOCK]):
            raise MessageError("fields missing or out of order")
        holder, number, expiry, key, flag, signature = (t.value for t in items[:6])
        decode_bcd_date(expiry)
    except ValueError as exc:
        raise MessageError(f"not an ID document: {exc}") from exc
    if not (1 <= len(holder) <= 64 and 1 <= len(number) <= 20 and all(0x20 <= b <= 0x7E for b in number)
            and len(key) == PUBLIC_KEY_LEN and flag in (b"\x00", b"\x01") and 1 <= len(signature) <= 72):
        raise MessageError("a field of the wrong size or content")
    pin_block = items[6].value if len(items) == 7 else None
    if (flag == b"\x01") != (pin_block is not None):
        raise MessageError("the document's PIN flag and the PIN block sent disagree")
    end = len(data) - (len(bytes(items[6])) if pin_block is not None else 0)
    return Issue(data[:end], number.decode("ascii"), key, pin_block)


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
