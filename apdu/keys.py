"""The card's key store and encryption unit (seed E2-E4: keys 401/402, claims 5, 6, 10),
shared by card and host.

Every key is derived on the card from 32 bytes of seed material that never leaves it in
plaintext (claim 8: what is escrowed is the seed). Public-key mode derives a P-256 pair (401
public, 402 private); symmetric mode derives one AES-256 key (claim 10). Keys travel only
sealed (:mod:`apdu.seal`): out to the key manager's pinned public key, in from a key manager
to a one-time transport key the receiving card generated.

=========================  =====  ====  ====================================================
command                    INS    PIN   data -> response
=========================  =====  ====  ====================================================
GENERATE KEY               60     yes   P1 mode (01 public, 02 symmetric) -> key info
GET KEY INFO               62     no    P1 00 current, 01 next (rotation) -> key info
PUT KEY MANAGER KEY        64     yes   uncompressed P-256 point; pinned on first use
EXPORT KEY                 66     yes   P1 00 current, 01 next (rotation) -> seed sealed to the
                                        key manager's key
NEW TRANSPORT KEY          68     yes   -> a fresh one-time P-256 public key
IMPORT KEY                 6A     yes   P1 mode; seed sealed to the transport key -> key info
SPLIT KEY                  6C     yes   P1 k, P2 n (2 <= k <= n <= 3) -> the shares, below
IMPORT SHARE               6E     yes   P1 mode, P2 form; key id, share -> key info
=========================  =====  ====  ====================================================

Split key (E4, claims 7-8, as Shamir k of n over GF(2^8), :mod:`apdu.shamir`): SPLIT KEY
answers ``81`` share 1 sealed to the key manager, ``82`` share 2 sealed to the vault (the
pinned keys), and ``83`` for each further share in clear: the owner's printable recovery code.
Neither server alone holds k shares. IMPORT SHARE collects shares for a card without a key:
P2 = 01 a share sealed to this card's transport key, 00 a recovery code typed by the owner;
when the shares collected rebuild a seed whose key id is the one given, the key is installed
(key info); until then it answers key info with mode 00 (more shares needed) and keeps them.

Key info: ``80 01 mode``, ``81 08 key id`` (:func:`apdu.seal.key_id`), and in public-key mode
``82 41 encryption key 401``. Sealing contexts bind a blob to its card and purpose, so an
export can be opened only by the key manager, and an import only by the card it was made for.
"""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from enum import IntEnum

from . import seal, tlv
from .backup import E2_CONTEXT
from .command import CommandApdu
from .signature import PUBLIC_KEY_LEN
from .wallet import CLA_PROPRIETARY, MessageError

INS_GENERATE_KEY = 0x60
INS_GET_KEY_INFO = 0x62
INS_PUT_KEYMGR_KEY = 0x64
INS_EXPORT_KEY = 0x66
INS_NEW_TRANSPORT_KEY = 0x68
INS_IMPORT_KEY = 0x6A
INS_SPLIT_KEY = 0x6C
INS_IMPORT_SHARE = 0x6E

SEED_LEN = 32
EXPORT_CONTEXT = b"EVB-KEY-EXPORT-1"
IMPORT_CONTEXT = b"EVB-KEY-IMPORT-1"
SHARE_CONTEXT = b"EVB-SHARE-1"
SHARE_IMPORT_CONTEXT = b"EVB-SHARE-IMPORT-1"
ASSISTED_CONTEXT = b"EVB-E6-1"
SHARE_LEN = 1 + SEED_LEN  # x, then one byte per seed byte
MAX_SHARES = 3


class KeyMode(IntEnum):
    NONE = 0
    PUBLIC = 1  # P-256: 401 public, 402 private
    SYMMETRIC = 2  # AES-256: 401 = 402


@dataclass(frozen=True)
class KeyInfo:
    mode: KeyMode
    key_id: bytes = b""
    public_key: bytes = b""  # 401, in public-key mode

    def __bytes__(self) -> bytes:
        items: list[tuple[int, bytes]] = [(0x80, bytes((self.mode,)))]
        if self.mode != KeyMode.NONE:
            items.append((0x81, self.key_id))
        if self.mode == KeyMode.PUBLIC:
            items.append((0x82, self.public_key))
        return tlv.encode(items)

    @classmethod
    def from_bytes(cls, raw: bytes) -> KeyInfo:
        fields = tlv.decode_map(raw)
        try:
            mode = KeyMode(fields[0x80][0])
            info = cls(mode, fields.get(0x81, b""), fields.get(0x82, b""))
        except (KeyError, IndexError, ValueError) as exc:
            raise MessageError("malformed key info") from exc
        if bytes(info) != raw or (mode != KeyMode.NONE and len(info.key_id) != 8):
            raise MessageError("malformed key info")
        if mode == KeyMode.PUBLIC and len(info.public_key) != PUBLIC_KEY_LEN:
            raise MessageError("malformed key info")
        return info


def decryption_key(seed: bytes, mode: KeyMode) -> bytes:
    """402: the P-256 scalar, or the AES key in symmetric mode."""
    return seal.scalar_from_seed(seed) if mode == KeyMode.PUBLIC else seal.symmetric_key_from_seed(seed)


def seal_value(seed: bytes, mode: KeyMode, value: bytes, card_id: bytes) -> bytes:
    """An E2 ciphertext (401 or K), deterministic per value and key: a retried backup registers
    the same bytes, and the card can recompute it to check X."""
    nonce = hmac.new(seed, b"EVB-E2-NONCE" + value, hashlib.sha256).digest()
    context = E2_CONTEXT + card_id
    if mode == KeyMode.PUBLIC:
        public = seal.public_key(decryption_key(seed, mode))
        return seal.seal(public, value, context, ephemeral=seal.scalar_from_seed(nonce), iv=nonce[:16])
    return seal.seal_symmetric(decryption_key(seed, mode), value, context, salt=nonce[16:], iv=nonce[:16])


def open_value(seed: bytes, mode: KeyMode, ciphertext: bytes, card_id: bytes) -> bytes:
    """Open an E2 ciphertext (402 or K): on the card, or at the key manager for E6."""
    opener = seal.open_sealed if mode == KeyMode.PUBLIC else seal.open_symmetric
    return opener(decryption_key(seed, mode), ciphertext, E2_CONTEXT + card_id)


def assisted_context(card_id: bytes, certificate: bytes) -> bytes:
    """E6: a value the key manager sends towards a card, bound to that card and certificate."""
    return ASSISTED_CONTEXT + card_id + hashlib.sha256(certificate).digest()


def key_info_of(seed: bytes, mode: KeyMode) -> KeyInfo:
    """What a card holding ``seed`` in ``mode`` answers to GET KEY INFO."""
    if mode == KeyMode.PUBLIC:
        public = seal.public_key(decryption_key(seed, mode))
        return KeyInfo(mode, seal.key_id(public), public)
    return KeyInfo(mode, seal.key_id(decryption_key(seed, mode)))


def export_context(card_id: bytes, key_id: bytes) -> bytes:
    return EXPORT_CONTEXT + card_id + key_id


def import_context(card_id: bytes, mode: KeyMode) -> bytes:
    return IMPORT_CONTEXT + card_id + bytes((mode,))


def share_context(card_id: bytes, key_id: bytes, x: int) -> bytes:
    """Share x of a card's key, sealed by the card to the key manager (x = 1) or the vault (2)."""
    return SHARE_CONTEXT + card_id + key_id + bytes((x,))


def share_import_context(card_id: bytes, key_id: bytes) -> bytes:
    return SHARE_IMPORT_CONTEXT + card_id + key_id


@dataclass(frozen=True)
class KeyShares:
    keymgr: bytes  # share 1, sealed to the key manager
    vault: bytes  # share 2, sealed to the vault
    codes: tuple[bytes, ...]  # shares 3.., in clear, for the owner

    def __bytes__(self) -> bytes:
        return tlv.encode([(0x81, self.keymgr), (0x82, self.vault), *((0x83, c) for c in self.codes)])

    @classmethod
    def from_bytes(cls, raw: bytes) -> KeyShares:
        items = tlv.decode(raw)
        if [t.tag for t in items[:2]] != [0x81, 0x82] or any(t.tag != 0x83 for t in items[2:]):
            raise MessageError("malformed key shares")
        return cls(items[0].value, items[1].value, tuple(t.value for t in items[2:]))


def recovery_code(share: bytes) -> str:
    """A share as people copy it: hex in groups of four."""
    text = share.hex().upper()
    return "-".join(text[i:i + 4] for i in range(0, len(text), 4))


def parse_recovery_code(code: str) -> bytes:
    try:
        share = bytes.fromhex(code.replace("-", "").replace(" ", ""))
    except ValueError as exc:
        raise MessageError("a recovery code is hex digits in groups") from exc
    if len(share) != SHARE_LEN or share[0] == 0:
        raise MessageError("not a recovery code of this card")
    return share


def generate_key(mode: KeyMode) -> CommandApdu:
    if mode == KeyMode.NONE:
        raise MessageError("generate a public or a symmetric key")
    return CommandApdu(CLA_PROPRIETARY, INS_GENERATE_KEY, int(mode), 0, ne=256)


def get_key_info(next_key: bool = False) -> CommandApdu:
    """P1 = 01: the next key of a rotation under way (:mod:`apdu.rotation`)."""
    return CommandApdu(CLA_PROPRIETARY, INS_GET_KEY_INFO, int(next_key), 0, ne=256)


def put_keymgr_key(public_key: bytes) -> CommandApdu:
    if len(public_key) != PUBLIC_KEY_LEN or public_key[0] != 0x04:
        raise MessageError("the key manager's key is an uncompressed P-256 public key")
    return CommandApdu(CLA_PROPRIETARY, INS_PUT_KEYMGR_KEY, 0, 0, public_key)


def export_key(next_key: bool = False) -> CommandApdu:
    """P1 = 01: the next key of a rotation under way (:mod:`apdu.rotation`)."""
    return CommandApdu(CLA_PROPRIETARY, INS_EXPORT_KEY, int(next_key), 0, ne=256)


def new_transport_key() -> CommandApdu:
    return CommandApdu(CLA_PROPRIETARY, INS_NEW_TRANSPORT_KEY, ne=PUBLIC_KEY_LEN)


def import_key(mode: KeyMode, sealed: bytes) -> CommandApdu:
    if mode == KeyMode.NONE:
        raise MessageError("import a public or a symmetric key")
    return CommandApdu(CLA_PROPRIETARY, INS_IMPORT_KEY, int(mode), 0, sealed, ne=256)


def split_key(k: int, n: int) -> CommandApdu:
    if not 2 <= k <= n <= MAX_SHARES:
        raise MessageError(f"split into k of n shares with 2 <= k <= n <= {MAX_SHARES}")
    return CommandApdu(CLA_PROPRIETARY, INS_SPLIT_KEY, k, n, ne=256)


def import_share(mode: KeyMode, key_id: bytes, share: bytes, sealed: bool) -> CommandApdu:
    if mode == KeyMode.NONE or len(key_id) != 8:
        raise MessageError("import a share for a public or symmetric key, with its 8-byte key id")
    return CommandApdu(CLA_PROPRIETARY, INS_IMPORT_SHARE, int(mode), 1 if sealed else 0, key_id + share, ne=256)
