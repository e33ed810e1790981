"""Commands for backing value up to the vault and restoring it (seed E1), shared by card and host.

The swap is two-phase so that a lost response, a retry or a torn write never leaves two live
copies or none (ARCHITECTURE section 4)::

    BEGIN BACKUP id     -> value bytes; the value is marked PENDING (cannot be spent or deleted)
    COMMIT BACKUP id    certificate -> the value is replaced by the certificate (or kept, marked
                        BACKED UP); a retry of a done commit answers 9000 again
    BEGIN RESTORE id    -> certificate; the certificate is marked PENDING
    COMMIT RESTORE id   value -> the certificate is replaced by the value; answers a receipt
    CANCEL PENDING id   clears PENDING (the host gave up the swap; the card keeps what it had)
    SIGN RECEIPT        counter, X -> a receipt, only for a registration the card no longer needs
    GET IMPORT COUNTER  -> how many handovers the card has imported (4 bytes)
    IMPORT CERTIFICATE  handover -> the certificate is stored as a new entry (answers its id)
    COMMIT ASSISTED RESTORE id  sealed value -> like COMMIT RESTORE, with the value the key
                        manager decrypted and sealed to this card (seed E6)

A receipt is the card's signature that it holds neither the certificate nor a pending value for
a registration: the vault deletes a registration only against one. It carries the card's import
counter, so the vault also knows the card has taken every certificate handed over before it.

A *handover* moves a certificate of a replaced (lost) card onto its successor: the vault signs
the certificate with the target card and a sequence number; the card takes sequence numbers
strictly in order, one each, so a handover replayed or kept by the terminal is refused and a
value is restored once.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum, IntFlag

from . import tlv
from .command import CommandApdu
from .context import ANY_RELYING_PARTY, Purpose, audience, message
from .ins import INS_BEGIN_BACKUP as INS_BEGIN_BACKUP
from .ins import INS_BEGIN_ENCRYPTED_BACKUP as INS_BEGIN_ENCRYPTED_BACKUP
from .ins import INS_BEGIN_RESTORE as INS_BEGIN_RESTORE
from .ins import INS_CANCEL_PENDING as INS_CANCEL_PENDING
from .ins import INS_COMMIT_ASSISTED_RESTORE as INS_COMMIT_ASSISTED_RESTORE
from .ins import INS_COMMIT_BACKUP as INS_COMMIT_BACKUP
from .ins import INS_COMMIT_RESTORE as INS_COMMIT_RESTORE
from .ins import INS_GET_ATTESTATION as INS_GET_ATTESTATION
from .ins import INS_GET_IDENTITY as INS_GET_IDENTITY
from .ins import INS_GET_IMPORT_COUNTER as INS_GET_IMPORT_COUNTER
from .ins import INS_IMPORT_CERTIFICATE as INS_IMPORT_CERTIFICATE
from .ins import INS_INTERNAL_AUTHENTICATE as INS_INTERNAL_AUTHENTICATE
from .ins import INS_PUT_ATTESTATION as INS_PUT_ATTESTATION
from .ins import INS_PUT_VAULT_KEY as INS_PUT_VAULT_KEY
from .ins import INS_SIGN_RECEIPT as INS_SIGN_RECEIPT
from .ins import MAX_SIGNATURE as MAX_SIGNATURE
from .records import ValueRecord
from .signature import PUBLIC_KEY_LEN
from .wallet import CLA_ISO, CLA_PROPRIETARY, MessageError, _id_p1p2

CHALLENGE_MIN, CHALLENGE_MAX = 16, 64

E2_CONTEXT = b"EVB-E2-1"  # sealing (HKDF info), not a signature: see apdu.seal


class Audience(IntEnum):
    """INTERNAL AUTHENTICATE's P1: whom the card signs the challenge for. The card puts in the
    key it has pinned for that server (PUT VAULT KEY, PUT KEY MANAGER KEY), not one the host
    names, so a challenge relayed from another server yields a signature that server refuses."""

    VAULT = 0x01
    KEY_MANAGER = 0x02


AUTH_PURPOSE = {Audience.VAULT: Purpose.VAULT_SESSION, Audience.KEY_MANAGER: Purpose.KEYMGR_CARD}


TITLE_KEEP = ("type", "name", "issuer", "valid_from", "valid_to", "place")


def certificate_record(value: ValueRecord, certificate: bytes) -> ValueRecord:
    """What the card keeps in a backed-up value's place: its title, to list it by, and the
    certificate (seed E1: certificates are listed with the value's title)."""
    return ValueRecord(**{k: getattr(value, k) for k in TITLE_KEEP}, certificate=certificate)


class BackupOption(IntFlag):
    """COMMIT BACKUP's first data byte."""

    NONE = 0
    KEEP_VALUE = 0x01  # claims 9/33: keep the value on the card, mark it backed up


@dataclass(frozen=True)
class Identity:
    card_id: bytes
    public_key: bytes

    def __bytes__(self) -> bytes:
        return self.card_id + self.public_key

    @classmethod
    def from_bytes(cls, raw: bytes) -> Identity:
        if len(raw) != 8 + PUBLIC_KEY_LEN or raw[8] != 0x04:
            raise MessageError("identity is a card id and an uncompressed P-256 public key")
        return cls(raw[:8], raw[8:])


@dataclass(frozen=True)
class Attestation:
    """The card issuer's word that an identity key was generated on a card it issued: what lets
    a server bind a card id to a key the first time it sees it (no one can squat an id).

    PUT ATTESTATION writes it at personalization, GET ATTESTATION reads it:
    issuer public key (65) || signature over :meth:`message` (canonical DER)."""

    issuer_key: bytes
    signature: bytes

    @staticmethod
    def message(identity: Identity) -> bytes:
        return message(Purpose.CARD_ATTESTATION, audience(ANY_RELYING_PARTY), bytes(identity))

    def __bytes__(self) -> bytes:
        return self.issuer_key + self.signature

    @classmethod
    def from_bytes(cls, raw: bytes) -> Attestation:
        if not PUBLIC_KEY_LEN < len(raw) <= PUBLIC_KEY_LEN + MAX_SIGNATURE or raw[0] != 0x04:
            raise MessageError("an attestation is an issuer's public key (65) and its signature")
        return cls(raw[:PUBLIC_KEY_LEN], raw[PUBLIC_KEY_LEN:])


@dataclass(frozen=True)
class RegisteredValue:
    """Seed E2, registered value 203 (204 in E4): digest 302, the value sealed to the card's key
    202, the vault's part 406 of that key (E4, claims 7/31/41), and the card's signature 303
    (its identity key) over them; the vault keeps it, the certificate's X is SHA-256 of the
    ciphertext.

    ``A0 { 80 digest, 81 key id (8), 82 ciphertext, 83 key part, 9E signature }``, in this one
    encoding; ``83`` is present in every registered value a card makes (absent in older ones).
    The ciphertext is the value sealed with context ``"EVB-E2-1" || card id``, deterministic
    per value and key (a retry after a lost answer registers the same bytes), so the card can
    recompute it to check X. The key part is the vault's half of the card's key
    (:func:`apdu.keys.key_parts`) sealed to the pinned vault key with context
    ``"EVB-KEY-PART-1" || card id || key id || 02``: only the vault opens it, and only for that
    card's key.
    """

    digest: bytes
    key_id: bytes
    ciphertext: bytes
    signature: bytes = b""
    key_part: bytes = b""

    def _fields(self) -> list[tuple[int, bytes]]:
        return [(0x80, self.digest), (0x81, self.key_id), (0x82, self.ciphertext),
                *([(0x83, self.key_part)] if self.key_part else [])]

    def signed_part(self, card_id: bytes, vault_key: bytes) -> bytes:
        """For the vault the card has pinned: registered there, and nowhere else."""
        return message(Purpose.REGISTERED, audience(vault_key), card_id, tlv.encode(self._fields()))

    def to_bytes(self) -> bytes:
        return bytes(tlv.Tlv(0xA0, tlv.encode([*self._fields(), (0x9E, self.signature)])))

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    @classmethod
    def from_bytes(cls, raw: bytes) -> RegisteredValue:
        try:
            (outer,) = tlv.decode(raw)
            items = tlv.decode(outer.value)
        except ValueError as exc:
            raise MessageError(f"not a registered value: {exc}") from exc
        tags = [t.tag for t in items]
        if outer.tag != 0xA0 or tags not in ([0x80, 0x81, 0x82, 0x9E], [0x80, 0x81, 0x82, 0x83, 0x9E]) \
                or len(items[1].value) != 8:
            raise MessageError("not a registered value: fields missing or out of order")
        part = items[3].value if len(items) == 5 else b""
        value = cls(items[0].value, items[1].value, items[2].value, items[-1].value, part)
        if value.to_bytes() != raw:
            raise MessageError("a registered value not in its canonical encoding")
        return value


def e2_context(card_id: bytes) -> bytes:
    """Binds an encrypted value to the card that backed it up (a new card with the same key
    restores it under the old card's id)."""
    return E2_CONTEXT + card_id


def auth_message(audience_: Audience, server_key: bytes, card_id: bytes, challenge: bytes) -> bytes:
    """What the card signs to authenticate: for one kind of server and the one key it pinned for
    it, bound to the card and to that server's challenge."""
    return message(AUTH_PURPOSE[audience_], audience(server_key), card_id, challenge)


def receipt_message(vault_key: bytes, card_id: bytes, counter: int, value_hash: bytes, imported: int) -> bytes:
    return message(Purpose.RECEIPT, audience(vault_key), card_id, counter.to_bytes(4, "big"), value_hash,
                   imported.to_bytes(4, "big"))


@dataclass(frozen=True)
class Receipt:
    """SIGN RECEIPT's answer: the card's import counter when it signed, and the signature."""

    imported: int
    signature: bytes

    def to_bytes(self) -> bytes:
        return self.imported.to_bytes(4, "big") + self.signature

    @classmethod
    def from_bytes(cls, raw: bytes) -> Receipt:
        if not 4 < len(raw) <= 4 + MAX_SIGNATURE:
            raise MessageError("a receipt is a 4-byte import counter and a signature")
        return cls(int.from_bytes(raw[:4], "big"), raw[4:])


MAX_HANDOVER = 4096  # what a card's receive buffer holds (docs/APDU.md 1: a chain collects at most this)


@dataclass(frozen=True)
class Handover:
    """A certificate of a replaced card, handed by the vault to the card that replaced it.

    ``A1 { 81 sequence (4), 82 certificate, 9E vault signature }``; the signature is for the
    target card, named by its identity key: ``HANDOVER, H(target key), target card id ||
    sequence || certificate`` (:mod:`apdu.context`).
    """

    sequence: int
    certificate: bytes
    signature: bytes = b""

    def signed_part(self, target: Identity) -> bytes:
        return message(Purpose.HANDOVER, audience(target.public_key), target.card_id,
                       self.sequence.to_bytes(4, "big"), self.certificate)

    def to_bytes(self) -> bytes:
        inner = tlv.encode([(0x81, self.sequence.to_bytes(4, "big")), (0x82, self.certificate),
                            (0x9E, self.signature)])
        return bytes(tlv.Tlv(0xA1, inner))

    @classmethod
    def from_bytes(cls, raw: bytes) -> Handover:
        if len(raw) > MAX_HANDOVER:
            raise MessageError(f"a handover is at most {MAX_HANDOVER} bytes")
        try:
            (outer,) = tlv.decode(raw)
            items = tlv.decode(outer.value)
        except ValueError as exc:
            raise MessageError(f"not a handover: {exc}") from exc
        if outer.tag != 0xA1 or [t.tag for t in items] != [0x81, 0x82, 0x9E] or len(items[0].value) != 4:
            raise MessageError("not a handover: fields missing or out of order")
        handover = cls(int.from_bytes(items[0].value, "big"), items[1].value, items[2].value)
        if handover.to_bytes() != raw:
            raise MessageError("a handover not in its canonical encoding")
        return handover


def receipt_request(counter: int, value_hash: bytes) -> bytes:
    if len(value_hash) != 32 or not 0 <= counter <= 0xFFFFFFFF:
        raise MessageError("a receipt names a 4-byte counter and a 32-byte hash")
    return counter.to_bytes(4, "big") + value_hash


def parse_receipt_request(raw: bytes) -> tuple[int, bytes]:
    if len(raw) != 36:
        raise MessageError("a receipt request is a 4-byte counter and a 32-byte hash")
    return int.from_bytes(raw[:4], "big"), raw[4:]


# --- command builders -----------------------------------------------------------------------


def get_identity() -> CommandApdu:
    return CommandApdu(CLA_PROPRIETARY, INS_GET_IDENTITY, ne=8 + PUBLIC_KEY_LEN)


def put_attestation(attestation: Attestation) -> CommandApdu:
    return CommandApdu(CLA_PROPRIETARY, INS_PUT_ATTESTATION, 0, 0, bytes(attestation))


def get_attestation() -> CommandApdu:
    return CommandApdu(CLA_PROPRIETARY, INS_GET_ATTESTATION, ne=256)


def put_vault_key(public_key: bytes) -> CommandApdu:
    if len(public_key) != PUBLIC_KEY_LEN or public_key[0] != 0x04:
        raise MessageError("the vault key is an uncompressed P-256 public key")
    return CommandApdu(CLA_PROPRIETARY, INS_PUT_VAULT_KEY, 0, 0, public_key)


def internal_authenticate(audience_: Audience, challenge: bytes) -> CommandApdu:
    if not CHALLENGE_MIN <= len(challenge) <= CHALLENGE_MAX:
        raise MessageError(f"a challenge is {CHALLENGE_MIN}..{CHALLENGE_MAX} bytes")
    return CommandApdu(CLA_ISO, INS_INTERNAL_AUTHENTICATE, int(audience_), 0, challenge, ne=256)


def begin_backup(value_id: int) -> CommandApdu:
    return CommandApdu(CLA_PROPRIETARY, INS_BEGIN_BACKUP, *_id_p1p2(value_id), ne=256)


def commit_backup(value_id: int, certificate: bytes, option: BackupOption = BackupOption.NONE) -> CommandApdu:
    return CommandApdu(CLA_PROPRIETARY, INS_COMMIT_BACKUP, *_id_p1p2(value_id), bytes((int(option),)) + certificate)


def cancel_pending(value_id: int) -> CommandApdu:
    return CommandApdu(CLA_PROPRIETARY, INS_CANCEL_PENDING, *_id_p1p2(value_id))


def begin_encrypted_backup(value_id: int, digest_tags: bytes) -> CommandApdu:
    """Data: the record tags the vault copies into digests (one byte each, may be empty)."""
    return CommandApdu(CLA_PROPRIETARY, INS_BEGIN_ENCRYPTED_BACKUP, *_id_p1p2(value_id), digest_tags, ne=256)


def begin_restore(value_id: int) -> CommandApdu:
    return CommandApdu(CLA_PROPRIETARY, INS_BEGIN_RESTORE, *_id_p1p2(value_id), ne=256)


def commit_restore(value_id: int, value: bytes) -> CommandApdu:
    return CommandApdu(CLA_PROPRIETARY, INS_COMMIT_RESTORE, *_id_p1p2(value_id), value, ne=256)


def sign_receipt(counter: int, value_hash: bytes) -> CommandApdu:
    return CommandApdu(CLA_PROPRIETARY, INS_SIGN_RECEIPT, 0, 0, receipt_request(counter, value_hash), ne=256)


def get_import_counter() -> CommandApdu:
    return CommandApdu(CLA_PROPRIETARY, INS_GET_IMPORT_COUNTER, ne=4)


def import_certificate(handover: Handover) -> CommandApdu:
    return CommandApdu(CLA_PROPRIETARY, INS_IMPORT_CERTIFICATE, 0, 0, handover.to_bytes(), ne=2)


def commit_assisted_restore(value_id: int, sealed: bytes) -> CommandApdu:
    return CommandApdu(CLA_PROPRIETARY, INS_COMMIT_ASSISTED_RESTORE, *_id_p1p2(value_id), sealed)
