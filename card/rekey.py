"""Re-keying driven by the key manager on the card (seed E7/E8, see :mod:`apdu.rekey`): the card
takes successor certificates on the vault's word and a new key on its pinned key manager's,
so it needs no key of its own to be re-keyed."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from apdu import SW, CommandApdu, ins
from apdu.deferred import deferred
from apdu.records import ValueFlags, ValueRecord
from apdu.wallet import MessageError

from . import crypto
from .applet import CardError, WalletPart
from .keys import H_KEY_MODE, H_KEY_PUBLIC, H_KEY_SECRET, H_SHARES, H_TRANSPORT

if TYPE_CHECKING:
    from apdu import backup as b
    from apdu import certificate as c
    from apdu import keys as k
    from apdu import rekey as rk
else:  # run at the first re-keying command: a card boots and reads its values without them
    b, c, k, rk = map(deferred, ("apdu.backup", "apdu.certificate", "apdu.keys", "apdu.rekey"))

SHARES_AREA = 10 + ins.MAX_SHARES * ins.SHARE_LEN  # also the next key's area of a card-side rotation


class RekeyCommands(WalletPart):
    if TYPE_CHECKING:  # provided by the wallet applet's other mixins
        @property
        def identity(self) -> b.Identity: ...
        @property
        def next_mode(self) -> k.KeyMode: ...

        def key_info(self) -> k.KeyInfo: ...
        def open_assisted(self, blob: bytes, context: bytes) -> bytes: ...
        @staticmethod
        def _mode(p1: int) -> k.KeyMode: ...

    def rekey_handlers(self) -> dict[tuple[int, int], Callable[[CommandApdu], bytes]]:
        p = 0x80
        return {
            (p, ins.INS_REPLACE_KEY): self._replace_key,
            (p, ins.INS_SUCCEED_CERTIFICATE): self._succeed_certificate,
        }

    def _succeed_certificate(self, command: CommandApdu) -> bytes:
        """Replace an encrypted backup's certificate by its successor, which the vault signed for
        this card as standing for the same value (it re-registered the value on the key
        manager's signed word). The digest must not change; the old registration stays at the
        vault until this card's receipt, so a valid certificate is held at every moment."""
        self._require_pin()
        try:
            succession = rk.Succession.from_bytes(command.data)
        except MessageError as exc:
            raise CardError(SW.WRONG_DATA) from exc
        entry = self._entry(command)
        if not entry.flags & ValueFlags.CERTIFICATE or entry.flags & ValueFlags.PENDING:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED)
        current = self._certificate_of(entry)
        if current == succession.certificate:
            return b""  # a retry after the swap: done already
        old, new = self._parse_certificate(current), self._parse_certificate(succession.certificate)
        vault = self.vault_key
        if vault is None:
            raise CardError(SW.REFERENCE_DATA_NOT_USABLE)
        if old.mode != c.Mode.ENCRYPTED or new.mode != c.Mode.ENCRYPTED or new.card_id != self.card_id \
                or new.digest != old.digest:
            raise CardError(SW.WRONG_DATA)
        identity = self.identity
        named = rk.succession_message(self.card_id, identity.public_key, old.signed_part(), new.signed_part())
        if not (crypto.verify(vault, new.signature, new.message()) and crypto.verify(vault, succession.signature,
                                                                                     named)):
            raise CardError(SW.VERIFICATION_FAILED)
        title = ValueRecord.from_bytes(self.index.read(entry))
        self._replace(entry, b.certificate_record(title, succession.certificate).body(), entry.type,
                      ValueFlags.CERTIFICATE)
        return b""

    def _replace_key(self, command: CommandApdu) -> bytes:
        """Install the key the pinned key manager sealed for this card and purpose, in place of
        the card's key or of none (seed E7 steps 1-13..1-15)."""
        self._require_pin()
        mode = self._mode(command.p1)
        if command.p2:
            raise CardError(SW.INCORRECT_P1P2)
        entries = self.index.entries()
        if self.next_mode != k.KeyMode.NONE or any(e.flags & ValueFlags.PENDING for e in entries):
            raise CardError(SW.CONDITIONS_NOT_SATISFIED)  # a card-side rotation, backup or restore under way
        material = self.open_assisted(command.data, rk.replace_context(self.card_id, mode))
        try:
            k.check_material(material, mode)  # d must be Q's private key, as IMPORT KEY checks
        except MessageError as exc:
            raise CardError(SW.WRONG_DATA) from exc
        with self.eeprom.transaction():
            self.eeprom.write(self.base + H_KEY_SECRET, k.secret_of(material))
            self.eeprom.write(self.base + H_KEY_PUBLIC, material[k.SECRET_LEN:].ljust(65, b"\x00"))
            self.eeprom.write(self.base + H_KEY_MODE, bytes((mode,)))
            self.eeprom.write(self.base + H_TRANSPORT, bytes(32))
            self.eeprom.write(self.base + H_SHARES, bytes(SHARES_AREA))  # shares of a recovery given up
            for entry in entries:
                if entry.flags & ValueFlags.BACKED_UP:  # kept copies were registered under the old key
                    self.index.set_flags(entry, entry.flags & ~ValueFlags.BACKED_UP)
        return bytes(self.key_info())
