"""Kill the key manager or the vault (SIGKILL, real processes) at a random request of the whole
story the seed's E7 and E4 tell together: the key manager re-keys a card that lost its key
(every value re-sealed with the vault's part of the new key), the card is then lost, and a new
card takes its certificates, rebuilds the new key from the key manager's part and the vault's
(no recovery code) and restores every value. The server restarts on its database; nothing is
lost mid-run, and the re-run ends with every value exactly once on the new card.

Sized by EVB_TEST_SIZE: 4 trials of 12 values in CI, 100 trials of 40 values with ``full``."""

from __future__ import annotations

import random
from collections import Counter
from pathlib import Path

import pytest

from apdu.keys import KeyMode
from apdu.records import ValueFlags
from card import SimulatedCard
from card.keys import wipe_key_store
from host import factors
from host.api_client import ServiceError
from host.backup import BackupError, connect
from host.keymgr_client import KeyManagerClient
from host.keys import backup_key_parts
from host.vault_client import VaultClient, VaultClientError

from ..card.helpers import personalized
from ..conftest import FULL
from ..servers.test_recovery import World
from ..servers.test_rekey import backed_up_bodies, recover_per_value, rekey_once
from ..servers.test_rotation import PASSWORD, Owner, owner_with_backups, unlocked
from .test_rekey_kill import linked_servers
from .test_rotation_kill import conserved, kill_and_rerun

TRIALS = 100 if FULL else 4
VALUES = 40 if FULL else 12


def whole_story(world: World, owner: Owner, new_card: SimulatedCard, km: type[KeyManagerClient],
                vault: type[VaultClient]) -> None:
    """E7 until the job is finished (the card is reported lost only then), then E4."""
    with KeyManagerClient(world.keymgr_url) as client:
        factors.login(client, owner.name, PASSWORD)
        s = unlocked(owner.card)
        rekeyed = s.key_info().mode != KeyMode.NONE and client.rotation(s.identity().card_id) is None
    if not rekeyed:
        rekey_once(world, owner, km_client=km, vault_client=vault)
    recover_per_value(world, owner, new_card, km, vault)


def nothing_lost(world: World, owner: Owner, new_card: SimulatedCard) -> None:
    """Mid-run: before the loss report, each value is on the old card or certified there and
    held by the vault; after it, each value on the new card is an original, live or held by
    the vault, and none is there twice."""
    try:
        conserved(world, owner)
        return
    except VaultClientError as exc:
        assert exc.status == 403, exc.message  # revoked: the new card holds what came over
    t = unlocked(new_card)
    originals = Counter(owner.originals.values())
    live = Counter(t.read(e.id).body() for e in t.list() if not e.flags & ValueFlags.CERTIFICATE)
    assert not live - originals, "a value came back twice, or one never backed up"
    with VaultClient(world.vault_url) as vault:
        connect(t, vault)
        for e in t.list():
            if e.flags & ValueFlags.CERTIFICATE:
                assert vault.restore(t.read(e.id).certificate), f"value {e.id}: the vault lost it"


@pytest.mark.parametrize("trial", range(TRIALS))
def test_kill_a_server_mid_rekeying_then_per_value_recovery(trial: int, tmp_path: Path) -> None:
    rng = random.Random(trial)
    with linked_servers(tmp_path) as (vault, keymgr, world):
        owner = owner_with_backups(world, VALUES)
        with KeyManagerClient(world.keymgr_url) as km:
            factors.login(km, owner.name, PASSWORD)
            backup_key_parts(unlocked(owner.card), km)
        wipe_key_store(owner.card.eeprom)
        expected = backed_up_bodies(owner)
        new_card, _ = personalized(65536, 256)
        kill_and_rerun(rng, vault, keymgr, world, owner,
                       lambda km, v: whole_story(world, owner, new_card, km, v), requests=3 * VALUES,
                       check=lambda: nothing_lost(world, owner, new_card), cut=(ServiceError, BackupError))
        whole_story(world, owner, new_card, KeyManagerClient, VaultClient)  # the re-run finishes
        t = unlocked(new_card)
        assert Counter(t.read(e.id).body() for e in t.list()) == expected  # every value exactly once
        assert {e.flags for e in t.list()} == {ValueFlags.NONE}
        with VaultClient(world.vault_url) as v:
            connect(t, v)
            assert v.registrations() == []
