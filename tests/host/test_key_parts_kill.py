"""Kill the key manager or the vault (SIGKILL, real processes) at a random request of the
per-value split (seed E4: the part escrowed, encrypted backups carrying the other part, the key
rebuilt on a new card), restart it on the same database, check conservation, re-run: every value
is on the old card or certified there and held by the vault, the new card holds the old key or
none (never another), and the re-run ends with the key rebuilt.

Sized by EVB_TEST_SIZE: 4 trials of 12 values in CI, 100 trials of 30 values with ``full``."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from apdu.keys import KeyInfo, KeyMode
from apdu.records import ValueFlags
from card import SimulatedCard
from host import factors
from host.api_client import ServiceError
from host.backup import BackupError, backup, connect
from host.keymgr_client import KeyManagerClient
from host.keys import backup_key_parts, enrol_card, restore_key_parts
from host.vault_client import VaultClient

from ..card.helpers import personalized
from ..conftest import FULL
from ..processes import KeyManagerProcess, VaultProcess
from ..servers.test_rotation import PASSWORD, unlocked
from .test_rotation_kill import Killer
from .test_vault_kill import wallet

TRIALS = 100 if FULL else 4
VALUES = 30 if FULL else 12  # the old card's index has 32 entries


def run(old: SimulatedCard, new: SimulatedCard, originals: dict[int, bytes], km: KeyManagerClient,
        vault: VaultClient) -> KeyInfo:
    """The whole story, each step idempotent: escrow part 405, back everything up encrypted
    (part 406 rides along), rebuild the key on the new card from both parts."""
    factors.login(km, "hanako", PASSWORD)
    s = unlocked(old)
    key = connect(s, vault)
    backup_key_parts(s, km)
    for value_id in originals:
        backup(s, vault, key, value_id)
    certificate = s.read(next(iter(originals))).certificate
    t = unlocked(new)
    connect(t, vault)
    enrol_card(t, km)
    if t.key_info().mode == KeyMode.NONE:
        restore_key_parts(t, km, vault, s.identity().card_id, certificate)
    return t.key_info()


def conserved(old: SimulatedCard, new: SimulatedCard, originals: dict[int, bytes], vault_url: str,
              info: KeyInfo) -> None:
    s = unlocked(old)
    assert s.key_info() == info
    with VaultClient(vault_url) as vault:
        connect(s, vault)
        for value_id, body in originals.items():
            if s.read(value_id).flags & ValueFlags.CERTIFICATE:
                assert vault.restore(s.read(value_id).certificate), f"value {value_id}: the vault lost it"
            else:
                assert s.read(value_id).body() == body, f"value {value_id} changed"
    assert unlocked(new).key_info() in (KeyInfo(KeyMode.NONE), info)  # the old key or none, never another


@pytest.mark.parametrize("trial", range(TRIALS))
def test_kill_a_server_during_the_per_value_split(trial: int, tmp_path: Path) -> None:
    rng = random.Random(trial)
    vault, keymgr = VaultProcess(tmp_path), KeyManagerProcess(tmp_path)
    try:
        vault.start()
        keymgr.start()
        old, originals = wallet(VALUES)
        info = unlocked(old).generate_key()
        new, _ = personalized()
        with KeyManagerClient(keymgr.url) as km:
            km.create_account("hanako", PASSWORD)
        victim = rng.choice([vault, keymgr])
        killer = Killer(victim, rng.randint(1, VALUES), rng.uniform(0, 0.01))
        try:
            with killer.client(KeyManagerClient)(keymgr.url) as km, killer.client(VaultClient)(vault.url) as v:
                run(old, new, originals, km, v)
        except (ServiceError, BackupError):
            pass  # the server went away mid-run
        assert killer.timer is not None, "the run ended before the chosen request"
        killer.timer.join()
        victim.kill()
        victim.start()  # on the same database
        conserved(old, new, originals, vault.url, info)
        with KeyManagerClient(keymgr.url) as km, VaultClient(vault.url) as v:
            assert run(old, new, originals, km, v) == info  # the re-run finishes
        conserved(old, new, originals, vault.url, info)
        assert all(unlocked(old).read(i).flags & ValueFlags.CERTIFICATE for i in originals)
    finally:
        vault.kill()
        keymgr.kill()
