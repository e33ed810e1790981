"""What the card's dispatcher knows of an applet, and how an applet refuses a command."""

from __future__ import annotations

from typing import Protocol

from apdu import CommandApdu


class CardError(Exception):
    """Raised inside the card to answer a status word; never leaves :meth:`Card.transmit`."""

    def __init__(self, sw: int) -> None:
        super().__init__(f"{sw:04X}")
        self.sw = sw


class Applet(Protocol):
    aid: bytes

    def select(self) -> bytes:
        """Become the current applet; answer the FCI."""

    def deselect(self) -> None:
        """Forget session state (PIN verified and the like)."""

    def process(self, command: CommandApdu) -> bytes:
        """Answer the response data of a 9000, or raise :class:`CardError`."""
