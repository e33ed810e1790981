"""Checking the protocol's ECDSA P-256 signatures, in their one canonical form.

Public-key operations only, so card, terminal and servers share them; signing stays next to the
private keys (the card's crypto unit, the servers' signers), which pass what they make through
:func:`canonical`.

ECDSA is malleable: (r, s) and (r, n - s) both verify, and DER admits several encodings of
one pair. A verifier that accepted both would let a man in the middle rewrite a certificate
into bytes that check on the card but that the vault never issued. So every verifier here
accepts exactly one form: strict DER with the low s (s <= n/2), as Bitcoin's BIP 62 does.

``cryptography`` is imported by the functions that use it, here and in :mod:`apdu.seal` and
:mod:`card.crypto`: every codec imports this module for ``PUBLIC_KEY_LEN``, and loading
cryptography's bindings would cost each ``evb`` command at start-up, ``evb card info`` too.
"""

from __future__ import annotations

PUBLIC_KEY_LEN = 65  # uncompressed point: 04 || x || y
ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # n of P-256


def valid_public_key(public_key: bytes) -> bool:
    from cryptography.hazmat.primitives.asymmetric import ec

    if len(public_key) != PUBLIC_KEY_LEN:
        return False
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public_key)
    except ValueError:
        return False
    return True


def canonical(signature: bytes) -> bytes:
    """The low-s form of a DER signature, what every signer here answers."""
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

    r, s = decode_dss_signature(signature)
    return encode_dss_signature(r, ORDER - s if s > ORDER // 2 else s)


def is_canonical(signature: bytes) -> bool:
    """Strict DER, 0 < r < n, 0 < s <= n/2: the one encoding of the one signature we accept."""
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

    try:
        r, s = decode_dss_signature(signature)
    except ValueError:
        return False
    return 0 < r < ORDER and 0 < s <= ORDER // 2 and encode_dss_signature(r, s) == signature


def verify(public_key: bytes, signature: bytes, message: bytes) -> bool:
    """ECDSA with SHA-256 over ``message``; False for a bad key, a non-canonical signature or a
    signature that does not verify."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    if not is_canonical(signature):
        return False
    try:
        point = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), public_key)
        point.verify(signature, message, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True
