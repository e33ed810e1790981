"""Kill the vault process at random points of backup and restore runs, restart it, re-run:
value is conserved at every checkpoint and at the end every value is on the card exactly once.

Sized by EVB_TEST_SIZE: 8 trials in CI, 100 with ``full`` (reported in the closing note)."""

from __future__ import annotations

import random
import sqlite3
import threading
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from apdu.certificate import Certificate
from apdu.records import ValueFlags
from card import SimulatedCard
from host.backup import BackupError, backup, connect, release_unneeded, restore
from host.demo import FIG15
from host.session import WalletSession
from host.transport.inprocess import connect_card
from host.vault_client import VaultClient, VaultClientError
from servers.vault.server import running

from ..card.helpers import personalized
from ..conftest import FULL
from ..processes import VaultProcess

TRIALS = 100 if FULL else 8
PIN = "1234"


def wallet(n: int) -> tuple[SimulatedCard, dict[int, bytes]]:
    card, s = personalized(index_capacity=32)
    originals = {}
    for i in range(n):
        r = FIG15[i % len(FIG15)]
        value_id = s.store(replace(r, name=f"{r.name} #{i}"))
        originals[value_id] = s.read(value_id).body()
    return card, originals


def conserved(card: SimulatedCard, originals: dict[int, bytes], vault_url: str, ca: Path | None = None) -> None:
    """Each value is live on the card, or the card holds its certificate and the vault its value."""
    s = WalletSession(connect_card(card))
    s.verify_pin(PIN)
    with VaultClient(vault_url, ca=ca) as client:
        connect(s, client)
        entries = {e.id: e for e in s.list()}
        assert set(entries) == set(originals)
        for value_id, body in originals.items():
            if entries[value_id].flags & ValueFlags.CERTIFICATE:
                cert = s.begin_restore(value_id)
                assert client.restore(cert) == body, f"value {value_id}: the vault lost it"
                s.cancel_pending(value_id)
            else:
                assert s.read(value_id).body() == body, f"value {value_id} changed"


class KillingClient(VaultClient):
    """Kills the vault a moment after sending its k-th request: before the vault reads it,
    while it works, or after it commits but before the answer arrives (a lost response)."""

    def __init__(self, url: str, vault: VaultProcess, k: int, delay: float) -> None:
        super().__init__(url)
        self.vault, self.k, self.delay, self.calls = vault, k, delay, 0
        self.killer: threading.Timer | None = None

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        self.calls += 1
        if self.calls == self.k:
            self.killer = threading.Timer(self.delay, self.vault.kill)
            self.killer.start()
        return super()._call(method, path, body)


class LosingClient(VaultClient):
    """Loses the answer to its k-th request: the vault did the work, the terminal never hears."""

    def __init__(self, url: str, k: int) -> None:
        super().__init__(url)
        self.k, self.calls = k, 0

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        self.calls += 1
        answer = super()._call(method, path, body)
        if self.calls == self.k:
            raise VaultClientError(0, "the connection dropped before the answer arrived")
        return answer


def run(s: WalletSession, client: VaultClient, key: bytes, phase: str, ids: list[int]) -> None:
    for value_id in ids:
        try:
            backup(s, client, key, value_id) if phase == "backup" else restore(s, client, value_id)
        except (VaultClientError, BackupError):
            return  # the vault went away mid-run


@pytest.mark.parametrize("trial", range(TRIALS))
def test_kill_the_vault_mid_flow(trial: int, tmp_path: Path) -> None:
    rng = random.Random(trial)
    card, originals = wallet(6)
    ids = list(originals)
    vault = VaultProcess(tmp_path)
    try:
        for phase in ("backup", "restore"):
            vault.start()
            s = WalletSession(connect_card(card))
            s.verify_pin(PIN)
            with KillingClient(vault.url, vault, k=0, delay=rng.uniform(0, 0.01)) as client:
                key = connect(s, client)
                client.calls, client.k = 0, rng.randint(1, len(ids))  # the k-th request of the flow
                run(s, client, key, phase, ids)
                if client.killer is not None:
                    client.killer.join()
            vault.kill()
            vault.start()  # restart on the same database
            conserved(card, originals, vault.url)
            s = WalletSession(connect_card(card))
            s.verify_pin(PIN)
            with VaultClient(vault.url) as client:  # the re-run completes the phase
                key = connect(s, client)
                for value_id in ids:
                    (backup(s, client, key, value_id) if phase == "backup" else restore(s, client, value_id))
                flags = {e.flags for e in s.list()}
                assert flags == ({ValueFlags.CERTIFICATE} if phase == "backup" else {ValueFlags.NONE})
                if phase == "restore":
                    release_unneeded(s, client)
                    assert client.registrations() == []
            vault.kill()
        s = WalletSession(connect_card(card))
        assert {e.id: s.read(e.id).body() for e in s.list()} == originals
    finally:
        vault.kill()


def lost_response_trial(url: str, k: int) -> int:
    """Back up then restore three values with the k-th answer lost, re-run: answers the requests."""
    card, originals = wallet(3)
    ids = list(originals)
    calls = 0
    for phase in ("backup", "restore"):
        s = WalletSession(connect_card(card))
        s.verify_pin(PIN)
        with LosingClient(url, k - calls) as client:
            try:
                run(s, client, connect(s, client), phase, ids)
            except VaultClientError:
                pass  # lost while connecting
            calls += client.calls
        conserved(card, originals, url)
        s = WalletSession(connect_card(card))
        s.verify_pin(PIN)
        with VaultClient(url) as client:
            key = connect(s, client)
            for value_id in ids:
                backup(s, client, key, value_id) if phase == "backup" else restore(s, client, value_id)
            release_unneeded(s, client)
    s = WalletSession(connect_card(card))
    assert {e.id: s.read(e.id).body() for e in s.list()} == originals
    assert {e.flags for e in s.list()} == {ValueFlags.NONE}
    return calls


def test_a_lost_response_at_every_request(tmp_path: Path) -> None:
    """Deterministic companion of the kill trials: each request of the flows in turn."""
    with running(f"sqlite:///{tmp_path / 'vault.db'}", tmp_path / "key.pem") as url:
        total = lost_response_trial(url, 0)
        assert total > 10
        for k in range(1, total + 1):
            lost_response_trial(url, k)
    with sqlite3.connect(tmp_path / "vault.db") as db:  # no trial left a registration behind
        assert db.execute("SELECT count(*) FROM registrations").fetchone() == (0,)


def test_certificate_survives_a_restart(tmp_path: Path) -> None:
    """Durability: what the vault answered before SIGKILL is there after the restart."""
    card, originals = wallet(1)
    vault = VaultProcess(tmp_path)
    try:
        vault.start()
        s = WalletSession(connect_card(card))
        s.verify_pin(PIN)
        with VaultClient(vault.url) as client:
            key = connect(s, client)
            backup(s, client, key, 1)
        vault.kill()
        vault.start()
        conserved(card, originals, vault.url)
        cert = Certificate.from_bytes(WalletSession(connect_card(card)).read(1).certificate)
        assert cert.counter == 0
    finally:
        vault.kill()
