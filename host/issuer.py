"""The card issuer: the party that vouches, at personalization, that a card's identity key was
made on a card it issued (and, for ID cards, for the holder a document names).

Servers pin the issuer's public key and refuse an identity no pinned issuer attested, so nobody
can bind a card id to a key of their own before the real card shows up. The issuer's private key
is a PEM file on the issuing terminal (``evb issuer init``), never on a server.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ec

from apdu import backup as b
from keyfile import load_or_create_key, public_bytes, sign

from .paths import data_dir
from .session import WalletSession

KEY_FILE_VARIABLE = "EVB_ISSUER_KEY_FILE"


def default_key_file() -> Path:
    return Path(os.environ.get(KEY_FILE_VARIABLE) or data_dir() / "issuer-key.pem")


class Issuer:
    def __init__(self, key: ec.EllipticCurvePrivateKey) -> None:
        self._key = key

    @classmethod
    def load_or_create(cls, path: Path) -> Issuer:
        return cls(load_or_create_key(path))

    @classmethod
    def load(cls, path: Path) -> Issuer:
        if not path.exists():
            raise FileNotFoundError(f"no issuer key at {path}: 'evb issuer init' makes one")
        return cls(load_or_create_key(path))

    @property
    def public_key(self) -> bytes:
        return public_bytes(self._key.public_key())

    def sign(self, message: bytes) -> bytes:
        return sign(self._key, message)

    def attestation(self, identity: b.Identity) -> b.Attestation:
        return b.Attestation(self.public_key, self.sign(b.Attestation.message(identity)))

    def attest(self, session: WalletSession) -> b.Attestation:
        """Attest the card in ``session``, still in its personalization state (before its PIN)."""
        attestation = self.attestation(session.identity())
        session.put_attestation(attestation)
        return attestation

    def personalize(self, session: WalletSession, pin: str, puk: str | None = None) -> str:
        """Issue a blank card: attest its identity key, then set the owner's PIN and unblocking
        code (random when not given); answers the code."""
        self.attest(session)
        return session.personalize(pin, puk)
