"""The vpcd wire protocol, card side: we connect to the driver inside pcscd as a TCP client.

Every message is a 2-byte big-endian length and a body. A 1-byte body from the driver is a
control code (0 power off, 1 power on, 2 reset, 4 get ATR: only the last is answered); any
longer body is a command APDU, answered with the response APDU. A mute card (power cut
mid-command) gets no answer: we drop the connection, which the driver reports to pcscd as a
removed card, and reconnect, as a card torn out and put back would be. (An empty answer is
not an option: the driver then blocks waiting for a body that never comes.)

Latency: the driver writes the length and the body with two ``send()`` calls. Without
``TCP_NODELAY`` on its socket, Nagle holds the body until our side ACKs the length segment,
and Linux delays that ACK by up to 40 ms. We cannot set options on the driver's socket, so we
re-arm ``TCP_QUICKACK`` before every read (Linux clears it after use) and ACK at once; our own
replies go out as one segment with ``TCP_NODELAY``.

Protocol: the driver ignores the PPS pcscd asks for (``IFDHSetProtocolParameters``), so the card
is never told whether the host chose T=0 or T=1 and keeps to T=0, the first protocol its ATR
offers (ISO 7816-3): a command without Le that has data gets ``61xx``, which T=1 hosts handle
too. ``protocol`` pins T=1 instead, for hosts known to use it: the card then answers no data
to a command without Le (Ne = 0), and a T=0 host stripping Le from case-4 commands gets none.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from typing import Protocol

log = logging.getLogger("evb.bridge")

DEFAULT_HOST = "127.0.0.1"
BASE_PORT = 35963  # slot 0; slot n listens on BASE_PORT + n
CTRL_OFF, CTRL_ON, CTRL_RESET, CTRL_ATR = 0, 1, 2, 4
MUTE = b""  # handle()'s answer when the card gave none


class BridgedCard(Protocol):
    """What the bridge needs of a card: ours, or the echo card of the benchmark."""

    atr: bytes

    def power_on(self) -> bytes: ...
    def power_off(self) -> None: ...
    def reset(self) -> bytes: ...
    def select_protocol(self, protocol: str) -> None: ...
    def transmit(self, apdu: bytes) -> bytes: ...


class NotSeated(Exception):
    """pcscd did not read the ATR after the card went in: re-seat it."""


class Closed(Exception):
    """The driver closed the connection (pcscd stopped or restarted)."""


class VpcdBridge:
    def __init__(
        self,
        card: BridgedCard,
        host: str = DEFAULT_HOST,
        port: int = BASE_PORT,
        quickack: bool = True,
        reconnect_delay: float = 0.5,
        seat_timeout: float = 3.0,
        protocol: str | None = None,
    ) -> None:
        self.card = card
        self.protocol = protocol  # "T=0"/"T=1" as if every host had negotiated it; None: the card's default
        self.host, self.port = host, port
        self.quickack = quickack and hasattr(socket, "TCP_QUICKACK")
        self.reconnect_delay = reconnect_delay
        self.seat_timeout = seat_timeout
        self.messages = 0
        self.connected = threading.Event()
        self.seen = threading.Event()  # pcscd asked for the ATR on this connection: card visible
        self._stop = threading.Event()
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()  # serialises card access with swap_card()

    # --- lifecycle ---------------------------------------------------------------------------

    def serve_forever(self) -> None:
        """Connect, serve, and reconnect whenever pcscd goes away, until :meth:`stop`."""
        waiting_logged = False
        while not self._stop.is_set():
            try:
                sock = socket.create_connection((self.host, self.port), timeout=2)
            except OSError as exc:
                if not waiting_logged:
                    log.warning("waiting for pcscd's vpcd driver on %s:%d (%s)", self.host, self.port, exc.strerror or exc)
                    waiting_logged = True
                self._stop.wait(self.reconnect_delay)
                continue
            waiting_logged = False
            log.info("connected to vpcd at %s:%d: card inserted", self.host, self.port)
            try:
                self._serve(sock)
                log.info("card mute: dropping the connection as a pulled card would; reconnecting")
            except Closed:
                log.info("vpcd closed the connection: card removed; reconnecting")
            except NotSeated:
                log.info("pcscd did not notice the card within %.1f s: re-inserting it", self.seat_timeout)
            except OSError as exc:
                if not self._stop.is_set():
                    log.warning("connection to vpcd lost (%s); reconnecting", exc)
            finally:
                self.connected.clear()
                self.seen.clear()
                self._sock = None
                sock.close()
                with self._lock:
                    self.card.power_off()  # leaving the reader cuts power

    def start(self) -> None:
        """Serve in a background thread (again, after :meth:`stop`)."""
        self._stop.clear()
        self._thread = threading.Thread(target=self.serve_forever, name=f"vpcd-{self.port}", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Take the card out of the reader and return once the serving thread has ended."""
        self._stop.set()
        sock = self._sock
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(10)
            self._thread = None

    def swap_card(self, card: BridgedCard) -> None:
        """Put another card in the same reader slot (tests use it to insert clones)."""
        with self._lock:
            self.card.power_off()
            self.card = card
            card.power_on()
            self._agree_protocol()

    def _agree_protocol(self) -> None:
        """The PPS the driver does not pass on, when the bridge was told which protocol hosts use."""
        if self.protocol is not None:
            self.card.select_protocol(self.protocol)

    # --- the protocol ------------------------------------------------------------------------

    def _serve(self, sock: socket.socket) -> None:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._sock = sock
        self.connected.set()
        deadline = time.monotonic() + self.seat_timeout
        while not self._stop.is_set():
            # pcscd reads the ATR of a card it notices; if it has not within seat_timeout (seen
            # after a fast pull and re-insert), take the card out and insert it again
            left = deadline - time.monotonic()
            if not self.seen.is_set() and left <= 0:
                raise NotSeated
            sock.settimeout(None if self.seen.is_set() else left)
            try:
                body = self._recv_message(sock)
            except TimeoutError as exc:
                raise NotSeated from exc
            answer = self.handle(body)
            if answer == MUTE:
                return
            if answer is not None:
                sock.sendall(len(answer).to_bytes(2, "big") + answer)

    def handle(self, body: bytes) -> bytes | None:
        """One message from the driver in, the answer out (None: nothing to answer; MUTE: the
        card did not answer at all)."""
        self.messages += 1
        with self._lock:
            if len(body) == 1:
                code = body[0]
                if code == CTRL_OFF:
                    self.card.power_off()
                elif code == CTRL_ON:
                    self.card.power_on()
                    self._agree_protocol()
                elif code == CTRL_RESET:
                    self.card.reset()
                    self._agree_protocol()
                elif code == CTRL_ATR:
                    self.seen.set()
                    return self.card.atr
                else:
                    log.debug("ignoring unknown vpcd control code %d", code)
                return None
            try:
                return self.card.transmit(body)
            except Exception as exc:  # CardMute, or a card bug: either way the card went silent
                log.debug("no answer from the card: %s", exc)
                return MUTE

    def _recv_message(self, sock: socket.socket) -> bytes:
        n = int.from_bytes(self._recv_exact(sock, 2), "big")
        return self._recv_exact(sock, n)

    def _recv_exact(self, sock: socket.socket, n: int) -> bytes:
        buf = bytearray()
        while len(buf) < n:
            if self.quickack:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_QUICKACK, 1)
            chunk = sock.recv(n - len(buf))
            if not chunk:
                raise Closed
            buf += chunk
        return bytes(buf)


class EchoCard:
    """The benchmark's baseline: answers 90 00 to everything, as cheaply as a card can."""

    def __init__(self, atr: bytes) -> None:
        self.atr = atr

    def power_on(self) -> bytes:
        return self.atr

    def power_off(self) -> None:
        pass

    def reset(self) -> bytes:
        return self.atr

    def select_protocol(self, protocol: str) -> None:
        pass

    def transmit(self, apdu: bytes) -> bytes:
        return b"\x90\x00"


def wait_connected(bridge: VpcdBridge, timeout: float = 10.0) -> None:
    """Until pcscd sees the card: after a (re)connection the driver only notices us at its
    next presence poll, and an application connecting before that talks to a stale slot."""
    deadline = time.monotonic() + timeout
    while not bridge.seen.wait(0.05):
        if time.monotonic() > deadline:
            raise TimeoutError(f"vpcd at {bridge.host}:{bridge.port} did not accept the card")
