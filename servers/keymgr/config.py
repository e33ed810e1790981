"""The key manager's settings: everything an operator or a test chooses, in one object."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

MASTER_KEY_ENV = "EVB_KEYMGR_MASTER_KEY_FILE"


@dataclass(frozen=True)
class KeyManagerConfig:
    session_ttl: int = 900
    challenge_ttl: int = 120
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536  # 64 MiB per guess: memory-hard
    argon2_parallelism: int = 4
    vault_url: str | None = None  # for server-assisted restore (E6)
    vault_key: bytes | None = None  # that vault's public key; asked of vault_url when not given
    issuers: tuple[bytes, ...] = ()  # card issuers: an enrolled card's identity must be attested
    id_issuers: tuple[bytes, ...] = ()  # ID-card (document) issuers
    vault_ca: Path | None = None  # the CA the vault's certificate must chain to [default: the system store]
    max_verifications: int = 4  # expensive checks (Argon2, fingerprints) at once; more answer 503
