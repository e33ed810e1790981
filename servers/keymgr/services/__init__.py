"""The key manager's services, one per resource: accounts and their factors, the cards bound to
them, escrowed keys (and assisted restore), rotations and lost cards. Transport-free: the routes
map them onto HTTP, and only they reach the repository.

:class:`KeyManagerService` assembles them over one repository and the server's keys."""

from __future__ import annotations

from dataclasses import dataclass, field

from ...serverkey import MasterKey, ServerKey
from ..config import KeyManagerConfig
from ..repository import KeyManagerRepository
from .accounts import Accounts
from .cards import Cards
from .escrow import Escrows
from .lost_cards import LostCards
from .rotation import Rotations


@dataclass
class KeyManagerService:
    """``key`` opens what cards seal to the key manager; ``signer`` signs statements for the
    vault and nothing else (one key, one use)."""

    repo: KeyManagerRepository
    key: ServerKey
    master: MasterKey
    signer: ServerKey
    config: KeyManagerConfig = field(default_factory=KeyManagerConfig)

    def __post_init__(self) -> None:
        self.accounts = Accounts(self.repo, self.key, self.master, self.config)
        self.cards = Cards(self.repo, self.key, self.config)
        self.escrows = Escrows(self.repo, self.key, self.master, self.signer, self.config, self.cards)
        self.rotations = Rotations(self.repo, self.cards)
        self.lost_cards = LostCards(self.repo, self.signer, self.cards)

    @property
    def public_key(self) -> bytes:
        return self.key.public_key

    @property
    def statement_key(self) -> bytes:
        return self.signer.public_key
