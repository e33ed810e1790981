"""The terminal's side of an ID card (seed E5) in a second reader: read the document, unlock
with its PIN if it has one, sign the key manager's challenge."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date

from apdu import PinBlockedError
from apdu import idcard as i
from apdu import wallet as w

from .session import CardProtocol
from .transport import Transport


class IdPinBlockedError(PinBlockedError):
    """An ID card's PIN blocked: the card has no unblocking code of the holder's."""

    def __str__(self) -> str:
        return "the ID card's PIN is blocked after too many wrong tries: its issuer can reset it"


class IdCardSession:
    def __init__(self, transport: Transport) -> None:
        self.protocol = CardProtocol(transport)
        self.protocol.send(w.select(i.AID_IDCARD))

    def document(self) -> i.IdDocument:
        return i.IdDocument.from_bytes(self.protocol.send(i.get_document()))

    def public_key(self) -> bytes:
        """The key pair's public half, which the card made; readable blank or issued."""
        return i.parse_public_key(self.protocol.send(i.get_public_key()))

    def issue(self, holder: str, number: str, expiry: date, sign: Callable[[bytes], bytes],
              pin: str | None = None) -> i.IdDocument:
        """The issuer's step on a blank card: a document naming the card's own key, signed with
        the issuer's key (``sign``), written once with the PIN it promises."""
        block = w.pin_block(pin) if pin is not None else None
        document = i.IdDocument.signed(holder, number, expiry, self.public_key(), pin is not None, sign)
        self.protocol.send(i.put_document(document, block))
        return document

    def verify_pin(self, pin: str) -> None:
        """VERIFY, holding the card for this program from now until the transport closes."""
        self.protocol.transport.begin_exclusive()
        try:
            self.protocol.send(w.verify(pin))
        except PinBlockedError as exc:
            raise IdPinBlockedError(exc.sw, exc.data) from exc

    def authenticate(self, server_key: bytes, challenge: bytes) -> bytes:
        """The ID card's signature over ``challenge`` for the key manager whose key is ``server_key``."""
        return self.protocol.send(i.authenticate(server_key, challenge))
