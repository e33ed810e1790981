"""The card's key store 104 and encryption unit 105 (seed E2-E4): keys derived from seed
material generated on the card, exported only sealed to the pinned key manager, imported only
sealed to a one-time transport key this card generated. See :mod:`apdu.keys`.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from apdu import SW, CommandApdu, seal
from apdu import backup as b
from apdu import keys as k

from . import crypto
from .applet import CardError
from .eeprom import Eeprom

# the key store area of the wallet header (after the trigger area of card.triggers)
H_KEYSTORE = 512
H_KEY_MODE = H_KEYSTORE  # 1 byte, KeyMode
H_KEY_SEED = H_KEYSTORE + 1  # 32 bytes: every key of the store derives from it (claim 8)
H_KEYMGR_KEY = H_KEYSTORE + 33  # 65 bytes, the key manager's public key; zero until pinned
H_TRANSPORT = H_KEYSTORE + 98  # 32 bytes, a one-time import key's scalar; zero when none
KEY_AREA_END = H_KEYSTORE + 130


class KeyCommands:
    eeprom: Eeprom
    base: int

    if TYPE_CHECKING:  # provided by the wallet applet
        @property
        def card_id(self) -> bytes: ...

        def _require_pin(self) -> None: ...
        def _no_data(self, command: CommandApdu) -> None: ...

    def key_handlers(self) -> dict[tuple[int, int], Callable[[CommandApdu], bytes]]:
        p = 0x80
        return {
            (p, k.INS_GENERATE_KEY): self._generate_key,
            (p, k.INS_GET_KEY_INFO): self._get_key_info,
            (p, k.INS_PUT_KEYMGR_KEY): self._put_keymgr_key,
            (p, k.INS_EXPORT_KEY): self._export_key,
            (p, k.INS_NEW_TRANSPORT_KEY): self._new_transport_key,
            (p, k.INS_IMPORT_KEY): self._import_key,
        }

    # --- the store ---------------------------------------------------------------------------

    def _stored(self, off: int, n: int) -> bytes:
        return self.eeprom.read(self.base + off, n)

    @property
    def key_mode(self) -> k.KeyMode:
        return k.KeyMode(self._stored(H_KEY_MODE, 1)[0])

    def _seed(self) -> bytes:
        return self._stored(H_KEY_SEED, k.SEED_LEN)

    def key_info(self) -> k.KeyInfo:
        mode = self.key_mode
        return k.KeyInfo(mode) if mode == k.KeyMode.NONE else k.key_info_of(self._seed(), mode)

    # --- the encryption unit (E2) -------------------------------------------------------------

    def seal_value(self, value: bytes, card_id: bytes) -> bytes:
        """The value sealed to 401 (or under K): deterministic per value and key, so a retried
        backup registers the same ciphertext and the card can recompute it to check X."""
        mode, seed = self.key_mode, self._seed()
        nonce = hmac.new(seed, b"EVB-E2-NONCE" + value, hashlib.sha256).digest()
        context = b.e2_context(card_id)
        if mode == k.KeyMode.PUBLIC:
            public = seal.public_key(k.decryption_key(seed, mode))
            return seal.seal(public, value, context, ephemeral=seal.scalar_from_seed(nonce), iv=nonce[:16])
        return seal.seal_symmetric(k.decryption_key(seed, mode), value, context, salt=nonce[16:], iv=nonce[:16])

    def open_value(self, ciphertext: bytes, card_id: bytes) -> bytes:
        mode = self.key_mode
        key = k.decryption_key(self._seed(), mode)
        opener = seal.open_sealed if mode == k.KeyMode.PUBLIC else seal.open_symmetric
        return opener(key, ciphertext, b.e2_context(card_id))

    def _install(self, mode: k.KeyMode, seed: bytes, clear_transport: bool = False) -> None:
        with self.eeprom.transaction():
            self.eeprom.write(self.base + H_KEY_SEED, seed)
            self.eeprom.write(self.base + H_KEY_MODE, bytes((mode,)))
            if clear_transport:
                self.eeprom.write(self.base + H_TRANSPORT, bytes(32))

    @staticmethod
    def _mode(p1: int) -> k.KeyMode:
        if p1 not in (k.KeyMode.PUBLIC, k.KeyMode.SYMMETRIC):
            raise CardError(SW.INCORRECT_P1P2)
        return k.KeyMode(p1)

    # --- commands ----------------------------------------------------------------------------

    def _generate_key(self, command: CommandApdu) -> bytes:
        """Claim 5: the card makes its own keys. One key per card here; rotation replaces it."""
        self._require_pin()
        self._no_data(command)
        mode = self._mode(command.p1)
        if command.p2:
            raise CardError(SW.INCORRECT_P1P2)
        if self.key_mode != k.KeyMode.NONE:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED)
        self._install(mode, os.urandom(k.SEED_LEN))
        return bytes(self.key_info())

    def _get_key_info(self, command: CommandApdu) -> bytes:
        self._no_data(command)
        return bytes(self.key_info())

    def _put_keymgr_key(self, command: CommandApdu) -> bytes:
        """Pinned on first use: a terminal cannot later swap in a key of its own to export to."""
        self._require_pin()
        if not crypto.valid_public_key(command.data):
            raise CardError(SW.WRONG_DATA)
        current = self._stored(H_KEYMGR_KEY, 65)
        if current == command.data:
            return b""
        if current[0] == 0x04:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED)
        with self.eeprom.transaction():
            self.eeprom.write(self.base + H_KEYMGR_KEY, command.data)
        return b""

    def _export_key(self, command: CommandApdu) -> bytes:
        """Seed E3 steps 1-1..1-3, sealed: only the key manager can open what leaves the card."""
        self._require_pin()
        self._no_data(command)
        keymgr = self._stored(H_KEYMGR_KEY, 65)
        if self.key_mode == k.KeyMode.NONE or keymgr[0] != 0x04:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED)
        return seal.seal(keymgr, self._seed(), k.export_context(self.card_id, self.key_info().key_id))

    def _new_transport_key(self, command: CommandApdu) -> bytes:
        self._require_pin()
        self._no_data(command)
        scalar = seal.scalar_from_seed(os.urandom(32))
        with self.eeprom.transaction():
            self.eeprom.write(self.base + H_TRANSPORT, scalar)
        return seal.public_key(scalar)

    def _import_key(self, command: CommandApdu) -> bytes:
        """Seed E3 steps 2-4/2-5 (claim 6 too: a key the key manager made), for this card only."""
        self._require_pin()
        mode = self._mode(command.p1)
        transport = self._stored(H_TRANSPORT, 32)
        if self.key_mode != k.KeyMode.NONE or not any(transport):
            raise CardError(SW.CONDITIONS_NOT_SATISFIED)
        try:
            seed = seal.open_sealed(transport, command.data, k.import_context(self.card_id, mode))
        except seal.SealError as exc:
            raise CardError(SW.WRONG_DATA) from exc
        if len(seed) != k.SEED_LEN:
            raise CardError(SW.WRONG_DATA)
        self._install(mode, seed, clear_transport=True)
        return bytes(self.key_info())
