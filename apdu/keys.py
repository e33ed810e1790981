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
GET KEY INFO               62     no    -> key info
PUT KEY MANAGER KEY        64     yes   uncompressed P-256 point; pinned on first use
EXPORT KEY                 66     yes   -> seed sealed to the key manager's key
NEW TRANSPORT KEY          68     yes   -> a fresh one-time P-256 public key
IMPORT KEY                 6A     yes   P1 mode; seed sealed to the transport key -> key info
=========================  =====  ====  ====================================================

Key info: ``80 01 mode``, ``81 08 key id`` (:func:`apdu.seal.key_id`), and in public-key mode
``82 41 encryption key 401``. Sealing contexts bind a blob to its card and purpose, so an
export can be opened only by the key manager, and an import only by the card it was made for.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

from . import seal, tlv
from .command import CommandApdu
from .signature import PUBLIC_KEY_LEN
from .wallet import CLA_PROPRIETARY, MessageError

INS_GENERATE_KEY = 0x60
INS_GET_KEY_INFO = 0x62
INS_PUT_KEYMGR_KEY = 0x64
INS_EXPORT_KEY = 0x66
INS_NEW_TRANSPORT_KEY = 0x68
INS_IMPORT_KEY = 0x6A

SEED_LEN = 32
EXPORT_CONTEXT = b"EVB-KEY-EXPORT-1"
IMPORT_CONTEXT = b"EVB-KEY-IMPORT-1"


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


def generate_key(mode: KeyMode) -> CommandApdu:
    if mode == KeyMode.NONE:
        raise MessageError("generate a public or a symmetric key")
    return CommandApdu(CLA_PROPRIETARY, INS_GENERATE_KEY, int(mode), 0, ne=256)


def get_key_info() -> CommandApdu:
    return CommandApdu(CLA_PROPRIETARY, INS_GET_KEY_INFO, ne=256)


def put_keymgr_key(public_key: bytes) -> CommandApdu:
    if len(public_key) != PUBLIC_KEY_LEN or public_key[0] != 0x04:
        raise MessageError("the key manager's key is an uncompressed P-256 public key")
    return CommandApdu(CLA_PROPRIETARY, INS_PUT_KEYMGR_KEY, 0, 0, public_key)


def export_key() -> CommandApdu:
    return CommandApdu(CLA_PROPRIETARY, INS_EXPORT_KEY, ne=256)


def new_transport_key() -> CommandApdu:
    return CommandApdu(CLA_PROPRIETARY, INS_NEW_TRANSPORT_KEY, ne=PUBLIC_KEY_LEN)


def import_key(mode: KeyMode, sealed: bytes) -> CommandApdu:
    if mode == KeyMode.NONE:
        raise MessageError("import a public or a symmetric key")
    return CommandApdu(CLA_PROPRIETARY, INS_IMPORT_KEY, int(mode), 0, sealed, ne=256)
