"""The card's key store 104 and encryption unit 105 (seed E2-E4): random keys made on the card
(a pair as ``KeyPair.genKeyPair`` makes one), exported only sealed to the pinned key manager,
imported only sealed to a one-time transport key this card generated and only after checking
the pair fits. See :mod:`apdu.keys`.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from typing import TYPE_CHECKING

from apdu import SW, CommandApdu, ins, seal
from apdu.deferred import deferred
from apdu.wallet import MessageError

from . import crypto
from .applet import CardError
from .eeprom import Eeprom

if TYPE_CHECKING:
    from apdu import keys as k
    from apdu import shamir
else:  # run at the first key command: a card boots and reads its values without them
    k, shamir = map(deferred, ("apdu.keys", "apdu.shamir"))

# the key store area of the wallet header (after the trigger area of card.triggers)
H_KEYSTORE = 512
H_KEY_MODE = H_KEYSTORE  # 1 byte, KeyMode
H_KEY_SECRET = H_KEYSTORE + 1  # 32 bytes: d (402), or K in symmetric mode
H_KEYMGR_KEY = H_KEYSTORE + 33  # 65 bytes, the key manager's public key; zero until pinned
H_TRANSPORT = H_KEYSTORE + 98  # 32 bytes, a one-time import key's scalar; zero when none
H_SHARES = H_KEYSTORE + 130  # shares being collected: count (1), mode (1), key id (8), 3 x 33
KEY_AREA_END = H_SHARES + 10 + ins.MAX_SHARES * ins.SHARE_LEN
# Q (401), 65 bytes, zero in symmetric mode: after the unblocking code (card.wallet), the one
# place left in the header when layout 6 made keys random rather than derived from a seed
H_KEY_PUBLIC = 946
KEY_PUBLIC_END = H_KEY_PUBLIC + 65


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

        def key_material(self, next_key: bool) -> tuple[bytes, k.KeyMode]: ...
        @property
        def next_mode(self) -> k.KeyMode: ...

    def key_handlers(self) -> dict[tuple[int, int], Callable[[CommandApdu], bytes]]:
        p = 0x80
        return {
            (p, ins.INS_GENERATE_KEY): self._generate_key,
            (p, ins.INS_GET_KEY_INFO): self._get_key_info,
            (p, ins.INS_PUT_KEYMGR_KEY): self._put_keymgr_key,
            (p, ins.INS_EXPORT_KEY): self._export_key,
            (p, ins.INS_NEW_TRANSPORT_KEY): self._new_transport_key,
            (p, ins.INS_IMPORT_KEY): self._import_key,
            (p, ins.INS_SPLIT_KEY): self._split_key,
            (p, ins.INS_IMPORT_SHARE): self._import_share,
        }

    # --- the store ---------------------------------------------------------------------------

    def _stored(self, off: int, n: int) -> bytes:
        return self.eeprom.read(self.base + off, n)

    @property
    def key_mode(self) -> k.KeyMode:
        return k.KeyMode(self._stored(H_KEY_MODE, 1)[0])

    def _material(self) -> bytes:
        """d || Q, or K: what is exported, escrowed and sealed with (claim 8's "seed")."""
        secret = self._stored(H_KEY_SECRET, k.SECRET_LEN)
        return secret + self._stored(H_KEY_PUBLIC, 65) if self.key_mode == k.KeyMode.PUBLIC else secret

    @property
    def keymgr_key(self) -> bytes | None:
        """The key manager's public key, once pinned: the audience of the card's signatures for it."""
        key = self._stored(H_KEYMGR_KEY, 65)
        return key if key[0] == 0x04 else None

    def key_info(self) -> k.KeyInfo:
        mode = self.key_mode
        return k.KeyInfo(mode) if mode == k.KeyMode.NONE else k.key_info_of(self._material(), mode)

    # --- the encryption unit (E2) -------------------------------------------------------------

    def seal_value(self, value: bytes, card_id: bytes) -> bytes:
        return k.seal_value(self._material(), self.key_mode, value, card_id)

    def open_assisted(self, blob: bytes, context: bytes) -> bytes:
        """What the key manager sends this card, sealed under ECDH(transport key, pinned key
        manager key): only the key manager could have made it, only this card opens it (a value
        in E6, a new key for REPLACE KEY in E7)."""
        transport, keymgr = self._stored(H_TRANSPORT, 32), self._stored(H_KEYMGR_KEY, 65)
        if not any(transport) or keymgr[0] != 0x04:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED)
        try:
            return seal.open_symmetric(seal.ecdh(transport, keymgr), blob, context)
        except seal.SealError as exc:
            raise CardError(SW.WRONG_DATA) from exc

    def _install(self, mode: k.KeyMode, material: bytes, clear_transport: bool = False) -> None:
        """The key in place of none, the share area cleared with it: the area holds a rotation's
        next key while there is a key (card.rotation), so shares left from an unfinished recovery
        must not read as a rotation under way after GENERATE KEY or IMPORT KEY."""
        with self.eeprom.transaction():
            self.eeprom.write(self.base + H_KEY_SECRET, k.secret_of(material))
            self.eeprom.write(self.base + H_KEY_PUBLIC, material[k.SECRET_LEN:].ljust(65, b"\x00"))
            self.eeprom.write(self.base + H_KEY_MODE, bytes((mode,)))
            if clear_transport:
                self.eeprom.write(self.base + H_TRANSPORT, bytes(32))
            self.eeprom.write(self.base + H_SHARES, bytes(10 + k.MAX_SHARES * k.SHARE_LEN))

    @staticmethod
    def _mode(p1: int) -> k.KeyMode:
        if p1 not in (k.KeyMode.PUBLIC, k.KeyMode.SYMMETRIC):
            raise CardError(SW.INCORRECT_P1P2)
        return k.KeyMode(p1)

    # --- commands ----------------------------------------------------------------------------

    def _generate_key(self, command: CommandApdu) -> bytes:
        """Claim 5: the card makes its own keys (random: a pair as genKeyPair makes it, or K).
        One key per card here; rotation replaces it."""
        self._require_pin()
        self._no_data(command)
        mode = self._mode(command.p1)
        if command.p2:
            raise CardError(SW.INCORRECT_P1P2)
        if self.key_mode != k.KeyMode.NONE:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED)
        self._install(mode, k.generate_material(mode))
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
        return bytes(k.KeyInfo(mode) if mode == k.KeyMode.NONE else k.key_info_of(self.key_material(True)[0], mode))

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
        """Seed E3 steps 1-1..1-3, sealed: only the key manager can open what leaves the card.
        P1 bit 02 (E4 steps 1-1..1-4): only the key manager's part 405 of the per-value split,
        with Q; its other part rides with every registered value (:meth:`vault_part`)."""
        self._require_pin()
        if command.data:
            raise CardError(SW.WRONG_LENGTH)
        if command.p1 > (k.EXPORT_NEXT | k.EXPORT_PART) or command.p2:
            raise CardError(SW.INCORRECT_P1P2)
        keymgr = self._stored(H_KEYMGR_KEY, 65)
        if self.key_mode == k.KeyMode.NONE or keymgr[0] != 0x04:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED)
        material, mode = self.key_material(next_key=bool(command.p1 & k.EXPORT_NEXT))
        info = k.key_info_of(material, mode)
        if command.p1 & k.EXPORT_PART:
            return seal.seal(keymgr, k.keymgr_part(material, mode), k.part_context(self.card_id, info.key_id,
                                                                                  k.KEYMGR_PART))
        return seal.seal(keymgr, material, k.export_context(self.card_id, info.key_id))

    @staticmethod
    def vault_part(material: bytes, mode: k.KeyMode, card_id: bytes, vault: bytes) -> bytes:
        """Claims 7/31: the vault's part 406 of this key, with Q, sealed to the pinned vault key
        for a registered value: only the vault opens it, bound to this card and key id."""
        return k.sealed_vault_part(material, mode, card_id, vault)

    def _new_transport_key(self, command: CommandApdu) -> bytes:
        self._require_pin()
        self._no_data(command)
        scalar = seal.random_scalar()  # an applet: genKeyPair, keeping the private key
        with self.eeprom.transaction():
            self.eeprom.write(self.base + H_TRANSPORT, scalar)
        return seal.public_key(scalar)

    def _import_key(self, command: CommandApdu) -> bytes:
        """Seed E3 steps 2-4/2-5 (claim 6 too: a key the key manager made), for this card only,
        and only key material whose d is Q's private key (a pair that does not fit: 6A80)."""
        self._require_pin()
        mode = self._mode(command.p1)
        transport = self._stored(H_TRANSPORT, 32)
        if self.key_mode != k.KeyMode.NONE or not any(transport):
            raise CardError(SW.CONDITIONS_NOT_SATISFIED)
        try:
            material = seal.open_sealed(transport, command.data, k.import_context(self.card_id, mode))
            k.check_material(material, mode)
        except (seal.SealError, MessageError) as exc:
            raise CardError(SW.WRONG_DATA) from exc
        self._install(mode, material, clear_transport=True)
        return bytes(self.key_info())

    # --- the split key (E4) ------------------------------------------------------------------

    def _split_key(self, command: CommandApdu) -> bytes:
        """Shamir k of n of d (or K): share 1 sealed to the key manager, 2 to the vault (each
        with Q), the rest in clear for the owner; neither server alone can rebuild the key."""
        self._require_pin()
        self._no_data(command)
        k_, n = command.p1, command.p2
        if not 2 <= k_ <= n <= k.MAX_SHARES:
            raise CardError(SW.INCORRECT_P1P2)
        keymgr, vault = self._stored(H_KEYMGR_KEY, 65), self.vault_key
        if self.key_mode == k.KeyMode.NONE or keymgr[0] != 0x04 or vault is None:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED)
        info = self.key_info()
        shares = shamir.split(k.secret_of(self._material()), k_, n)
        return bytes(k.KeyShares(
            seal.seal(keymgr, k.server_share(shares[0], info), k.share_context(self.card_id, info.key_id, 1)),
            seal.seal(vault, k.server_share(shares[1], info), k.share_context(self.card_id, info.key_id, 2)),
            tuple(shares[2:]),
        ))

    def _import_share(self, command: CommandApdu) -> bytes:
        """Collect shares (sealed to this card's transport key, or typed recovery codes) until
        they rebuild the secret of the key id given (and, in public mode, of the Q beside the
        share, which the key id names); then install it."""
        self._require_pin()
        mode = self._mode(command.p1)
        if command.p2 not in (0, 1):
            raise CardError(SW.INCORRECT_P1P2)
        if self.key_mode != k.KeyMode.NONE:
            raise CardError(SW.CONDITIONS_NOT_SATISFIED)
        public_len = 65 if mode == k.KeyMode.PUBLIC else 0
        key_id, public, share = command.data[:8], command.data[8:8 + public_len], command.data[8 + public_len:]
        if len(key_id) != 8 or len(public) != public_len:
            raise CardError(SW.WRONG_LENGTH)
        if public and (not crypto.valid_public_key(public) or seal.key_id(public) != key_id):
            raise CardError(SW.WRONG_DATA)
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
        material = _rebuild(shares, mode, key_id, public)
        if material is not None:
            self._install(mode, material, clear_transport=True)
            return bytes(self.key_info())
        if len(shares) >= k.MAX_SHARES:
            raise CardError(SW.WRONG_DATA)  # three shares that do not fit together: start again
        with self.eeprom.transaction():
            self.eeprom.write(self.base + H_SHARES, bytes((len(shares), mode)) + key_id + b"".join(shares))
        return bytes(k.KeyInfo(k.KeyMode.NONE))


def _rebuild(shares: list[bytes], mode: k.KeyMode, key_id: bytes, public: bytes) -> bytes | None:
    """The key material from any subset of the shares that fits (k is unknown to the card): a
    d that is Q's private key, or a K whose key id is the one given."""
    for size in range(2, len(shares) + 1):
        for subset in itertools.combinations(shares, size):
            material = shamir.combine(list(subset)) + public
            try:
                if k.check_material(material, mode).key_id == key_id:
                    return material
            except MessageError:
                continue
    return None


def wipe_key_store(eeprom: Eeprom) -> None:
    """A fault to simulate, not a command: the key store 104 damaged or reset, keys 401/402 gone
    (seed E7's starting point). The card keeps its identity, values and certificates."""
    base = eeprom.app_offset
    with eeprom.transaction():
        eeprom.write(base + H_KEY_MODE, bytes(1))
        eeprom.write(base + H_KEY_SECRET, bytes(k.SECRET_LEN))
        eeprom.write(base + H_KEY_PUBLIC, bytes(65))
        eeprom.write(base + H_TRANSPORT, bytes(32))
        eeprom.write(base + H_SHARES, bytes(KEY_AREA_END - H_SHARES))
