"""Claims 25-27 and 35-37 on every path that writes a value back to the card, not only plain
restore: server-assisted restore (E6), lost-card recovery, and E8's restore-all before a key
rotation. A full card follows the shortage policy: abort leaves the certificate in place and not
pending (and a batch goes on), automatic backs up what the card's conditions select and then
finishes, exactly as plain restore does."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from apdu import triggers as t
from apdu.records import ValueFlags, ValueRecord
from card import SimulatedCard
from host import factors
from host import triggers as tr
from host.assisted import assisted_restore
from host.backup import BackupError, backup, connect
from host.keymgr_client import KeyManagerClient
from host.keys import backup_key, enrol_card
from host.recovery import recover
from host.rotation import rotate
from host.session import WalletSession
from host.vault_client import VaultClient
from keyfile import load_or_create_key, public_bytes
from servers.keymgr.server import running as keymgr_running
from servers.keymgr.server import statement_key_path
from servers.vault.server import running as vault_running

from ..card.helpers import clone
from ..servers.test_split_key import FAST
from .test_triggers_flow import FIG15, FULL, TODAY, certificates, full_card_cells, unlocked

PASSWORD = "correct horse battery"
MakeRoom = Callable[[int, str], object]


@dataclass(frozen=True)
class World:
    keymgr: KeyManagerClient
    vault: VaultClient
    link: tr.VaultLink


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    km_key = tmp_path / "km.pem"
    trusted = public_bytes(load_or_create_key(statement_key_path(km_key)).public_key())
    with vault_running(f"sqlite:///{tmp_path / 'v.db'}", tmp_path / "v.pem", keymgr_key=trusted) as vault_url:
        config = FAST.__class__(**{**FAST.__dict__, "vault_url": vault_url})
        with keymgr_running(f"sqlite:///{tmp_path / 'km.db'}", km_key, tmp_path / "master.key", config) as km_url, \
                KeyManagerClient(km_url) as keymgr, VaultClient(vault_url) as vault, \
                tr.VaultLink(vault_url) as link:
            keymgr.create_account("hanako", PASSWORD)
            factors.login(keymgr, "hanako", PASSWORD)
            yield World(keymgr, vault, link)


def policy(s: WalletSession, world: World, which: t.ShortagePolicy) -> MakeRoom:
    return lambda needed, what: tr.make_room(s, world.link, needed, what, TODAY, which)


def full_card_with_an_encrypted_backup(world: World, card: SimulatedCard | None = None) -> WalletSession:
    """The full fig. 15 card with a key in escrow, prepaid E (value 3) backed up encrypted and
    its room taken by a later value: restoring E needs the shortage policy."""
    s = unlocked(card or clone(FULL))
    s.generate_key()
    backup_key(s, world.keymgr)
    backup(s, world.vault, connect(s, world.vault), 3)
    s.store(ValueRecord(FIG15[2].type, "Late filler", payload=bytes(200)))
    assert s.list()[2].flags == ValueFlags.CERTIFICATE
    return s


def test_assisted_restore_follows_the_shortage_policy(world: World) -> None:
    s = full_card_with_an_encrypted_backup(world)
    with pytest.raises(BackupError, match="shortage policy: abort"):
        assisted_restore(s, world.keymgr, 3, world.vault, policy(s, world, t.ShortagePolicy.ABORT))
    assert s.list()[2].flags == ValueFlags.CERTIFICATE  # kept, and not left pending
    outcome = assisted_restore(s, world.keymgr, 3, world.vault, policy(s, world, t.ShortagePolicy.AUTOMATIC))
    assert outcome.action == "restored via the key manager"
    assert s.list()[2].flags == ValueFlags.NONE and s.read(3).payload == bytes(400)
    assert set(certificates(s)) & {2, 4}  # the card's conditions chose what made the room


def test_e8_restore_all_follows_the_shortage_policy_before_the_key_moves(world: World) -> None:
    s = full_card_with_an_encrypted_backup(world)
    key = s.key_info()
    with pytest.raises(BackupError, match="shortage policy: abort"):
        rotate(s, world.vault, world.keymgr, restore_all=True, make_room=policy(s, world, t.ShortagePolicy.ABORT))
    assert s.key_info() == key and s.key_info(next_key=True).mode == 0  # the key did not move
    assert s.list()[2].flags == ValueFlags.CERTIFICATE
    result = rotate(s, world.vault, world.keymgr, restore_all=True,
                    make_room=policy(s, world, t.ShortagePolicy.AUTOMATIC))
    assert result.restored == 1 and s.key_info().key_id != key.key_id
    assert s.read(3).payload == bytes(400)


def test_lost_card_recovery_follows_the_shortage_policy(world: World) -> None:
    """The lost card backed up prepaid E; its replacement is already full."""
    lost = unlocked(clone(FULL))
    backup(lost, world.vault, connect(lost, world.vault), 3)
    enrol_card(lost, world.keymgr)
    lost_id = lost.identity().card_id
    new = unlocked(clone(full_card_cells()))  # another card (a clone of FULL would share its id): ~300 B free
    connect(new, world.vault)
    aborted = recover(new, world.vault, world.keymgr, lost_id, make_room=policy(new, world, t.ShortagePolicy.ABORT))
    assert not aborted.restored and len(aborted.failed) == 1 and "shortage policy: abort" in aborted.failed[0][1]
    handed = aborted.failed[0][0]
    assert next(e for e in new.list() if e.id == handed).flags == ValueFlags.CERTIFICATE  # not pending
    done = recover(new, world.vault, world.keymgr, lost_id, make_room=policy(new, world, t.ShortagePolicy.AUTOMATIC))
    assert [o.value_id for o in done.restored] == [handed] and new.read(handed).payload == bytes(400)
    assert done.imported == 0  # the certificate came once; the re-run only restored it


def test_e8_by_the_key_manager_follows_the_shortage_policy(world: World) -> None:
    """Claim 17 with claims 25/26: the card lost its key; the key manager re-keys it and brings
    the values back. Abort leaves the value a valid certificate under the new key, not pending,
    and the batch finishes (release, old key destroyed); automatic makes room and restores."""
    from card.keys import wipe_key_store
    from host.rekey import rekey_by_keymgr

    card = clone(FULL)
    s = full_card_with_an_encrypted_backup(world, card)
    old = s.key_info()
    wipe_key_store(card.eeprom)
    aborted = rekey_by_keymgr(s, world.vault, world.keymgr, restore_all=True,
                              make_room=policy(s, world, t.ShortagePolicy.ABORT))
    assert aborted.restored == 0 and [i for i, _ in aborted.failed] == [3]
    assert "shortage policy: abort" in aborted.failed[0][1]
    assert aborted.key.key_id != old.key_id and s.key_info() == aborted.key and aborted.destroyed == 1
    assert s.list()[2].flags == ValueFlags.CERTIFICATE  # kept, and not left pending
    done = rekey_by_keymgr(s, world.vault, world.keymgr, restore_all=True,
                           make_room=policy(s, world, t.ShortagePolicy.AUTOMATIC))
    assert done.restored == 1 and not done.failed
    assert s.list()[2].flags == ValueFlags.NONE and s.read(3).payload == bytes(400)
    assert set(certificates(s)) & {2, 4}  # the card's conditions chose what made the room
