"""The servers' own keys as recipe-level objects, so services make no raw cryptography calls.

:class:`ServerKey` is a P-256 key pair kept in a PEM file: it signs (ECDSA-SHA256, low-s), agrees
keys (ECDH with a card's transport key) and opens what cards sealed to it. :class:`MasterKey` is
the key manager's at-rest key (AES-256-GCM) over escrowed seeds and templates, kept in a file
outside the database so a stolen database alone opens nothing."""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from apdu import seal
from keyfile import check_private, load_or_create_key, private_dir, public_bytes, sign

from .wire import ApiError


class ServerKey:
    """A server's P-256 private key: one key, one use (the key manager keeps a second one for
    its statements to the vault)."""

    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self._key = key
        self.public_key = public_bytes(key.public_key())
        """Uncompressed X9.62: what cards seal to and verifiers pin."""

    @classmethod
    def load_or_create(cls, path: Path) -> ServerKey:
        """From its PEM file, created owner-only on first start (:func:`keyfile.load_or_create_key`)."""
        return cls(load_or_create_key(path))

    def sign(self, message: bytes) -> bytes:
        """ECDSA-SHA256 in the low-s form every verifier of the system accepts; ``message`` names
        its purpose and audience (apdu/context.py)."""
        return sign(self._key, message)

    def _scalar(self) -> bytes:
        return self._key.private_numbers().private_value.to_bytes(32, "big")

    def ecdh(self, peer: bytes) -> bytes:
        """The shared secret with ``peer`` (an uncompressed P-256 point); :class:`apdu.seal.SealError`
        when it is not one."""
        return seal.ecdh(self._scalar(), peer)

    def open_sealed(self, blob: bytes, context: bytes) -> bytes:
        """What a card sealed to this key under ``context``; :class:`apdu.seal.SealError` otherwise."""
        return seal.open_sealed(self._scalar(), blob, context)


class MasterKey:
    """AES-256-GCM over escrowed seeds; the key lives in a file (0600), never in the database."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    @classmethod
    def load_or_create(cls, path: Path) -> MasterKey:
        if path.exists():
            check_private(path)
            raw = path.read_bytes()
            if len(raw) != 32:
                raise ValueError(f"{path} does not hold a 32-byte master key")
            return cls(raw)
        private_dir(path.parent)
        raw = os.urandom(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        return cls(raw)

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def open(self, blob: bytes, aad: bytes) -> bytes:
        """The plaintext, or an error: a blob sealed under another master key (or altered) is the
        server's fault, not the caller's."""
        try:
            return self._aead.decrypt(blob[:12], blob[12:], aad)
        except InvalidTag as exc:
            raise ApiError(500, "an escrowed key fails its integrity check") from exc
