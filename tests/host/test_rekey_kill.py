"""Kill the key manager or the vault (SIGKILL, real processes) at a random moment of a
re-keying by the key manager, on a card that lost its key; restart it, check conservation,
re-run: the card ends with one current key and every value exactly once, as after a card-side
rotation (tests/host/test_rotation_kill.py, whose trials these mirror). With the kill the
key manager's own requests to the vault fail too, mid-replacement.

Sized by EVB_TEST_SIZE: 4 trials of 40 values in CI, 100 trials of 200 values with ``full``."""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from card.keys import wipe_key_store
from keyfile import load_or_create_key, public_bytes
from servers.keymgr.server import statement_key_path

from ..processes import KeyManagerProcess, VaultProcess
from ..servers.test_recovery import World
from ..servers.test_rekey import rekey_once
from ..servers.test_rotation import assert_rotated, owner_with_backups, unlocked
from .test_rotation_kill import TRIALS, VALUES, kill_and_rerun


@contextmanager
def linked_servers(tmp_path: Path) -> Iterator[tuple[VaultProcess, KeyManagerProcess, World]]:
    """A vault trusting the key manager's statements and a key manager that knows the vault, as
    real processes (killed on the way out)."""
    trusted = public_bytes(load_or_create_key(statement_key_path(tmp_path / "keymgr-key.pem")).public_key())
    vault = VaultProcess(tmp_path, keymgr_key=trusted)
    keymgr = KeyManagerProcess(tmp_path, vault_url=vault.url)
    try:
        vault.start()
        keymgr.start()
        yield vault, keymgr, World(keymgr.url, vault.url)
    finally:
        vault.kill()
        keymgr.kill()


@pytest.mark.parametrize("trial", range(TRIALS))
def test_kill_a_server_mid_rekeying(trial: int, tmp_path: Path) -> None:
    rng = random.Random(trial)
    with linked_servers(tmp_path) as (vault, keymgr, world):
        owner = owner_with_backups(world, VALUES)
        old = unlocked(owner.card).key_info().key_id
        wipe_key_store(owner.card.eeprom)
        restore_all = rng.random() < 0.5
        kill_and_rerun(rng, vault, keymgr, world, owner,
                       lambda km, v: rekey_once(world, owner, restore_all, km_client=km, vault_client=v))
        rekey_once(world, owner, restore_all)  # the re-run finishes
        assert_rotated(world, owner, old)
