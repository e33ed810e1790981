"""Re-keying driven by the key manager (seed E7/E8, claims 16, 17, 46), shared by card, host
and servers: the second rotation mode, beside the card-side one of :mod:`apdu.rotation`.

In the card-side mode the card opens and re-seals every backup itself, so it needs its key. Here
the key manager does it with the escrowed key (seed E7 steps 1-3..1-12), so a card that lost its
key (a damaged or reset key store) is re-keyed in one flow. The card never opens anything until
the new key arrives; what it must be sure of is that each certificate it swaps in stands for the
same value, and that the key it installs comes from its own key manager::

    SUCCEED CERTIFICATE id   82 new certificate, 9E vault's succession signature -> replaces the
                             certificate the entry holds, in one transaction; again: 9000
    REPLACE KEY P1 mode      the new key sealed under ECDH(transport key, pinned key manager key)
                             -> key info; installs it whether or not the card had a key

The vault signs a *succession* (purpose SUCCESSION, audience the card's identity key): "the
certificate whose signed part hashes to A is succeeded by the one that hashes to B". It signs
one only on the key manager's signed request (purpose REKEY), which it pins, after checking the
old registration is this card's and the new registered value keeps the old digest; the key
manager re-signs the new registered value itself (purpose REKEYED: the card cannot). The old
registration stays at the vault until the card, holding the new certificate, signs its receipt,
so the card holds a valid certificate at every moment.

REPLACE KEY opens only what the pinned key manager sealed, for this card and this purpose
(context ``"EVB-KEY-REPLACE-1" || card id || mode``); anyone else's blob, one for another card
or one made for IMPORT KEY fails its tag (6A80). It refuses while a card-side rotation or a
backup or restore is under way (6985), and drops the BACKED UP marks: kept copies were
registered under the old key, and are released against receipts like the rest.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from . import tlv
from .backup import RegisteredValue
from .command import CommandApdu
from .context import Purpose, audience, message
from .ins import INS_REPLACE_KEY as INS_REPLACE_KEY
from .ins import INS_SUCCEED_CERTIFICATE as INS_SUCCEED_CERTIFICATE
from .keys import KeyMode
from .wallet import CLA_PROPRIETARY, MessageError, _id_p1p2

REPLACE_CONTEXT = b"EVB-KEY-REPLACE-1"


def replace_context(card_id: bytes, mode: KeyMode) -> bytes:
    """What a key sealed for REPLACE KEY is bound to: the purpose, the card and the mode."""
    return REPLACE_CONTEXT + card_id + bytes((mode,))


def rekeyed_message(registered: RegisteredValue, card_id: bytes, vault_key: bytes) -> bytes:
    """What the key manager signs over a registered value it re-sealed for ``card_id``, for the
    vault whose key is ``vault_key`` (the card's own signature, purpose REGISTERED, it cannot make)."""
    return message(Purpose.REKEYED, audience(vault_key), card_id, tlv.encode(
        [(0x80, registered.digest), (0x81, registered.key_id), (0x82, registered.ciphertext),
         *([(0x83, registered.key_part)] if registered.key_part else [])]))


def succession_message(card_id: bytes, card_key: bytes, old_signed_part: bytes, new_signed_part: bytes) -> bytes:
    """What the vault signs for the card: the new certificate succeeds the old one. Over the
    certificates' signed parts, never their signature bytes (an ECDSA signature has other valid
    encodings)."""
    return message(Purpose.SUCCESSION, audience(card_key), card_id, hashlib.sha256(old_signed_part).digest(),
                   hashlib.sha256(new_signed_part).digest())


@dataclass(frozen=True)
class RekeyJob:
    """A re-keying under way, as the key manager begins it and the terminal follows it: the mode of
    the card's key, the escrowed key it moves from and the new one it moves to."""

    mode: KeyMode
    old_key_id: bytes
    new_key_id: bytes


@dataclass(frozen=True)
class Succession:
    """SUCCEED CERTIFICATE's data: ``82`` the new certificate, ``9E`` the vault's signature. Also
    what the key manager answers for each value it re-keys; there an empty signature says the
    certificate was under the new key already, and nothing is sent to the card."""

    certificate: bytes
    signature: bytes

    def __bytes__(self) -> bytes:
        return tlv.encode([(0x82, self.certificate), (0x9E, self.signature)])

    @classmethod
    def from_bytes(cls, raw: bytes) -> Succession:
        try:
            items = tlv.decode(raw)
        except ValueError as exc:
            raise MessageError("a certificate and a succession signature") from exc
        if [t.tag for t in items] != [0x82, 0x9E] or bytes(cls(items[0].value, items[1].value)) != raw:
            raise MessageError("a certificate and a succession signature")
        return cls(items[0].value, items[1].value)


def replace_key(mode: KeyMode, sealed: bytes) -> CommandApdu:
    if mode == KeyMode.NONE:
        raise MessageError("replace with a public or a symmetric key")
    return CommandApdu(CLA_PROPRIETARY, INS_REPLACE_KEY, int(mode), 0, sealed, ne=256)


def succeed_certificate(value_id: int, succession: Succession) -> CommandApdu:
    return CommandApdu(CLA_PROPRIETARY, INS_SUCCEED_CERTIFICATE, *_id_p1p2(value_id), bytes(succession))
