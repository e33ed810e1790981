"""A transport that drives a simulated card in this process (no pcscd, no pyscard).

Used by tests, by ``--card-image`` and by the embedded default: the host code above it cannot
tell it from a reader. It is not a pyscard ``CardConnection``: importing pyscard (it loads the
PC/SC library and builds its reader machinery) costs a card-image command more than its work, and
a simulated card needs none of it. A card image is locked for the lifetime of the connection so
two terminals never write the same image.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from card import CardMute, SimulatedCard
from card.card import T0, T1
from card.eeprom import ImageError

from . import CardRemovedError, TransportError

if TYPE_CHECKING:  # the applet's runner starts a JVM: imported by whoever runs one, not by every card
    from card.javacard import AppletCard

READER_NAME = "EVB in-process reader"


InProcessCard: TypeAlias = "SimulatedCard | AppletCard"  # the Python card, or the applet in its JVM child


class InProcessTransport:
    """The card powered and its protocol agreed at construction, as a reader does on connect; a
    mute card reads as a removed one, as pcscd reports it."""

    def __init__(self, card: InProcessCard, protocol: str | None = None, reader: str = READER_NAME) -> None:
        self.card = card
        self.reader = reader
        self._atr: bytes | None = card.power_on()
        card.select_protocol(T0 if protocol == T0 else T1)  # T=1 unless only T=0 is asked for, as pcscd

    @property
    def atr(self) -> bytes:
        return self._atr or b""

    def send_and_receive(self, apdu: bytes) -> tuple[bytes, int]:
        try:
            response = self.card.transmit(bytes(apdu))
        except CardMute as exc:
            raise CardRemovedError(f"card in {self.reader} did not answer: card mute: {exc}") from exc
        return response[:-2], response[-2] << 8 | response[-1]

    def begin_exclusive(self) -> None:
        """Nothing to do here: an in-process card is locked for this process already. (A PC/SC
        reader's transport, :class:`~host.transport.pcsc.PcscTransport`, holds a transaction.)"""

    def close(self) -> None:
        if self.card.powered:
            self.card.power_off()
        self._atr = None


def connect_card(card: InProcessCard, protocol: str | None = None) -> InProcessTransport:
    """``protocol`` ``"T=0"`` or ``"T=1"``; by default T=1, as pcscd picks for our ATR."""
    if protocol not in (None, T0, T1):
        raise ValueError(f"no such protocol: {protocol}")
    return InProcessTransport(card, protocol)


@contextmanager
def open_image(path: Path) -> Iterator[InProcessTransport]:
    """A transport to the card whose EEPROM lives in ``path``, held exclusively."""
    if not path.exists():
        raise TransportError(f"no card image at {path} (create one with 'evb card init')")
    try:
        card = SimulatedCard.open(path)
    except ImageError as exc:
        raise TransportError(str(exc)) from exc
    try:
        transport = connect_card(card)
        try:
            yield transport
        finally:
            transport.close()
    finally:
        card.close()
