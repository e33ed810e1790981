"""Lost cards: the owner's step-up proof makes a statement, signed for one vault, that a card is
lost (and which enrolled card replaces it); the vault acts on it and on nothing else."""

from __future__ import annotations

import time

from apdu.signature import valid_public_key

from ...serverkey import ServerKey
from ...statements import Replacement
from ..errors import KeyManagerError
from ..repository import KeyManagerRepository
from .accounts import SteppedUp
from .cards import Cards


class LostCards:
    """``signer`` is the key manager's statement key: the vault pins it."""

    def __init__(self, repo: KeyManagerRepository, signer: ServerKey, cards: Cards) -> None:
        self.repo, self.signer, self.cards = repo, signer, cards

    def report_lost(self, account: SteppedUp, old: bytes, new: bytes | None,
                    vault_key: bytes) -> tuple[Replacement, bytes]:
        """The owner says ``old`` is lost (and ``new`` replaces it): a statement the vault whose
        key is ``vault_key`` acts on (and no other), signed for whoever carries it there. Both cards must have proved their
        identity keys here, and the statement names them, so the vault acts on those cards only."""
        if len(old) != 8 or (new is not None and len(new) != 8):
            raise KeyManagerError(400, "a card id is 8 bytes")
        if old == new:
            raise KeyManagerError(400, "a card cannot replace itself")
        old_key = self.cards.key_of(account, old)
        new_key = self.cards.key_of(account, new) if new is not None else None
        if not valid_public_key(vault_key):
            raise KeyManagerError(400, "the vault key is an uncompressed P-256 public key")
        statement = Replacement(old, old_key, new, new_key, int(time.time()))
        signature = self.signer.sign(statement.message(vault_key))
        event = f"card {old.hex()} reported lost" + (f", replaced by card {new.hex()}" if new else "")
        self.repo.log(account.name, event, statement.issued_at)
        return statement, signature
