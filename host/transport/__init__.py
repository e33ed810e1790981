"""The one seam between protocol code and a card: ``send_and_receive(apdu) -> (data, sw)``.

A PC/SC reader is a pyscard ``CardConnection`` wrapped by
:class:`~host.transport.pyscard.PyscardTransport`; a simulated card in this process is driven
directly by :class:`~host.transport.inprocess.InProcessTransport`, without pyscard. Protocol
code above never imports pyscard.
"""

from __future__ import annotations

from typing import Protocol


class TransportError(Exception):
    """The reader or the link failed; the card's state is unknown until it is read again."""


class CardRemovedError(TransportError):
    """No answer from the card: it was removed, reset or lost power mid-command."""


class CardBusyError(TransportError):
    """Another program held the card (a PC/SC transaction) for longer than we would wait."""


class Transport(Protocol):
    @property
    def atr(self) -> bytes: ...

    def send_and_receive(self, apdu: bytes) -> tuple[bytes, int]: ...

    def begin_exclusive(self) -> None:
        """Hold the card for this program until :meth:`close` (a PC/SC transaction), so no other
        program's command runs while our PIN is verified. Waits, politely, while another holds it."""

    def close(self) -> None: ...


# PyscardTransport lives in .pyscard, imported where a connection is made: pyscard loads the PC/SC
# library, which a command that never opens a card (or `--help`) need not pay for
__all__ = ["CardBusyError", "CardRemovedError", "Transport", "TransportError"]
