"""Benchmarks that compare against a baseline in the same run (the machine is shared and noisy).

``run_pcsc_bench`` puts our card in vpcd slot 0 and an echo card in slot 1, then measures the
same APDUs against both, interleaving small batches so that background load hits both alike.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from apdu import wallet as w
from card import ATR, SimulatedCard
from card.bridge.vpcd import BASE_PORT, EchoCard, VpcdBridge, wait_connected

from .demo import FIG15, load_fig15
from .session import WalletSession
from .transport import Transport
from .transport.inprocess import connect_card
from .transport.pcsc import connect_reader, list_readers

BATCH = 10


@dataclass(frozen=True)
class BenchRow:
    name: str
    ours_ms: float
    echo_ms: float

    @property
    def ratio(self) -> float:
        return self.ours_ms / self.echo_ms


@dataclass(frozen=True)
class BenchResult:
    rounds: int
    rows: list[BenchRow]

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


def run_pcsc_bench(rounds: int = 300, host: str = "127.0.0.1", quickack: bool = True) -> BenchResult:
    """``quickack=False`` reproduces the 40 ms delayed-ACK stall the bridge otherwise avoids."""
    names = list_readers()
    with tempfile.TemporaryDirectory() as tmp:
        card = SimulatedCard.manufacture(image=Path(tmp) / "bench.img")
        session = WalletSession(connect_card(card))
        session.personalize("1234")
        session.verify_pin("1234")
        load_fig15(session)
        assert len(session.list()) == len(FIG15)
        card.power_off()
        ours = VpcdBridge(card, host, BASE_PORT, quickack=quickack)
        echo = VpcdBridge(EchoCard(ATR), host, BASE_PORT + 1, quickack=quickack)
        ours.start()
        echo.start()
        try:
            wait_connected(ours)
            wait_connected(echo)
            t_ours, t_echo = _connect(names[0]), _connect(names[1])
            t_ours.send_and_receive(w.select().to_bytes())
            rows = []
            for name, apdu in _apdus():
                a: list[float] = []
                b: list[float] = []
                for _ in range(0, rounds, BATCH):
                    a += _time(t_ours, apdu, BATCH)
                    b += _time(t_echo, apdu, BATCH)
                rows.append(BenchRow(name, statistics.median(a) * 1000, statistics.median(b) * 1000))
            t_ours.close()
            t_echo.close()
        finally:
            ours.stop()
            echo.stop()
    return BenchResult(rounds, rows)


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

    from .keymgr_client import KeyManagerClient, KeyManagerClientError

    unknown: list[float] = []
    wrong: list[float] = []
    with tempfile.TemporaryDirectory(prefix="evb-bench-") as tmp:
        base = Path(tmp)
        with running(f"sqlite:///{base / 'k.db'}", base / "k.pem", base / "m.key") as url, \
                KeyManagerClient(url) as client:
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
