"""The vault's wire shapes (FastAPI's request and response models): binary fields base64, ids
hex, strict types; the published schema is docs/vault-openapi.json."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field

from ..wire import B64, HEX_ID, HEX_PATTERN, MAX_TIME, StrictModel


class VaultInfo(StrictModel):
    public_key: B64
    digest_fields: list[str]


class ChallengeRequest(StrictModel):
    card_id: HEX_ID


class ChallengeResponse(StrictModel):
    challenge: B64
    expires_at: int


class SessionRequest(StrictModel):
    card_id: HEX_ID
    public_key: B64
    attestation: B64 = Field(description="the card issuer's attestation of the identity key "
                                         "(GET ATTESTATION: issuer public key, signature)")
    challenge: B64
    signature: B64


class SessionResponse(StrictModel):
    token: str
    expires_at: int


class RegistrationRequest(StrictModel):
    """Exactly one of: the value (E1), or the card's registered value (E2, encrypted)."""

    value: B64 | None = None
    registered_value: B64 | None = None


MAX_BATCH = 32
"""Values in one batch: 32 of the largest plain records fit the body limit."""


class RegistrationBatch(StrictModel):
    """Several values of one card at once: one request and one transaction, all or nothing. A
    batch sent again after a lost answer answers the same certificates and registers nothing."""

    registrations: list[RegistrationRequest] = Field(min_length=1, max_length=MAX_BATCH)


class RegistrationOut(StrictModel):
    counter: int
    card_id: str = Field(description="the card that backed it up (another one after a replacement)")
    value_hash: str
    certificate: B64
    created_at: int


class RegistrationBatchOut(StrictModel):
    registrations: list[RegistrationOut] = Field(description="in the order sent")


class RestoreRequest(StrictModel):
    certificate: B64


class RestoreResponse(StrictModel):
    value: B64


class RestoreBatch(StrictModel):
    """Several certificates of one card at once (a key rotation reads every encrypted value):
    one request, all or nothing; only reads."""

    certificates: list[B64] = Field(min_length=1, max_length=MAX_BATCH)


class RestoreBatchOut(StrictModel):
    values: list[B64] = Field(description="in the order sent")


class KeyShareRequest(StrictModel):
    key_id: Annotated[str, Field(min_length=16, max_length=16, pattern=HEX_PATTERN)]
    sealed_share: B64


class KeyShareResponse(StrictModel):
    kept: bool


class ReleaseRequest(StrictModel):
    counter: int = Field(ge=0, le=0xFFFFFFFF)
    value_hash: Annotated[str, Field(min_length=64, max_length=64, pattern=HEX_PATTERN)]
    receipt: B64


class ReleaseResponse(StrictModel):
    released: bool


class ReleaseBatch(StrictModel):
    """Several receipts of one card at once (a key rotation releases every old registration);
    each release stands alone, as if sent by itself, and a batch sent again releases nothing twice."""

    releases: list[ReleaseRequest] = Field(min_length=1, max_length=MAX_BATCH)


class ReleaseBatchOut(StrictModel):
    released: list[bool] = Field(description="in the order sent: whether a registration went")


class ReplacementRequest(StrictModel):
    """The key manager's signed statement that the owner lost ``old_card_id``."""

    old_card_id: HEX_ID
    old_public_key: B64
    new_card_id: HEX_ID | None = None
    new_public_key: B64 | None = None
    issued_at: int = Field(ge=0, le=MAX_TIME, description="seconds since the epoch")
    signature: B64


class ReplacementResponse(StrictModel):
    waiting: int = Field(description="registrations to hand over to the new card")


class FetchRequest(StrictModel):
    """Signed by the key manager's statement key over the certificate and the time."""

    certificate: B64
    issued_at: int = Field(ge=0, le=MAX_TIME, description="seconds since the epoch")
    signature: B64


class FetchResponse(StrictModel):
    registered_value: B64


class HandoverRequest(StrictModel):
    imported: int = Field(ge=0, le=0xFFFFFFFF, description="the card's import counter")


class HandoverResponse(StrictModel):
    handover: B64 | None = Field(description="for IMPORT CERTIFICATE; null when none is left")
    waiting: int


class ShareRestoreRequest(StrictModel):
    old_card_id: HEX_ID
    key_id: HEX_ID
    transport_key: B64


class ShareRestoreResponse(StrictModel):
    sealed_share: B64
    public_key: B64 | None = Field(description="Q of a public key (null for a symmetric one): IMPORT SHARE "
                                               "carries it beside the share")


class KeyPartRequest(StrictModel):
    certificate: B64 = Field(description="a certificate of the card whose key to rebuild (encrypted backup)")
    transport_key: B64 = Field(description="NEW TRANSPORT KEY of the card in this session")


class KeyPartResponse(StrictModel):
    mode: str
    key_id: str
    sealed_part: B64 = Field(description="the vault's part 406 of the key, for IMPORT SHARE P2=01")
    public_key: B64 | None = Field(description="Q of a public key (null for a symmetric one)")


class RekeyRequest(StrictModel):
    """Signed by the key manager's statement key (purpose REKEY) over all of it (seed E7)."""

    card_id: HEX_ID = Field(description="the card holding the certificate")
    certificate: B64
    registered_value: B64 = Field(description="the value re-sealed under the card's new key, signed REKEYED")
    issued_at: int = Field(ge=0, le=MAX_TIME, description="seconds since the epoch")
    signature: B64


class RekeyResponse(StrictModel):
    certificate: B64 = Field(description="the successor certificate")
    succession: B64 = Field(description="the vault's signature for the card: it succeeds the old one")
