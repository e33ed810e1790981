"""Key rotation on the card (seed E7, see :mod:`apdu.rotation`): the next key waits in the key
store beside the current one until every encrypted certificate has moved to it.

The next key lives in the key store's share area: a card collects shares only while it has
no key, and rotates only while it has one, so the two never meet.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from typing import TYPE_CHECKING

from apdu import SW, CommandApdu, ins, seal
from apdu.deferred import deferred
from apdu.records import MAX_RECORD, ValueFlags, ValueRecord
from apdu.wallet import MessageError

from . import crypto
from .applet import CardError, WalletPart
from .index import IndexEntry
from .keys import H_KEY_MODE, H_KEY_PUBLIC, H_KEY_SECRET, H_SHARES, KEY_AREA_END

if TYPE_CHECKING:
    from apdu import backup as b
    from apdu import certificate as c
    from apdu import keys as k
    from apdu import rotation as r
else:  # run at the first rotation command: a card boots and reads its values without them
    b, c, k, r = map(deferred, ("apdu.backup", "apdu.certificate", "apdu.keys", "apdu.rotation"))

H_NEXT_MODE = H_SHARES  # 1 byte: the next key's mode, 0 when no rotation is under way
H_NEXT_MATERIAL = H_SHARES + 1  # 97 bytes: d || Q, or K and zeros
NEXT_AREA = 1 + ins.PUBLIC_MATERIAL_LEN
assert H_SHARES + NEXT_AREA <= KEY_AREA_END


class RotationCommands(WalletPart):
    if TYPE_CHECKING:  # provided by the wallet applet and its other mixins
        @property
        def key_mode(self) -> k.KeyMode: ...

        def _no_data(self, command: CommandApdu) -> None: ...
        def _material(self) -> bytes: ...
        @staticmethod
        def vault_part(material: bytes, mode: k.KeyMode, card_id: bytes, vault: bytes) -> bytes: ...
        def _stored(self, off: int, n: int) -> bytes: ...
        def _sign(self, message: bytes) -> bytes: ...

    def rotation_handlers(self) -> dict[tuple[int, int], Callable[[CommandApdu], bytes]]:
        p = 0x80
        return {
            (p, ins.INS_BEGIN_ROTATION): self._begin_rotation,
            (p, ins.INS_REENCRYPT): self._reencrypt,
            (p, ins.INS_SWAP_CERTIFICATE): self._swap_certificate,
            (p, ins.INS_COMMIT_ROTATION): self._commit_rotation,
        }

    @property
    def next_mode(self) -> k.KeyMode:
        """The next key's mode while a rotation is under way (the area is the shares' otherwise)."""
        if self.key_mode == k.KeyMode.NONE:
            return k.KeyMode.NONE
        return k.KeyMode(self._stored(H_NEXT_MODE, 1)[0])

    def next_material(self) -> bytes:
        return self._stored(H_NEXT_MATERIAL, k.material_len(self.next_mode))

    def _rotating(self) -> k.KeyMode:
        mode = self.next_mode
        if mode == k.KeyMode.NONE:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED)  # no rotation under way
        return mode

    def _begin_rotation(self, command: CommandApdu) -> bytes:
        self._require_pin()
        self._no_data(command)
        mode = self.key_mode
        if mode == k.KeyMode.NONE or any(e.flags & ValueFlags.PENDING for e in self.index.entries()):
            raise CardError(SW.CONDITIONS_NOT_SATISFIED)
        if self.next_mode == k.KeyMode.NONE:
            with self.eeprom.transaction():
                self.eeprom.write(self.base + H_NEXT_MATERIAL, k.generate_material(mode))
                self.eeprom.write(self.base + H_NEXT_MODE, bytes((mode,)))
        return bytes(k.key_info_of(self.next_material(), mode))

    def _reencrypt(self, command: CommandApdu) -> bytes:
        """Open a registered value with the current key, seal it with the next, sign the new one."""
        self._require_pin()
        mode = self._rotating()
        _, _, _, cert = self._encrypted_certificate(command)
        old = _registered(command.data)
        if c.value_hash(old.ciphertext) != cert.value_hash or old.digest != cert.digest:
            raise CardError(SW.WRONG_DATA)
        if old.key_id != k.key_info_of(self._material(), self.key_mode).key_id:
            raise CardError(SW.REFERENCE_DATA_NOT_USABLE)
        vault = self.vault_key
        if vault is None:
            raise CardError(SW.REFERENCE_DATA_NOT_USABLE)
        value = self._open(self._material(), self.key_mode, old.ciphertext, cert.card_id)
        # sealed for this card: a certificate a lost card handed over becomes this card's own
        following = self.next_material()
        new = b.RegisteredValue(old.digest, k.key_info_of(following, mode).key_id,
                                k.seal_value(following, mode, value, self.card_id),
                                key_part=self.vault_part(following, mode, self.card_id, vault))
        return replace(new, signature=self._sign(new.signed_part(self.card_id, vault))).to_bytes()

    def _swap_certificate(self, command: CommandApdu) -> bytes:
        """Replace a certificate by the vault's certificate of the re-encrypted value, after
        checking both name the same value: the new ciphertext opens under the next key to the
        value whose old ciphertext the old certificate hashes."""
        self._require_pin()
        mode = self._rotating()
        try:
            raw_new, raw_registered = r.split_swap(command.data)
        except (MessageError, ValueError) as exc:
            raise CardError(SW.WRONG_DATA) from exc
        entry, title, current, old = self._encrypted_certificate(command)
        if entry.flags & ValueFlags.ROTATED:
            if current == raw_new:
                return b""  # a retry after the swap: done already
            raise CardError(SW.CONDITIONS_NOT_SATISFIED)
        new = self._parse_certificate(raw_new)
        registered = _registered(raw_registered)
        vault = self.vault_key
        if vault is None or not crypto.verify(vault, new.signature, new.message()):
            raise CardError(SW.VERIFICATION_FAILED)
        if (new.card_id != self.card_id or new.mode != c.Mode.ENCRYPTED or new.digest != old.digest
                or registered.digest != old.digest or c.value_hash(registered.ciphertext) != new.value_hash
                or registered.key_id != k.key_info_of(self.next_material(), mode).key_id):
            raise CardError(SW.WRONG_DATA)
        value = self._open(self.next_material(), mode, registered.ciphertext, self.card_id)
        if c.value_hash(k.seal_value(self._material(), self.key_mode, value, old.card_id)) != old.value_hash:
            raise CardError(SW.WRONG_DATA)  # not the value the old certificate names
        if not c.digest_matches(new.digest, value):
            raise CardError(SW.WRONG_DATA)
        self._replace(entry, b.certificate_record(title, raw_new).body(), entry.type,
                      ValueFlags.CERTIFICATE | ValueFlags.ROTATED)
        return b""

    def _commit_rotation(self, command: CommandApdu) -> bytes:
        """The next key becomes the key; the old one is erased, once nothing needs it."""
        self._require_pin()
        self._no_data(command)
        if self.next_mode == k.KeyMode.NONE:  # a retry after the commit: done already
            return bytes(k.key_info_of(self._material(), self.key_mode))
        entries = self.index.entries()
        for entry in entries:
            if entry.flags & ValueFlags.CERTIFICATE and not entry.flags & ValueFlags.ROTATED:
                if self._parse_certificate(self._certificate_of(entry)).mode == c.Mode.ENCRYPTED:
                    raise CardError(SW.CONDITIONS_NOT_SATISFIED)  # a value still under the old key
        mode, material = self.next_mode, self.next_material()
        with self.eeprom.transaction():
            self.eeprom.write(self.base + H_KEY_SECRET, k.secret_of(material))
            self.eeprom.write(self.base + H_KEY_PUBLIC, material[k.SECRET_LEN:].ljust(65, b"\x00"))
            self.eeprom.write(self.base + H_KEY_MODE, bytes((mode,)))
            self.eeprom.write(self.base + H_NEXT_MODE, bytes(NEXT_AREA))
            for entry in entries:
                if entry.flags & (ValueFlags.ROTATED | ValueFlags.BACKED_UP):
                    self.index.set_flags(entry, entry.flags & ~(ValueFlags.ROTATED | ValueFlags.BACKED_UP))
        return bytes(k.key_info_of(material, mode))

    def _encrypted_certificate(self, command: CommandApdu) -> tuple[IndexEntry, ValueRecord, bytes, c.Certificate]:
        """The addressed entry, its record, the certificate's bytes and the certificate, each read
        and parsed once: an encrypted backup's certificate, not pending."""
        entry = self._entry(command)
        if not entry.flags & ValueFlags.CERTIFICATE or entry.flags & ValueFlags.PENDING:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED)
        record = ValueRecord.from_bytes(self.index.read(entry))
        cert = self._parse_certificate(record.certificate)
        if cert.mode != c.Mode.ENCRYPTED:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED)
        return entry, record, record.certificate, cert

    @staticmethod
    def _open(material: bytes, mode: k.KeyMode, ciphertext: bytes, card_id: bytes) -> bytes:
        try:
            value = k.open_value(material, mode, ciphertext, card_id)
        except seal.SealError as exc:
            raise CardError(SW.WRONG_DATA) from exc
        if len(value) > MAX_RECORD:
            raise CardError(SW.WRONG_DATA)
        return value

    def key_material(self, next_key: bool) -> tuple[bytes, k.KeyMode]:
        """For EXPORT KEY: the current key material, or the next one during a rotation."""
        if next_key:
            return self.next_material(), self._rotating()
        return self._material(), self.key_mode


def _registered(raw: bytes) -> b.RegisteredValue:
    try:
        return b.RegisteredValue.from_bytes(raw)
    except ValueError as exc:
        raise CardError(SW.WRONG_DATA) from exc


