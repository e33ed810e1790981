"""The vault's settings: everything an operator or a test chooses, in one object."""

from __future__ import annotations

from dataclasses import dataclass

from apdu.certificate import ALL_DIGEST_FIELDS, DigestField


@dataclass(frozen=True)
class VaultConfig:
    digest_fields: tuple[DigestField, ...] = ALL_DIGEST_FIELDS
    challenge_ttl: int = 120  # seconds
    session_ttl: int = 900
    keymgr_key: bytes | None = None  # the key manager's statement key: trusted for replaced cards
    issuers: tuple[bytes, ...] = ()  # card issuers' public keys: a new card's identity must be attested
    counter_modulus: int = 2**32  # certificate counters wrap here (small in the tests of the wrap)
