"""A PIN in EEPROM, as both applets keep it: SHA-256(salt ‖ digits) and a retry counter that
is spent, in its own transaction, *before* the comparison, so that cutting power during a
wrong guess still costs a try (JavaCard's ``OwnerPIN`` does the same)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable

from apdu import SW, CommandApdu
from apdu import wallet as w
from apdu.sw import verify_failed

from .applet import CardError
from .eeprom import Eeprom


class Pin:
    """A PIN, or (with ``parse`` = :func:`apdu.wallet.parse_puk_block`) the unblocking code."""

    def __init__(self, eeprom: Eeprom, tries_at: int, max_at: int, hash_at: int, salt: bytes,
                 parse: Callable[[bytes], bytes] = w.parse_pin_block) -> None:
        self.eeprom, self.tries_at, self.max_at, self.hash_at, self.salt = eeprom, tries_at, max_at, hash_at, salt
        self.parse = parse

    @property
    def tries(self) -> int:
        return self.eeprom.read(self.tries_at, 1)[0]

    @property
    def max_tries(self) -> int:
        return self.eeprom.read(self.max_at, 1)[0]

    def _hash(self, digits: bytes) -> bytes:
        return hashlib.sha256(self.salt + digits).digest()

    def set(self, digits: bytes, reset_tries: bool = True) -> None:
        """Write a new PIN (inside the caller's transaction)."""
        self.eeprom.write(self.hash_at, self._hash(digits))
        if reset_tries:
            self.eeprom.write(self.tries_at, bytes((self.max_tries,)))

    def check(self, block: bytes) -> None:
        """Compare a PIN block with the counter already spent, then restore it on success."""
        digits = self.parse(block)
        tries = self.tries
        if tries == 0:
            raise CardError(SW.AUTH_METHOD_BLOCKED)
        with self.eeprom.transaction():
            self.eeprom.write(self.tries_at, bytes((tries - 1,)))
        if not hmac.compare_digest(self.eeprom.read(self.hash_at, 32), self._hash(digits)):
            raise CardError(verify_failed(tries - 1) if tries > 1 else SW.AUTH_METHOD_BLOCKED)
        with self.eeprom.transaction():
            self.eeprom.write(self.tries_at, bytes((self.max_tries,)))

    def verify(self, command: CommandApdu, verified: bool) -> bool:
        """ISO 7816-4 VERIFY (an empty one asks for the status; P1 FF with no data resets the
        verified status, 11.5.6); answers whether verified."""
        if command.p1 not in (0, w.P1_VERIFY_RESET) or command.p2 != w.P2_PIN:
            raise CardError(SW.REFERENCE_DATA_NOT_FOUND if command.p1 in (0, w.P1_VERIFY_RESET)
                            else SW.INCORRECT_P1P2)
        if command.p1 == w.P1_VERIFY_RESET:
            if command.data:
                raise CardError(SW.WRONG_LENGTH)
            return False
        if not command.data:
            if self.tries == 0:
                raise CardError(SW.AUTH_METHOD_BLOCKED)
            if verified:
                return True
            raise CardError(verify_failed(self.tries))
        self.check(command.data)
        return True
