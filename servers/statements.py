"""Statements the key manager signs for the vault: service to service, carried by anyone.

The signature is the authentication, so the vault needs no session for them and the terminal
that carries one can neither forge nor alter it. Effects are monotone (a card once revoked stays
revoked), so a replayed statement changes nothing.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from apdu.context import Purpose, audience, message

NO_CARD = bytes(8)
NO_KEY = bytes(65)


@dataclass(frozen=True)
class Replacement:
    """The owner reported ``old`` lost: revoke it and, with ``new``, let ``new`` inherit what it
    had backed up. Signed by the key manager after the owner authenticated."""

    old: bytes
    old_key: bytes  # the identity keys both cards proved to the key manager
    new: bytes | None
    new_key: bytes | None
    issued_at: int

    def message(self, vault_key: bytes) -> bytes:
        """Signed for one vault: a statement carried to another vault proves nothing there."""
        return message(Purpose.REPLACEMENT, audience(vault_key), self.old, self.old_key, self.new or NO_CARD,
                       self.new_key or NO_KEY, self.issued_at.to_bytes(8, "big"))


FETCH_WINDOW = 300  # seconds a fetch request stays valid


@dataclass(frozen=True)
class Fetch:
    """The key manager asks the vault for a registered value by certificate (seed E6)."""

    certificate: bytes
    issued_at: int

    def message(self, vault_key: bytes) -> bytes:
        return message(Purpose.FETCH, audience(vault_key), hashlib.sha256(self.certificate).digest(),
                       self.issued_at.to_bytes(8, "big"))


@dataclass(frozen=True)
class Rekey:
    """The key manager asks the vault to replace the registration ``certificate`` names, held by
    ``card_id``, with ``registered`` (the same value re-sealed under the card's new key, seed
    E7 steps 1-10/1-11). The vault answers the successor certificate and its succession."""

    card_id: bytes
    certificate: bytes
    registered: bytes
    issued_at: int

    def message(self, vault_key: bytes) -> bytes:
        return message(Purpose.REKEY, audience(vault_key), self.card_id, hashlib.sha256(self.certificate).digest(),
                       hashlib.sha256(self.registered).digest(), self.issued_at.to_bytes(8, "big"))
