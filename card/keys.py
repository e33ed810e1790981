"""The card's key store 104 and encryption unit 105 (seed E2-E4): keys derived from seed
material generated on the card, exported only sealed to the pinned key manager, imported only
sealed to a one-time transport key this card generated. See :mod:`apdu.keys`.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable
from typing import TYPE_CHECKING

from apdu import SW, CommandApdu, seal, shamir
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
H_SHARES = H_KEYSTORE + 130  # shares being collected: count (1), mode (1), key id (8), 3 x 33
KEY_AREA_END = H_SHARES + 10 + k.MAX_SHARES * k.SHARE_LEN


class KeyCommands:
    eeprom: Eeprom
    base: int

    if TYPE_CHECKING:  # provided by the wallet applet
        @property
        def card_id(self) -> bytes: ...

        def _require_pin(self) -> None: ...
        def _no_data(self, command: CommandApdu) -> None: ...
        @property
        def vault_key(self) -> bytes | None: ...

        def export_seed(self, next_key: bool) -> tuple[bytes, k.KeyMode]: ...
        @property
        def next_mode(self) -> k.KeyMode: ...

    def key_handlers(self) -> dict[tuple[int, int], Callable[[CommandApdu], bytes]]:
        p = 0x80
        return {
            (p, k.INS_GENERATE_KEY): self._generate_key,
            (p, k.INS_GET_KEY_INFO): self._get_key_info,
            (p, k.INS_PUT_KEYMGR_KEY): self._put_keymgr_key,
            (p, k.INS_EXPORT_KEY): self._export_key,
            (p, k.INS_NEW_TRANSPORT_KEY): self._new_transport_key,
            (p, k.INS_IMPORT_KEY): self._import_key,
            (p, k.INS_SPLIT_KEY): self._split_key,
            (p, k.INS_IMPORT_SHARE): self._import_share,
        }

    # --- the store ---------------------------------------------------------------------------

    def _stored(self, off: int, n: int) -> bytes:
        return self.eeprom.read(self.base + off, n)

    @property
    def key_mode(self) -> k.KeyMode:
        return k.KeyMode(self._stored(H_KEY_MODE, 1)[0])

    def _seed(self) -> bytes:
        return self._stored(H_KEY_SEED, k.SEED_LEN)

    @property
    def keymgr_key(self) -> bytes | None:
        """The key manager's public key, once pinned: the audience of the card's signatures for it."""
        key = self._stored(H_KEYMGR_KEY, 65)
        return key if key[0] == 0x04 else None

    def key_info(self) -> k.KeyInfo:
        mode = self.key_mode
        return k.KeyInfo(mode) if mode == k.KeyMode.NONE else k.key_info_of(self._seed(), mode)

    # --- the encryption unit (E2) -------------------------------------------------------------

    def seal_value(self, value: bytes, card_id: bytes) -> bytes:
        return k.seal_value(self._seed(), self.key_mode, value, card_id)

    def open_assisted(self, blob: bytes, context: bytes) -> bytes:
        """E6: a value from the key manager, sealed under ECDH(transport key, pinned key
        manager key): only the key manager could have made it, only this card opens it."""
        transport, keymgr = self._stored(H_TRANSPORT, 32), self._stored(H_KEYMGR_KEY, 65)
        if not any(transport) or keymgr[0] != 0x04:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED)
        try:
            return seal.open_symmetric(seal.ecdh(transport, keymgr), blob, context)
        except seal.SealError as exc:
            raise CardError(SW.WRONG_DATA) from exc

    def _install(self, mode: k.KeyMode, seed: bytes, clear_transport: bool = False,
                 clear_shares: bool = False) -> None:
        with self.eeprom.transaction():
            self.eeprom.write(self.base + H_KEY_SEED, seed)
            self.eeprom.write(self.base + H_KEY_MODE, bytes((mode,)))
            if clear_transport:
                self.eeprom.write(self.base + H_TRANSPORT, bytes(32))
            if clear_shares:
                self.eeprom.write(self.base + H_SHARES, bytes(10 + k.MAX_SHARES * k.SHARE_LEN))

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
        """P1 = 01: the next key of a rotation under way (mode 00 when none is)."""
        if command.data:
            raise CardError(SW.WRONG_LENGTH)
        if command.p1 not in (0, 1) or command.p2:
            raise CardError(SW.INCORRECT_P1P2)
        if command.p1 == 0:
            return bytes(self.key_info())
        mode = self.next_mode
        return bytes(k.KeyInfo(mode) if mode == k.KeyMode.NONE else k.key_info_of(self.export_seed(True)[0], mode))

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
        if command.data:
            raise CardError(SW.WRONG_LENGTH)
        if command.p1 not in (0, 1) or command.p2:
            raise CardError(SW.INCORRECT_P1P2)
        keymgr = self._stored(H_KEYMGR_KEY, 65)
        if self.key_mode == k.KeyMode.NONE or keymgr[0] != 0x04:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED)
        seed, mode = self.export_seed(next_key=command.p1 == 1)
        return seal.seal(keymgr, seed, k.export_context(self.card_id, k.key_info_of(seed, mode).key_id))

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

    # --- the split key (E4) ------------------------------------------------------------------

    def _split_key(self, command: CommandApdu) -> bytes:
        """Shamir k of n of the seed: share 1 sealed to the key manager, 2 to the vault, the rest
        in clear for the owner; neither server alone can rebuild the key."""
        self._require_pin()
        self._no_data(command)
        k_, n = command.p1, command.p2
        if not 2 <= k_ <= n <= k.MAX_SHARES:
            raise CardError(SW.INCORRECT_P1P2)
        keymgr, vault = self._stored(H_KEYMGR_KEY, 65), self.vault_key
        if self.key_mode == k.KeyMode.NONE or keymgr[0] != 0x04 or vault is None:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED)
        key_id = self.key_info().key_id
        shares = shamir.split(self._seed(), k_, n)
        return bytes(k.KeyShares(
            seal.seal(keymgr, shares[0], k.share_context(self.card_id, key_id, 1)),
            seal.seal(vault, shares[1], k.share_context(self.card_id, key_id, 2)),
            tuple(shares[2:]),
        ))

    def _import_share(self, command: CommandApdu) -> bytes:
        """Collect shares (sealed to this card's transport key, or typed recovery codes) until
        they rebuild the seed of the key id given; then install it."""
        self._require_pin()
        mode = self._mode(command.p1)
        if command.p2 not in (0, 1):
            raise CardError(SW.INCORRECT_P1P2)
        if self.key_mode != k.KeyMode.NONE:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED)
        key_id, share = command.data[:8], command.data[8:]
        if len(key_id) != 8:
            raise CardError(SW.WRONG_LENGTH)
        if command.p2 == 1:
            transport = self._stored(H_TRANSPORT, 32)
            if not any(transport):
                raise CardError(SW.CONDITIONS_NOT_SATISFIED)
            try:
                share = seal.open_sealed(transport, share, k.share_import_context(self.card_id, key_id))
            except seal.SealError as exc:
                raise CardError(SW.WRONG_DATA) from exc
        if len(share) != k.SHARE_LEN or share[0] == 0:
            raise CardError(SW.WRONG_DATA)
        header = self._stored(H_SHARES, 10)
        shares = []
        if header[1] == mode and header[2:10] == key_id:  # the same recovery: keep what we have
            shares = [self._stored(H_SHARES + 10 + i * k.SHARE_LEN, k.SHARE_LEN) for i in range(header[0])]
        shares = [s for s in shares if s[0] != share[0]] + [share]
        seed = _rebuild(shares, mode, key_id)
        if seed is not None:
            self._install(mode, seed, clear_transport=True, clear_shares=True)
            return bytes(self.key_info())
        if len(shares) >= k.MAX_SHARES:
            raise CardError(SW.WRONG_DATA)  # three shares that do not fit together: start again
        with self.eeprom.transaction():
            self.eeprom.write(self.base + H_SHARES, bytes((len(shares), mode)) + key_id + b"".join(shares))
        return bytes(k.KeyInfo(k.KeyMode.NONE))


def _rebuild(shares: list[bytes], mode: k.KeyMode, key_id: bytes) -> bytes | None:
    """The seed from any subset of the shares that gives the key id (k unknown to the card)."""
    for size in range(2, len(shares) + 1):
        for subset in itertools.combinations(shares, size):
            seed = shamir.combine(list(subset))
            if k.key_info_of(seed, mode).key_id == key_id:
                return seed
    return None


def wipe_key_store(eeprom: Eeprom) -> None:
    """A fault to simulate, not a command: the key store 104 damaged or reset, keys 401/402 gone
    (seed E7's starting point). The card keeps its identity, values and certificates."""
    base = eeprom.app_offset
    with eeprom.transaction():
        eeprom.write(base + H_KEY_MODE, bytes(1))
        eeprom.write(base + H_KEY_SEED, bytes(k.SEED_LEN))
        eeprom.write(base + H_TRANSPORT, bytes(32))
        eeprom.write(base + H_SHARES, bytes(KEY_AREA_END - H_SHARES))
