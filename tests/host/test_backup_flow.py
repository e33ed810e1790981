"""Backup and restore end to end against a real vault on loopback (SQLite): the seed's abort
paths from the vault's side, idempotent re-runs, receipts and garbage collection, and a power
cut at every card write of a whole flow followed by a re-run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from apdu.certificate import Certificate
from apdu.records import ValueFlags
from card import SimulatedCard
from host.backup import BackupError, backup, connect, release_unneeded, restore
from host.demo import FIG15
from host.session import WalletSession
from host.transport import CardRemovedError
from host.transport.inprocess import connect_card
from host.vault_client import VaultClient, VaultClientError
from servers.vault.server import running

from ..card.helpers import cells_with, clone

PIN = "1234"


@pytest.fixture
def vault_url(tmp_path: Path) -> Iterator[str]:
    with running(f"sqlite:///{tmp_path / 'vault.db'}", tmp_path / "vault-key.pem") as url:
        yield url


@pytest.fixture
def vault(vault_url: str) -> Iterator[VaultClient]:
    with VaultClient(vault_url) as client:
        yield client


CELLS = cells_with(FIG15)


def unlocked(card: SimulatedCard) -> WalletSession:
    s = WalletSession(connect_card(card))
    s.verify_pin(PIN)
    return s


def bodies(s: WalletSession) -> dict[int, bytes]:
    return {e.id: s.read(e.id).body() for e in s.list() if not e.flags & ValueFlags.CERTIFICATE}


def test_backup_and_restore_everything(vault: VaultClient) -> None:
    card = clone(CELLS)
    s = unlocked(card)
    original = bodies(s)
    key = connect(s, vault)
    for i in original:
        assert backup(s, vault, key, i).action == "backed up"
        assert backup(s, vault, key, i).action == "already done"
    assert s.info().certificate_count == 4 and bodies(s) == {}
    assert len(vault.registrations()) == 4
    for i in original:
        assert restore(s, vault, i).action == "restored"
    assert bodies(s) == original
    assert vault.registrations() == []  # each released on the card's receipt


def test_another_card_cannot_use_or_release_my_registrations(vault: VaultClient, vault_url: str) -> None:
    mine = unlocked(clone(CELLS))
    key = connect(mine, vault)
    backup(mine, vault, key, 1)
    cert = mine.begin_restore(1)
    theirs = unlocked(clone(cells_with(FIG15)))
    with VaultClient(vault_url) as other:
        connect(theirs, other)
        assert other.registrations() == []
        with pytest.raises(VaultClientError) as refused:
            other.restore(cert)
        assert refused.value.status == 403
        c = Certificate.from_bytes(cert)
        # their card signs for its own id: the vault finds nothing of theirs to release
        assert not other.release(c.counter, c.value_hash, theirs.sign_receipt(c.counter, c.value_hash))
    assert len(vault.registrations()) == 1


def test_unknown_certificate_and_unauthenticated_calls(vault: VaultClient, vault_url: str) -> None:
    s = unlocked(clone(CELLS))
    key = connect(s, vault)
    backup(s, vault, key, 2)
    cert = Certificate.from_bytes(s.begin_restore(2))
    s.cancel_pending(2)
    forged = Certificate(cert.card_id, cert.counter + 7, cert.value_hash, cert.digest, signature=cert.signature)
    with pytest.raises(VaultClientError) as refused:
        vault.restore(forged.to_bytes())
    assert refused.value.status == 404 and "unknown certificate" in refused.value.message
    with VaultClient(vault_url) as anonymous, pytest.raises(VaultClientError) as refused:
        anonymous.registrations()
    assert refused.value.status == 401


def test_refused_restore_changes_nothing_on_the_card(vault: VaultClient, tmp_path: Path) -> None:
    s = unlocked(card := clone(CELLS))
    key = connect(s, vault)
    backup(s, vault, key, 3)
    # the vault's database loses the row behind the client's back: unknown certificate
    import sqlite3

    with sqlite3.connect(tmp_path / "vault.db") as db:
        db.execute("DELETE FROM registrations")
    before = card.eeprom.snapshot()
    with pytest.raises(BackupError, match="unknown certificate"):
        restore(s, vault, 3)
    s.verify_pin(PIN)
    assert s.list()[2].flags == ValueFlags.CERTIFICATE  # pending cleared again, certificate kept
    assert card.eeprom.snapshot() != b"" and len(before) == len(card.eeprom.snapshot())


def test_garbage_collection_only_on_receipts(vault: VaultClient) -> None:
    s = unlocked(clone(CELLS))
    key = connect(s, vault)
    value = s.begin_backup(4)
    vault.register(value)  # registered, but the swap never happened ...
    s.cancel_pending(4)  # ... and was given up: the vault's entry is an orphan
    backup(s, vault, key, 1)  # a live certificate's entry must survive the collection
    assert len(vault.registrations()) == 2
    assert release_unneeded(s, vault) == 1
    assert [r.value_hash for r in vault.registrations()] == [Certificate.from_bytes(s.begin_restore(1)).value_hash]


def run_flow(flow: str, tmp: Path, tear_after: int | None) -> int:
    """One trial on a fresh vault and card: set up, run the flow with power cut after
    ``tear_after`` card writes (None: never), re-run it if torn, check the outcome. Answers
    the card writes the flow made."""
    tmp.mkdir()
    with running(f"sqlite:///{tmp / 'vault.db'}", tmp / "key.pem") as url, VaultClient(url) as vault:
        card = clone(CELLS)
        s = unlocked(card)
        key = connect(s, vault)
        if flow == "restore":
            backup(s, vault, key, 3)

        def step(session: WalletSession) -> object:
            return backup(session, vault, key, 3) if flow == "backup" else restore(session, vault, 3)

        start = card.eeprom.page_writes
        card.eeprom.cut_power_after(tear_after)
        try:
            step(s)
        except CardRemovedError:
            assert tear_after is not None
            card.eeprom.cut_power_after(None)
            card.power_on()
            s = unlocked(card)
            connect(s, vault)
            step(s)  # the re-run finishes the swap
        writes = card.eeprom.page_writes - start
        card.eeprom.cut_power_after(None)
        original = unlocked(clone(CELLS)).read(3).body()
        entry = s.list()[2]
        if flow == "backup":
            assert entry.flags == ValueFlags.CERTIFICATE
            cert = s.begin_restore(3)
            assert vault.restore(cert) == original
            assert len(vault.registrations()) == 1
        else:
            assert entry.flags == ValueFlags.NONE and s.read(3).body() == original
            release_unneeded(s, vault)
            assert vault.registrations() == []
        return writes


@pytest.mark.parametrize("flow", ["backup", "restore"])
def test_power_cut_at_every_card_write_then_rerun(flow: str, tmp_path: Path) -> None:
    """Cut the card's power at each write of a whole flow and re-run: the value ends swapped
    exactly once, and the vault holds it exactly when the card holds its certificate."""
    total = run_flow(flow, tmp_path / "probe", None)
    assert total > 0
    for n in range(total):
        run_flow(flow, tmp_path / f"tear-{n}", n)
