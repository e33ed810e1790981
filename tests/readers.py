"""The two ways a test puts a card in front of the host: in-process, or in pcscd's virtual reader.

Card-level tests take the ``reader`` fixture and so run over both; the PC/SC one needs pcscd with
the vpcd driver, which ``scripts/test`` installs and these fixtures start when it is not running.
"""

from __future__ import annotations

import logging
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator

import pytest

from card import ATR, SimulatedCard
from card.bridge.vpcd import BASE_PORT, BridgedCard, EchoCard, VpcdBridge, wait_connected
from host.transport import Transport
from host.transport.inprocess import connect_card

SLOT0 = "Virtual PCD 00 00"
PROBE = bytes.fromhex("80100000")  # GET CARD INFO: reads, writes nothing


def vpcd_listening(port: int = BASE_PORT) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


log = logging.getLogger(__name__)


class InProcessReader:
    name = "inprocess"

    def insert(self, card: SimulatedCard) -> Transport:
        return connect_card(card)

    def close(self) -> None:
        pass


class PcscReader:
    name = "pcsc"

    def __init__(self, bridge: VpcdBridge, reader_name: str = SLOT0) -> None:
        self.bridge = bridge
        self.reader_name = reader_name
        self._open: list[Transport] = []

    def insert(self, card: BridgedCard) -> Transport:
        """Swap ``card`` (ours, or the applet: card/javacard.py) into the bridged slot and connect
        to it through pcscd. The connections to the card before end first, as taking a card out
        ends them (pcscd, which does not see the swap, would otherwise keep their PC/SC
        transactions and make this one wait)."""
        from host.transport.pcsc import connect_reader

        self.close()
        self.bridge.swap_card(card)
        wait_connected(self.bridge)  # after a torn command the bridge reconnects

        def connect() -> Transport:
            # pcscd may still hold the slot from before a tear for one presence poll: probe it
            # with a read-only GET CARD INFO, and reconnect until the probe goes through.
            transport = connect_reader(self.reader_name)
            try:
                transport.send_and_receive(PROBE)
            except Exception:
                transport.close()
                raise
            return transport

        try:
            transport = retry(connect, timeout=5.0)
        except Exception:
            # seen rarely after a torn command: pcscd read the ATR yet keeps answering "no card";
            # taking the card out and inserting it again (as a person would) clears it
            log.warning("pcscd does not see the card in %s: re-seating it", self.reader_name)
            self.bridge.stop()
            self.bridge.start()
            wait_connected(self.bridge)
            transport = retry(connect)
        self._open.append(transport)
        return transport

    def close(self) -> None:
        for t in self._open:
            t.close()
        self._open.clear()


def retry(fn, timeout: float = 10.0):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)


@pytest.fixture(scope="session")
def pcscd() -> Iterator[None]:
    """pcscd with vpcd listening; started here (and stopped after) when it is not running."""
    if vpcd_listening():
        yield
        return
    if shutil.which("pcscd") is None:
        pytest.fail("pcscd is not installed: run 'bash scripts/install test'")
    proc = subprocess.Popen(["pcscd", "--foreground"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        retry(lambda: vpcd_listening() or (_ for _ in ()).throw(OSError("not yet")))
        yield
    finally:
        proc.terminate()
        proc.wait(10)


@pytest.fixture(scope="session")
def pcsc_bridge(pcscd: None) -> Iterator[VpcdBridge]:
    bridge = VpcdBridge(EchoCard(ATR), port=BASE_PORT)
    bridge.start()
    wait_connected(bridge)
    yield bridge
    bridge.stop()


Reader = InProcessReader | PcscReader


@pytest.fixture(params=["inprocess", "pcsc"])
def reader(request: pytest.FixtureRequest) -> Iterator[Reader]:
    r: Reader
    r = PcscReader(request.getfixturevalue("pcsc_bridge")) if request.param == "pcsc" else InProcessReader()
    yield r
    r.close()
