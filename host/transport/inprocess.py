"""A pyscard ``CardConnection`` that drives a simulated card in this process (no pcscd).

Used by tests and by the embedded default: the host code above it cannot tell it from a
reader. A card image is locked for the lifetime of the connection so two terminals never
write the same image.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, TypeAlias

from smartcard.CardConnection import CardConnection
from smartcard.Exceptions import CardConnectionException

from card import CardMute, SimulatedCard
from card.card import T0, T1
from card.eeprom import ImageError

from . import TransportError
from .pyscard import PyscardTransport

if TYPE_CHECKING:  # the applet's runner starts a JVM: imported by whoever runs one, not by every card
    from card.javacard import AppletCard

READER_NAME = "EVB in-process reader"


InProcessCard: TypeAlias = "SimulatedCard | AppletCard"  # the Python card, or the applet in its JVM child


class InProcessCardConnection(CardConnection):  # type: ignore[misc]
    def __init__(self, card: InProcessCard, reader: str = READER_NAME) -> None:
        super().__init__(reader)
        self.card = card
        self._atr: bytes | None = None

    def connect(self, protocol=None, mode=None, disposition=None) -> None:  # type: ignore[no-untyped-def]
        """Power the card and agree a protocol: T=1 unless only T=0 is asked for, as pcscd
        chooses when a card offers both."""
        super().connect(protocol, mode, disposition)
        self._atr = self.card.power_on()
        chosen = T0 if protocol == CardConnection.T0_protocol else T1
        self.card.select_protocol(chosen)
        self.setProtocol(CardConnection.T0_protocol if chosen == T0 else CardConnection.T1_protocol)

    def disconnect(self) -> None:
        super().disconnect()
        if self.card.powered:
            self.card.power_off()
        self._atr = None

    def getATR(self) -> list[int] | None:  # noqa: N802 (pyscard's name)
        return list(self._atr) if self._atr is not None else None

    def doTransmit(self, command, protocol=None):  # type: ignore[no-untyped-def]  # noqa: N802
        try:
            response = self.card.transmit(bytes(command))
        except CardMute as exc:
            raise CardConnectionException(f"card mute: {exc}") from exc
        return list(response[:-2]), response[-2], response[-1]


def connect_card(card: InProcessCard, protocol: str | None = None) -> PyscardTransport:
    """``protocol`` ``"T=0"`` or ``"T=1"``; by default T=1, as pcscd picks for our ATR."""
    connection = InProcessCardConnection(card)
    connection.connect({None: None, T0: CardConnection.T0_protocol, T1: CardConnection.T1_protocol}[protocol])
    return PyscardTransport(connection)


@contextmanager
def open_image(path: Path) -> Iterator[PyscardTransport]:
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
