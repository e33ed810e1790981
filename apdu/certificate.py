"""The vault's certificate (seed E1, file 852): what the card keeps in place of a value.

A compact TLV, because it lives in card EEPROM::

    80 version(1) 81 card id(8) 82 counter Y(4) 83 hash X(32) 84 mode(1) A5 digest 9E signature

The signature (ECDSA P-256, SHA-256, canonical DER) by the vault covers every byte before the
``9E`` TLV, for the card it names (:meth:`Certificate.message`: purpose CERTIFICATE, audience the
card id), so the card, the host and anyone holding the vault's public key can verify it offline. The
digest is a configurable subset of the value's own TLVs (type, name, count, start, expiry, place; it
may be empty); X binds the certificate to the exact stored bytes of the value.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum, IntEnum

from . import tlv
from .context import Purpose, audience, message
from .records import Tag

VERSION = 1
HASH_LEN = 32
CARD_ID_LEN = 8
MAX_SIGNATURE = 72  # DER ECDSA P-256


class CertTag(IntEnum):
    VERSION = 0x80
    CARD_ID = 0x81
    COUNTER = 0x82
    VALUE_HASH = 0x83
    MODE = 0x84
    DIGEST = 0xA5
    SIGNATURE = 0x9E


class Mode(IntEnum):
    PLAIN = 0  # E1: the vault holds the value
    ENCRYPTED = 1  # E2: the vault holds a registered value, X hashes the ciphertext


class DigestField(Enum):
    """The value fields a vault may copy into the digest, by the names the seed uses."""

    TYPE = Tag.TYPE
    NAME = Tag.NAME
    COUNT = Tag.QUANTITY
    START = Tag.VALID_FROM  # with EXPIRY: the whole validity range of fig. 2(b)
    EXPIRY = Tag.VALID_TO
    PLACE = Tag.PLACE


ALL_DIGEST_FIELDS = tuple(DigestField)


class CertificateError(ValueError):
    pass


def value_hash(value: bytes) -> bytes:
    return hashlib.sha256(value).digest()


def make_digest(value: bytes, fields: Sequence[DigestField] = ALL_DIGEST_FIELDS) -> bytes:
    """The chosen fields of a stored value body, as the value's own TLVs (absent ones skipped)."""
    found = tlv.decode_map(value)
    wanted = {f.value for f in fields}
    return tlv.encode([(tag, data) for tag, data in found.items() if tag in wanted])


def digest_matches(digest: bytes, value: bytes) -> bool:
    """Every field in the digest is in the value with the same bytes (and the digest is TLV)."""
    try:
        claimed = tlv.decode_map(digest)
        actual = tlv.decode_map(value)
    except tlv.TlvError:
        return False
    allowed = {f.value for f in DigestField}
    return all(tag in allowed and actual.get(tag) == data for tag, data in claimed.items())


@dataclass(frozen=True)
class Certificate:
    card_id: bytes
    counter: int
    value_hash: bytes
    digest: bytes = b""
    mode: Mode = Mode.PLAIN
    signature: bytes = b""
    version: int = VERSION

    def __post_init__(self) -> None:
        if len(self.card_id) != CARD_ID_LEN:
            raise CertificateError("card id is 8 bytes")
        if not 0 <= self.counter <= 0xFFFFFFFF:
            raise CertificateError("counter is 4 bytes")
        if len(self.value_hash) != HASH_LEN:
            raise CertificateError("hash X is 32 bytes (SHA-256)")
        if len(self.signature) > MAX_SIGNATURE:
            raise CertificateError("signature too long")

    def signed_part(self) -> bytes:
        """The bytes the vault signs: every TLV but the signature, in canonical order."""
        return tlv.encode(
            [
                (CertTag.VERSION, bytes((self.version,))),
                (CertTag.CARD_ID, self.card_id),
                (CertTag.COUNTER, self.counter.to_bytes(4, "big")),
                (CertTag.VALUE_HASH, self.value_hash),
                (CertTag.MODE, bytes((int(self.mode),))),
                (CertTag.DIGEST, self.digest),
            ]
        )

    def message(self) -> bytes:
        """What the vault signs: the certificate's fields, for the card they name."""
        return message(Purpose.CERTIFICATE, audience(self.card_id), self.signed_part())

    def to_bytes(self) -> bytes:
        return self.signed_part() + bytes(tlv.Tlv(CertTag.SIGNATURE, self.signature))

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    @classmethod
    def from_bytes(cls, raw: bytes) -> Certificate:
        try:
            items = tlv.decode(raw)
        except tlv.TlvError as exc:
            raise CertificateError(f"certificate is not TLV: {exc}") from exc
        order = [CertTag.VERSION, CertTag.CARD_ID, CertTag.COUNTER, CertTag.VALUE_HASH, CertTag.MODE,
                 CertTag.DIGEST, CertTag.SIGNATURE]
        if [t.tag for t in items] != order:
            raise CertificateError("certificate fields missing, repeated or out of order")
        v = [t.value for t in items]
        if len(v[0]) != 1 or v[0][0] != VERSION:
            raise CertificateError("unsupported certificate version")
        if len(v[2]) != 4 or len(v[4]) != 1:
            raise CertificateError("malformed counter or mode")
        try:
            mode = Mode(v[4][0])
        except ValueError as exc:
            raise CertificateError("unknown certificate mode") from exc
        cert = cls(v[1], int.from_bytes(v[2], "big"), v[3], v[5], mode, v[6])
        if cert.to_bytes() != raw:  # one encoding only: what was signed is what is parsed
            raise CertificateError("certificate is not in canonical form")
        return cert

    def matches(self, value: bytes) -> bool:
        """Hash X and the digest both fit the value (the signature is checked separately)."""
        return self.value_hash == value_hash(value) and digest_matches(self.digest, value)
