"""Cards bound to accounts: a card enrols by signing a fresh challenge with its identity key, and
every action on a card's keys first checks the card is the account's (:meth:`Cards.key_of`)."""

from __future__ import annotations

import time

from apdu import backup as b
from apdu.backup import auth_message
from apdu.signature import verify

from ...attestation import check_attestation
from ...auth import new_challenge
from ...serverkey import ServerKey
from ..config import KeyManagerConfig
from ..errors import KeyManagerError
from ..repository import Account, KeyManagerRepository
from .accounts import SteppedUp


class Cards:
    def __init__(self, repo: KeyManagerRepository, key: ServerKey, config: KeyManagerConfig) -> None:
        self.repo, self.key, self.config = repo, key, config

    def card_challenge(self) -> tuple[bytes, int]:
        challenge, now, expires = new_challenge(self.config.challenge_ttl)
        self.repo.add_challenge(challenge, expires, now)
        return challenge, expires

    def enrol_card(self, account: SteppedUp, card_id: bytes, public_key: bytes, attestation: bytes,
                   challenge: bytes, signature: bytes) -> None:
        """Bind a card to the account on its identity key's signature over our fresh challenge,
        made for us: nobody can enrol, and later report lost, a card they do not hold, nor a
        key no issuer attested for that card id."""
        if len(card_id) != 8:
            raise KeyManagerError(400, "a card id is 8 bytes")
        check_attestation(self.config.issuers, b.Identity(card_id, public_key), attestation, KeyManagerError)
        if not self.repo.take_challenge(challenge, int(time.time())):
            raise KeyManagerError(401, "unknown or expired challenge: ask for a new one")
        if not verify(public_key, signature, auth_message(b.Audience.KEY_MANAGER, self.key.public_key, card_id, challenge)):
            raise KeyManagerError(401, "the card's signature over the challenge is not valid for this key manager")
        if not self.repo.enrol_card(card_id, public_key, account.id):
            raise KeyManagerError(403, "this card is enrolled in another account, or with another key")
        self.repo.log(account.name, f"card {card_id.hex()} enrolled", int(time.time()))

    def key_of(self, account: Account, card_id: bytes) -> bytes:
        """The identity key of ``card_id``, once it is enrolled in ``account``; a 403 otherwise."""
        key = self.repo.card_key(card_id, account.id)
        if key is None:
            raise KeyManagerError(403, "that card is not enrolled in this account: enrol it with the card in "
                                       "the reader ('evb account enrol-card')")
        return key
