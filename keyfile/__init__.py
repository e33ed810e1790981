"""A P-256 private key in a PEM file, created on first use with owner-only access, and the rule
for every secret file and data folder: created 0600/0700, and a key file that group or others can
read is refused (a copied backup or a careless umask would leak it silently).

Its own package because both sides keep such keys: the servers (their signing keys) and the
issuing terminal (the card issuer's key, :mod:`host.issuer`), and the terminal imports nothing
of ``servers/``. File I/O keeps it out of :mod:`apdu`, which is pure."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from apdu.signature import canonical, valid_public_key

CURVE = ec.SECP256R1()


class KeyFileError(ValueError):
    """A key file others may read: the message names the file and the fix."""


def check_private(path: Path) -> None:
    """Refuse a secret file with any group or other permission bit."""
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise KeyFileError(f"key file {path} is open to group or others (mode {mode:o}): run 'chmod 600 {path}'")


def private_dir(path: Path) -> None:
    """Create a data folder owner-only (0700); an existing folder is left as its owner set it."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)


def load_or_create_key(path: Path) -> ec.EllipticCurvePrivateKey:
    """The key in ``path``, created on first use (owner-only file permissions)."""
    if path.exists():
        check_private(path)
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
        if not isinstance(key, ec.EllipticCurvePrivateKey):
            raise ValueError(f"{path} does not hold an EC private key")
        return key
    key = ec.generate_private_key(CURVE)
    private_dir(path.parent)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(pem)
    return key


def public_bytes(key: ec.EllipticCurvePublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)


def sign(key: ec.EllipticCurvePrivateKey, message: bytes) -> bytes:
    """ECDSA-SHA256 in the one (low-s) form every verifier of the system accepts."""
    return canonical(key.sign(message, ec.ECDSA(hashes.SHA256())))


def parse_public_keys(text: str) -> tuple[bytes, ...]:
    """Public keys given as hex, separated by commas or spaces (``EVB_ISSUER_KEY``, options)."""
    keys = []
    for word in text.replace(",", " ").split():
        try:
            key = bytes.fromhex(word)
        except ValueError as exc:
            raise ValueError(f"not a hex public key: {word[:20]}…") from exc
        if not valid_public_key(key):
            raise ValueError(f"not an uncompressed P-256 public key: {word[:20]}…")
        keys.append(key)
    return tuple(keys)


def trusted_issuers(variable: str = "EVB_ISSUER_KEY") -> tuple[bytes, ...]:
    """The card (or ID-card) issuers a server trusts when none are given: from the environment."""
    return parse_public_keys(os.environ.get(variable, ""))
