"""Failover trials on a real cluster (scripts/cluster): while cards back values up to, or restore
them from, the vault behind haproxy, SIGKILL at a random moment the PostgreSQL primary (postmaster
and backends; pg_auto_failover promotes the standby or brings the node back), or one vault
replica, or haproxy. The flow then resumes by re-running, and a bank-style check follows every
trial: every value exactly once (live on its card, or its certificate on the card and the value
in the vault), every registration the vault acknowledged still there, registration counters
unique, and no answer a 5xx other than 503.

Sized by EVB_TEST_SIZE: in CI one primary kill during a backup; with ``full`` 100 trials
rotating victims and phases. Prints the recovery time per trial (kill to the first write through
the balancer that succeeds) and its median."""

from __future__ import annotations

import random
import ssl
import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

import httpx
import psycopg
import pytest

from apdu.records import ValueFlags
from card import SimulatedCard
from host.backup import BackupError, backup, connect, release_unneeded, restore
from host.demo import FIG15
from host.session import WalletSession
from host.transport.inprocess import connect_card
from host.vault_client import RegistrationInfo, VaultClient, VaultClientError

from ..card.helpers import personalized
from ..conftest import FULL, PIN
from ..host.test_vault_kill import conserved

TRIALS = 100 if FULL else 1
CARDS = 3 if FULL else 2
VALUES = 4
PLAN = [("primary", "backup")] if not FULL else [
    (victim, phase) for victim in ("primary", "primary", "replica", "haproxy") for phase in ("backup", "restore")]


@dataclass
class Ledger:
    """What the vault told the terminals: registrations it acknowledged, and any answer that
    breaks the servers' promise (a 5xx other than 503)."""

    acknowledged: list[RegistrationInfo]
    broken: list[str]


def recording_client(ledger: Ledger, before: Callable[[], None]) -> type[VaultClient]:
    class Recording(VaultClient):
        def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
            before()
            try:
                return super()._call(method, path, body)
            except VaultClientError as exc:
                if exc.status >= 500 and exc.status != 503:
                    ledger.broken.append(f"{method} {path}: {exc.status} {exc.message}")
                raise

        def register(self, value: bytes) -> RegistrationInfo:
            info = super().register(value)
            ledger.acknowledged.append(info)
            return info

        def register_encrypted(self, registered_value: bytes) -> RegistrationInfo:
            info = super().register_encrypted(registered_value)
            ledger.acknowledged.append(info)
            return info

    return Recording


def wallet(tag: str) -> tuple[SimulatedCard, dict[int, bytes]]:
    card, s = personalized(index_capacity=32)
    originals = {}
    for i in range(VALUES):
        r = FIG15[i % len(FIG15)]
        value_id = s.store(replace(r, name=f"{r.name} {tag}#{i}"))
        originals[value_id] = s.read(value_id).body()
    card.power_off()
    return card, originals


def unlocked(card: SimulatedCard) -> WalletSession:
    s = WalletSession(connect_card(card))
    s.verify_pin(PIN)
    return s


def run_phase(card: SimulatedCard, client: VaultClient, phase: str) -> None:
    """Back up (or restore) every value of the card; stops at the first refusal, as a terminal
    whose connection dropped would."""
    s = unlocked(card)
    try:
        key = connect(s, client)
        for entry in s.list():
            if phase == "backup" and not entry.flags & ValueFlags.CERTIFICATE:
                backup(s, client, key, entry.id)
            elif phase == "restore" and entry.flags & ValueFlags.CERTIFICATE:
                restore(s, client, entry.id)
        if phase == "restore":
            release_unneeded(s, client)
    except (VaultClientError, BackupError):
        pass


def vault_rows(cluster: Any) -> list[tuple[int, bytes]]:
    with psycopg.connect(cluster.layout.db_url("vault")) as conn:
        return [(int(c), bytes(cert)) for c, cert in
                conn.execute("SELECT counter, certificate FROM registrations").fetchall()]


def writes_again(cluster: Any, started: float) -> float:
    """Seconds from ``started`` until a write through the balancer succeeds (a challenge is a row)."""
    trust = ssl.create_default_context(cafile=str(cluster.layout.ca))
    while True:
        try:
            answer = httpx.post(f"{cluster.layout.vault_url}/v1/challenges", json={"card_id": "00" * 8},
                                verify=trust, timeout=10)
            if answer.status_code == 200:
                return time.monotonic() - started
            assert answer.status_code == 503, f"{answer.status_code} {answer.text}"
        except httpx.HTTPError:
            pass
        assert time.monotonic() - started < 120, "the cluster did not recover in 2 minutes"
        time.sleep(0.05)


class Victim:
    """Kills one part of the cluster a random moment after the k-th vault request of a run."""

    def __init__(self, cluster: Any, kind: str, k: int, delay: float) -> None:
        self.cluster, self.kind, self.k, self.delay = cluster, kind, k, delay
        self.calls = 0
        self.killed_at: float | None = None
        self.timer: threading.Timer | None = None

    def count(self) -> None:
        self.calls += 1
        if self.calls == self.k:
            self.timer = threading.Timer(self.delay, self.kill)
            self.timer.start()

    def kill(self) -> None:
        self.killed_at = time.monotonic()
        if self.kind == "primary":
            self.cluster.kill_postgres(self.cluster.primary())
        elif self.kind == "replica":
            self.cluster.kill("vault0")
        else:
            self.cluster.kill("haproxy")

    def recover(self) -> float | None:
        """Bring the part back (as a supervisor would) and answer the recovery time."""
        if self.timer is not None:
            self.timer.join()
        if self.killed_at is None:
            return None
        if self.kind == "haproxy":
            self.cluster.start_haproxy()
        took = writes_again(self.cluster, self.killed_at)
        if self.kind == "replica":
            self.cluster.start_replica("vault", 0)
        self.cluster.wait_healthy()
        return took


RECOVERIES: list[tuple[str, float]] = []


@pytest.mark.parametrize("trial", range(TRIALS))
def test_failover_trial(trial: int, cluster: Any) -> None:
    rng = random.Random(trial)
    victim_kind, phase = PLAN[trial % len(PLAN)]
    cards = [wallet(f"t{trial}c{i}") for i in range(CARDS)]
    url, ca = cluster.layout.vault_url, cluster.layout.ca
    if phase == "restore":  # the values are in the vault before the trial starts
        for card, _ in cards:
            with VaultClient(url, ca=ca) as client:
                run_phase(card, client, "backup")
    ledger = Ledger([], [])
    # each card's run makes at least 2 + VALUES requests (challenge, session, one per value)
    victim = Victim(cluster, victim_kind, rng.randint(1, CARDS * (2 + VALUES)), rng.uniform(0, 0.05))
    client_type = recording_client(ledger, victim.count)
    threads = []
    for card, _ in cards:  # the cards run at once, as terminals would
        def flow(card: SimulatedCard = card) -> None:
            with client_type(url, ca=ca) as client:
                run_phase(card, client, phase)
        threads.append(threading.Thread(target=flow))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    took = victim.recover()
    if took is not None:
        RECOVERIES.append((victim_kind, took))
        print(f"trial {trial}: {victim_kind} killed during {phase}, writes again after {took:.2f} s")

    stored = vault_rows(cluster)
    certificates = {cert for _, cert in stored}
    lost = [info.counter for info in ledger.acknowledged if info.certificate not in certificates]
    if phase == "backup":  # (a restore releases what it restored: acknowledged, then rightly gone)
        assert not lost, f"acknowledged registrations lost: counters {lost}"
    counters = [c for c, _ in stored]
    assert len(counters) == len(set(counters)), "a registration counter was given twice"
    assert not ledger.broken, ledger.broken
    for attempt in range(3):
        try:
            with VaultClient(url, ca=ca) as client:
                for card, originals in cards:
                    conserved(card, originals, url, ca)
                    run_phase(card, client, phase)  # the re-run completes the phase
                    conserved(card, originals, url, ca)
            break
        except VaultClientError as exc:
            # the monitor may still fail over from a primary its keeper restarted at once: a clean
            # 503 (or a dropped connection) in the middle of the check; settle and check again
            assert exc.status in (0, 503) and attempt < 2, exc
            cluster.wait_healthy()
    for card, _ in cards:
        flags = {e.flags for e in unlocked(card).list()}
        assert flags == ({ValueFlags.CERTIFICATE} if phase == "backup" else {ValueFlags.NONE})
    for card, originals in cards:  # and at the end each value is where the phase put it, once
        s = unlocked(card)
        if phase == "restore":
            assert {e.id: s.read(e.id).body() for e in s.list()} == originals


def test_every_trial_killed_and_recovered() -> None:
    """Each trial's victim died mid-flow and the cluster took writes again; prints the closing
    figures: recovery time per victim, median."""
    assert len(RECOVERIES) == TRIALS
    for kind in sorted({k for k, _ in RECOVERIES}):
        times = [t for k, t in RECOVERIES if k == kind]
        print(f"{kind}: {len(times)} kills, recovery median {statistics.median(times):.2f} s, "
              f"max {max(times):.2f} s")
