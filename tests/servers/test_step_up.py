"""Step-up at the key manager (issue 14), on SQLite and PostgreSQL: a bearer token alone, sniffed
or stolen, does none of the sensitive actions (enrol a card, report one lost, change the
password, the policy or a factor) and changes nothing; with a fresh proof of the account's
factors each succeeds; a wrong proof is a failed guess like a login's. A new password ends the
other sessions, logout ends this one, and expired sessions and challenges are purged."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from argon2.exceptions import VerificationError
from cryptography.hazmat.primitives.asymmetric import ec

from host import factors
from host.keymgr_client import Factors, KeyManagerClient
from host.keys import enrol_card
from host.session import WalletSession
from keyfile import public_bytes
from servers.auth import token_hash
from servers.keymgr.repository import MIGRATIONS, PURGE_BATCH, KeyManagerRepository
from servers.keymgr.server import running
from servers.keymgr.services.accounts import MAX_FAILURES
from servers.storage import Database

from ..card.helpers import personalized
from .test_factors import id_card
from .test_keymgr import refused
from .test_split_key import FAST

VAULT_KEY = public_bytes(ec.generate_private_key(ec.SECP256R1()).public_key())  # the statement's audience
NAME, PASSWORD, NEW_PASSWORD = "hanako", "correct horse battery", "a brand new passphrase"


@dataclass
class World:
    url: str
    repo: KeyManagerRepository  # the key manager's database, read beside it
    owner: KeyManagerClient  # logged in, steps up with the owner's password
    card: WalletSession  # the owner's card, enrolled

    def thief(self, of: KeyManagerClient | None = None) -> KeyManagerClient:
        """Someone who sniffed the session token of ``of`` (the owner's), and nothing else."""
        client = KeyManagerClient(self.url)
        client._token = (of or self.owner)._token
        return client

    def account_id(self) -> int:
        account = self.repo.account(NAME)
        assert account is not None
        return account.id

    def state(self) -> tuple[object, ...]:
        """Everything of the account the sensitive actions could change, and its audit log."""
        account = self.repo.account(NAME)
        assert account is not None
        cards = [(c, self.repo.card_key(c, account.id)) for c in self.repo.cards(account.id)]
        return (account.password_hash, cards, self.repo.factors(account.id), self.repo.policy(account.id),
                self.repo.audit(NAME), self.repo.failures(NAME))


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[World]:
    with running(db_url, tmp_path / "km.pem", tmp_path / "master.key", FAST) as url, \
            KeyManagerClient(url) as owner:
        db = Database.open(db_url, MIGRATIONS)
        owner.create_account(NAME, PASSWORD)
        factors.login(owner, NAME, PASSWORD)
        _, card = personalized()
        enrol_card(card, owner)
        try:
            yield World(url, KeyManagerRepository(db), owner, card)
        finally:
            db.close()


Action = Callable[[KeyManagerClient, World], object]
Done = Callable[[World], bool]  # whether the action took effect


ACTIONS: dict[str, tuple[Action, Done]] = {
    "enrol a card": (lambda client, w: enrol_card(personalized()[1], client),
                     lambda w: len(w.repo.cards(w.account_id())) == 2),
    "report a card lost": (lambda client, w: client.report_lost(w.card.identity().card_id, None, VAULT_KEY),
                           lambda w: any("reported lost" in event for _, event in w.repo.audit(NAME))),
    "change the password": (lambda client, w: client.set_password(NEW_PASSWORD), lambda w: changed_password(w)),
    "set the policy": (lambda client, w: client.set_policy("password"),
                       lambda w: w.repo.policy(w.account_id()) == "password"),
    "enrol an ID card": (lambda client, w: factors.enrol_id_card(client, id_card("Mallory", "DL-666")),
                         lambda w: [r for _, r, _ in w.repo.factors(w.account_id(), "id-card")] == ["DL-666"]),
    "enrol a fingerprint": (lambda client, w: factors.enrol_fingerprint(client, "mallory/index"),
                            lambda w: len(w.repo.factors(w.account_id(), "fingerprint")) == 1),
}
actions = pytest.mark.parametrize("action,done", ACTIONS.values(), ids=ACTIONS.keys())


def changed_password(world: World) -> bool:
    account = world.repo.account(NAME)
    assert account is not None
    try:
        return PasswordHasher().verify(account.password_hash, NEW_PASSWORD)
    except VerificationError:
        return False


@actions
def test_a_stolen_token_alone_is_refused_and_changes_nothing(world: World, action: Action, done: Done) -> None:
    before = world.state()
    with world.thief() as thief:
        refused(lambda: action(thief, world), 403, "needs a fresh proof of the account's factors")
    assert world.state() == before and not done(world)


@actions
def test_with_a_fresh_proof_the_owner_succeeds(world: World, action: Action, done: Done) -> None:
    action(world.owner, world)  # the owner's client proves the password with the request
    assert done(world) and world.repo.failures(NAME) == 0


@actions
def test_a_wrong_proof_is_a_failed_guess_like_a_login(world: World, action: Action, done: Done) -> None:
    before = world.state()
    with world.thief() as thief:
        thief.prove_with(lambda: Factors("a guessed password"))
        refused(lambda: action(thief, world), 401, f"wrong name or password ({MAX_FAILURES - 1} tries left)")
    after = world.state()
    assert after[:4] == before[:4] and not done(world) and world.repo.failures(NAME) == 1
    assert world.repo.audit(NAME)[-1][1] == "wrong password (1)"  # audited like a login's wrong guess


def test_wrong_proofs_lock_the_password_like_wrong_logins(world: World) -> None:
    with world.thief() as thief:
        for i in range(MAX_FAILURES - 1):
            thief.prove_with(lambda i=i: Factors(f"guess {i}"))  # type: ignore[misc]
            refused(lambda: thief.set_password(NEW_PASSWORD), 401, "wrong name or password")
        thief.prove_with(lambda: Factors("the last guess"))
        refused(lambda: thief.set_password(NEW_PASSWORD), 423, "locked after")
        thief.prove_with(lambda: Factors(PASSWORD))  # even the right one, now
        refused(lambda: thief.set_password(NEW_PASSWORD), 423, "locked after")
    refused(lambda: world.owner.login(NAME, PASSWORD), 423, "locked after")  # one count: login and step-up


def test_the_proof_must_satisfy_the_policy(world: World) -> None:
    mine = id_card()
    factors.enrol_id_card(world.owner, mine)
    world.owner.set_policy("password and id-card")
    refused(lambda: world.owner.set_password(NEW_PASSWORD), 401, "logs in with: password and id-card")
    factors.step_up_with(world.owner, NAME, PASSWORD, id_card=mine)  # the ID card signs a fresh challenge
    world.owner.set_password(NEW_PASSWORD)
    factors.login(world.owner, NAME, NEW_PASSWORD, id_card=mine)


def test_an_id_card_answer_is_not_replayed_as_a_proof(world: World) -> None:
    mine = id_card()
    factors.enrol_id_card(world.owner, mine)
    world.owner.set_policy("id-card")
    answer = factors.id_card_answer(world.owner, NAME, mine)
    world.owner.prove_with(lambda: Factors(id_card=answer))
    world.owner.set_policy("id-card or password")
    before = world.state()
    with world.thief() as thief:  # the sniffed request again: its challenge is used
        thief.prove_with(lambda: Factors(id_card=answer))
        refused(lambda: thief.set_policy("id-card"), 401, "used challenge")
    assert world.state()[:4] == before[:4]


def test_a_new_password_ends_the_other_sessions(world: World) -> None:
    """All but the session that changed it: the owner goes on, a sniffed token of another is out."""
    with KeyManagerClient(world.url) as laptop:
        factors.login(laptop, NAME, PASSWORD)
        with world.thief(of=laptop) as thief:
            assert thief.status()[0] == NAME
            world.owner.set_password(NEW_PASSWORD)
            refused(thief.status, 401, "not logged in")
        refused(laptop.status, 401, "not logged in")
    assert world.owner.status()[0] == NAME
    refused(lambda: world.owner.login(NAME, PASSWORD), 401, "wrong name or password")
    assert any("1 other session(s) ended" in event for _, event in world.repo.audit(NAME))


def test_logout_makes_the_token_useless(world: World) -> None:
    with world.thief() as thief:
        world.owner.logout()
        refused(thief.status, 401, "not logged in")
        refused(lambda: thief.set_policy("password"), 401, "not logged in")
    refused(world.owner.status, 401, "not logged in")
    refused(world.owner.logout, 401, "not logged in")


def count(repo: KeyManagerRepository, table: str) -> int:
    with repo.db.transaction() as tx:
        return int(tx.execute(f"SELECT COUNT(*) FROM {table}")[0][0])


def test_expired_sessions_are_purged_a_bounded_batch_per_write(world: World) -> None:
    account_id = world.account_id()
    past = int(time.time()) - 60
    live = count(world.repo, "sessions")
    for i in range(PURGE_BATCH + 3):
        world.repo.add_session(token_hash(f"old token {i}"), account_id, past, past)
    factors.login(world.owner, NAME, PASSWORD)  # a write: purges one batch of expired sessions
    assert count(world.repo, "sessions") == live + 1 + 3
    factors.login(world.owner, NAME, PASSWORD)
    assert count(world.repo, "sessions") == live + 2  # the live ones stay


def test_expired_challenges_are_purged(world: World) -> None:
    past = int(time.time()) - 60
    for i in range(3):
        world.repo.add_challenge(bytes([i]) * 32, past, past)
        world.repo.add_auth_challenge(bytes([i]) * 32, NAME, past, past)
    world.owner.card_challenge()
    world.owner.auth_challenge(NAME)
    assert count(world.repo, "card_challenges") == 1 and count(world.repo, "auth_challenges") == 1
