"""The key manager on both storage backends, over real HTTP with real cards: accounts and
lockout, escrow from one card and restore onto a fresh one, what each party can and cannot
open, and the master key outside the database."""

from __future__ import annotations

from collections.abc import Iterator
from hashlib import sha256
from pathlib import Path

import pytest
from argon2 import PasswordHasher, Type

from apdu import keys as k
from apdu import seal
from host import factors
from host.api_client import ServiceError
from host.keymgr_client import KeyManagerClient, KeyManagerClientError
from host.keys import KeyFlowError, backup_key, enrol_card, key_from_keymgr, restore_key
from host.session import WalletSession
from host.transport import CardRemovedError
from servers.keymgr.config import KeyManagerConfig
from servers.keymgr.errors import KeyManagerError
from servers.keymgr.repository import MIGRATIONS
from servers.keymgr.server import build_service, running
from servers.keymgr.services.accounts import MAX_FAILURES
from servers.serverkey import MasterKey
from servers.storage import Database
from servers.wire import ApiError

from ..card.helpers import personalized

FAST = KeyManagerConfig(argon2_time_cost=1, argon2_memory_kib=8192, argon2_parallelism=1)
NAME, PASSWORD = "hanako", "correct horse battery"


@pytest.fixture
def keymgr_url(db_url: str, tmp_path: Path) -> Iterator[str]:
    with running(db_url, tmp_path / "keymgr-key.pem", tmp_path / "master.key", FAST) as url:
        yield url


@pytest.fixture
def owner(keymgr_url: str) -> Iterator[KeyManagerClient]:
    with KeyManagerClient(keymgr_url) as client:
        client.create_account(NAME, PASSWORD)
        factors.login(client, NAME, PASSWORD)
        yield client


def refused(call: object, status: int, words: str) -> None:
    """``call`` is refused by a service with ``status`` and a message holding ``words``."""
    assert callable(call)
    with pytest.raises(ServiceError) as exc:
        call()
    assert exc.value.status == status and words in exc.value.message, exc.value


def card_with_key(mode: k.KeyMode = k.KeyMode.PUBLIC) -> WalletSession:
    _, s = personalized()
    s.generate_key(mode)
    return s


@pytest.mark.parametrize("mode", [k.KeyMode.PUBLIC, k.KeyMode.SYMMETRIC])
def test_escrow_then_restore_onto_a_fresh_card(owner: KeyManagerClient, mode: k.KeyMode) -> None:
    old = card_with_key(mode)
    info = backup_key(old, owner)
    name, cards = owner.status()
    old_id = old.identity().card_id
    assert name == NAME and [e.key_id for e in cards[old_id]] == [info.key_id]
    _, new = personalized()
    assert restore_key(new, owner, old_id) == info  # the same key, on another card
    with pytest.raises(KeyFlowError, match="already has a key"):
        restore_key(new, owner, old_id)


@pytest.mark.parametrize("mode", [k.KeyMode.PUBLIC, k.KeyMode.SYMMETRIC])
def test_a_key_the_key_manager_generated_is_escrowed_from_the_start(owner: KeyManagerClient,
                                                                    mode: k.KeyMode) -> None:
    """Claim 6: made at the key manager, delivered sealed to the card, restorable elsewhere."""
    _, s = personalized()
    info = key_from_keymgr(s, owner, mode)
    assert info == s.key_info() and info.mode == mode
    card_id = s.identity().card_id
    assert [e.key_id for e in owner.status()[1][card_id]] == [info.key_id]
    _, new = personalized()
    assert restore_key(new, owner, card_id) == info
    with pytest.raises(KeyFlowError, match="already has a key"):
        key_from_keymgr(s, owner, mode)
    _, stranger = personalized()  # not enrolled: the key manager makes nothing for it
    refused(lambda: owner.generate_key(stranger.identity().card_id, mode, stranger.new_transport_key()),
            403, "not enrolled")


def test_a_rerun_after_the_card_lost_power_before_the_import_makes_no_second_key(
        owner: KeyManagerClient, monkeypatch: pytest.MonkeyPatch) -> None:
    """The card went mute before IMPORT KEY landed: the re-run installs the key the key manager
    made the first time, and that stays the only one it escrows (restore takes the newest)."""
    _, s = personalized()

    def mute(mode: k.KeyMode, sealed: bytes) -> k.KeyInfo:
        raise CardRemovedError("the card lost its power before IMPORT KEY landed")

    monkeypatch.setattr(s, "import_key", mute)
    with pytest.raises(CardRemovedError):
        key_from_keymgr(s, owner, k.KeyMode.PUBLIC)
    monkeypatch.undo()
    info = key_from_keymgr(s, owner, k.KeyMode.PUBLIC)
    card_id = s.identity().card_id
    assert [e.key_id for e in owner.status()[1][card_id]] == [info.key_id]
    _, new = personalized()
    assert restore_key(new, owner, card_id) == info


def test_a_refused_key_generation_escrows_nothing(owner: KeyManagerClient) -> None:
    """Restore hands back the newest escrow: a refused request that kept its key anyway would
    change which key the card gets back."""
    _, s = personalized()
    info = key_from_keymgr(s, owner, k.KeyMode.PUBLIC)
    card_id = s.identity().card_id
    not_a_point = b"\x04" + bytes(64)
    refused(lambda: owner.generate_key(card_id, k.KeyMode.PUBLIC, not_a_point), 400, "transport key")
    assert [e.key_id for e in owner.status()[1][card_id]] == [info.key_id]
    _, new = personalized()
    assert restore_key(new, owner, card_id) == info


def test_the_terminal_and_the_vault_cannot_open_what_they_relay(owner: KeyManagerClient) -> None:
    s = card_with_key()
    s.put_keymgr_key(owner.public_key())
    sealed, info = s.export_key(), s.key_info()
    context = k.export_context(s.identity().card_id, info.key_id)
    for outsider in (sha256(bytes(32)).digest(), sha256(b"\x01" * 32).digest()):
        with pytest.raises(seal.SealError):
            seal.open_sealed(outsider, sealed, context)
    _, new = personalized()
    transport = new.new_transport_key()
    enrol_card(s, owner)
    enrol_card(new, owner)
    owner.escrow(s.identity().card_id, info.key_id, info.mode, sealed)
    blob = owner.restore_key(s.identity().card_id, new.identity().card_id, transport).sealed
    with pytest.raises(seal.SealError):  # only the new card's transport key opens it
        seal.open_sealed(sha256(bytes(32)).digest(), blob,
                         k.import_context(new.identity().card_id, info.mode))
    assert new.import_key(info.mode, blob) == info


def test_tampered_or_false_escrows_are_refused_and_change_nothing(owner: KeyManagerClient) -> None:
    s = card_with_key()
    s.put_keymgr_key(owner.public_key())
    sealed, info, card_id = bytearray(s.export_key()), s.key_info(), s.identity().card_id
    sealed[100] ^= 1
    refused(lambda: owner.escrow(card_id, info.key_id, info.mode, bytes(sealed)), 400, "does not open")
    sealed[100] ^= 1
    refused(lambda: owner.escrow(card_id, bytes(8), info.mode, bytes(sealed)), 400, "does not open")
    other = card_with_key()  # a genuine export, claimed for a key id it is not
    other.put_keymgr_key(owner.public_key())
    forged = seal.seal(owner.public_key(), bytes(32), k.export_context(card_id, info.key_id))
    refused(lambda: owner.escrow(card_id, info.key_id, info.mode, forged), 400, "not the key it claims")
    assert owner.status()[1] == {}


def test_other_owners_get_nothing(owner: KeyManagerClient, keymgr_url: str) -> None:
    s = card_with_key()
    backup_key(s, owner)
    card_id = s.identity().card_id
    with KeyManagerClient(keymgr_url) as thief:
        thief.create_account("mallory", "another password")
        factors.login(thief, "mallory", "another password")
        _, their_card = personalized()
        refused(lambda: thief.restore_key(card_id, their_card.identity().card_id, their_card.new_transport_key()),
                404, "no key of that card")
        their_card.generate_key()
        their_card.put_keymgr_key(thief.public_key())
        refused(lambda: backup_key(s, thief), 403, "enrolled in another account")
        assert thief.status()[1] == {}
    with KeyManagerClient(keymgr_url) as anonymous:
        refused(anonymous.status, 401, "not logged in")


def test_ten_wrong_passwords_lock_known_and_unknown_names_alike(keymgr_url: str, db_url: str, tmp_path: Path) -> None:
    with KeyManagerClient(keymgr_url) as client:
        client.create_account(NAME, PASSWORD)
        refused(lambda: client.create_account(NAME, "whatever else"), 409, "taken")
        refused(lambda: client.create_account("x", "short"), 400, "at least 8")
        answers = {}
        for name in (NAME, "nobody-by-this-name"):
            seen = []
            for _ in range(MAX_FAILURES):
                with pytest.raises(KeyManagerClientError) as exc:
                    client.login(name, "wrong password")
                seen.append((exc.value.status, exc.value.message))
            answers[name] = seen
            refused(lambda name=name: client.login(name, PASSWORD), 423, "locked")  # type: ignore[misc]
        assert answers[NAME] == answers["nobody-by-this-name"]  # the answers do not tell
        assert answers[NAME][0] == (401, f"wrong name or password ({MAX_FAILURES - 1} tries left)")
    service, db = build_service(db_url, tmp_path / "keymgr-key.pem", tmp_path / "master.key", FAST)
    service.accounts.unlock(NAME)  # the audited way out
    assert service.repo.audit(NAME)[-1][1] == "unlocked by the administrator"
    db.close()
    with KeyManagerClient(keymgr_url) as client:
        factors.login(client, NAME, PASSWORD)


def test_unknown_names_cost_one_argon2_verification_like_known_ones(db_url: str, tmp_path: Path) -> None:
    """The timing side: both refusals run exactly one Argon2id verification of the password."""
    service, db = build_service(db_url, tmp_path / "k.pem", tmp_path / "m.key", FAST)
    service.accounts.create_account(NAME, PASSWORD)
    calls: list[str] = []

    class Counting(PasswordHasher):
        def verify(self, hash: str | bytes, password: str | bytes) -> bool:
            calls.append(str(hash))
            return super().verify(hash, password)

    service.accounts.hasher = Counting(FAST.argon2_time_cost, FAST.argon2_memory_kib, FAST.argon2_parallelism)
    for name in (NAME, "nobody"):
        with pytest.raises(KeyManagerError):
            service.accounts.login(name, "wrong password")
    assert len(calls) == 2 and calls[1] != calls[0] and calls[1].startswith("$argon2id$")
    db.close()


def test_production_passwords_are_argon2id_and_memory_hard() -> None:
    c = KeyManagerConfig()
    hasher = PasswordHasher(c.argon2_time_cost, c.argon2_memory_kib, c.argon2_parallelism)
    assert hasher.type == Type.ID and c.argon2_memory_kib >= 65536


def test_escrowed_keys_are_encrypted_at_rest_under_a_master_key_outside_the_database(
        owner: KeyManagerClient, db_url: str, tmp_path: Path) -> None:
    s = card_with_key()
    backup_key(s, owner)
    db = Database.open(db_url, MIGRATIONS)
    with db.transaction() as tx:
        (stored,), = tx.execute("SELECT sealed_seed FROM escrows")
    db.close()
    assert len(bytes(stored)) == 12 + 97 + 16  # nonce, d || Q, tag: AES-256-GCM
    service, db = build_service(db_url, tmp_path / "keymgr-key.pem", tmp_path / "another-master.key", FAST)
    account = service.repo.account(NAME)
    assert account is not None
    with pytest.raises(ApiError, match="integrity"):  # the database alone opens nothing
        service.escrows.restore(account, s.identity().card_id, s.identity().card_id, personalized()[1].new_transport_key())
    db.close()
    assert MasterKey.load_or_create(tmp_path / "master.key") is not None
    assert (tmp_path / "master.key").stat().st_mode & 0o777 == 0o600


def test_the_published_openapi_schema_is_current() -> None:
    import json

    from servers.keymgr.app import openapi_schema

    published = json.loads((Path(__file__).parents[2] / "docs" / "keymgr-openapi.json").read_text())
    assert published == openapi_schema(), "regenerate with: evb keymgr openapi > docs/keymgr-openapi.json"
