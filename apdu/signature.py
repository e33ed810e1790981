"""Checking the protocol's ECDSA P-256 signatures (certificates, challenges, receipts).

Public-key operations only, so card, terminal and servers share them; signing stays in the
card's crypto unit and the vault's service, next to the private keys."""

from __future__ import annotations

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

CURVE = ec.SECP256R1()
PUBLIC_KEY_LEN = 65  # uncompressed point: 04 || x || y


def valid_public_key(public_key: bytes) -> bool:
    if len(public_key) != PUBLIC_KEY_LEN:
        return False
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(CURVE, public_key)
    except ValueError:
        return False
    return True


def verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """ECDSA with SHA-256 over ``message``; False for a bad key, signature or message."""
    try:
        point = ec.EllipticCurvePublicKey.from_encoded_point(CURVE, public_key)
        point.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True
