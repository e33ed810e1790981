"""Server-assisted restore (seed E6) with a real key manager and vault talking to each other
(the vault on SQLite and PostgreSQL): the happy path for the card itself and for a replacement
card without the key, and each refusal — not logged in, another owner, a revoked card, a
tampered registered value, a plain backup — leaving the card unchanged."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from apdu.records import ValueFlags
from host import factors
from host.assisted import assisted_restore
from host.backup import BackupError, backup, connect
from host.demo import FIG15
from host.keymgr_client import KeyManagerClient
from host.keys import backup_key, enrol_card
from host.recovery import report_lost, take_handovers
from host.session import WalletSession
from host.vault_client import VaultClient
from keyfile import load_or_create_key, public_bytes
from servers.keymgr.server import running as keymgr_running
from servers.keymgr.server import statement_key_path
from servers.storage import Database
from servers.vault.repository import MIGRATIONS
from servers.vault.server import running as vault_running

from ..card.helpers import observe, personalized
from .test_split_key import FAST

PASSWORD = "correct horse battery"


@dataclass(frozen=True)
class World:
    keymgr: KeyManagerClient
    vault: VaultClient
    vault_db: str


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[World]:
    km_key = tmp_path / "km.pem"
    trusted = public_bytes(load_or_create_key(statement_key_path(km_key)).public_key())
    with vault_running(db_url, tmp_path / "vault.pem", keymgr_key=trusted) as vault_url:
        config = FAST.__class__(**{**FAST.__dict__, "vault_url": vault_url})
        with keymgr_running(f"sqlite:///{tmp_path / 'km.db'}", km_key, tmp_path / "master.key", config) as km_url, \
                KeyManagerClient(km_url) as keymgr, VaultClient(vault_url) as vault:
            keymgr.create_account("hanako", PASSWORD)
            factors.login(keymgr, "hanako", PASSWORD)
            yield World(keymgr, vault, db_url)


def encrypted_backup(world: World) -> tuple[object, WalletSession]:
    """A card with an escrowed key and movie ticket A backed up encrypted (value 1)."""
    card, s = personalized()
    s.store(FIG15[0])
    s.generate_key()
    backup_key(s, world.keymgr)
    backup(s, world.vault, connect(s, world.vault), 1)
    assert s.list()[0].flags == ValueFlags.CERTIFICATE
    return card, s


def test_the_card_itself(world: World) -> None:
    _, s = encrypted_backup(world)
    outcome = assisted_restore(s, world.keymgr, 1, world.vault)
    assert outcome.action == "restored via the key manager"
    assert s.read(1).body() == FIG15[0].body() and s.list()[0].flags == ValueFlags.NONE
    assert world.vault.registrations() == []  # released afterwards
    assert assisted_restore(s, world.keymgr, 1).action == "already done"


def test_a_replacement_card_without_the_key(world: World) -> None:
    _, old = encrypted_backup(world)
    _, new = personalized()
    enrol_card(new, world.keymgr)
    connect(new, world.vault)
    report_lost(world.keymgr, world.vault, old.identity().card_id, new.identity().card_id)
    assert take_handovers(new, world.vault) == 1
    (entry,) = new.list()
    assisted_restore(new, world.keymgr, entry.id, world.vault)
    assert new.read(entry.id).body() == FIG15[0].body()
    assert new.key_info().mode.name == "NONE"  # the card never held the key


def refused(world: World, card: object, s: WalletSession, words: str, keymgr: KeyManagerClient | None = None) -> None:
    before = observe(card)  # type: ignore[arg-type]
    with pytest.raises(BackupError, match=words):
        assisted_restore(s, keymgr or world.keymgr, 1)
    after = observe(card)  # type: ignore[arg-type]
    assert after.values == before.values  # the certificate stays, not pending


def test_a_revoked_card_is_refused(world: World) -> None:
    card, s = encrypted_backup(world)
    report_lost(world.keymgr, world.vault, s.identity().card_id, None)
    refused(world, card, s, "revoked")


def test_another_owner_is_refused(world: World) -> None:
    card, s = encrypted_backup(world)
    with KeyManagerClient(world.keymgr.url) as thief:
        thief.create_account("mallory", PASSWORD)
        factors.login(thief, "mallory", PASSWORD)
        refused(world, card, s, "enrolled in another account", thief)


@pytest.mark.parametrize("byte", [-20, 60], ids=["signature", "ciphertext"])
def test_a_tampered_registered_value_is_refused(world: World, byte: int) -> None:
    card, s = encrypted_backup(world)
    db = Database.open(world.vault_db, MIGRATIONS)
    with db.transaction() as tx:
        ((value,),) = tx.execute("SELECT value FROM registrations")
        tampered = bytearray(bytes(value))
        tampered[byte] ^= 1
        tx.execute("UPDATE registrations SET value = ?", (bytes(tampered),))
    db.close()
    refused(world, card, s, "not valid|does not match|vault refused")


def test_a_plain_backup_is_restored_directly(world: World) -> None:
    card, s = personalized()
    s.store(FIG15[0])
    backup(s, world.vault, connect(s, world.vault), 1)
    enrol_card(s, world.keymgr)
    refused(world, card, s, "plain backup")


def test_without_logging_in_nothing_is_restored(world: World) -> None:
    card, s = encrypted_backup(world)
    with KeyManagerClient(world.keymgr.url) as anonymous:
        refused(world, card, s, "not logged in", anonymous)
