"""Key rotation end to end (seed E7, E8) with a real key manager and vault on loopback, the
vault on SQLite and PostgreSQL: every value moves to the new key exactly once and restores from
it; the key manager keeps only the new key; a lost answer at every request and a power cut at
card writes, each followed by a re-run, end in the same place."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from apdu.keys import KeyMode
from apdu.records import ValueFlags
from card import SimulatedCard
from host import factors
from host.backup import backup, connect, restore
from host.demo import FIG15
from host.keymgr_client import KeyManagerClient, KeyManagerClientError
from host.keys import backup_key
from host.rotation import encrypted_certificates, rotate
from host.session import WalletSession
from host.transport import CardRemovedError
from host.transport.inprocess import connect_card
from host.vault_client import VaultClient, VaultClientError
from servers.keymgr.server import running as keymgr_running
from servers.vault.server import running as vault_running

from ..card.helpers import PIN
from ..conftest import FULL, ISSUER
from .test_recovery import Faults, World
from .test_split_key import FAST

PASSWORD = "correct horse battery"
names = (f"rotator{i}" for i in itertools.count())


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[World]:
    with keymgr_running(f"sqlite:///{tmp_path / 'km.db'}", tmp_path / "km.pem", tmp_path / "master.key",
                        FAST) as km_url, vault_running(db_url, tmp_path / "vault.pem") as vault_url:
        yield World(km_url, vault_url)


@dataclass
class Owner:
    name: str
    card: SimulatedCard
    originals: dict[int, bytes]  # value id -> body, whatever is on the card or at the vault


def unlocked(card: SimulatedCard) -> WalletSession:
    s = WalletSession(connect_card(card))
    s.verify_pin(PIN)
    return s


def owner_with_backups(world: World, n: int = 6) -> Owner:
    """n values: most backed up encrypted, one plain, one kept on the card too, one live."""
    name = next(names)
    card = SimulatedCard.manufacture(size=65536, index_capacity=256)
    s = WalletSession(connect_card(card))
    ISSUER.personalize(s, PIN)
    s.verify_pin(PIN)
    originals = {}
    for i in range(n):
        r = FIG15[i % len(FIG15)]
        value_id = s.store(replace(r, name=f"{r.name} #{i}"))
        originals[value_id] = s.read(value_id).body()
    s.generate_key()
    with KeyManagerClient(world.keymgr_url) as km, VaultClient(world.vault_url) as vault:
        km.create_account(name, PASSWORD)
        factors.login(km, name, PASSWORD)
        backup_key(s, km)
        key = connect(s, vault)
        ids = list(originals)
        backup(s, vault, key, ids[0], encrypt=False)
        backup(s, vault, key, ids[1], keep=True)
        for value_id in ids[2:-1]:
            backup(s, vault, key, value_id)
    return Owner(name, card, originals)


def rotate_once(world: World, owner: Owner, restore_all: bool = False,
                km_client: type[KeyManagerClient] = KeyManagerClient,
                vault_client: type[VaultClient] = VaultClient) -> None:
    with km_client(world.keymgr_url) as km, vault_client(world.vault_url) as vault:
        factors.login(km, owner.name, PASSWORD)
        s = unlocked(owner.card)
        connect(s, vault)
        rotate(s, vault, km, restore_all=restore_all)


def assert_rotated(world: World, owner: Owner, old_key: bytes, everything_on_card: bool = False) -> None:
    """One current key everywhere, and every value exactly once: on the card, or certified on
    the card and decryptable by it from the vault."""
    s = unlocked(owner.card)
    key = s.key_info()
    assert key.key_id != old_key and s.key_info(next_key=True).mode == KeyMode.NONE
    with KeyManagerClient(world.keymgr_url) as km, VaultClient(world.vault_url) as vault:
        factors.login(km, owner.name, PASSWORD)
        card_id = s.identity().card_id
        assert [e.key_id for e in km.status()[1][card_id]] == [key.key_id]  # the old key destroyed
        assert km.rotation(card_id) is None
        connect(s, vault)
        certified = {e.id for e in s.list() if e.flags & ValueFlags.CERTIFICATE}
        assert len(vault.registrations()) == len(certified)  # old registrations released
        if everything_on_card:
            assert not certified
        for value_id in certified:
            restore(s, vault, value_id)
    assert {e.id: s.read(e.id).body() for e in s.list()} == owner.originals
    assert {e.flags for e in s.list()} == {ValueFlags.NONE}


def test_every_value_moves_to_the_new_key(world: World) -> None:
    owner = owner_with_backups(world)
    old = unlocked(owner.card).key_info().key_id
    with KeyManagerClient(world.keymgr_url) as km, VaultClient(world.vault_url) as vault:
        factors.login(km, owner.name, PASSWORD)
        s = unlocked(owner.card)
        connect(s, vault)
        result = rotate(s, vault, km)
        assert result.moved == len(owner.originals) - 3 and result.destroyed == 1
        assert encrypted_certificates(s, rotated=True) == []
    assert_rotated(world, owner, old)


def test_e8_restores_everything_to_the_card_under_the_new_key(world: World) -> None:
    owner = owner_with_backups(world)
    old = unlocked(owner.card).key_info().key_id
    rotate_once(world, owner, restore_all=True)
    assert_rotated(world, owner, old, everything_on_card=False)
    s = unlocked(owner.card)
    assert encrypted_certificates(s) == []


def test_the_key_manager_keeps_its_record_straight(world: World) -> None:
    owner = owner_with_backups(world, 3)
    s = unlocked(owner.card)
    card_id, key_id = s.identity().card_id, s.key_info().key_id
    with KeyManagerClient(world.keymgr_url) as km:
        factors.login(km, owner.name, PASSWORD)
        with pytest.raises(KeyManagerClientError) as unescrowed:
            km.begin_rotation(card_id, key_id, bytes(8))
        assert unescrowed.value.status == 409 and "escrow the new key" in unescrowed.value.message
        with pytest.raises(KeyManagerClientError) as nothing_left:
            km.finish_rotation(card_id, bytes(8))
        assert nothing_left.value.status == 409
        assert [e.key_id for e in km.status()[1][card_id]] == [key_id]  # nothing destroyed


def test_a_lost_answer_at_every_request_of_a_rotation(world: World) -> None:
    k, total = 1, None
    while total is None or k <= total:
        owner = owner_with_backups(world, 4)
        old = unlocked(owner.card).key_info().key_id
        faults = Faults(k)
        try:
            rotate_once(world, owner, km_client=faults.client(KeyManagerClient),
                        vault_client=faults.client(VaultClient))
            total = faults.calls
        except (KeyManagerClientError, VaultClientError):
            pass
        rotate_once(world, owner)  # the re-run finishes
        assert_rotated(world, owner, old)
        k += 1 if FULL or total is None or k < 12 else 3
    assert total is not None and total > 10


def test_a_power_cut_at_every_card_write_of_a_rotation(world: World) -> None:
    n, writes = 0, None
    while writes is None or n <= writes:
        owner = owner_with_backups(world, 4)
        old = unlocked(owner.card).key_info().key_id
        start = owner.card.eeprom.page_writes
        owner.card.eeprom.cut_power_after(n)
        try:
            rotate_once(world, owner)
            writes = owner.card.eeprom.page_writes - start
        except CardRemovedError:
            pass
        owner.card.eeprom.cut_power_after(None)
        rotate_once(world, owner)
        assert_rotated(world, owner, old)
        n += 1 if FULL else 9
    assert writes is not None and writes > 10


def test_a_rotation_moves_values_in_rounds_not_requests_per_value(world: World) -> None:
    """Issue 18: a rotation made three requests a value (restore, register, release); it moves
    its values in rounds of a restoration batch and a registration batch, and releases the old
    registrations in batches too, so 32 more values cost a handful of requests."""
    requests = []
    for n in (8, 40):
        owner = owner_with_backups(world, n)
        old = unlocked(owner.card).key_info().key_id
        counting = Faults(0)  # loses no answer: counts the requests of both clients
        rotate_once(world, owner, km_client=counting.client(KeyManagerClient), vault_client=counting.client(VaultClient))
        assert_rotated(world, owner, old)
        requests.append(counting.calls)
    assert requests[1] - requests[0] <= 3 * 2, requests  # 32 more values: 2 more rounds, one more release batch
