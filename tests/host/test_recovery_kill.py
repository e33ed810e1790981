"""Kill the vault process (SIGKILL) in the two flows the value-flow trials of test_vault_kill.py
do not reach: a restore's release (the card's receipts that let the vault forget what came back)
and a lost card's handovers (the vault handing the certificates over to the replacing card, which
then restores and releases them). After each kill the vault restarts on the same database, value
is checked conserved, and a re-run completes the flow.

Sized by EVB_TEST_SIZE: 3 trials of each in CI, 50 with ``full``."""

from __future__ import annotations

import random
import sqlite3
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apdu.records import ValueFlags
from host.backup import BackupError, backup, connect, release_unneeded, restore
from host.keymgr_client import KeyManagerClient
from host.vault_client import VaultClient, VaultClientError
from servers.keymgr.server import running as keymgr_running

from ..card.helpers import personalized
from ..conftest import FULL
from ..processes import VaultProcess
from ..servers.test_recovery import Lost, World, assert_recovered, lose_a_card, recover_onto, unlocked
from ..servers.test_split_key import FAST
from .test_vault_kill import conserved, wallet

TRIALS = 50 if FULL else 3


class KillAt(VaultClient):
    """Kills the vault a moment (``delay`` s) after sending the k-th request to ``path``: before
    the vault reads it, while it works, or after it commits and before the answer arrives."""

    def __init__(self, url: str, vault: VaultProcess, path: str, k: int, delay: float) -> None:
        super().__init__(url)
        self.vault, self.path, self.k, self.delay, self.sent = vault, path, k, delay, 0
        self.killer: threading.Timer | None = None

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        if path == self.path:
            self.sent += 1
            if self.sent == self.k:
                self.killer = threading.Timer(self.delay, self.vault.kill)
                self.killer.start()
        return super()._call(method, path, body)

    def killed(self) -> bool:
        """Whether the kill was set off (then waited for): a trial that never killed proves nothing."""
        if self.killer is None:
            return False
        self.killer.join()
        return True


@pytest.mark.parametrize("trial", range(TRIALS))
def test_kill_the_vault_while_it_releases_restored_values(trial: int, tmp_path: Path) -> None:
    """Back six values up and restore some, the vault killed at a random release (the last step of
    a restore: the card's receipt for the value it took back). The card keeps the values it took
    and the certificates of the others, whose values the vault still has; the re-run restores the
    rest of the chosen ones and releases exactly what came back."""
    rng = random.Random(trial)
    card, originals = wallet(6)
    ids = list(originals)
    chosen = rng.sample(ids, rng.randint(2, len(ids)))
    vault = VaultProcess(tmp_path)
    try:
        vault.start()
        s = unlocked(card)
        with VaultClient(vault.url) as client:
            key = connect(s, client)
            for value_id in ids:
                backup(s, client, key, value_id)
        with KillAt(vault.url, vault, "/v1/releases", rng.randint(1, len(chosen)), rng.uniform(0, 0.01)) as client:
            connect(s, client)
            try:
                for value_id in chosen:
                    restore(s, client, value_id)
            except (VaultClientError, BackupError):
                pass  # the vault went away mid-run
            assert client.killed()
        vault.kill()
        vault.start()  # on the same database
        conserved(card, originals, vault.url)
        s = unlocked(card)
        with VaultClient(vault.url) as client:
            connect(s, client)
            for entry in s.list():
                if entry.id in chosen and entry.flags & ValueFlags.CERTIFICATE:
                    restore(s, client, entry.id)
            release_unneeded(s, client)
            assert len(client.registrations()) == len(ids) - len(chosen)  # the certificates' values stay
        conserved(card, originals, vault.url)
    finally:
        vault.kill()


@pytest.fixture
def keymgr_url(tmp_path: Path) -> Iterator[str]:
    with keymgr_running(f"sqlite:///{tmp_path / 'km.db'}", tmp_path / "km.pem", tmp_path / "master.key",
                        FAST) as url:
        yield url


def conserved_after_loss(lost: Lost, card: Any, vault_db: Path) -> None:
    """Each value the lost card backed up is live on the new card at most once, and any that is
    not is still at the vault, held for the new card (handed over or waiting to be)."""
    s = unlocked(card)
    live = Counter(s.read(e.id).body() for e in s.list() if not e.flags & ValueFlags.CERTIFICATE)
    assert set(live) <= set(lost.backed_up) and set(live.values()) <= {1}, "a value came back twice"
    new_card = s.identity().card_id
    with sqlite3.connect(vault_db) as db:
        held = {bytes(v) for (v,) in db.execute("SELECT value FROM registrations WHERE holder = ?", (new_card,))}
    for body in lost.backed_up:
        assert body in live or body in held, "a value of the lost card is gone"


@pytest.mark.parametrize("trial", range(TRIALS))
def test_kill_the_vault_while_it_hands_a_lost_cards_values_over(trial: int, keymgr_url: str, tmp_path: Path) -> None:
    """A lost card's recovery onto a new card with the vault killed at a random handover: no value
    is lost or comes back twice, and the re-run recovers every one exactly once."""
    rng = random.Random(trial)
    with KeyManagerClient(keymgr_url) as km:
        trusted = km.statement_key()
    vault = VaultProcess(tmp_path, keymgr_key=trusted)
    try:
        vault.start()
        world = World(keymgr_url, vault.url)
        lost = lose_a_card(world, encrypted=False)
        new, _ = personalized()
        k, delay = rng.randint(1, len(lost.backed_up)), rng.uniform(0, 0.01)
        clients: list[KillAt] = []

        def killing(url: str) -> KillAt:
            clients.append(KillAt(url, vault, "/v1/handovers", k, delay))
            return clients[-1]

        try:
            recover_onto(world, lost, new, vault_client=killing)  # type: ignore[arg-type]
        except (VaultClientError, BackupError):
            pass  # the vault went away mid-run
        assert clients[0].killed()
        vault.kill()
        vault.start()  # on the same database
        conserved_after_loss(lost, new, tmp_path / "vault.db")
        recover_onto(world, lost, new)  # the re-run
        assert_recovered(world, lost, new)
    finally:
        vault.kill()
