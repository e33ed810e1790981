"""The instruction codes of the card's command families, and the sizes the card lays its header
out by, as plain ints.

Why a module of their own: the simulated card dispatches on these and reserves its header by
these at import, while the families' codecs (frozen dataclasses, enums) cost more to build than
most commands' work; the card runs a family's codec at its first command (:mod:`apdu.deferred`).
Each family's module re-exports its names, so a host reads ``t.INS_GET_TRIGGERS`` as before.
"""

from __future__ import annotations

from .signature import PUBLIC_KEY_LEN

# backup and restore (apdu.backup)
INS_GET_IDENTITY = 0x30
INS_PUT_VAULT_KEY = 0x32
INS_GET_IMPORT_COUNTER = 0x34
INS_PUT_ATTESTATION = 0x36
INS_COMMIT_ASSISTED_RESTORE = 0x38
INS_GET_ATTESTATION = 0x3A
INS_BEGIN_BACKUP = 0x40
INS_COMMIT_BACKUP = 0x42
INS_CANCEL_PENDING = 0x44
INS_BEGIN_RESTORE = 0x46
INS_COMMIT_RESTORE = 0x48
INS_SIGN_RECEIPT = 0x4A
INS_BEGIN_ENCRYPTED_BACKUP = 0x4C
INS_IMPORT_CERTIFICATE = 0x4E
INS_INTERNAL_AUTHENTICATE = 0x88  # ISO 7816-4
MAX_SIGNATURE = 72  # DER ECDSA P-256

# backup triggers (apdu.triggers)
INS_GET_TRIGGERS = 0x50
INS_PUT_TRIGGERS = 0x52
INS_SELECT_FOR_BACKUP = 0x54
INS_RECORD_RUN = 0x56
MAX_SETTINGS = 250  # bytes of the settings TLV; the card reserves 256 with a length prefix

# the key store (apdu.keys)
INS_GENERATE_KEY = 0x60
INS_GET_KEY_INFO = 0x62
INS_PUT_KEYMGR_KEY = 0x64
INS_EXPORT_KEY = 0x66
INS_NEW_TRANSPORT_KEY = 0x68
INS_IMPORT_KEY = 0x6A
INS_SPLIT_KEY = 0x6C
INS_IMPORT_SHARE = 0x6E
SECRET_LEN = 32  # d, or K
PUBLIC_MATERIAL_LEN = SECRET_LEN + PUBLIC_KEY_LEN  # d || Q
SHARE_LEN = 1 + SECRET_LEN  # x, then one byte per byte of d or K
MAX_SHARES = 3

# key rotation (apdu.rotation)
INS_BEGIN_ROTATION = 0x70
INS_REENCRYPT = 0x72
INS_SWAP_CERTIFICATE = 0x74
INS_COMMIT_ROTATION = 0x76

# re-keying by the key manager (apdu.rekey)
INS_REPLACE_KEY = 0x78
INS_SUCCEED_CERTIFICATE = 0x7A
