"""Benchmarks that compare against a baseline in the same run (the machine is shared and noisy).

``run_pcsc_bench`` puts our card in vpcd slot 0 and an echo card in slot 1, then measures the
same APDUs against both, interleaving small batches so that background load hits both alike.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from apdu import wallet as w
from card import ATR, Eeprom, SimulatedCard
from card.bridge.vpcd import BASE_PORT, EchoCard, VpcdBridge, wait_connected
from card.javacard import AppletBuild, AppletCard

from .demo import FIG15, load_fig15
from .session import WalletSession
from .transport import Transport
from .transport.inprocess import InProcessCard, connect_card
from .transport.pcsc import connect_reader, list_readers

BATCH = 10


@dataclass(frozen=True)
class BenchRow:
    name: str
    ours_ms: float
    echo_ms: float
    applet_ms: float | None = None  # the Java Card applet (jCardSim) in the same slot, when built

    @property
    def ratio(self) -> float:
        return self.ours_ms / self.echo_ms

    @property
    def applet_ratio(self) -> float | None:
        return None if self.applet_ms is None else self.applet_ms / self.echo_ms


@dataclass(frozen=True)
class BenchResult:
    rounds: int
    rows: list[BenchRow]
    applet_inprocess_apdus_per_s: float | None = None  # GET CARD INFO straight into the JVM child
    python_inprocess_apdus_per_s: float | None = None  # the same APDU to the Python card in process

    @property
    def ours_ms(self) -> float:
        return statistics.median(r.ours_ms for r in self.rows)

    @property
    def echo_ms(self) -> float:
        return statistics.median(r.echo_ms for r in self.rows)

    @property
    def ratio(self) -> float:
        return self.ours_ms / self.echo_ms


def _apdus() -> list[tuple[str, bytes]]:
    return [
        ("SELECT wallet", w.select().to_bytes()),
        ("GET CARD INFO", w.get_card_info().to_bytes()),
        ("READ VALUE", w.read_value(1, ne=256).to_bytes()),
        ("LIST VALUES", w.list_values(ne=256).to_bytes()),
        ("VERIFY (status)", w.verify(None).to_bytes()),
    ]


def _connect(slot_name: str, timeout: float = 10.0) -> Transport:
    deadline = time.monotonic() + timeout
    while True:
        try:
            return connect_reader(slot_name)
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _time(transport: Transport, apdu: bytes, n: int) -> list[float]:
    out = []
    for _ in range(n):
        start = time.perf_counter()
        transport.send_and_receive(apdu)
        out.append(time.perf_counter() - start)
    return out


def _loaded(card: InProcessCard) -> InProcessCard:
    """The card personalized, holding fig. 15's values, powered off: what every run measures."""
    session = WalletSession(connect_card(card))
    session.personalize("1234")
    session.verify_pin("1234")
    load_fig15(session)
    assert len(session.list()) == len(FIG15)
    card.power_off()
    return card


def _interleaved(t_card: Transport, t_echo: Transport, rounds: int) -> list[tuple[float, float]]:
    """Per APDU, the median ms to the card and to the echo card, in alternating batches."""
    t_card.send_and_receive(w.select().to_bytes())
    medians = []
    for _, apdu in _apdus():
        a: list[float] = []
        b: list[float] = []
        for _ in range(0, rounds, BATCH):
            a += _time(t_card, apdu, BATCH)
            b += _time(t_echo, apdu, BATCH)
        medians.append((statistics.median(a) * 1000, statistics.median(b) * 1000))
    return medians


def _inprocess_rate(card: InProcessCard, rounds: int) -> float:
    """GET CARD INFO per second straight into a card, no reader in between (median of batches)."""
    card.power_on()
    card.transmit(w.select().to_bytes())
    apdu = w.get_card_info().to_bytes()
    times = []
    for _ in range(0, rounds, BATCH):
        start = time.perf_counter()
        for _ in range(BATCH):
            card.transmit(apdu)
        times.append((time.perf_counter() - start) / BATCH)
    card.power_off()
    return 1 / statistics.median(times)


def run_pcsc_bench(rounds: int = 300, host: str = "127.0.0.1", quickack: bool = True,
                   applet: AppletBuild | None = None) -> BenchResult:
    """``quickack=False`` reproduces the 40 ms delayed-ACK stall the bridge otherwise avoids.

    With ``applet``, the Java Card applet then takes the Python card's place in the same slot
    (the same pcscd connection, the same values) and is measured against the same echo card.
    """
    names = list_readers()
    with tempfile.TemporaryDirectory() as tmp:
        card = _loaded(SimulatedCard.manufacture(image=Path(tmp) / "bench.img"))
        java = _loaded(AppletCard(applet)) if applet is not None else None
        ours = VpcdBridge(card, host, BASE_PORT, quickack=quickack)
        echo = VpcdBridge(EchoCard(ATR), host, BASE_PORT + 1, quickack=quickack)
        ours.start()
        echo.start()
        try:
            wait_connected(ours)
            wait_connected(echo)
            t_ours, t_echo = _connect(names[0]), _connect(names[1])
            python = _interleaved(t_ours, t_echo, rounds)
            on_java: list[float | None] = [None] * len(python)
            if java is not None:
                ours.swap_card(java)
                on_java = [card_ms for card_ms, _ in _interleaved(t_ours, t_echo, rounds)]
            t_ours.close()
            t_echo.close()
        finally:
            ours.stop()
            echo.stop()
        rows = [BenchRow(name, card_ms, echo_ms, java_ms)
                for (name, _), (card_ms, echo_ms), java_ms in zip(_apdus(), python, on_java, strict=True)]
        if java is None:
            return BenchResult(rounds, rows)
        try:
            return BenchResult(rounds, rows, _inprocess_rate(java, rounds), _inprocess_rate(card, rounds))
        finally:
            java.close()


@dataclass(frozen=True)
class LoginTiming:
    rounds: int
    unknown_name_ms: float
    wrong_password_ms: float

    @property
    def ratio(self) -> float:
        return self.unknown_name_ms / self.wrong_password_ms


def run_login_bench(rounds: int = 40) -> LoginTiming:
    """A refused login for a name that does not exist vs a wrong password for one that does,
    interleaved against a key manager on loopback with production Argon2id parameters: the
    ratio of the medians should be 1 (names cannot be told apart by timing)."""
    from servers.keymgr.repository import MIGRATIONS, KeyManagerRepository
    from servers.keymgr.server import running
    from servers.storage import Database
    from servers.tls import init_folder

    from .keymgr_client import KeyManagerClient, KeyManagerClientError

    unknown: list[float] = []
    wrong: list[float] = []
    with tempfile.TemporaryDirectory(prefix="evb-bench-") as tmp:
        base = Path(tmp)
        tls = init_folder(base / "tls")  # over TLS on loopback, as deployed
        with running(f"sqlite:///{base / 'k.db'}", base / "k.pem", base / "m.key", tls=tls.server) as url, \
                KeyManagerClient(url, ca=tls.ca_cert) as client:
            client.create_account("owner", "the right password")
            for i in range(rounds):
                for name, into in ((f"nobody-{i}", unknown), ("owner", wrong)):
                    start = time.perf_counter()
                    try:
                        client.login(name, f"wrong password {i}")
                    except KeyManagerClientError:
                        pass
                    into.append((time.perf_counter() - start) * 1000)
                if i % 8 == 7:  # stay below the lock: the administrator's unlock, as in production
                    db = Database.open(f"sqlite:///{base / 'k.db'}", MIGRATIONS)
                    KeyManagerRepository(db).clear_failures("owner", int(time.time()), "bench reset")
                    db.close()
    return LoginTiming(rounds, statistics.median(unknown), statistics.median(wrong))


@dataclass(frozen=True)
class RotationTiming:
    cards: int
    values: int  # per card
    backup_per_s: float  # the baseline: encrypted backups of the same values as `evb backup --all` makes them
    rotation_per_s: float
    backup_one_per_s: float  # encrypted backups one value a request (`evb backup ID`), on a twin of the first card

    @property
    def ratio(self) -> float:
        """Rotation time per value over backup time per value."""
        return self.backup_per_s / self.rotation_per_s


def run_rotation_bench(cards: int, values: int, vault_db: str | None = None,
                       progress: Callable[[str, int, int], None] | None = None) -> RotationTiming:
    """Back ``values`` values up encrypted from each of ``cards`` cards (the baseline), then
    rotate every card's key (seed E7), against a vault on ``vault_db`` (SQLite in a temporary
    directory by default) and a key manager on loopback: throughput of each, side by side."""
    from dataclasses import replace

    from servers.keymgr.config import KeyManagerConfig
    from servers.keymgr.server import running as keymgr_running
    from servers.tls import init_folder
    from servers.vault.server import running as vault_running

    from . import factors
    from .backup import backup, backup_many, connect
    from .issuer import Issuer
    from .keymgr_client import KeyManagerClient
    from .keys import backup_key
    from .rotation import rotate
    from .vault_client import VaultClient

    total = cards * values
    backup_s = rotation_s = 0.0
    with tempfile.TemporaryDirectory(prefix="evb-bench-") as tmp:
        base = Path(tmp)
        issuer = Issuer.load_or_create(base / "issuer.pem")
        quick = KeyManagerConfig(argon2_time_cost=1, argon2_memory_kib=8192, argon2_parallelism=1,  # one login
                                 issuers=(issuer.public_key,))
        tls = init_folder(base / "tls")  # over TLS on loopback, as deployed
        with vault_running(vault_db or f"sqlite:///{base / 'v.db'}", base / "v.pem", tls.server,
                           issuers=(issuer.public_key,)) as vault_url, \
                keymgr_running(f"sqlite:///{base / 'k.db'}", base / "k.pem", base / "m.key", quick,
                               tls.server) as km_url, \
                KeyManagerClient(km_url, ca=tls.ca_cert) as keymgr:
            keymgr.create_account("bench", "bench password")
            factors.login(keymgr, "bench", "bench password")

            def stocked(c: int) -> tuple[WalletSession, list[int]]:
                session = WalletSession(connect_card(SimulatedCard.manufacture(size=65536, index_capacity=256)))
                issuer.personalize(session, "1234")
                session.verify_pin("1234")
                ids = [session.store(replace(FIG15[i % 4], name=f"{FIG15[i % 4].name} {c}/{i}")) for i in range(values)]
                session.generate_key()
                backup_key(session, keymgr)
                return session, ids

            session, ids = stocked(0)  # a twin of the first card, backed up a value a request
            with VaultClient(vault_url, ca=tls.ca_cert) as vault:
                key = connect(session, vault)
                start = time.perf_counter()
                for value_id in ids:
                    backup(session, vault, key, value_id, encrypt=True)
                one_s = time.perf_counter() - start
            sessions = []
            for c in range(cards):
                session, ids = stocked(c)
                with VaultClient(vault_url, ca=tls.ca_cert) as vault:
                    key = connect(session, vault)
                    done = c * values

                    def backed_up(n: int) -> None:
                        nonlocal done
                        done += n
                        if progress:
                            progress("backing up", done, total)

                    start = time.perf_counter()  # as `evb backup --all` does: 16 values a request
                    backup_many(session, vault, key, ids, False, True, backed_up)
                    backup_s += time.perf_counter() - start
                sessions.append(session)
            for c, session in enumerate(sessions):
                def moved(done: int, _: int, offset: int = c * values) -> None:
                    if progress:
                        progress("rotating", offset + done, total)

                with VaultClient(vault_url, ca=tls.ca_cert) as vault:
                    connect(session, vault)
                    start = time.perf_counter()
                    rotate(session, vault, keymgr, moved)
                    rotation_s += time.perf_counter() - start
    return RotationTiming(cards, values, total / backup_s, total / rotation_s, values / one_s)


@dataclass(frozen=True)
class FingerprintRates:
    fingers: int
    threshold: float
    genuine: list[float]  # one score per finger: a fresh touch against its template
    impostor: list[float]  # one score per finger: another finger's touch against its template

    def rates(self, threshold: float | None = None) -> tuple[float, float]:
        """(false accept rate, false reject rate) at ``threshold``."""
        t = self.threshold if threshold is None else threshold
        far = sum(s >= t for s in self.impostor) / len(self.impostor)
        frr = sum(s < t for s in self.genuine) / len(self.genuine)
        return far, frr


def run_fingerprint_bench(fingers: int = 1000, seed: int = 1,
                          progress: Callable[[int, int], None] | None = None) -> FingerprintRates:
    """A synthetic population from the simulated sensor: each finger enrolled with one touch,
    then matched against a second touch of itself and a touch of another finger."""
    import random

    from servers.keymgr.fingerprint import THRESHOLD, score

    from .sensor import finger, touch

    rng = random.Random(seed)
    genuine, impostor = [], []
    for i in range(fingers):
        true = finger(f"bench/{seed}/{i}")
        template = touch(true, rng)
        genuine.append(score(template, touch(true, rng)))
        impostor.append(score(template, touch(finger(f"bench/{seed}/{(i + 1) % fingers}"), rng)))
        if progress:
            progress(i + 1, fingers)
    return FingerprintRates(fingers, THRESHOLD, genuine, impostor)


@dataclass(frozen=True)
class WorstCaseMatch:
    minutiae: int  # in the template and in the sample
    seconds: float
    peak_bytes: int  # traced by tracemalloc, which sees numpy's arrays


def run_worst_case_match() -> WorstCaseMatch:
    """The dearest match a key manager can be made to run: a template of the most minutiae a
    print may have (three identical samples enrol one) against a sample as large; its time and
    its peak memory, which the chunked matcher bounds (1.9 GB before)."""
    import time
    import tracemalloc

    import numpy as np

    from servers.keymgr.fingerprint import MAX_MINUTIAE, decode, encode, score

    rng = np.random.default_rng(0)
    n = MAX_MINUTIAE
    worst = decode(encode(np.column_stack([rng.uniform(0, 300, n), rng.uniform(0, 400, n),
                                           rng.uniform(0, 2 * np.pi, n)])))
    tracemalloc.start()
    try:
        start = time.perf_counter()
        score(worst, worst)
        seconds = time.perf_counter() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return WorstCaseMatch(n, seconds, peak)


@dataclass(frozen=True)
class ImageTiming:
    pairs: int
    memory_apdu_s: float  # the baseline: the same card, its EEPROM in memory only
    image_apdu_s: float  # its EEPROM in an image file, written in place
    sync_ms: float = float("nan")  # one page written and fdatasync'd in the same folder, between batches

    @property
    def ratio(self) -> float:
        return self.image_apdu_s / self.memory_apdu_s

    @property
    def one_sync_bound(self) -> float:
        """APDU/s of the in-memory card plus one fdatasync per APDU, the image card's design
        (the journal's commit byte is the durability point): the most an image card can do on
        this disk while it is durable at every answer."""
        return 1 / (1 / self.memory_apdu_s + self.sync_ms / 1000)


def run_image_bench(pairs: int = 2000, folder: Path | None = None) -> ImageTiming:
    """STORE+DELETE pairs on one card, as an in-memory clone and as an image file in ``folder``
    (a temporary folder by default: the disk's sync cost is part of the figure), in interleaved
    batches so that background load hits both alike: medians of the batch rates, in APDU/s."""
    from dataclasses import replace

    card = SimulatedCard.manufacture()
    session = WalletSession(connect_card(card))
    session.personalize("1234")
    session.verify_pin("1234")
    load_fig15(session)
    card.power_off()
    cells = card.eeprom.snapshot()
    value = replace(FIG15[0], name="Benchmark ticket")

    def batch(s: WalletSession) -> float:
        start = time.perf_counter()
        for _ in range(BATCH):
            s.delete(s.store(value))
        return 2 * BATCH / (time.perf_counter() - start)

    memory: list[float] = []
    image: list[float] = []
    syncs: list[float] = []

    def sync_batch(fd: int) -> float:
        start = time.perf_counter()
        for i in range(2 * BATCH):
            os.pwrite(fd, bytes(64), 64 * i)
            os.fdatasync(fd)
        return (time.perf_counter() - start) * 1000 / (2 * BATCH)

    with tempfile.TemporaryDirectory(prefix="evb-bench-", dir=folder) as tmp:
        Eeprom(bytearray(cells)).save(Path(tmp) / "bench.img")
        on_file = SimulatedCard.open(Path(tmp) / "bench.img")
        in_memory = SimulatedCard(Eeprom(bytearray(cells)))
        sessions = [WalletSession(connect_card(c)) for c in (in_memory, on_file)]
        for s in sessions:
            s.verify_pin("1234")
        scratch = os.open(Path(tmp) / "sync", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            for _ in range(0, pairs, BATCH):
                memory.append(batch(sessions[0]))
                image.append(batch(sessions[1]))
                syncs.append(sync_batch(scratch))
        finally:
            on_file.close()
            os.close(scratch)
    return ImageTiming(len(memory) * BATCH, statistics.median(memory), statistics.median(image),
                       statistics.median(syncs))


@dataclass(frozen=True)
class StartupRow:
    name: str
    argv: tuple[str, ...]
    median_ms: float
    ratio: float  # against ``python3 -c pass`` measured in the same run


def run_startup_bench(rounds: int = 15) -> list[StartupRow]:
    """Wall time of ``evb --version``, ``evb card info`` and ``evb card list`` (``--card-image FILE``,
    a simulated card holding fig. 15's values) beside ``python3 -c pass``, the interpreter's own
    start-up, in interleaved rounds: medians.

    The CLI runs as ``python3 -m host.cli`` from the folder this code was imported from, so the
    figure is this code's whatever ``evb`` on PATH points at. Bytecode is cached (in a private
    folder, after a warm-up run) as an installed package has it: pip compiles at install, so a
    user never pays for compiling our source, which PYTHONDONTWRITEBYTECODE would charge every run."""
    import subprocess
    import sys

    import host

    root = str(Path(host.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    env.pop("EVB_CARD_IMAGE", None)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    py = sys.executable
    with tempfile.TemporaryDirectory(prefix="evb-bench-") as tmp:
        env["PYTHONPYCACHEPREFIX"] = str(Path(tmp) / "pycache")
        image = Path(tmp) / "card.img"
        _loaded(SimulatedCard.manufacture(image=image)).close()
        runs = {
            "python3 -c pass": (py, "-c", "pass"),
            "evb --version": (py, "-m", "host.cli", "--version"),
            "evb card info --card-image FILE": (py, "-m", "host.cli", "card", "info", "--card-image", str(image)),
            "evb card list --card-image FILE": (py, "-m", "host.cli", "card", "list", "--card-image", str(image)),
        }
        times: dict[str, list[float]] = {name: [] for name in runs}
        for argv in runs.values():  # the warm-up: bytecode written, files in the page cache
            subprocess.run(argv, env=env, cwd=tmp, check=True, stdout=subprocess.DEVNULL)
        for _ in range(rounds):
            for name, argv in runs.items():
                start = time.perf_counter()
                subprocess.run(argv, env=env, cwd=tmp, check=True, stdout=subprocess.DEVNULL)
                times[name].append((time.perf_counter() - start) * 1000)
    base = statistics.median(times["python3 -c pass"])
    return [StartupRow(name, argv[1:] if argv[0] == py else argv, statistics.median(t), statistics.median(t) / base)
            for (name, argv), t in zip(runs.items(), times.values(), strict=True)]
