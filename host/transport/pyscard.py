"""Adapter from any pyscard ``CardConnection`` to our :class:`~host.transport.Transport`."""

from __future__ import annotations

from smartcard.CardConnection import CardConnection
from smartcard.Exceptions import CardConnectionException, NoCardException

from . import CardRemovedError, TransportError


class PyscardTransport:
    def __init__(self, connection: CardConnection) -> None:
        self.connection = connection

    @property
    def atr(self) -> bytes:
        return bytes(self.connection.getATR() or b"")

    @property
    def reader(self) -> str:
        return str(self.connection.getReader())

    def send_and_receive(self, apdu: bytes) -> tuple[bytes, int]:
        try:
            data, sw1, sw2 = self.connection.transmit(list(apdu))
        except NoCardException as exc:
            raise CardRemovedError(f"no card in {self.reader}") from exc
        except CardConnectionException as exc:
            raise CardRemovedError(f"card in {self.reader} did not answer: {exc}") from exc
        except Exception as exc:  # pyscard raises bare SmartcardException subclasses too
            raise TransportError(f"{self.reader}: {exc}") from exc
        return bytes(data), sw1 << 8 | sw2

    def begin_exclusive(self) -> None:
        """Nothing to do here: an in-process card is locked for this process already. (A PC/SC
        reader's transport, :class:`~host.transport.pcsc.PcscTransport`, holds a transaction.)"""

    def close(self) -> None:
        try:
            self.connection.disconnect()
        except Exception:  # closing a dead connection is not an error worth reporting
            pass
