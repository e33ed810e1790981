"""Key rotation (seed E7): the job's record at the key manager, so a rotation interrupted anywhere
resumes, and the old keys are destroyed only once the card committed the new one."""

from __future__ import annotations

import time

from ..errors import KeyManagerError
from ..repository import Account, KeyManagerRepository
from .cards import Cards


class Rotations:
    def __init__(self, repo: KeyManagerRepository, cards: Cards) -> None:
        self.repo, self.cards = repo, cards

    def rotation(self, account: Account, card_id: bytes) -> tuple[bytes, bytes] | None:
        self.cards.key_of(account, card_id)
        return self.repo.rotation(card_id)

    def begin_rotation(self, account: Account, card_id: bytes, old_key_id: bytes, new_key_id: bytes) -> None:
        """The job's record: the new key must be escrowed before any value moves to it."""
        self.cards.key_of(account, card_id)
        if not any(e.key_id == new_key_id for e in self.repo.escrows(card_id)):
            raise KeyManagerError(409, "escrow the new key before the rotation begins")
        if not self.repo.begin_rotation(card_id, old_key_id, new_key_id, int(time.time())):
            raise KeyManagerError(409, "another rotation of this card is under way")

    def finish_rotation(self, account: Account, card_id: bytes, key_id: bytes) -> int:
        """The card committed ``key_id``: destroy the old keys. Answers how many went."""
        self.cards.key_of(account, card_id)
        under_way = self.repo.rotation(card_id)
        if under_way is not None and under_way[1] != key_id:
            raise KeyManagerError(409, "the rotation under way moves to another key")
        if not any(e.key_id == key_id for e in self.repo.escrows(card_id)):
            raise KeyManagerError(409, "that key is not escrowed: nothing would be left to restore")
        retired = under_way[0] if under_way is not None else None
        return self.repo.finish_rotation(card_id, key_id, retired, self.repo.cards(account.id), account.name,
                                         int(time.time()))
