"""Encrypted backup (seed E2) end to end against a real vault: the vault keeps only digest and
ciphertext, the certificate hashes the ciphertext, tampering anywhere is refused with nothing
changed, and a power cut at every card write of both flows is finished by a re-run."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from hashlib import sha256
from pathlib import Path

import pytest

from apdu import SW, ApduError
from apdu import backup as b
from apdu.certificate import Certificate, Mode
from apdu.keys import KeyMode
from apdu.records import ValueFlags
from card import SimulatedCard
from host.backup import BackupError, backup, connect, release_unneeded, restore
from host.demo import FIG15
from host.session import WalletSession
from host.transport import CardRemovedError
from host.transport.inprocess import connect_card
from host.vault_client import VaultClient
from servers.vault.server import running

from ..card.helpers import PIN, clone, personalized


def keyed_cells(mode: KeyMode = KeyMode.PUBLIC) -> bytes:
    card, s = personalized()
    for r in FIG15:
        s.store(r)
    s.generate_key(mode)
    card.power_off()
    return card.eeprom.snapshot()


CELLS = {mode: keyed_cells(mode) for mode in (KeyMode.PUBLIC, KeyMode.SYMMETRIC)}


@pytest.fixture
def vault_url(tmp_path: Path) -> Iterator[str]:
    with running(f"sqlite:///{tmp_path / 'vault.db'}", tmp_path / "vault-key.pem") as url:
        yield url


def unlocked(card: SimulatedCard) -> WalletSession:
    s = WalletSession(connect_card(card))
    s.verify_pin(PIN)
    return s


@pytest.mark.parametrize("mode", [KeyMode.PUBLIC, KeyMode.SYMMETRIC])
def test_round_trip_and_the_vault_sees_no_plaintext(vault_url: str, tmp_path: Path, mode: KeyMode) -> None:
    s = unlocked(clone(CELLS[mode]))
    originals = {e.id: s.read(e.id).body() for e in s.list()}
    with VaultClient(vault_url) as vault:
        key = connect(s, vault)
        for i in originals:
            assert backup(s, vault, key, i).action == "backed up, encrypted"
            assert backup(s, vault, key, i).action == "already done"
        for e in s.list():
            assert Certificate.from_bytes(s.read(e.id).certificate).mode == Mode.ENCRYPTED
        with sqlite3.connect(tmp_path / "vault.db") as db:
            stored = [bytes(r[0]) for r in db.execute("SELECT value FROM registrations")]
        assert len(stored) == 4
        for blob in stored:  # digests carry the certified fields; payload and issuer stay sealed
            assert b"Cinema" not in blob and b"Shop" not in blob and b"JPY" not in blob
        for i in originals:
            assert restore(s, vault, i).action == "restored"
        assert {e.id: s.read(e.id).body() for e in s.list()} == originals
        assert vault.registrations() == []


def test_plain_backup_is_still_there_on_request(vault_url: str) -> None:
    s = unlocked(clone(CELLS[KeyMode.PUBLIC]))
    with VaultClient(vault_url) as vault:
        key = connect(s, vault)
        assert backup(s, vault, key, 1, encrypt=False).action == "backed up"
        assert Certificate.from_bytes(s.read(1).certificate).mode == Mode.PLAIN
        assert restore(s, vault, 1).action == "restored"


def test_a_tampered_ciphertext_is_refused_and_nothing_changes(vault_url: str, tmp_path: Path) -> None:
    card = clone(CELLS[KeyMode.PUBLIC])
    s = unlocked(card)
    with VaultClient(vault_url) as vault:
        key = connect(s, vault)
        backup(s, vault, key, 2)
        with sqlite3.connect(tmp_path / "vault.db") as db:
            (blob,), = db.execute("SELECT value FROM registrations")
            r = b.RegisteredValue.from_bytes(bytes(blob))
            bad = bytearray(r.ciphertext)
            bad[-1] ^= 1
            db.execute("UPDATE registrations SET value = ?", (b.RegisteredValue(r.digest, r.key_id, bytes(bad),
                                                                                 r.signature).to_bytes(),))
        with pytest.raises(BackupError, match="inconsistent vault entry"):
            restore(s, vault, 2)
        assert s.list()[1].flags == ValueFlags.CERTIFICATE
        # a lying vault that answers a consistent-looking but forged value: the card refuses
        cert = s.begin_restore(2)
        forged = b.RegisteredValue(r.digest, r.key_id, bytes(bad), r.signature).to_bytes()
        before = card.eeprom.snapshot()
        with pytest.raises(ApduError) as refused:
            s.commit_restore(2, forged)
        assert refused.value.sw == SW.WRONG_DATA and card.eeprom.snapshot() == before
        s.cancel_pending(2)
        assert s.read(2).certificate == cert


def test_a_card_with_another_key_cannot_open_it(vault_url: str) -> None:
    s = unlocked(clone(CELLS[KeyMode.PUBLIC]))
    with VaultClient(vault_url) as vault:
        key = connect(s, vault)
        backup(s, vault, key, 1)
        registered = vault.restore(s.begin_restore(1))
    other_card, other = personalized()
    other.generate_key()
    sealed = b.RegisteredValue.from_bytes(registered).ciphertext
    from apdu import seal

    with pytest.raises(seal.SealError):  # only the card's 402 opens it
        seal.open_sealed(sha256(bytes(32)).digest(), sealed, b.e2_context(s.identity().card_id))


def flow(cells: bytes, vault_url: str, which: str, tear_after: int | None) -> int:
    card = clone(cells)
    s = unlocked(card)
    with VaultClient(vault_url) as vault:
        key = connect(s, vault)
        if which == "restore":
            backup(s, vault, key, 3)
        original = s.read(3).body() if which == "backup" else None
        start = card.eeprom.page_writes
        card.eeprom.cut_power_after(tear_after)
        step = (lambda x: backup(x, vault, key, 3)) if which == "backup" else (lambda x: restore(x, vault, 3))
        try:
            step(s)
        except CardRemovedError:
            assert tear_after is not None
            card.eeprom.cut_power_after(None)
            card.power_on()
            s = unlocked(card)
            step(s)
        writes = card.eeprom.page_writes - start
        card.eeprom.cut_power_after(None)
        entry = s.list()[2]
        if which == "backup":
            assert entry.flags == ValueFlags.CERTIFICATE
            restore(s, vault, 3)
            assert s.read(3).body() == original
        else:
            assert entry.flags == ValueFlags.NONE
        release_unneeded(s, vault)
        assert vault.registrations() == []
    return writes


@pytest.mark.parametrize("which", ["backup", "restore"])
def test_power_cut_at_every_card_write_of_the_encrypted_flows(vault_url: str, which: str) -> None:
    cells = CELLS[KeyMode.PUBLIC]
    total = flow(cells, vault_url, which, None)
    assert total > 0
    for n in range(total):
        flow(cells, vault_url, which, n)
