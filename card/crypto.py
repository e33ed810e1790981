"""The card's crypto unit: ECDSA P-256 with SHA-256, as a JavaCard's ``Signature`` and
``KeyPair`` classes offer it. Private keys are 32-byte scalars in EEPROM; they never leave
this module except as signatures.

``cryptography`` is imported by the functions that use it (see :mod:`apdu.signature`): a card
that only answers GET CARD INFO never loads it."""

from __future__ import annotations

from apdu.signature import canonical, valid_public_key, verify

__all__ = ["generate", "sign", "valid_public_key", "verify"]
SCALAR_LEN = 32


def generate() -> tuple[bytes, bytes]:
    """A fresh key pair generated on the card: (private scalar, uncompressed public point)."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    key = ec.generate_private_key(ec.SECP256R1())
    scalar = key.private_numbers().private_value.to_bytes(SCALAR_LEN, "big")
    return scalar, key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


def sign(scalar: bytes, message: bytes) -> bytes:
    """ECDSA-SHA256 in its canonical (low-s) form; a Java Card normalises s the same way."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.derive_private_key(int.from_bytes(scalar, "big"), ec.SECP256R1())
    return canonical(key.sign(message, ec.ECDSA(hashes.SHA256())))
