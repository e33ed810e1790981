"""What the card's dispatcher knows of an applet, and how an applet refuses a command."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from apdu import CommandApdu

if TYPE_CHECKING:
    from apdu.certificate import Certificate

    from .eeprom import Eeprom
    from .index import Index, IndexEntry


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


class WalletPart:
    """What the wallet applet (:class:`card.wallet.WalletApplet`) and its backup part give the
    command mixins that back up, re-key and rotate keys, declared once for the type checker: each
    such mixin subclasses this and declares only what else it takes from the others."""

    eeprom: Eeprom
    base: int
    index: Index

    if TYPE_CHECKING:  # provided by the wallet applet and its other mixins
        @property
        def card_id(self) -> bytes: ...
        @property
        def vault_key(self) -> bytes | None: ...

        def _require_pin(self) -> None: ...
        def _entry(self, command: CommandApdu) -> IndexEntry: ...
        def _certificate_of(self, entry: IndexEntry) -> bytes: ...
        def _parse_certificate(self, raw: bytes) -> Certificate: ...
        def _replace(self, entry: IndexEntry, body: bytes, type_: int, flags: int) -> None: ...
