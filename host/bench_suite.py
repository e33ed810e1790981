"""The benchmarks of issue 18, and ``evb bench all``: every figure beside its baseline from the
same run (the machine is shared and noisy, so only ratios of one run compare) and its goal.

* the vault's registrations/s against the raw durable insert rate of the same database, with the
  same number of client processes, and the vault process's CPU per registration;
* the APDUs and HTTP requests a backup spends per value, and its time per value at two sizes;
* the in-process card's APDU rates (the card's own dispatch, no host stack);
* ``evb backup --all`` as a process against the same loop run in this one.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from apdu import wallet as w
from card import SimulatedCard

from .demo import FIG15
from .session import WalletSession
from .transport.inprocess import connect_card
from .vault_client import VaultClient

PIN = "1234"
Say = Callable[[str], None]


@dataclass(frozen=True)
class Figure:
    """One line of the table. ``ratio`` is ours over the baseline (over the goal's own number
    when there is no baseline); the goal is met when it is on the right side of ``target``."""

    name: str
    ours: float
    baseline: float | None
    unit: str
    target: float | None  # the ratio the goal asks for; None: reported, no goal
    at_most: bool = False  # the goal is ratio <= target (costs), not >= (rates)
    goal_text: str = ""

    @property
    def ratio(self) -> float:
        divisor = self.baseline if self.baseline is not None else self.target
        return self.ours / divisor if divisor else float("nan")

    @property
    def met(self) -> bool | None:
        if self.target is None:
            return None
        reference = self.target if self.baseline is not None else 1.0
        return self.ratio <= reference if self.at_most else self.ratio >= reference

    @property
    def goal(self) -> str:
        if self.goal_text:
            return self.goal_text
        if self.target is None:
            return "—"
        sign = "≤" if self.at_most else "≥"
        return f"{sign} {self.target:g} × baseline" if self.baseline is not None else f"{sign} {self.target:g}"


def _ratio_figure(name: str, ours: float, baseline: float, unit: str, target: float | None,
                  at_most: bool = False) -> Figure:
    return Figure(name, ours, baseline, unit, target, at_most)


def _absolute(name: str, ours: float, unit: str, target: float, at_most: bool = False) -> Figure:
    return Figure(name, ours, None, unit, target, at_most)


# --- the vault against its database ----------------------------------------------------------

RAW_TABLE = """CREATE TABLE IF NOT EXISTS bench_raw (id INTEGER PRIMARY KEY AUTOINCREMENT, counter INTEGER NOT NULL,
    card_id BLOB NOT NULL, value_hash BLOB NOT NULL, value BLOB NOT NULL, certificate BLOB NOT NULL,
    created_at INTEGER NOT NULL)"""
BATCH_SIZE = 16


@dataclass(frozen=True)
class VaultRate:
    backend: str
    clients: int
    raw_per_s: float  # the baseline: durable inserts of a similar row, one transaction each
    vault_per_s: float  # POST /v1/registrations, one value a request
    cpu_ms: float  # the vault process's CPU per registration
    batch_per_s: float | None  # values a second through the batch endpoint, when the vault has one
    batch_cpu_ms: float | None  # the vault process's CPU per value registered in batches

    @property
    def ratio(self) -> float:
        return self.vault_per_s / self.raw_per_s


def _value(client: int, seq: int) -> bytes:
    return replace(FIG15[seq % 4], name=f"bench {os.getpid()} {client}/{seq}").body()


def _raw_insert(db: Any, client: int, seq: int) -> None:
    value = _value(client, seq)
    with db.transaction() as tx:
        tx.execute("INSERT INTO bench_raw (counter, card_id, value_hash, value, certificate, created_at) "
                   "VALUES (?, ?, ?, ?, ?, ?)", (seq, b"\x01" * 8, os.urandom(32), value, os.urandom(120),
                                                  int(time.time())))


def _client_process(client: int, jobs: Any, results: Any, vault_url: str, ca: str, token: str,
                    db_url: str) -> None:
    """One client: runs each job it is given from its start time for its length, counting."""
    from servers.storage import Database

    db = Database.open(db_url, [])
    vault = VaultClient(vault_url, ca=Path(ca))
    vault._token = token
    seq = 0
    while (job := jobs.get()) is not None:
        kind, start_at, seconds = job
        time.sleep(max(0.0, start_at - time.time()))
        done = 0
        while time.time() < start_at + seconds:
            if kind == "raw":
                _raw_insert(db, client, seq)
                seq, done = seq + 1, done + 1
            elif kind == "vault":
                vault.register(_value(client, seq))
                seq, done = seq + 1, done + 1
            else:
                vault.register_many([_value(client, seq + i) for i in range(BATCH_SIZE)])
                seq, done = seq + BATCH_SIZE, done + BATCH_SIZE
        results.put(done)
    vault.close()
    db.close()


def _serve_process(db_url: str, folder: str, issuer_key: bytes, ready: Any, stop: Any) -> None:
    from servers.tls import init_folder
    from servers.vault.server import running

    base = Path(folder)
    tls = init_folder(base / "tls")
    with running(db_url, base / "vault-key.pem", tls.server, issuers=(issuer_key,)) as url:
        ready.put(url)
        stop.get()


def _cpu_seconds(pid: int) -> float:
    """User and system CPU of a process, all its threads, from /proc."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@contextmanager
def _postgres_schema(url: str) -> Iterator[str]:
    """A schema of our own in the given database, dropped afterwards: the URL to use."""
    import psycopg

    schema = f"evb_bench_{os.getpid()}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")
        conn.execute(f"CREATE SCHEMA {schema}")
    joiner = "&" if "?" in url else "?"
    try:
        yield f"{url}{joiner}options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")


def run_vault_bench(postgres_url: str | None = None, clients: tuple[int, ...] = (1, 2, 4), seconds: float = 2.0,
                    rounds: int = 1, say: Say | None = None) -> list[VaultRate]:
    """For each backend (SQLite in a temporary folder, and PostgreSQL when a URL is given) and
    each number of client processes: raw inserts, then registrations, then batches, one after the
    other in ``rounds`` interleaved rounds (medians); the vault runs in a process of its own so
    its CPU can be read."""
    out: list[VaultRate] = []
    with tempfile.TemporaryDirectory(prefix="evb-bench-") as tmp:
        out += _vault_backend("SQLite", f"sqlite:///{tmp}/vault.db", tmp, clients, seconds, rounds, say)
    if postgres_url:
        with _postgres_schema(postgres_url) as url, tempfile.TemporaryDirectory(prefix="evb-bench-") as tmp:
            out += _vault_backend("PostgreSQL", url, tmp, clients, seconds, rounds, say)
    return out


def _vault_backend(backend: str, db_url: str, folder: str, clients: tuple[int, ...], seconds: float,
                   rounds: int, say: Say | None) -> list[VaultRate]:
    from servers.storage import Database
    from servers.tls import init_folder

    from .backup import connect
    from .issuer import Issuer

    ctx = mp.get_context("spawn")
    base = Path(folder)
    issuer = Issuer.load_or_create(base / "issuer.pem")
    tls = init_folder(base / "tls")
    ready, stop = ctx.Queue(), ctx.Queue()
    server = ctx.Process(target=_serve_process, args=(db_url, folder, issuer.public_key, ready, stop), daemon=True)
    server.start()
    workers: list[tuple[Any, Any]] = []
    try:
        url = ready.get(timeout=60)
        raw = Database.open(db_url, [])
        with raw.transaction() as tx:
            tx.execute(RAW_TABLE)
        raw.close()
        session = WalletSession(connect_card(SimulatedCard.manufacture()))
        issuer.personalize(session, PIN)
        session.verify_pin(PIN)
        with VaultClient(url, ca=tls.ca_cert) as vault:
            connect(session, vault)
            token = vault._token
            batches = hasattr(vault, "register_many")
        assert token is not None
        results = ctx.Queue()
        for i in range(max(clients)):
            jobs = ctx.Queue()
            p = ctx.Process(target=_client_process, args=(i, jobs, results, url, str(tls.ca_cert), token, db_url),
                            daemon=True)
            p.start()
            workers.append((p, jobs))

        def run(kind: str, n: int) -> float:
            start_at = time.time() + 0.5
            for _, jobs in workers[:n]:
                jobs.put((kind, start_at, seconds))
            return float(sum(results.get(timeout=seconds + 120) for _ in range(n))) / seconds

        run("vault", max(clients))  # warm every client: connections, imports
        out = []
        for n in clients:
            raws, vaults, cpus, batched, batch_cpus = [], [], [], [], []
            for _ in range(rounds):
                if say:
                    say(f"vault on {backend}, {n} client(s)")
                raws.append(run("raw", n))
                cpu = _cpu_seconds(server.pid or 0)
                rate = run("vault", n)
                cpus.append((_cpu_seconds(server.pid or 0) - cpu) * 1000 / max(1.0, rate * seconds))
                vaults.append(rate)
                if batches:
                    cpu = _cpu_seconds(server.pid or 0)
                    rate = run("batch", n)
                    batch_cpus.append((_cpu_seconds(server.pid or 0) - cpu) * 1000 / max(1.0, rate * seconds))
                    batched.append(rate)
            out.append(VaultRate(backend, n, statistics.median(raws), statistics.median(vaults),
                                 statistics.median(cpus), statistics.median(batched) if batched else None,
                                 statistics.median(batch_cpus) if batch_cpus else None))
        return out
    finally:
        for _, jobs in workers:
            jobs.put(None)
        for p, _ in workers:
            p.join(30)
        stop.put(None)
        server.join(30)


def vault_figures(rates: list[VaultRate]) -> list[Figure]:
    figures = []
    for r in rates:
        figures.append(_ratio_figure(f"vault {r.backend}, {r.clients} client(s): registrations/s vs raw inserts/s",
                                     r.vault_per_s, r.raw_per_s, "/s", 0.5))
        if r.batch_per_s is not None:
            figures.append(_ratio_figure(f"vault {r.backend}, {r.clients} client(s): values/s in batches of "
                                         f"{BATCH_SIZE} vs raw inserts/s", r.batch_per_s, r.raw_per_s, "/s", None))
        figures.append(_absolute(f"vault {r.backend}, {r.clients} client(s): server CPU per registration",
                                 r.cpu_ms, "ms", 1.0, at_most=True))
        if r.batch_cpu_ms is not None:
            figures.append(_absolute(f"vault {r.backend}, {r.clients} client(s): server CPU per registration in "
                                     f"batches of {BATCH_SIZE}", r.batch_cpu_ms, "ms", 1.0, at_most=True))
    return figures


# --- backup: APDUs, requests and time per value ----------------------------------------------


@dataclass(frozen=True)
class BackupCost:
    encrypted: bool
    values: int
    apdus: int
    requests: int
    seconds: float  # the loop only


class CountingTransport:
    """A transport that counts the APDUs it carries."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.count = 0

    @property
    def atr(self) -> bytes:
        return bytes(self.inner.atr)

    def send_and_receive(self, apdu: bytes) -> tuple[bytes, int]:
        self.count += 1
        result: tuple[bytes, int] = self.inner.send_and_receive(apdu)
        return result

    def begin_exclusive(self) -> None:
        self.inner.begin_exclusive()

    def close(self) -> None:
        self.inner.close()


class CountingVault(VaultClient):
    requests = 0

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        self.requests += 1
        return super()._call(method, path, body)


def stocked_card(issuer: Any, values: int, image: Path | None = None, key: bool = False) -> SimulatedCard:
    """A personalized, attested card holding ``values`` values (distinct names), optionally with
    an encryption key."""
    card = SimulatedCard.manufacture(size=65536, index_capacity=256, image=image)
    session = WalletSession(connect_card(card))
    issuer.personalize(session, PIN)
    session.verify_pin(PIN)
    for i in range(values):
        session.store(replace(FIG15[i % 4], name=f"{FIG15[i % 4].name} {i}"))
    if key:
        session.generate_key()
    card.power_off()
    return card


def measure_backup(vault_url: str, ca: Path | None, issuer: Any, values: int, encrypted: bool,
                   image: Path | None = None) -> BackupCost:
    """Back every value of a fresh card (in ``image`` if given) up as ``evb backup --all`` does,
    counting what the loop (after connecting) sends."""
    from .backup import backup_many, connect, encryption

    card = stocked_card(issuer, values, image=image, key=encrypted)
    if image is not None:
        card.close()
        card = SimulatedCard.open(image)
    counting = CountingTransport(connect_card(card))
    session = WalletSession(counting)
    session.verify_pin(PIN)
    vault = CountingVault(vault_url, ca=ca)
    with vault:
        key = connect(session, vault)
        ids = [e.id for e in session.list()]
        encrypt = encryption(session, encrypted)
        apdus, requests = counting.count, vault.requests
        start = time.perf_counter()
        done, failed = backup_many(session, vault, key, ids, False, encrypt)
        seconds = time.perf_counter() - start
    card.close()
    assert len(done) == values and not failed, failed
    return BackupCost(encrypted, values, counting.count - apdus, vault.requests - requests, seconds)


def run_backup_bench(sizes: tuple[int, int] = (10, 200), say: Say | None = None) -> list[BackupCost]:
    from servers.tls import init_folder
    from servers.vault.server import running

    from .issuer import Issuer

    out = []
    with tempfile.TemporaryDirectory(prefix="evb-bench-") as tmp:
        base = Path(tmp)
        issuer = Issuer.load_or_create(base / "issuer.pem")
        tls = init_folder(base / "tls")
        with running(f"sqlite:///{base / 'v.db'}", base / "v.pem", tls.server, issuers=(issuer.public_key,)) as url:
            for encrypted in (False, True):
                for n in sizes:
                    if say:
                        say(f"backup of {n} {'encrypted' if encrypted else 'plain'} values")
                    runs = [measure_backup(url, tls.ca_cert, issuer, n, encrypted) for _ in range(max(1, 600 // n))]
                    out.append(sorted(runs, key=lambda c: c.seconds)[len(runs) // 2])  # the median run
    return out


def backup_figures(costs: list[BackupCost]) -> list[Figure]:
    figures = []
    for encrypted in (False, True):
        small, large = sorted((c for c in costs if c.encrypted == encrypted), key=lambda c: c.values)
        kind = "encrypted" if encrypted else "plain"
        extra = large.values - small.values
        figures.append(_absolute(f"backup {kind}: APDUs per value (from {small.values} to {large.values} values)",
                                 (large.apdus - small.apdus) / extra, "", 3.0 if encrypted else 2.0, at_most=True))
        figures.append(_absolute(f"backup {kind}: HTTP requests per value", large.requests / large.values, "", 1.0,
                                 at_most=True))
        figures.append(Figure(f"backup {kind}: ms per value at {large.values} vs at {small.values} values",
                              large.seconds * 1000 / large.values, small.seconds * 1000 / small.values, "ms", 1.2,
                              at_most=True, goal_text="flat (≤ 1.2 × baseline)"))
    return figures


# --- the in-process card ---------------------------------------------------------------------


@dataclass(frozen=True)
class CardRate:
    name: str
    apdu_s: float
    goal: float


def run_card_bench(seconds: float = 0.5, rounds: int = 5) -> list[CardRate]:
    """APDUs a second of this process's CPU through the card's own ``transmit`` (no host stack),
    medians of rounds: on a shared machine wall time would measure the neighbours."""
    from .demo import load_fig15

    card = SimulatedCard.manufacture()
    session = WalletSession(connect_card(card))
    session.personalize(PIN)
    session.verify_pin(PIN)
    load_fig15(session)
    first = session.list()[0].id
    commands = [("READ VALUE", w.read_value(first, ne=256).to_bytes(), 20_000.0),
                ("GET CARD INFO", w.get_card_info().to_bytes(), 20_000.0),
                ("LIST VALUES (4)", w.list_values(ne=256).to_bytes(), 10_000.0)]
    out = []
    for name, apdu, goal in commands:
        sw = card.transmit(apdu)[-2:]
        assert sw == b"\x90\x00", (name, sw.hex())
        rates = []
        for _ in range(rounds):
            done, start = 0, time.process_time()  # CPU time: other processes' load does not count
            while (elapsed := time.process_time() - start) < seconds / rounds:
                for _ in range(100):
                    card.transmit(apdu)
                done += 100
            rates.append(done / elapsed)
        out.append(CardRate(name, statistics.median(rates), goal))
    return out


def card_figures(rates: list[CardRate]) -> list[Figure]:
    return [_absolute(f"in-process card: {r.name} APDU/s", r.apdu_s, "/s", r.goal) for r in rates]


# --- the CLI ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CliTiming:
    values: int
    cli_s: float  # `evb backup --all` as a process: start-up, set-up and the loop
    loop_s: float  # the baseline: the same loop in this process, on a card made the same way

    @property
    def ratio(self) -> float:
        return self.cli_s / self.loop_s


def run_cli_bench(values: int = 50, rounds: int = 3, say: Say | None = None) -> CliTiming:
    """``evb backup --all`` of ``values`` plain values in a fresh process, against the backup
    loop alone run here on a twin card (an image file too): medians of ``rounds``."""
    from servers.tls import init_folder
    from servers.vault.server import running

    from .issuer import Issuer

    clis, loops = [], []
    with tempfile.TemporaryDirectory(prefix="evb-bench-") as tmp:
        base = Path(tmp)
        issuer = Issuer.load_or_create(base / "issuer.pem")
        tls = init_folder(base / "tls")
        with running(f"sqlite:///{base / 'v.db'}", base / "v.pem", tls.server, issuers=(issuer.public_key,)) as url:
            # bytecode cached, as an installed package has it (pip compiles at install)
            env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parent.parent), "EVB_PIN": PIN,
                   "PYTHONPYCACHEPREFIX": str(base / "pycache")}
            env.pop("PYTHONDONTWRITEBYTECODE", None)
            for r in range(-1, rounds):  # round -1 compiles every module the command imports, unmeasured
                if say:
                    say(f"evb backup --all of {values} values, " + (f"round {r + 1}" if r >= 0 else "warm-up"))
                image = base / f"cli-{r}.img"
                stocked_card(issuer, values, image=image).close()
                start = time.perf_counter()
                subprocess.run([sys.executable, "-m", "host.cli", "backup", "--all", "--plain", "--card-image",
                                str(image), "--vault", url, "--ca", str(tls.ca_cert)], env=env, check=True,
                               capture_output=True)
                if r < 0:
                    continue
                clis.append(time.perf_counter() - start)
                loops.append(measure_backup(url, tls.ca_cert, issuer, values, False, base / f"loop-{r}.img").seconds)
    shutil.rmtree(base, ignore_errors=True)
    return CliTiming(values, statistics.median(clis), statistics.median(loops))


def cli_figures(t: CliTiming) -> list[Figure]:
    return [_ratio_figure(f"evb backup --all of {t.values} values: wall s vs its loop", t.cli_s, t.loop_s, "s",
                          1.5, at_most=True)]


# --- every benchmark at once -----------------------------------------------------------------


def run_all(postgres_url: str | None = None, pcsc: bool = False, say: Say | None = None) -> list[Figure]:
    """Every benchmark at a size that fits a few minutes, as one list of figures. ``pcsc`` adds
    the round trips through pcscd (the caller holds the reader: it is shared)."""
    from .bench import (
        run_image_bench,
        run_login_bench,
        run_pcsc_bench,
        run_rotation_bench,
        run_startup_bench,
        run_worst_case_match,
    )

    figures = card_figures(run_card_bench())
    figures += backup_figures(run_backup_bench(say=say))
    if say:
        say("evb backup --all in a process")
    figures += cli_figures(run_cli_bench(say=say))
    figures += vault_figures(run_vault_bench(postgres_url, seconds=1.0, rounds=3, say=say))  # medians: noisy
    if say:
        say("card image: STORE+DELETE")
    image = run_image_bench(400)
    figures.append(_ratio_figure("card image: STORE+DELETE APDU/s vs in memory", image.image_apdu_s,
                                 image.memory_apdu_s, "/s", 0.5))
    figures.append(Figure("card image: STORE+DELETE APDU/s vs in memory plus one fdatasync per APDU",
                          image.image_apdu_s, image.one_sync_bound, "/s", None, goal_text="≈ 1 (no cost but the sync)"))
    figures.append(Figure("disk: one page written and fdatasync'd (ms)", image.sync_ms, None, "ms", None))
    if say:
        say("rotation at 25 and 200 values per card")
    small, large = run_rotation_bench(1, 25), run_rotation_bench(1, 200)
    figures.append(_ratio_figure("rotation: values/s at 200 per card vs at 25", large.rotation_per_s,
                                 small.rotation_per_s, "/s", 0.9))
    figures.append(_ratio_figure("rotation: values/s vs encrypted backup values/s, both 16 a request (200 per card)",
                                 large.rotation_per_s, large.backup_per_s, "/s", 0.8))
    figures.append(Figure("rotation: values/s vs encrypted backup values/s one a request (200 per card)",
                          large.rotation_per_s, large.backup_one_per_s, "/s", None))
    if say:
        say("refused logins (Argon2id)")
    login = run_login_bench(16)
    figures.append(Figure("key manager: refused login, unknown name vs wrong password (ms)", login.unknown_name_ms,
                          login.wrong_password_ms, "ms", None, goal_text="≈ 1 (names not told apart)"))
    if say:
        say("start-up")
    for row in run_startup_bench(5)[1:]:
        figures.append(Figure(f"start-up: {row.name} vs python3 -c pass (ms)", row.median_ms, row.median_ms / row.ratio,
                              "ms", None))
    worst = run_worst_case_match()
    figures.append(Figure(f"fingerprint: worst-case match ({worst.minutiae} minutiae), s", worst.seconds, None, "s",
                          None))
    if pcsc:
        if say:
            say("round trips through pcscd")
        result = run_pcsc_bench(100)
        figures.append(Figure("PC/SC: APDU round trip, our card vs an echo card (ms)", result.ours_ms,
                              result.echo_ms, "ms", None))
    return figures


def _number(x: float | None) -> str:
    if x is None:
        return "—"
    if x >= 100:
        return f"{x:,.0f}"
    return f"{x:.3g}" if x < 10 else f"{x:.1f}"


def table_rows(figures: list[Figure]) -> list[tuple[str, str, str, str, str, str]]:
    """(figure, ours, baseline, ratio, goal, met) as text, for the rich table and Markdown."""
    return [(f.name, f"{_number(f.ours)} {f.unit}".strip(),
             f"{_number(f.baseline)} {f.unit}".strip() if f.baseline is not None else "—",
             f"{f.ratio:.2f}" if f.ratio == f.ratio else "—", f.goal, {True: "yes", False: "NO", None: ""}[f.met]) for f in figures]


def markdown(figures: list[Figure], header: str) -> str:
    lines = [header, "", "| figure | ours | baseline | ratio | goal | met |", "|---|---:|---:|---:|---|---|"]
    lines += ["| " + " | ".join(row) + " |" for row in table_rows(figures)]
    return "\n".join(lines) + "\n"
