"""The card's key store and encryption unit (seed E2-E4: keys 401/402, claims 5, 6, 10),
shared by card and host.

A key is random, made on the card (or by the key manager, claim 6) and never derived: a Java
Card 3.0.4 makes a P-256 pair only with ``KeyPair.genKeyPair`` and cannot compute a public point
from a given scalar, nor reduce a number mod n. What travels (export to the key manager, import
to a card, the escrow; claim 8's "seed") is therefore the **key material**: ``d || Q`` (402's
scalar and 401's uncompressed point, 97 bytes) in public-key mode, the AES-256 key K (32) in
symmetric mode (claim 10). A card takes key material only after checking Q is on the curve and
d is Q's private key (a signature with d verifies with Q), so nobody installs a pair that does
not fit. Keys travel only sealed (:mod:`apdu.seal`): out to the key manager's pinned public key,
in from a key manager to a one-time transport key the receiving card generated.

=========================  =====  ====  ====================================================
command                    INS    PIN   data -> response
=========================  =====  ====  ====================================================
GENERATE KEY               60     yes   P1 mode (01 public, 02 symmetric) -> key info
GET KEY INFO               62     no    P1 00 current, 01 next (rotation) -> key info
PUT KEY MANAGER KEY        64     yes   uncompressed P-256 point; pinned on first use
EXPORT KEY                 66     yes   P1 00 current, 01 next (rotation) -> key material
                                        sealed to the key manager's key; 02/03 the key
                                        manager's part 405 of the per-value split instead
NEW TRANSPORT KEY          68     yes   -> a fresh one-time P-256 public key
IMPORT KEY                 6A     yes   P1 mode; key material sealed to the transport key ->
                                        key info
SPLIT KEY                  6C     yes   P1 k, P2 n (2 <= k <= n <= 3) -> the shares, below
IMPORT SHARE               6E     yes   P1 mode, P2 form; key id, Q (public mode), share ->
                                        key info
=========================  =====  ====  ====================================================

Split key (E4, claims 7-8, as Shamir k of n over GF(2^8), :mod:`apdu.shamir`) of the secret
part, d or K: SPLIT KEY answers ``81`` share 1 sealed to the key manager, ``82`` share 2 sealed
to the vault (the pinned keys; each sealed with Q beside the share in public mode, so the
servers learn the public half from the card), and ``83`` for each further share in clear: the
owner's printable recovery code. Neither server alone holds k shares. IMPORT SHARE collects
shares for a card without a key: P2 = 01 a share sealed to this card's transport key, 00 a
recovery code typed by the owner; in public mode Q travels beside the share in clear (it is
public, and bound by the key id). When the shares collected rebuild a secret that fits the key
id (and Q), the key is installed (key info); until then it answers key info with mode 00 (more
shares needed) and keeps them.

Per-value split (E4 as the seed has it, claims 7, 8, 31, 32, 41, 42, 49): the key's secret is
split in two parts (:func:`key_parts`); EXPORT KEY P1 = 02 seals the key manager's part 405 (with
Q) to the key manager, and every registered value the card makes carries the vault's part 406
sealed to the vault (:class:`apdu.backup.RegisteredValue` tag ``83``). A new card rebuilds the key
with IMPORT SHARE from 405 (the key manager's, after the owner's login) and 406 (the vault's,
for a certificate of that card), both sealed to its transport key.

Key info: ``80 01 mode``, ``81 08 key id`` (:func:`apdu.seal.key_id` of Q or K), and in
public-key mode ``82 41 encryption key 401``. Sealing contexts bind a blob to its card and
purpose, so an export can be opened only by the key manager, and an import only by the card it
was made for.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from dataclasses import dataclass
from enum import IntEnum

from . import seal, shamir, tlv
from .backup import E2_CONTEXT
from .command import CommandApdu
from .ins import INS_EXPORT_KEY as INS_EXPORT_KEY
from .ins import INS_GENERATE_KEY as INS_GENERATE_KEY
from .ins import INS_GET_KEY_INFO as INS_GET_KEY_INFO
from .ins import INS_IMPORT_KEY as INS_IMPORT_KEY
from .ins import INS_IMPORT_SHARE as INS_IMPORT_SHARE
from .ins import INS_NEW_TRANSPORT_KEY as INS_NEW_TRANSPORT_KEY
from .ins import INS_PUT_KEYMGR_KEY as INS_PUT_KEYMGR_KEY
from .ins import INS_SPLIT_KEY as INS_SPLIT_KEY
from .ins import MAX_SHARES as MAX_SHARES
from .ins import PUBLIC_MATERIAL_LEN as PUBLIC_MATERIAL_LEN
from .ins import SECRET_LEN as SECRET_LEN
from .ins import SHARE_LEN as SHARE_LEN
from .signature import PUBLIC_KEY_LEN, valid_public_key
from .wallet import CLA_PROPRIETARY, MessageError

EXPORT_CONTEXT = b"EVB-KEY-EXPORT-1"
IMPORT_CONTEXT = b"EVB-KEY-IMPORT-1"
SHARE_CONTEXT = b"EVB-SHARE-1"
SHARE_IMPORT_CONTEXT = b"EVB-SHARE-IMPORT-1"
ASSISTED_CONTEXT = b"EVB-E6-1"
PART_CONTEXT = b"EVB-KEY-PART-1"
PART_COEFFICIENT_LABEL = b"EVB-E4-PART-1"
KEYMGR_PART, VAULT_PART = 1, 2  # the x of 405 and 406
E2_IV_LABEL = b"EVB-E2-IV"
E2_EPHEMERAL_LABEL = b"EVB-E2-EPHEMERAL"
E2_NONCE_LABEL = b"EVB-E2-NONCE"


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


def material_len(mode: KeyMode) -> int:
    return PUBLIC_MATERIAL_LEN if mode == KeyMode.PUBLIC else SECRET_LEN


def generate_material(mode: KeyMode) -> bytes:
    """Fresh key material: d by rejection and its point (a card's ``genKeyPair``), or K."""
    if mode == KeyMode.PUBLIC:
        d = seal.random_scalar()
        return d + seal.public_key(d)
    return os.urandom(SECRET_LEN)


def check_material(material: bytes, mode: KeyMode) -> KeyInfo:
    """The key info of key material that came from outside (import, escrow, rebuilt shares):
    in public mode Q must be an uncompressed point on the curve and d its private key."""
    if mode not in (KeyMode.PUBLIC, KeyMode.SYMMETRIC) or len(material) != material_len(mode):
        raise MessageError("key material of the wrong length")
    if mode == KeyMode.PUBLIC:
        d, q = material[:SECRET_LEN], material[SECRET_LEN:]
        if q[0] != 0x04 or not valid_public_key(q) or not seal.pair_matches(d, q):
            raise MessageError("the scalar is not the public key's")
    return key_info_of(material, mode)


def secret_of(material: bytes) -> bytes:
    """402: the P-256 scalar d, or the AES key K in symmetric mode."""
    return material[:SECRET_LEN]


def _e2_ephemeral(d: bytes, iv: bytes) -> bytes:
    """The ephemeral scalar of an E2 ciphertext, from the key and the IV it carries, by
    rejection: the card re-derives it to reopen its own values without computing a point."""
    for counter in range(256):
        candidate = hmac.new(d, E2_EPHEMERAL_LABEL + iv + bytes((counter,)), hashlib.sha256).digest()
        if seal.valid_scalar(candidate):
            return candidate
    raise MessageError("no ephemeral scalar")  # 256 draws above n: probability 2^-8192


def seal_value(material: bytes, mode: KeyMode, value: bytes, card_id: bytes) -> bytes:
    """An E2 ciphertext (401 or K), deterministic per value and key: a retried backup registers
    the same bytes, and the card can recompute it to check X.

    Public mode: IV = HMAC(d, "EVB-E2-IV" || value)[:16], the ephemeral r from HMAC(d,
    "EVB-E2-EPHEMERAL" || IV || counter) by rejection, header ``02 || x(r*G)`` (x-only: the card
    has x(r*G) from ECDH with G, never the point), z = x(r*Q)."""
    context = E2_CONTEXT + card_id
    if mode == KeyMode.PUBLIC:
        d, q = material[:SECRET_LEN], material[SECRET_LEN:]
        iv = hmac.new(d, E2_IV_LABEL + value, hashlib.sha256).digest()[:seal.IV_LEN]
        return seal.seal_x_only(q, value, context, _e2_ephemeral(d, iv), iv)
    nonce = hmac.new(material, E2_NONCE_LABEL + value, hashlib.sha256).digest()
    return seal.seal_symmetric(material, value, context, salt=nonce[16:], iv=nonce[:16])


def open_value(material: bytes, mode: KeyMode, ciphertext: bytes, card_id: bytes) -> bytes:
    """Open an E2 ciphertext: on the card, or at the key manager for E6, the same way: r again
    from the IV in the blob, z = ECDH(r, Q) with the uncompressed Q (a holder of d could also
    use ECDH(d, 02 || x); the header check makes both openings one)."""
    context = E2_CONTEXT + card_id
    if mode == KeyMode.PUBLIC:
        d, q = material[:SECRET_LEN], material[SECRET_LEN:]
        iv = ciphertext[seal.X_ONLY_LEN:seal.X_ONLY_LEN + seal.IV_LEN]
        return seal.open_x_only_by_ephemeral(_e2_ephemeral(d, iv), q, ciphertext, context)
    return seal.open_symmetric(material, ciphertext, context)


def assisted_context(card_id: bytes, certificate: bytes) -> bytes:
    """E6: a value the key manager sends towards a card, bound to that card and certificate."""
    return ASSISTED_CONTEXT + card_id + hashlib.sha256(certificate).digest()


def key_info_of(material: bytes, mode: KeyMode) -> KeyInfo:
    """What a card holding ``material`` in ``mode`` answers to GET KEY INFO."""
    if mode == KeyMode.PUBLIC:
        public = material[SECRET_LEN:]
        return KeyInfo(mode, seal.key_id(public), public)
    return KeyInfo(mode, seal.key_id(material))


def export_context(card_id: bytes, key_id: bytes) -> bytes:
    return EXPORT_CONTEXT + card_id + key_id


def import_context(card_id: bytes, mode: KeyMode) -> bytes:
    return IMPORT_CONTEXT + card_id + bytes((mode,))


def share_context(card_id: bytes, key_id: bytes, x: int) -> bytes:
    """Share x of a card's key, sealed by the card to the key manager (x = 1) or the vault (2)."""
    return SHARE_CONTEXT + card_id + key_id + bytes((x,))


def share_import_context(card_id: bytes, key_id: bytes) -> bytes:
    return SHARE_IMPORT_CONTEXT + card_id + key_id


def key_parts(material: bytes) -> tuple[bytes, bytes]:
    """The per-value split (seed E4, claims 7-8): 405 for the key manager and 406, which rides
    with every registered value to the vault, as shares x = 1 and 2 of a 2-of-2 Shamir split of
    d (or K) — the information Q is generated from (claim 8) — so IMPORT SHARE rebuilds the key
    from them like any two shares. The line's coefficient is HMAC(d, "EVB-E4-PART-1"), not
    random: the card makes 406 again for every backup without keeping it, and one part alone
    is d masked by a pseudo-random function of d."""
    secret = secret_of(material)
    coefficient = hmac.new(secret, PART_COEFFICIENT_LABEL, hashlib.sha256).digest()
    keymgr, vault = shamir.split(secret, 2, 2, randomness=coefficient)
    return keymgr, vault


def part_context(card_id: bytes, key_id: bytes, x: int) -> bytes:
    """Part x of a card's key, sealed by the card to the key manager (x = 1) or the vault (2)."""
    return PART_CONTEXT + card_id + key_id + bytes((x,))


def server_share(share: bytes, info: KeyInfo) -> bytes:
    """What SPLIT KEY seals to a server: the share, then Q in public mode (the public half the
    server hands back beside the share, so a new card can check what it rebuilds)."""
    return share + (info.public_key if info.mode == KeyMode.PUBLIC else b"")


def keymgr_part(material: bytes, mode: KeyMode) -> bytes:
    """The key manager's part 405 with Q (as :func:`server_share`): what EXPORT KEY P1 02 seals
    to it, and what it makes itself from a key it holds whole (one it generated, or re-keyed to)."""
    return server_share(key_parts(material)[0], key_info_of(material, mode))


def sealed_vault_part(material: bytes, mode: KeyMode, card_id: bytes, vault_key: bytes) -> bytes:
    """Claims 7/31: the vault's part 406 with Q, sealed to ``vault_key`` for a registered value of
    ``card_id`` (tag 83): only the vault opens it, bound to this card and key id. The card makes
    it for every encrypted backup, the key manager for every value it re-seals (E7)."""
    info = key_info_of(material, mode)
    part = server_share(key_parts(material)[1], info)
    return seal.seal(vault_key, part, part_context(card_id, info.key_id, VAULT_PART))


def parse_server_share(plain: bytes, mode: KeyMode, key_id: bytes, x: int) -> tuple[bytes, bytes]:
    """(share, Q) of what a server opened: share x, and Q whose key id is ``key_id``."""
    share, public = plain[:SHARE_LEN], plain[SHARE_LEN:]
    if len(share) != SHARE_LEN or share[0] != x:
        raise MessageError(f"not share {x} of a split key")
    if mode == KeyMode.PUBLIC and (not valid_public_key(public) or seal.key_id(public) != key_id):
        raise MessageError("the share's public key is not the key id's")
    if mode != KeyMode.PUBLIC and public:
        raise MessageError("a symmetric key's share carries no public key")
    return share, public


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


EXPORT_NEXT, EXPORT_PART = 0x01, 0x02  # P1 bits of EXPORT KEY


def export_key(next_key: bool = False, part: bool = False) -> CommandApdu:
    """P1 bit 01: the next key of a rotation under way (:mod:`apdu.rotation`); bit 02: only the
    key manager's part 405 of the per-value split (E4), with Q, instead of the key material."""
    return CommandApdu(CLA_PROPRIETARY, INS_EXPORT_KEY, (EXPORT_NEXT if next_key else 0) | (EXPORT_PART if part else 0),
                       0, ne=256)


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


def import_share(mode: KeyMode, key_id: bytes, share: bytes, sealed: bool, public_key: bytes = b"") -> CommandApdu:
    """Data: key id (8), Q (65, public mode only: the card checks what it rebuilds against
    it), then the share (33) or the share sealed to the transport key."""
    if mode == KeyMode.NONE or len(key_id) != 8:
        raise MessageError("import a share for a public or symmetric key, with its 8-byte key id")
    if (mode == KeyMode.PUBLIC) != (len(public_key) == PUBLIC_KEY_LEN) or len(public_key) not in (0, PUBLIC_KEY_LEN):
        raise MessageError("a share of a public key travels with that public key (65 bytes), of a symmetric none")
    return CommandApdu(CLA_PROPRIETARY, INS_IMPORT_SHARE, int(mode), 1 if sealed else 0, key_id + public_key + share,
                       ne=256)
