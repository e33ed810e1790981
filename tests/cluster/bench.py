"""Throughput of the vault behind haproxy with 1 and 2 replicas, synchronous against asynchronous
commit, in one run on one cluster; then the size of what it stored, per card (docs/SCALE.md).

    python3 -m tests.cluster.bench [--seconds 8] [--rounds 2] [--terminals 4]

Two loads: card flows (each terminal a thread with its own card backing up and restoring its
values in a loop; vault requests answered per second) and bare challenges (one small write
transaction each, no card in the client). Medians over rounds, as ratios against one replica
with synchronous commit. Then the vault is filled (copies of real rows) and its tables measured. The simulated cards run in this process: on a 2-core machine
they compete with the servers, so the ratios say more than the absolute figures."""

from __future__ import annotations

import argparse
import ssl
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import psycopg

from host.vault_client import VaultClient
from tests.cluster.conftest import free_base, recipe
from tests.cluster.test_failover import run_phase, wallet

CONFIGS = [(1, True), (2, True), (1, False), (2, False)]


class Counting(VaultClient):
    calls = 0
    lock = threading.Lock()

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        answer = super()._call(method, path, body)
        with Counting.lock:
            Counting.calls += 1
        return answer


def measure(cluster: Any, terminals: int, seconds: float) -> float:
    cards = [wallet(f"b{i}-{time.monotonic_ns()}")[0] for i in range(terminals)]
    stop = time.monotonic() + seconds

    def loop(card: Any) -> None:
        with Counting(cluster.layout.vault_url, ca=cluster.layout.ca) as client:
            while time.monotonic() < stop:
                run_phase(card, client, "backup")
                run_phase(card, client, "restore")

    Counting.calls = 0
    threads = [threading.Thread(target=loop, args=(card,)) for card in cards]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return Counting.calls / (time.monotonic() - started)


def challenges(cluster: Any, terminals: int, seconds: float) -> float:
    """Challenges per second: one small write transaction each and no card in the client, so
    the servers and the database, not the simulated cards, are what is measured."""
    trust = ssl.create_default_context(cafile=str(cluster.layout.ca))
    stop, done = time.monotonic() + seconds, [0] * terminals

    def loop(i: int) -> None:
        with httpx.Client(base_url=cluster.layout.vault_url, verify=trust, timeout=10) as http:
            while time.monotonic() < stop:
                if http.post("/v1/challenges", json={"card_id": f"{i:016x}"}).status_code == 200:
                    done[i] += 1

    threads = [threading.Thread(target=loop, args=(i,)) for i in range(terminals)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return sum(done) / (time.monotonic() - started)


def fill(cluster: Any, cards: int, values: int) -> None:
    """``cards`` cards of ``values`` registrations each, copied (new card ids and counters) from
    the real ones the run left: the sizes of real rows, at a count where indexes show."""
    with psycopg.connect(cluster.layout.db_url("vault")) as conn:
        conn.execute(f"""
            INSERT INTO cards (card_id, public_key, created_at)
            SELECT substr(decode(md5('c' || g), 'hex'), 1, 8), public_key, created_at
            FROM generate_series(1, {cards}) g, (SELECT public_key, created_at FROM cards LIMIT 1) c""")
        conn.execute(f"""
            INSERT INTO registrations (counter, card_id, value_hash, value, certificate, created_at, holder)
            SELECT 1000000 + g * {values} + v, substr(decode(md5('c' || g), 'hex'), 1, 8),
                   decode(md5('x' || g || '-' || v) || md5('y' || g || '-' || v), 'hex'), r.value, r.certificate,
                   r.created_at, substr(decode(md5('c' || g), 'hex'), 1, 8)
            FROM generate_series(1, {cards}) g, generate_series(1, {values}) v,
                 (SELECT value, certificate, created_at FROM registrations LIMIT 1) r""")
        conn.execute("ANALYZE")


def sizes(cluster: Any) -> None:
    """Rows and bytes of the vault's tables, with their indexes and TOAST."""
    with psycopg.connect(cluster.layout.db_url("vault")) as conn:
        cards = conn.execute("SELECT COUNT(*) FROM cards").fetchone()[0]  # type: ignore[index]
        print(f"\nvault database after the run: {cards} cards")
        for (table,) in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public' ORDER BY 1"):
            rows, total, indexes = conn.execute(
                f"SELECT COUNT(*), pg_total_relation_size('{table}'), pg_indexes_size('{table}') FROM {table}"
            ).fetchone()  # type: ignore[misc]
            print(f"  {table:20} {rows:8} rows  {total:10} bytes ({indexes} in indexes)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--terminals", type=int, default=4)
    parser.add_argument("--fill", type=int, default=20000, help="cards of 10 values copied in for the sizes")
    args = parser.parse_args()
    module = recipe()
    cluster = module.Cluster(module.Layout(Path(tempfile.mkdtemp(prefix="evb-bench-", dir="/tmp")), free_base(),
                                           vaults=2, keymgrs=1))
    results: dict[tuple[int, bool], list[float]] = {c: [] for c in CONFIGS}
    light: dict[tuple[int, bool], list[float]] = {c: [] for c in CONFIGS}
    try:
        cluster.up()
        for _ in range(args.rounds):
            for replicas, synchronous in CONFIGS:
                cluster.restart_replicas("vault", synchronous, replicas)
                time.sleep(2)  # haproxy's health check marks a stopped replica down
                results[(replicas, synchronous)].append(measure(cluster, args.terminals, args.seconds))
                light[(replicas, synchronous)].append(challenges(cluster, args.terminals, args.seconds))
        with VaultClient(cluster.layout.vault_url, ca=cluster.layout.ca) as client:
            run_phase(wallet("fill")[0], client, "backup")  # real rows to copy
        fill(cluster, args.fill, 10)
        sizes(cluster)
    finally:
        cluster.down()
    for title, table in (("card flows: vault requests/s", results), ("challenges/s (a write each)", light)):
        base = statistics.median(table[(1, True)])
        print(f"\n{title}, median of {args.rounds} rounds of {args.seconds:.0f} s, {args.terminals} terminals")
        print(f"{'replicas':>8} {'commit':>12} {'per s':>8} {'ratio':>6}")
        for (replicas, synchronous), runs in table.items():
            median = statistics.median(runs)
            print(f"{replicas:>8} {'synchronous' if synchronous else 'local':>12} {median:8.1f} {median / base:6.2f}")


if __name__ == "__main__":
    main()
