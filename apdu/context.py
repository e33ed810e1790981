"""What every signature in the system names: its purpose and its audience.

A signature is only ever made over :func:`message`::

    label (ASCII) || 00 || SHA-256(audience) || the purpose's own fields

The label says what the signer means (a vault session, a receipt, a certificate…), one label per
use, so a signature made for one purpose verifies for no other. The audience hash names who the
signature is for, usually the public key of the server that will check it, so a signature made
for one server verifies at no other: a man in the middle cannot relay a vault's challenge to the
key manager, or the reverse. Where the card signs for a server it puts in the key it has pinned
for that server itself; the host cannot choose the audience. The table of every purpose is in
docs/APDU.md, section "Signature contexts".
"""

from __future__ import annotations

import hashlib
from enum import Enum

AUDIENCE_LEN = 32
ANY_RELYING_PARTY = b"EVB relying parties"  # the audience of statements anyone may check


class Purpose(Enum):
    """One label per use; the ``2`` marks the protocol version that introduced audiences."""

    VAULT_SESSION = b"EVB-VAULT-SESSION-2"  # card -> vault: a session challenge
    KEYMGR_CARD = b"EVB-KEYMGR-CARD-2"  # card -> key manager: enrolment of the card
    ID_LOGIN = b"EVB-ID-LOGIN-2"  # ID card -> key manager: a login or enrolment challenge
    RECEIPT = b"EVB-RECEIPT-2"  # card -> vault: a registration is no longer needed
    REGISTERED = b"EVB-REGISTERED-2"  # card -> vault (read by the key manager in E6): value 203
    CERTIFICATE = b"EVB-CERTIFICATE-2"  # vault -> the card it names: certificate 852
    HANDOVER = b"EVB-HANDOVER-2"  # vault -> a replacement card: a lost card's certificate
    REPLACEMENT = b"EVB-REPLACEMENT-2"  # key manager -> vault: a card was lost
    FETCH = b"EVB-FETCH-2"  # key manager -> vault: a registered value for E6
    REKEY = b"EVB-REKEY-1"  # key manager -> vault: replace a registered value (E7 by the key manager)
    REKEYED = b"EVB-REKEYED-1"  # key manager -> vault (and itself): a registered value it re-sealed
    SUCCESSION = b"EVB-SUCCESSION-1"  # vault -> a card: this certificate replaces that one
    CARD_ATTESTATION = b"EVB-CARD-ATTESTATION-1"  # card issuer -> relying parties
    ID_DOCUMENT = b"EVB-ID-DOCUMENT-1"  # ID-card issuer -> relying parties


def audience(who: bytes) -> bytes:
    """The 32-byte name of an audience: SHA-256 of its public key (or of its card id)."""
    return hashlib.sha256(who).digest()


def message(purpose: Purpose, audience_hash: bytes, *fields: bytes) -> bytes:
    """The bytes signed for ``purpose`` towards the audience named by ``audience_hash``.

    The label cannot contain 00 and the audience is fixed-length, so no two (purpose, audience,
    fields) share a prefix that could be read both ways."""
    if len(audience_hash) != AUDIENCE_LEN:
        raise ValueError("the audience is named by a 32-byte hash")
    return purpose.value + b"\x00" + audience_hash + b"".join(fields)
