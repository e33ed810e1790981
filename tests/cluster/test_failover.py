"""Failover trials on a real cluster (scripts/cluster): while cards back values up to, or restore
them from, the vault behind haproxy, or rotate their keys (E7, with the key manager), or their
owners recover lost cards onto new ones, SIGKILL at a random moment the PostgreSQL primary
(postmaster and backends; pg_auto_failover promotes the standby or brings the node back), or
one vault replica, or haproxy. The flow then resumes by re-running, and a bank-style check
follows every trial: every value exactly once (live on its card, or its certificate on the card
and the value in the vault), every registration the vault acknowledged still there,
registration counters unique, and no answer of either server a 5xx other than 503.

Sized by EVB_TEST_SIZE: in CI a primary kill during a backup, a rotation and a lost card's
recovery; with ``full`` 100 trials rotating victims and phases. Prints the recovery time per
trial (kill to the first write through the balancer that succeeds) and its median."""

from __future__ import annotations

import random
import ssl
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from typing import Any

import httpx
import psycopg
import pytest

from apdu.records import ValueFlags
from card import SimulatedCard
from host.api_client import ServiceError
from host.backup import BackupError, backup, connect, release_unneeded, restore
from host.demo import FIG15
from host.keymgr_client import KeyManagerClient
from host.session import WalletSession
from host.transport.inprocess import connect_card
from host.vault_client import RegistrationInfo, VaultClient

from ..card.helpers import personalized
from ..conftest import FULL, PIN
from ..host.test_rotation_kill import conserved as conserved_mid_rotation
from ..host.test_vault_kill import conserved
from ..servers.test_recovery import Lost, World, assert_recovered, lose_a_card, recover_onto
from ..servers.test_rotation import Owner, assert_rotated, owner_with_backups, rotate_once

PHASES = ("backup", "restore", "rotation", "lost card")
TRIALS = 100 if FULL else 3
CARDS = 3 if FULL else 2
VALUES = 4
PLAN = [("primary", phase) for phase in ("backup", "rotation", "lost card")] if not FULL else [
    (victim, phase) for victim in ("primary", "primary", "replica", "haproxy") for phase in PHASES]


@pytest.fixture(scope="module", autouse=True)
def trust_the_cluster(cluster: Any) -> Iterator[None]:
    """The flows' helpers (shared with the single-server tests) make their clients without a CA:
    through SSL_CERT_FILE, the store OpenSSL loads by default, they trust the cluster's."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("SSL_CERT_FILE", str(cluster.layout.ca))
        yield


@dataclass
class Ledger:
    """What the servers told the terminals: registrations the vault acknowledged, and any answer
    of either server that breaks their promise (a 5xx other than 503)."""

    acknowledged: list[RegistrationInfo]
    broken: list[str]


def watched(ledger: Ledger, before: Callable[[], None], call: Callable[[], Any], what: str) -> Any:
    """One request of a flow: counted (the victim dies after the k-th), any 5xx but 503 noted."""
    before()
    try:
        return call()
    except ServiceError as exc:
        if exc.status >= 500 and exc.status != 503:
            ledger.broken.append(f"{what}: {exc.status} {exc.message}")
        raise


def recording_keymgr(ledger: Ledger, before: Callable[[], None]) -> type[KeyManagerClient]:
    class Recording(KeyManagerClient):
        def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
            return watched(ledger, before, lambda: super(Recording, self)._call(method, path, body),
                           f"key manager {method} {path}")

    return Recording


def recording_client(ledger: Ledger, before: Callable[[], None]) -> type[VaultClient]:
    class Recording(VaultClient):
        def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
            return watched(ledger, before, lambda: super(Recording, self)._call(method, path, body),
                           f"vault {method} {path}")

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
    """Back up (or restore) every value of the card."""
    s = unlocked(card)
    key = connect(s, client)
    for entry in s.list():
        if phase == "backup" and not entry.flags & ValueFlags.CERTIFICATE:
            backup(s, client, key, entry.id)
        elif phase == "restore" and entry.flags & ValueFlags.CERTIFICATE:
            restore(s, client, entry.id)
    if phase == "restore":
        release_unneeded(s, client)


Clients = tuple[type[VaultClient], type[KeyManagerClient]]


class Flow:
    """One card's part of a trial: made ready before it, run with the victim's clients (stopping
    at the first refusal, as a terminal whose connection dropped would), checked after the kill,
    run again, checked at the end."""

    def run(self, clients: Clients) -> None:
        raise NotImplementedError

    def conserved(self) -> None:
        """Every value exactly once, mid-flow."""
        raise NotImplementedError

    def finished(self) -> None:
        """Where the completed flow put every value."""
        raise NotImplementedError


class Values(Flow):
    """A backup or a restore of one card's values (the restore's backed up beforehand)."""

    def __init__(self, cluster: Any, tag: str, phase: str) -> None:
        self.url, self.ca, self.phase = cluster.layout.vault_url, cluster.layout.ca, phase
        self.card, self.originals = wallet(tag)
        if phase == "restore":
            with VaultClient(self.url, ca=self.ca) as client:
                run_phase(self.card, client, "backup")

    def run(self, clients: Clients) -> None:
        with clients[0](self.url, ca=self.ca) as client:
            run_phase(self.card, client, self.phase)

    def conserved(self) -> None:
        conserved(self.card, self.originals, self.url, self.ca)

    def finished(self) -> None:
        s = unlocked(self.card)
        assert {e.flags for e in s.list()} == ({ValueFlags.CERTIFICATE} if self.phase == "backup" else
                                               {ValueFlags.NONE})
        if self.phase == "restore":
            assert {e.id: s.read(e.id).body() for e in s.list()} == self.originals


class Rotation(Flow):
    """A key rotation (E7) of a card with encrypted, plain, kept and live values."""

    def __init__(self, cluster: Any, tag: str) -> None:
        self.world = World(cluster.layout.keymgr_url, cluster.layout.vault_url)
        self.owner: Owner = owner_with_backups(self.world, VALUES + 2)  # 3 encrypted backups move
        self.old = unlocked(self.owner.card).key_info().key_id

    def run(self, clients: Clients) -> None:
        rotate_once(self.world, self.owner, vault_client=clients[0], km_client=clients[1])

    def conserved(self) -> None:
        conserved_mid_rotation(self.world, self.owner)

    def finished(self) -> None:
        assert_rotated(self.world, self.owner, self.old)


class LostCard(Flow):
    """A lost card's values recovered onto a new card: the loss reported to the key manager, the
    vault told on its word, the certificates handed over, the values restored and released."""

    def __init__(self, cluster: Any, tag: str) -> None:
        self.cluster = cluster
        self.world = World(cluster.layout.keymgr_url, cluster.layout.vault_url)
        self.lost: Lost = lose_a_card(self.world, encrypted=False)
        self.new, _ = personalized()

    def run(self, clients: Clients) -> None:
        recover_onto(self.world, self.lost, self.new, vault_client=clients[0], km_client=clients[1])

    def conserved(self) -> None:
        """Each value the lost card backed up is live on the new card at most once, and any that
        is not is still at the vault (held for the old card until the vault heard of the loss)."""
        s = unlocked(self.new)
        live = Counter(s.read(e.id).body() for e in s.list() if not e.flags & ValueFlags.CERTIFICATE)
        assert set(live) <= set(self.lost.backed_up) and set(live.values()) <= {1}, "a value came back twice"
        holders = (self.lost.card_id, s.identity().card_id)
        with psycopg.connect(self.cluster.layout.db_url("vault")) as conn:
            held = {bytes(v) for (v,) in conn.execute("SELECT value FROM registrations WHERE holder = ANY(%s)",
                                                      (list(holders),)).fetchall()}
        for body in self.lost.backed_up:
            assert body in live or body in held, "a value of the lost card is gone"

    def finished(self) -> None:
        assert_recovered(self.world, self.lost, self.new)


def flow(cluster: Any, tag: str, phase: str) -> Flow:
    if phase == "rotation":
        return Rotation(cluster, tag)
    if phase == "lost card":
        return LostCard(cluster, tag)
    return Values(cluster, tag, phase)


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


WRITES = {"vault": ("/v1/challenges", {"card_id": "00" * 8}), "keymgr": ("/v1/auth-challenges", {"name": "warm"})}


def warm(cluster: Any) -> None:
    """Until every replica of both servers commits a write, each asked directly: a replica that
    sat idle through a failover answers its first request with a 503 (its pooled connections
    were to the dead primary; it drops them then), which the next trial's setup, unlike a
    terminal, would not retry."""
    trust = ssl.create_default_context(cafile=str(cluster.layout.ca))
    deadline = time.monotonic() + 120
    for server, (path, body) in WRITES.items():
        for port in cluster.layout.replica_ports(server):
            while httpx.post(f"https://127.0.0.1:{port}{path}", json=body, verify=trust,
                             timeout=10).status_code != 200:
                assert time.monotonic() < deadline, f"{server} on {port} takes no write after the failover"
                time.sleep(0.1)


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
        warm(self.cluster)
        return took


RECOVERIES: list[tuple[str, float]] = []


def settled(cluster: Any, check: Callable[[], None]) -> None:
    """``check``, again after the cluster settles if a late second failover cut it: the monitor
    may still fail over from a primary its keeper restarted at once (a clean 503, or a dropped
    connection, in the middle of the check)."""
    for attempt in range(3):
        try:
            check()
            return
        except ServiceError as exc:
            assert exc.status in (0, 503) and attempt < 2, exc
            cluster.wait_healthy()


@pytest.mark.parametrize("trial", range(TRIALS))
def test_failover_trial(trial: int, cluster: Any) -> None:
    rng = random.Random(trial)
    victim_kind, phase = PLAN[trial % len(PLAN)]
    flows = [flow(cluster, f"t{trial}c{i}", phase) for i in range(CARDS)]
    ledger = Ledger([], [])
    # each card's run makes at least 2 + VALUES requests (challenge, session, one per value)
    victim = Victim(cluster, victim_kind, rng.randint(1, CARDS * (2 + VALUES)), rng.uniform(0, 0.05))
    clients = (recording_client(ledger, victim.count), recording_keymgr(ledger, victim.count))

    def run(f: Flow) -> None:
        try:
            f.run(clients)
        except (ServiceError, BackupError):
            pass  # the victim died under this request

    threads = [threading.Thread(target=run, args=(f,)) for f in flows]  # at once, as terminals would
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
    if phase in ("backup", "rotation"):  # (a restore releases what it restored: acknowledged, then rightly gone)
        assert not lost, f"acknowledged registrations lost: counters {lost}"
    counters = [c for c, _ in stored]
    assert len(counters) == len(set(counters)), "a registration counter was given twice"
    assert not ledger.broken, ledger.broken

    def rerun() -> None:
        for f in flows:
            f.conserved()
            f.run((VaultClient, KeyManagerClient))  # the re-run completes the flow
            f.conserved()

    settled(cluster, rerun)
    for f in flows:  # and at the end each value is where the flow put it, once
        f.finished()


def test_every_trial_killed_and_recovered() -> None:
    """Each trial's victim died mid-flow and the cluster took writes again; prints the closing
    figures: recovery time per victim, median."""
    assert len(RECOVERIES) == TRIALS
    for kind in sorted({k for k, _ in RECOVERIES}):
        times = [t for k, t in RECOVERIES if k == kind]
        print(f"{kind}: {len(times)} kills, recovery median {statistics.median(times):.2f} s, "
              f"max {max(times):.2f} s")
