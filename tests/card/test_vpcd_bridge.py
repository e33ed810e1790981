"""The vpcd wire protocol against a stand-in for the driver inside pcscd (no pcscd needed):
framing, control codes, a mute card, and reconnection when the driver goes away."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from apdu import wallet as w
from card import SimulatedCard
from card.bridge.vpcd import CTRL_ATR, CTRL_OFF, CTRL_ON, CTRL_RESET, VpcdBridge

# the bridge's own wire protocol, with the Python card in it; the applet behind the bridge is
# tests/pcsc/test_serve_javacard.py's
pytestmark = pytest.mark.python_only("the vpcd bridge's protocol, not the card's")


class Driver:
    """The driver's side: it listens, the bridge (the card) connects."""

    def __init__(self, port: int = 0) -> None:
        self.server = socket.create_server(("127.0.0.1", port))
        self.server.settimeout(10)
        self.port = self.server.getsockname()[1]
        self.conn: socket.socket | None = None

    def accept(self) -> socket.socket:
        if self.conn is not None:
            self.conn.close()
        self.conn, _ = self.server.accept()
        self.conn.settimeout(10)
        return self.conn

    def send(self, body: bytes, split: bool = False) -> None:
        assert self.conn is not None
        frame = len(body).to_bytes(2, "big") + body
        if split:  # as the real driver does: length and body in two writes
            self.conn.sendall(frame[:2])
            time.sleep(0.01)
            self.conn.sendall(frame[2:])
        else:
            self.conn.sendall(frame)

    def recv(self) -> bytes:
        assert self.conn is not None
        n = int.from_bytes(self._exact(2), "big")
        return self._exact(n)

    def _exact(self, n: int) -> bytes:
        assert self.conn is not None
        buf = b""
        while len(buf) < n:
            chunk = self.conn.recv(n - len(buf))
            if not chunk:
                raise EOFError
            buf += chunk
        return buf

    def barrier(self) -> None:
        """The bridge answers in order: once the ATR is back, every earlier message was handled."""
        self.send(bytes([CTRL_ATR]))
        self.recv()

    def close(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.server.close()


@pytest.fixture
def driver() -> Iterator[Driver]:
    d = Driver()
    yield d
    d.close()


@pytest.fixture
def bridged(driver: Driver, card: SimulatedCard) -> Iterator[VpcdBridge]:
    bridge = VpcdBridge(card, port=driver.port, reconnect_delay=0.05)
    bridge.start()
    driver.accept()
    yield bridge
    bridge.stop()


def test_control_codes_and_apdus(driver: Driver, bridged: VpcdBridge, card: SimulatedCard) -> None:
    driver.send(bytes([CTRL_ATR]))
    assert driver.recv() == card.atr
    assert bridged.seen.is_set()
    driver.send(bytes([CTRL_ON]))
    driver.send(w.select().to_bytes(), split=True)
    assert driver.recv()[-2:] == b"\x90\x00"
    driver.send(bytes([CTRL_RESET]))
    driver.send(bytes([CTRL_OFF]))
    driver.barrier()  # and nothing was answered to the other control codes
    assert not card.powered
    driver.send(bytes([CTRL_ON]))
    driver.barrier()
    assert card.powered


def test_mute_card_drops_the_connection_then_comes_back(driver: Driver, bridged: VpcdBridge, card: SimulatedCard) -> None:
    driver.send(bytes([CTRL_OFF]))
    driver.send(w.get_card_info().to_bytes())  # to an unpowered card: no answer at all
    with pytest.raises(EOFError):
        driver.recv()
    driver.accept()  # reinserted
    driver.send(bytes([CTRL_ON]))
    driver.send(w.select().to_bytes())
    assert driver.recv()[-2:] == b"\x90\x00"


def test_reconnects_when_the_driver_restarts(driver: Driver, bridged: VpcdBridge, card: SimulatedCard) -> None:
    port = driver.port
    driver.send(bytes([CTRL_ON]))
    driver.send(bytes([CTRL_ATR]))
    assert driver.recv() == card.atr
    driver.close()  # pcscd stops: leaving the reader cuts the card's power
    deadline = time.monotonic() + 5
    while bridged.connected.is_set() or card.powered:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    restarted = Driver(port)
    try:
        restarted.accept()
        restarted.send(bytes([CTRL_ON]))
        restarted.send(w.select().to_bytes())
        assert restarted.recv()[-2:] == b"\x90\x00"
    finally:
        restarted.close()


def test_stop_returns_promptly(driver: Driver, bridged: VpcdBridge) -> None:
    start = time.monotonic()
    bridged.stop()
    assert time.monotonic() - start < 5
    assert not bridged.connected.is_set()
