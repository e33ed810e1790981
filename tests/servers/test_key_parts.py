"""The per-value key parts across card, key manager and vault on both backends (seed E4 as
written, claims 7, 8, 41, 42, 49): the key manager keeps part 405, every encrypted backup carries
part 406 to the vault, and a new card rebuilds the key from the two, with the owner's login and
a certificate, without a recovery code and without a lost-card statement. A stranger with a
copied certificate gets no usable key; parts sealed for one card do not open on another; the
2-of-3 split stays beside it and the two do not mix."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from apdu import SW, ApduError, seal
from apdu import backup as b
from apdu import keys as k
from apdu.certificate import Certificate
from host import factors
from host.backup import backup, connect
from host.keymgr_client import KeyManagerClient, KeyManagerClientError
from host.keys import KeyFlowError, backup_key_parts, enrol_card, restore_key_parts, split_key
from host.session import WalletSession
from host.vault_client import VaultClient, VaultClientError
from keyfile import load_or_create_key
from servers.keymgr.server import running as keymgr_running
from servers.vault.server import running as vault_running

from ..card.helpers import observe, personalized
from .test_split_key import FAST


@dataclass(frozen=True)
class Parties:
    keymgr: KeyManagerClient  # logged in as the owner, hanako
    stranger: KeyManagerClient  # logged in as taro, who copied a certificate
    vault: VaultClient
    vault_db: Path
    vault_key: Path


@pytest.fixture
def parties(db_url: str, tmp_path: Path) -> Iterator[Parties]:
    vault_db, vault_key = tmp_path / "vault.db", tmp_path / "vault.pem"
    with keymgr_running(db_url, tmp_path / "km.pem", tmp_path / "master.key", FAST) as km_url, \
            vault_running(f"sqlite:///{vault_db}", vault_key) as vault_url, \
            KeyManagerClient(km_url) as keymgr, KeyManagerClient(km_url) as stranger, VaultClient(vault_url) as vault:
        for client, name in ((keymgr, "hanako"), (stranger, "taro")):
            client.create_account(name, "correct horse battery")
            factors.login(client, name, "correct horse battery")
        yield Parties(keymgr, stranger, vault, vault_db, vault_key)


def backed_up(p: Parties, mode: k.KeyMode = k.KeyMode.PUBLIC) -> tuple[WalletSession, k.KeyInfo, bytes]:
    """The owner's card: a key, its part at the key manager, two encrypted backups. Answers the
    card, its key and one certificate (what the owner, or a stranger, may hold a copy of)."""
    from host.demo import FIG15

    _, s = personalized()
    for r in FIG15[:2]:
        s.store(r)
    info = s.generate_key(mode)
    vault_key = connect(s, p.vault)
    assert backup_key_parts(s, p.keymgr) == info
    for value_id in (1, 2):
        backup(s, p.vault, vault_key, value_id)
    return s, info, s.read(1).certificate


def new_card(p: Parties, owner: KeyManagerClient) -> tuple[object, WalletSession]:
    card, s = personalized()
    connect(s, p.vault)  # a card the vault knows: it signs the vault's challenge
    enrol_card(s, owner)
    return card, s


def vault_scalar(p: Parties) -> bytes:
    return load_or_create_key(p.vault_key).private_numbers().private_value.to_bytes(32, "big")


@pytest.mark.parametrize("mode", [k.KeyMode.PUBLIC, k.KeyMode.SYMMETRIC])
def test_claims_7_and_41_one_part_at_the_key_manager_the_other_with_each_value(parties: Parties,
                                                                               mode: k.KeyMode) -> None:
    """Claim 7: the key manager keeps one part, the vault the other beside each encrypted value.
    Claim 41: the vault took the part with the value, certified it, and gives back both the
    encrypted value and the part for the certificate."""
    old, info, certificate = backed_up(parties, mode)
    with sqlite3.connect(parties.vault_db) as db:
        stored = [b.RegisteredValue.from_bytes(bytes(r[0])) for r in db.execute("SELECT value FROM registrations")]
    assert len(stored) == 2 and all(r.key_part and r.key_id == info.key_id for r in stored)
    card_id = old.identity().card_id
    parts = {seal.open_sealed(vault_scalar(parties), r.key_part, k.part_context(card_id, info.key_id, 2))
             for r in stored}
    assert len(parts) == 1  # one part 406 per key, riding with every value
    assert b.RegisteredValue.from_bytes(parties.vault.restore(certificate)).key_part in {r.key_part for r in stored}
    _, other = new_card(parties, parties.keymgr)
    part = parties.vault.key_part(certificate, other.new_transport_key())
    assert (part.mode, part.key_id, part.public_key) == (mode, info.key_id, info.public_key)


def test_claims_8_42_and_49_a_new_card_rebuilds_the_key_without_code_or_statement(parties: Parties) -> None:
    """Claim 49: the new card's encryption unit gets one part from the vault for a certificate
    and the other from the key manager on the owner's login, and rebuilds d; claims 8/42: the
    parts are of d, the information Q = d*G is made from, so the rebuilt key is the old pair.
    No recovery code, no lost-card statement: the old card is not revoked."""
    old, info, certificate = backed_up(parties)
    _, new = new_card(parties, parties.keymgr)
    assert restore_key_parts(new, parties.keymgr, parties.vault, old.identity().card_id, certificate) == info
    assert new.key_info() == info and new.key_info().public_key == info.public_key
    connect(old, parties.vault)  # the old card still has its sessions: nobody reported it lost
    assert {r.counter for r in parties.vault.registrations()} == {
        Certificate.from_bytes(old.read(i).certificate).counter for i in (1, 2)}
    with pytest.raises(KeyFlowError, match="already has a key"):
        restore_key_parts(new, parties.keymgr, parties.vault, old.identity().card_id, certificate)


def test_without_a_certificate_on_the_card_the_owner_is_asked_for_one(parties: Parties) -> None:
    """Seed E4 steps 3-5/3-6 take a certificate from the card itself (a card whose key broke);
    a new card holds none of the old card's, so the flow asks for one and changes nothing."""
    old, _, _ = backed_up(parties)
    _, new = new_card(parties, parties.keymgr)
    with pytest.raises(KeyFlowError, match="--certificate"):
        restore_key_parts(new, parties.keymgr, parties.vault, old.identity().card_id)
    assert new.key_info().mode == k.KeyMode.NONE


def test_a_stranger_with_a_copied_certificate_gets_no_usable_key(parties: Parties) -> None:
    """The vault gives its part for any certificate it issued, to any card it knows (the part
    alone is nothing); the key manager gives the other only to the owner's login and cards."""
    old, info, certificate = backed_up(parties)
    _, thief = new_card(parties, parties.stranger)
    with pytest.raises(KeyFlowError, match="no per-value part of key"):
        restore_key_parts(thief, parties.stranger, parties.vault, old.identity().card_id, certificate)
    assert thief.key_info().mode == k.KeyMode.NONE
    # the vault's part, sealed for the thief's own card, rebuilds nothing there
    part = parties.vault.key_part(certificate, thief.new_transport_key())
    assert thief.import_share(part.mode, part.key_id, part.sealed, True, part.public_key).mode == k.KeyMode.NONE
    with pytest.raises(KeyManagerClientError) as refused:  # the owner's part: not for taro's card
        parties.stranger.restore_share(old.identity().card_id, thief.identity().card_id, thief.new_transport_key(),
                                       per_value=True)
    assert refused.value.status in (403, 404)
    with pytest.raises(KeyManagerClientError) as refused:  # nor for the owner's card asked by taro
        parties.keymgr.restore_share(old.identity().card_id, thief.identity().card_id, thief.new_transport_key(),
                                     per_value=True)
    assert refused.value.status == 403
    assert thief.key_info().mode == k.KeyMode.NONE


def test_parts_sealed_for_the_owners_new_card_do_not_open_on_another(parties: Parties) -> None:
    """A terminal that keeps what the key manager and the vault sealed for the owner's new card
    and plays it into another card gets 6A80: each part opens under one card's transport key."""
    old, info, certificate = backed_up(parties)
    _, new = new_card(parties, parties.keymgr)
    transport = new.new_transport_key()
    ours = parties.keymgr.restore_share(old.identity().card_id, new.identity().card_id, transport, per_value=True)
    theirs = parties.vault.key_part(certificate, transport)
    card, thief = new_card(parties, parties.stranger)
    thief.new_transport_key()
    before = observe(card)  # type: ignore[arg-type]
    for sealed in (ours.sealed, theirs.sealed):
        with pytest.raises(ApduError) as refused:
            thief.import_share(info.mode, info.key_id, sealed, True, info.public_key)
        assert refused.value.sw == SW.WRONG_DATA
    assert observe(card) == before  # type: ignore[arg-type]
    # and the vault's part sealed for the thief's card does not open on the owner's
    stolen = parties.vault.key_part(certificate, thief.new_transport_key())
    assert new.import_share(info.mode, info.key_id, ours.sealed, True, info.public_key).mode == k.KeyMode.NONE
    with pytest.raises(ApduError) as refused:
        new.import_share(info.mode, info.key_id, stolen.sealed, True, info.public_key)
    assert refused.value.sw == SW.WRONG_DATA
    assert new.import_share(info.mode, info.key_id, theirs.sealed, True, info.public_key) == info


@pytest.mark.parametrize(("forgery", "status"), [("signature", 403), ("plain", 400), ("unknown", 404)])
def test_the_vault_gives_parts_only_for_its_own_encrypted_certificates(parties: Parties, forgery: str,
                                                                     status: int) -> None:
    from dataclasses import replace

    old, info, certificate = backed_up(parties)
    cert = Certificate.from_bytes(certificate)
    if forgery == "signature":
        raw = replace(cert, counter=cert.counter + 7).to_bytes()  # fields changed, signature kept
    elif forgery == "plain":
        from host.demo import FIG15

        _, plain = personalized()
        plain.store(FIG15[0])
        backup(plain, parties.vault, connect(plain, parties.vault), 1, encrypt=False)
        raw = plain.read(1).certificate
    else:  # a registration gone (released): its part went with it
        with sqlite3.connect(parties.vault_db) as db:
            db.execute("DELETE FROM registrations WHERE counter = ?", (cert.counter,))
        raw = certificate
    _, new = new_card(parties, parties.keymgr)
    with pytest.raises(VaultClientError) as refused:
        parties.vault.key_part(raw, new.new_transport_key())
    assert refused.value.status == status


def test_a_card_split_only_2_of_3_has_no_per_value_part(parties: Parties) -> None:
    """A card split 2 of 3 keeps a Shamir share at the key manager, no per-value part: the
    per-value restore is told so (404 through the flow) and nothing is installed."""
    from host.demo import FIG15

    _, s = personalized()
    s.store(FIG15[0])
    info = s.generate_key()
    vault_key = connect(s, parties.vault)
    split_key(s, parties.keymgr, parties.vault)
    backup(s, parties.vault, vault_key, 1)
    _, new = new_card(parties, parties.keymgr)
    with pytest.raises(KeyFlowError, match="no per-value part of key"):
        restore_key_parts(new, parties.keymgr, parties.vault, s.identity().card_id, s.read(1).certificate)
    assert new.key_info().mode == k.KeyMode.NONE and info.mode == k.KeyMode.PUBLIC


@pytest.mark.parametrize("per_value_first", [False, True], ids=["split-then-per-value", "per-value-then-split"])
def test_both_splits_of_one_key_coexist(parties: Parties, per_value_first: bool) -> None:
    """One key escrowed whole, split 2 of 3 and split per value: each escrow keeps its own row
    at the key manager, so the owner's recovery code still rebuilds the key after a per-value
    backup and the per-value parts after a new 2-of-3 split (the key manager used to keep one
    share per key: the later mode silently overwrote the earlier, and its restore failed)."""
    from host.demo import FIG15
    from host.keys import backup_key, restore_split_key

    _, s = personalized()
    s.store(FIG15[0])
    info = s.generate_key()
    vault_key = connect(s, parties.vault)
    backup_key(s, parties.keymgr)  # whole, beside both splits
    if per_value_first:
        backup_key_parts(s, parties.keymgr)
        _, codes = split_key(s, parties.keymgr, parties.vault)
    else:
        _, codes = split_key(s, parties.keymgr, parties.vault)
        backup_key_parts(s, parties.keymgr)
    backup(s, parties.vault, vault_key, 1)
    card_id = s.identity().card_id
    _, by_code = new_card(parties, parties.keymgr)
    assert restore_split_key(by_code, parties.keymgr, card_id, codes[:1]) == info
    _, by_parts = new_card(parties, parties.keymgr)
    assert restore_key_parts(by_parts, parties.keymgr, parties.vault, card_id, s.read(1).certificate) == info


def test_a_key_escrowed_only_whole_gives_its_per_value_part(parties: Parties) -> None:
    """A key the key manager holds whole (escrowed, made by it, or re-keyed to by it) serves a
    per-value restore too: its part 405 is made from the whole key, for the same owner's login
    and cards the whole key would be sealed to; a 2-of-3 share it never had is still a 404."""
    from host.demo import FIG15
    from host.keys import backup_key

    _, s = personalized()
    s.store(FIG15[0])
    info = s.generate_key()
    vault_key = connect(s, parties.vault)
    backup_key(s, parties.keymgr)
    backup(s, parties.vault, vault_key, 1)
    card_id = s.identity().card_id
    _, new = new_card(parties, parties.keymgr)
    with pytest.raises(KeyManagerClientError) as refused:
        parties.keymgr.restore_share(card_id, new.identity().card_id, new.new_transport_key())
    assert refused.value.status == 404 and "2-of-3 share" in refused.value.message
    assert restore_key_parts(new, parties.keymgr, parties.vault, card_id, s.read(1).certificate) == info


def test_a_share_kept_before_kinds_serves_either_restore(db_url: str) -> None:
    """Migration 8: a share escrowed when the key manager kept one per key (kind unknown, '')
    is still found by either restore, and a new escrow of one kind is found before it without
    deleting it (it may be the other kind's: an owner's recovery code)."""
    from servers.keymgr.repository import MIGRATIONS, PER_VALUE, SHAMIR, Escrow, KeyManagerRepository
    from servers.storage import Database

    card, key = bytes(8), bytes(range(8))
    before = Database.open(db_url, MIGRATIONS[:7])
    with before.transaction() as tx:
        tx.execute("INSERT INTO share_escrows (card_id, key_id, mode, sealed_share, created_at) VALUES (?, ?, ?, ?, ?)",
                   (card, key, 1, b"legacy", 1))
    before.close()
    db = Database.open(db_url, MIGRATIONS)
    try:
        repo = KeyManagerRepository(db)
        assert [e.sealed_seed for e in repo.shares(card, SHAMIR)] == [b"legacy"]
        assert [e.sealed_seed for e in repo.shares(card, PER_VALUE)] == [b"legacy"]
        repo.put_share(Escrow(card, key, 1, b"part", 2), "hanako", PER_VALUE)
        repo.put_share(Escrow(card, key, 1, b"part again", 3), "hanako", PER_VALUE)
        assert [e.sealed_seed for e in repo.shares(card, PER_VALUE)] == [b"legacy", b"part again"]
        assert [e.sealed_seed for e in repo.shares(card, SHAMIR)] == [b"legacy"]
    finally:
        db.close()
