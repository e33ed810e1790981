"""Key rotation (seed E7): every encrypted backup moves to a new key pair (403/404) while the
card stays the source of truth, shared by card and host.

The old key opens and the new key seals, both on the card; the vault registers each new
registered value like a new backup, and forgets the old one only against the card's receipt,
so at every moment the card holds one certificate per value and the vault its registration::

    BEGIN ROTATION        -> key info of the next key (kept on the card; again: the same one)
    EXPORT KEY P1=01      -> the next key's seed sealed to the key manager (escrow it first)
    REENCRYPT id          old registered value -> new registered value (no card write)
    SWAP CERTIFICATE id   new certificate, new registered value -> the certificate is replaced
                          and marked ROTATED, in one transaction; again: 9000
    COMMIT ROTATION       -> key info: the next key becomes the key and the old one is erased,
                          only once every encrypted certificate is ROTATED

A rotation refuses to begin while a backup or restore is pending; while it runs, encrypted
backups wait (6985). Kept copies (BACKED UP) at the vault were under the old key: the commit
drops the flag, their registrations are released against receipts.
"""

from __future__ import annotations

from . import tlv
from .certificate import CertTag
from .command import CommandApdu
from .ins import INS_BEGIN_ROTATION as INS_BEGIN_ROTATION
from .ins import INS_COMMIT_ROTATION as INS_COMMIT_ROTATION
from .ins import INS_REENCRYPT as INS_REENCRYPT
from .ins import INS_SWAP_CERTIFICATE as INS_SWAP_CERTIFICATE
from .wallet import CLA_PROPRIETARY, MessageError, _id_p1p2


def begin_rotation() -> CommandApdu:
    return CommandApdu(CLA_PROPRIETARY, INS_BEGIN_ROTATION, ne=256)


def reencrypt(value_id: int, registered_value: bytes) -> CommandApdu:
    return CommandApdu(CLA_PROPRIETARY, INS_REENCRYPT, *_id_p1p2(value_id), registered_value, ne=256)


def swap_certificate(value_id: int, certificate: bytes, registered_value: bytes) -> CommandApdu:
    return CommandApdu(CLA_PROPRIETARY, INS_SWAP_CERTIFICATE, *_id_p1p2(value_id), certificate + registered_value)


def split_swap(data: bytes) -> tuple[bytes, bytes]:
    """SWAP CERTIFICATE's data: the certificate's TLVs, then the registered value (A0)."""
    offset = 0
    for item in tlv.decode(data):
        if item.tag == 0xA0:
            return data[:offset], data[offset:]
        if item.tag not in tuple(CertTag):
            raise MessageError("a certificate, then a registered value")
        offset += len(bytes(item))
    raise MessageError("a certificate, then a registered value")


def commit_rotation() -> CommandApdu:
    return CommandApdu(CLA_PROPRIETARY, INS_COMMIT_ROTATION, ne=256)
