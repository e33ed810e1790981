"""The key manager's wire shapes (FastAPI's request and response models): binary fields base64,
ids hex, strict types; the published schema is docs/keymgr-openapi.json."""

from __future__ import annotations

from typing import Annotated

from fastapi import Path
from pydantic import Field

from ..wire import B64, HEX_ID, HEX_PATTERN, TEXT_PATTERN, StrictModel


class KeyManagerInfo(StrictModel):
    public_key: B64 = Field(description="cards seal keys and shares to it")
    statement_key: B64 = Field(description="signs statements for the vault; pin it there")


class IdCardProof(StrictModel):
    number: Annotated[str, Field(max_length=20, pattern=TEXT_PATTERN)]
    challenge: B64 = Field(description="from /v1/auth-challenges")
    signature: B64


class FactorsIn(StrictModel):
    """The factors the account's policy needs (any subset may be given; all must be right)."""

    password: Annotated[str | None, Field(max_length=1024, pattern=TEXT_PATTERN)] = None
    id_card: IdCardProof | None = None
    fingerprint: B64 | None = Field(default=None, description="a sample from the sensor")


STEP_UP = ("a fresh proof of the account's factors, as at a login (step-up): the session token alone "
           "does not do; wrong factors count as failed logins")


class LostCardRequest(StrictModel):
    card_id: HEX_ID
    new_card_id: HEX_ID | None = None
    vault_key: B64 = Field(description="the public key of the vault the statement is for (its audience)")
    proof: FactorsIn | None = Field(default=None, description=STEP_UP)


class LostCardResponse(StrictModel):
    """The signed statement; deliver it to the vault's /v1/replacements as it is."""

    old_card_id: str
    old_public_key: B64
    new_card_id: str | None
    new_public_key: B64 | None
    issued_at: int
    signature: B64


class CardChallenge(StrictModel):
    challenge: B64
    expires_at: int


class CardEnrolment(StrictModel):
    """The card's INTERNAL AUTHENTICATE answer over a challenge from /v1/card-challenges."""

    card_id: HEX_ID
    public_key: B64
    attestation: B64 = Field(description="the card issuer's attestation of the identity key")
    challenge: B64
    signature: B64
    proof: FactorsIn | None = Field(default=None, description=STEP_UP)


class CardEnrolled(StrictModel):
    card_id: str


class Credentials(StrictModel):
    name: Annotated[str, Field(max_length=64, pattern=TEXT_PATTERN)]
    password: Annotated[str, Field(max_length=1024, pattern=TEXT_PATTERN)]


class LoginRequest(FactorsIn):
    """The factors the account's policy needs (any subset may be given; all must be right)."""

    name: Annotated[str, Field(max_length=64, pattern=TEXT_PATTERN)]


class AuthChallengeRequest(StrictModel):
    name: Annotated[str, Field(max_length=64, pattern=TEXT_PATTERN)]


class IdCardEnrolment(StrictModel):
    document: B64 = Field(description="the ID card's GET DATA answer")
    challenge: B64 = Field(description="from /v1/card-challenges")
    signature: B64
    proof: FactorsIn | None = Field(default=None, description=STEP_UP)


class IdCardEnrolled(StrictModel):
    number: str
    holder: str
    expiry: str


class FingerprintEnrolment(StrictModel):
    samples: Annotated[list[B64], Field(min_length=3, max_length=5)]
    proof: FactorsIn | None = Field(default=None, description=STEP_UP)


class PasswordChange(StrictModel):
    """The new password; every other session of the account ends."""

    password: Annotated[str, Field(max_length=1024, pattern=TEXT_PATTERN)]
    proof: FactorsIn | None = Field(default=None, description=STEP_UP)


class Enrolled(StrictModel):
    enrolled: bool


class PolicyRequest(StrictModel):
    policy: Annotated[str, Field(max_length=200, pattern=TEXT_PATTERN, description="e.g. 'password and id-card'")]
    proof: FactorsIn | None = Field(default=None, description=STEP_UP)


class PolicyOut(StrictModel):
    policy: str


class FactorOut(StrictModel):
    kind: str
    ref: str


class AccountCreated(StrictModel):
    name: str


class SessionResponse(StrictModel):
    token: str
    expires_at: int


class LoggedOut(StrictModel):
    logged_out: bool


class EscrowRequest(StrictModel):
    card_id: HEX_ID
    key_id: HEX_ID
    mode: Annotated[str, Field(pattern="^(public|symmetric)$")]
    sealed: B64


class ShareEscrowRequest(EscrowRequest):
    kind: Annotated[str, Field(pattern="^(shamir|per-value)$")] = Field(
        default="shamir", description="shamir: share 1 of SPLIT KEY (2 of 3); per-value: the key manager's part "
                                      "405 from EXPORT KEY P1=02, the vault's part riding with every registered value")


class EscrowResponse(StrictModel):
    escrowed: bool


class KeyOut(StrictModel):
    key_id: str
    mode: str
    created_at: int


class CardOut(StrictModel):
    card_id: str
    keys: list[KeyOut]


class AccountStatus(StrictModel):
    name: str
    cards: list[CardOut]
    policy: str
    factors: list[FactorOut]


class KeyRestoreRequest(StrictModel):
    card_id: HEX_ID
    target_card_id: HEX_ID
    transport_key: B64


class ShareRestoreRequest(KeyRestoreRequest):
    kind: Annotated[str, Field(pattern="^(shamir|per-value)$")] = Field(
        default="shamir", description="shamir: share 1 of the 2-of-3 split; per-value: the part 405 (made from the "
                                      "whole key when only that is escrowed)")
    key_id: HEX_ID | None = Field(default=None, description="the share of this key (default: the newest key's); a "
                                                            "per-value restore names the key of the vault's part")


class AssistedRestoreRequest(StrictModel):
    card_id: HEX_ID
    certificate: B64
    transport_key: B64


class AssistedRestoreResponse(StrictModel):
    sealed_value: B64 = Field(description="for COMMIT ASSISTED RESTORE; only the card opens it")


class RotationRequest(StrictModel):
    card_id: HEX_ID
    old_key_id: HEX_ID
    new_key_id: HEX_ID


class RotationOut(StrictModel):
    card_id: str
    old_key_id: str | None
    new_key_id: str | None


class RotationFinish(StrictModel):
    key_id: HEX_ID


class RotationFinished(StrictModel):
    destroyed: int = Field(description="old escrowed keys and shares destroyed")


class KeyGenerateRequest(StrictModel):
    card_id: HEX_ID
    mode: Annotated[str, Field(pattern="^(public|symmetric)$")]
    transport_key: B64


class KeyRestoreResponse(StrictModel):
    mode: str
    key_id: str
    sealed: B64


class ShareRestoreResponse(KeyRestoreResponse):
    public_key: B64 | None = Field(description="Q of a public key (null for a symmetric one): IMPORT SHARE "
                                               "carries it beside the share")


CardPath = Annotated[str, Path(min_length=16, max_length=16, pattern=HEX_PATTERN)]
MODES = {"public": 1, "symmetric": 2}
MODE_NAMES = {v: k for k, v in MODES.items()}


class RekeyRequest(StrictModel):
    """Begin (or answer again) a card's re-keying by the key manager (seed E7)."""

    card_id: HEX_ID
    proof: FactorsIn | None = Field(default=None, description=STEP_UP)


class RekeyJob(StrictModel):
    card_id: str
    mode: str
    old_key_id: str
    new_key_id: str


class RekeyValueRequest(StrictModel):
    certificate: B64 = Field(description="a certificate the card holds")


class RekeyValueResponse(StrictModel):
    certificate: B64 = Field(description="the successor (the one given, when it was under the new key already)")
    succession: B64 = Field(description="the vault's signature for SUCCEED CERTIFICATE; empty when nothing moved")


class RekeyKeyRequest(StrictModel):
    transport_key: B64 = Field(description="from the card's NEW TRANSPORT KEY")


class RekeyKeyResponse(StrictModel):
    mode: str
    key_id: str
    sealed: B64 = Field(description="for REPLACE KEY; only the card opens it")
