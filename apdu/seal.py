"""Sealing bytes to a key: the encryption scheme of encrypted backups (seed E2) and of keys in
transit (E3), shared by card, terminal and key manager.

Chosen so a JavaCard 3.0.4 applet can run it with its own APIs (no AEAD cipher there before
3.0.5): ECDH on P-256 (``KeyAgreement.ALG_EC_SVDP_DH_PLAIN``), HKDF-SHA256 built on
``Signature.ALG_HMAC_SHA_256``, AES-256-CBC (``Cipher.ALG_AES_BLOCK_128_CBC_NOPAD``) with ISO/IEC
9797-1 padding method 2 done in the applet, and encrypt-then-MAC with a 16-byte HMAC-SHA256 tag.

Public-key mode (encryption key 401 public, decryption key 402 private)::

    E (65, ephemeral public key) || IV (16) || C || T (16)
    z = ECDH(e, recipient).x;  k_enc || k_mac = HKDF(z, salt=E, info="EVB-SEAL-1" || context)

The x-only form (:func:`seal_x_only`, the card's deterministic E2 ciphertexts) writes E as
``02 || x(E)`` (33 bytes): a 3.0.4 card computes x(e*G) (ECDH with G as the peer) but never the
point, and x(d*E) = x(d*(-E)), so whichever point ``02 || x`` names, ECDH gives the same z.

Private scalars are drawn by rejection (:func:`random_scalar`): a 3.0.4 card has no big-number
arithmetic for a reduction mod n, only a byte comparison with n.

Symmetric mode (claim 10: 401 and 402 are one AES key K)::

    S (16, random salt) || IV (16) || C || T (16)
    k_enc || k_mac = HKDF(K, salt=S, info="EVB-SEAL-1" || context)

T = HMAC-SHA256(k_mac, header || IV || C)[:16]. ``context`` binds a sealed blob to its use
(e.g. the card id and the digest of a backed-up value), so it cannot be replayed elsewhere.

``cryptography`` is imported by the functions that use it (see :mod:`apdu.signature`).
"""

from __future__ import annotations

import hmac
import os
from hashlib import sha256

from .signature import PUBLIC_KEY_LEN

INFO = b"EVB-SEAL-1"
IV_LEN = TAG_LEN = SALT_LEN = 16
BLOCK = 16
SCALAR_LEN = 32
SYMMETRIC_KEY_LEN = 32
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # the order of P-256
N_BYTES = N.to_bytes(SCALAR_LEN, "big")
X_ONLY_LEN = 33  # 02 || x


class SealError(ValueError):
    """A sealed blob that is malformed or fails its tag: tampered, or sealed to another key."""


# --- primitives ----------------------------------------------------------------------------------


def hkdf(secret: bytes, salt: bytes, info: bytes, length: int) -> bytes:
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.kdf.hkdf import HKDF

    return HKDF(hashes.SHA256(), length, salt, info).derive(secret)


def pad(data: bytes) -> bytes:
    """ISO/IEC 9797-1 padding method 2: 0x80, then zeros to the block."""
    data += b"\x80"
    return data + bytes(-len(data) % BLOCK)


def unpad(data: bytes) -> bytes:
    stripped = data.rstrip(b"\x00")
    if not stripped or stripped[-1] != 0x80 or len(data) - len(stripped) >= BLOCK:
        raise SealError("bad padding")
    return stripped[:-1]


def aes_cbc(key: bytes, iv: bytes, data: bytes, encrypt: bool) -> bytes:
    from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

    cipher = Cipher(algorithms.AES(key), modes.CBC(iv))
    op = cipher.encryptor() if encrypt else cipher.decryptor()
    return op.update(data) + op.finalize()


def public_key(scalar: bytes) -> bytes:
    return _public_and_ecdh(scalar, None)[0]


def ecdh(scalar: bytes, peer: bytes) -> bytes:
    """The shared point's x-coordinate (SEC 1 ECDH primitive, as ALG_EC_SVDP_DH_PLAIN)."""
    return _public_and_ecdh(scalar, peer)[1]


def _public_and_ecdh(scalar: bytes, peer: bytes | None) -> tuple[bytes, bytes]:
    """(scalar*G, x(scalar*peer)) from one key object: deriving one computes scalar*G anyway (a
    scalar multiplication, a third of a seal's time), so a seal that needs both derives once."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    key = ec.derive_private_key(int.from_bytes(scalar, "big"), ec.SECP256R1())
    point = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    if peer is None:
        return point, b""
    try:
        return point, key.exchange(ec.ECDH(), ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), peer))
    except ValueError as exc:
        raise SealError("not a P-256 public key") from exc


def valid_scalar(candidate: bytes) -> bool:
    """1 <= d < n, decided as a card can: big-endian bytes compared with n's (no arithmetic)."""
    return len(candidate) == SCALAR_LEN and any(candidate) and candidate < N_BYTES


def random_scalar() -> bytes:
    """A uniform private scalar by rejection (a draw is refused with probability < 2^-32)."""
    while True:
        candidate = os.urandom(SCALAR_LEN)
        if valid_scalar(candidate):
            return candidate


PAIR_CHECK = b"EVB-KEY-PAIR-CHECK-1"  # signed and verified on import; never leaves the card


def pair_matches(scalar: bytes, point: bytes) -> bool:
    """Whether ``scalar`` is the private key of ``point``, checked as a 3.0.4 card can (it
    cannot compute scalar*G): sign a fixed message with the one, verify with the other."""
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec

    if not valid_scalar(scalar):
        return False
    try:
        key = ec.derive_private_key(int.from_bytes(scalar, "big"), ec.SECP256R1())
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point).verify(
            key.sign(PAIR_CHECK, ec.ECDSA(hashes.SHA256())), PAIR_CHECK, ec.ECDSA(hashes.SHA256()))
    except (InvalidSignature, ValueError):
        return False
    return True


def x_only(point: bytes) -> bytes:
    """``02 || x`` of an uncompressed point: the x-coordinate, which is all ECDH uses."""
    return b"\x02" + point[1:1 + SCALAR_LEN]


def key_id(key_material: bytes) -> bytes:
    """8 bytes naming a key without revealing it: of the public key, or of the AES key."""
    return sha256(b"EVB-KEY-ID" + key_material).digest()[:8]


# --- the scheme ----------------------------------------------------------------------------------


def _close(header: bytes, secret: bytes, plaintext: bytes, context: bytes, iv: bytes) -> bytes:
    keys = hkdf(secret, header, INFO + context, 64)
    body = aes_cbc(keys[:32], iv, pad(plaintext), encrypt=True)
    tag = hmac.new(keys[32:], header + iv + body, sha256).digest()[:TAG_LEN]
    return header + iv + body + tag


def _open(header: bytes, secret: bytes, rest: bytes, context: bytes) -> bytes:
    if len(rest) < IV_LEN + BLOCK + TAG_LEN or (len(rest) - IV_LEN - TAG_LEN) % BLOCK:
        raise SealError("a sealed blob of the wrong length")
    iv, body, tag = rest[:IV_LEN], rest[IV_LEN:-TAG_LEN], rest[-TAG_LEN:]
    keys = hkdf(secret, header, INFO + context, 64)
    if not hmac.compare_digest(hmac.new(keys[32:], header + iv + body, sha256).digest()[:TAG_LEN], tag):
        raise SealError("the sealed blob fails its tag: tampered, or sealed to another key")
    return unpad(aes_cbc(keys[:32], iv, body, encrypt=False))


def seal(recipient: bytes, plaintext: bytes, context: bytes = b"", *, ephemeral: bytes | None = None,
         iv: bytes | None = None) -> bytes:
    """Seal to a P-256 public key; ``ephemeral``/``iv`` only for known-answer tests."""
    header, shared = _public_and_ecdh(ephemeral or random_scalar(), recipient)
    return _close(header, shared, plaintext, context, iv or os.urandom(IV_LEN))


def open_sealed(scalar: bytes, blob: bytes, context: bytes = b"") -> bytes:
    """Open with the recipient's scalar; E uncompressed only, as a 3.0.4 card accepts it."""
    header = blob[:PUBLIC_KEY_LEN]
    if len(header) != PUBLIC_KEY_LEN or header[0] != 0x04:
        raise SealError("a sealed blob of the wrong length")
    return _open(header, ecdh(scalar, header), blob[PUBLIC_KEY_LEN:], context)


def seal_x_only(recipient: bytes, plaintext: bytes, context: bytes, ephemeral: bytes, iv: bytes) -> bytes:
    """Seal with the header ``02 || x(e*G)``: what a card that cannot compute e*G writes."""
    point, shared = _public_and_ecdh(ephemeral, recipient)
    return _close(x_only(point), shared, plaintext, context, iv)


def open_x_only_by_ephemeral(ephemeral: bytes, recipient: bytes, blob: bytes, context: bytes) -> bytes:
    """Open an x-only blob as its maker can: with the ephemeral scalar it re-derived and the
    recipient's uncompressed key (the only peer points a 3.0.4 card must accept). The header
    must be x(e*G), so one blob has one opening whoever opens it."""
    header = blob[:X_ONLY_LEN]
    point, shared = _public_and_ecdh(ephemeral, recipient)
    if len(header) != X_ONLY_LEN or not hmac.compare_digest(header, x_only(point)):
        raise SealError("the blob was not sealed with this ephemeral key")
    return _open(header, shared, blob[X_ONLY_LEN:], context)


def seal_symmetric(key: bytes, plaintext: bytes, context: bytes = b"", *, salt: bytes | None = None,
                   iv: bytes | None = None) -> bytes:
    return _close(salt or os.urandom(SALT_LEN), key, plaintext, context, iv or os.urandom(IV_LEN))


def open_symmetric(key: bytes, blob: bytes, context: bytes = b"") -> bytes:
    return _open(blob[:SALT_LEN], key, blob[SALT_LEN:], context)
