"""The key manager over HTTP/JSON (FastAPI); OpenAPI at ``/openapi.json``, refusals are 4xx
with ``{"detail": message}``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, FastAPI, Path, Request
from fastapi.responses import JSONResponse
from pydantic import Field

from ..wire import (
    B64_PATTERN,
    HEX_PATTERN,
    RESPONSES,
    TEXT_PATTERN,
    StrictModel,
    b64,
    bearer,
    install_error_handler,
    unb64,
    unhex,
)
from .policy import text
from .repository import Account
from .service import Busy, Factors, IdProof, KeyManagerService, SteppedUp

B64 = Annotated[str, Field(description="base64", max_length=4096, pattern=B64_PATTERN)]
HEX_ID = Annotated[str, Field(description="8 bytes, 16 hex digits", min_length=16, max_length=16,
                                 pattern=HEX_PATTERN)]


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


def keymgr_service(request: Request) -> KeyManagerService:
    service: KeyManagerService = request.app.state.service
    return service


Service = Annotated[KeyManagerService, Depends(keymgr_service)]


Token = Annotated[str, Depends(bearer("not logged in: send 'Authorization: Bearer <token>' from /v1/sessions"))]


def logged_in(service: Service, token: Token) -> Account:
    return service.account_for(token)


Owner = Annotated[Account, Depends(logged_in)]


def factors_of(body: FactorsIn) -> Factors:
    """The wire's factors as the service verifies them (a login's, or a step-up's proof)."""
    id_card = None
    if body.id_card is not None:
        id_card = IdProof(body.id_card.number, unb64(body.id_card.challenge, "challenge"),
                          unb64(body.id_card.signature, "signature"))
    return Factors(body.password, id_card, unb64(body.fingerprint, "fingerprint") if body.fingerprint else None)


def stepped_up(service: KeyManagerService, owner: Account, proof: FactorsIn | None) -> SteppedUp:
    """The owner of the session, once the request's proof of the account's factors is verified."""
    return service.step_up(owner, factors_of(proof) if proof is not None else None)


def openapi_schema() -> dict[str, Any]:
    return create_app(None).openapi()


def create_app(service: KeyManagerService | None) -> FastAPI:
    app = FastAPI(title="evb key manager", version="1",
                  description="Escrows card keys under the owner's authentication.", responses=RESPONSES)
    install_error_handler(app)
    app.state.service = service

    async def busy(request: Request, exc: Exception) -> JSONResponse:
        """Saturated verifications: 503 with Retry-After, so clients back off instead of queueing."""
        assert isinstance(exc, Busy)
        return JSONResponse(status_code=exc.status, content={"detail": exc.message},
                            headers={"Retry-After": str(exc.retry_after)})

    app.add_exception_handler(Busy, busy)

    @app.get("/v1/keymgr", response_model=KeyManagerInfo)
    def info(service: Service) -> KeyManagerInfo:
        return KeyManagerInfo(public_key=b64(service.public_key), statement_key=b64(service.statement_key))

    @app.post("/v1/accounts", response_model=AccountCreated, status_code=201)
    def create_account(body: Credentials, service: Service) -> AccountCreated:
        service.create_account(body.name, body.password)
        return AccountCreated(name=body.name)

    @app.post("/v1/auth-challenges", response_model=CardChallenge)
    def auth_challenge(body: AuthChallengeRequest, service: Service) -> CardChallenge:
        """For an ID card to sign at login; issued for any name."""
        challenge, expires = service.auth_challenge(body.name)
        return CardChallenge(challenge=b64(challenge), expires_at=expires)

    @app.post("/v1/sessions", response_model=SessionResponse)
    def login(body: LoginRequest, service: Service) -> SessionResponse:
        given = factors_of(body)
        token, expires = service.login(body.name, given.password, given.id_card, given.fingerprint)
        return SessionResponse(token=token, expires_at=expires)

    @app.delete("/v1/sessions/current", response_model=LoggedOut)
    def logout(owner: Owner, token: Token, service: Service) -> LoggedOut:
        """End the session whose token this is."""
        service.logout(owner, token)
        return LoggedOut(logged_out=True)

    @app.post("/v1/factors/id-card", response_model=IdCardEnrolled)
    def enrol_id_card(body: IdCardEnrolment, owner: Owner, service: Service) -> IdCardEnrolled:
        proven = stepped_up(service, owner, body.proof)
        doc = service.enrol_id_card(proven, unb64(body.document, "document"), unb64(body.challenge, "challenge"),
                                    unb64(body.signature, "signature"))
        return IdCardEnrolled(number=doc.number, holder=doc.holder, expiry=doc.expiry.isoformat())

    @app.post("/v1/factors/password", response_model=Enrolled)
    def set_password(body: PasswordChange, owner: Owner, token: Token, service: Service) -> Enrolled:
        """A new password; every other session of the account ends, this one goes on."""
        proven = stepped_up(service, owner, body.proof)
        service.set_password(proven, body.password, token)
        return Enrolled(enrolled=True)

    @app.post("/v1/factors/fingerprint", response_model=Enrolled)
    def enrol_fingerprint(body: FingerprintEnrolment, owner: Owner, service: Service) -> Enrolled:
        proven = stepped_up(service, owner, body.proof)
        service.enrol_fingerprint(proven, [unb64(s, "samples") for s in body.samples])
        return Enrolled(enrolled=True)

    @app.put("/v1/policy", response_model=PolicyOut)
    def set_policy(body: PolicyRequest, owner: Owner, service: Service) -> PolicyOut:
        proven = stepped_up(service, owner, body.proof)
        return PolicyOut(policy=service.set_policy(proven, body.policy))

    @app.get("/v1/account", response_model=AccountStatus)
    def status(owner: Owner, service: Service) -> AccountStatus:
        cards = [CardOut(card_id=c.hex(), keys=[KeyOut(key_id=e.key_id.hex(), mode=MODE_NAMES[e.mode],
                                                       created_at=e.created_at) for e in escrows])
                 for c, escrows in service.status(owner)]
        return AccountStatus(name=owner.name, cards=cards, policy=text(service.policy_of(owner)),
                             factors=[FactorOut(kind="password", ref="")] + [
                                 FactorOut(kind=kind, ref=ref) for kind, ref, _ in service.repo.factors(owner.id)])

    @app.post("/v1/escrows", response_model=EscrowResponse)
    def escrow(body: EscrowRequest, owner: Owner, service: Service) -> EscrowResponse:
        service.escrow(owner, unhex(body.card_id, "card_id"), unhex(body.key_id, "key_id"), MODES[body.mode],
                       unb64(body.sealed, "sealed"))
        return EscrowResponse(escrowed=True)

    @app.post("/v1/share-escrows", response_model=EscrowResponse)
    def escrow_share(body: EscrowRequest, owner: Owner, service: Service) -> EscrowResponse:
        service.escrow_share(owner, unhex(body.card_id, "card_id"), unhex(body.key_id, "key_id"), MODES[body.mode],
                             unb64(body.sealed, "sealed"))
        return EscrowResponse(escrowed=True)

    @app.post("/v1/share-restorations", response_model=ShareRestoreResponse)
    def restore_share(body: KeyRestoreRequest, owner: Owner, service: Service) -> ShareRestoreResponse:
        mode, key_id, sealed, public = service.restore_share(owner, unhex(body.card_id, "card_id"),
                                                             unhex(body.target_card_id, "target_card_id"),
                                                             unb64(body.transport_key, "transport_key"))
        return ShareRestoreResponse(mode=MODE_NAMES[mode], key_id=key_id.hex(), sealed=b64(sealed),
                                    public_key=b64(public) if public else None)

    @app.post("/v1/assisted-restorations", response_model=AssistedRestoreResponse)
    def assisted_restore(body: AssistedRestoreRequest, owner: Owner, service: Service) -> AssistedRestoreResponse:
        sealed = service.assisted_restore(owner, unhex(body.card_id, "card_id"),
                                          unb64(body.certificate, "certificate"),
                                          unb64(body.transport_key, "transport_key"))
        return AssistedRestoreResponse(sealed_value=b64(sealed))

    @app.post("/v1/rotations", response_model=RotationOut)
    def begin_rotation(body: RotationRequest, owner: Owner, service: Service) -> RotationOut:
        service.begin_rotation(owner, unhex(body.card_id, "card_id"), unhex(body.old_key_id, "old_key_id"),
                               unhex(body.new_key_id, "new_key_id"))
        return RotationOut(card_id=body.card_id, old_key_id=body.old_key_id, new_key_id=body.new_key_id)

    @app.get("/v1/rotations/{card_id}", response_model=RotationOut)
    def rotation(card_id: CardPath, owner: Owner, service: Service) -> RotationOut:
        """The card's rotation under way; both key ids null when none is."""
        found = service.rotation(owner, unhex(card_id, "card_id"))
        return RotationOut(card_id=card_id, old_key_id=found[0].hex() if found else None,
                           new_key_id=found[1].hex() if found else None)

    @app.post("/v1/rotations/{card_id}/finish", response_model=RotationFinished)
    def finish_rotation(card_id: CardPath, body: RotationFinish, owner: Owner, service: Service) -> RotationFinished:
        return RotationFinished(destroyed=service.finish_rotation(owner, unhex(card_id, "card_id"),
                                                                  unhex(body.key_id, "key_id")))

    @app.post("/v1/generated-keys", response_model=KeyRestoreResponse)
    def generate(body: KeyGenerateRequest, owner: Owner, service: Service) -> KeyRestoreResponse:
        mode, key_id, sealed = service.generate(owner, unhex(body.card_id, "card_id"), MODES[body.mode],
                                                unb64(body.transport_key, "transport_key"))
        return KeyRestoreResponse(mode=MODE_NAMES[mode], key_id=key_id.hex(), sealed=b64(sealed))

    @app.post("/v1/key-restorations", response_model=KeyRestoreResponse)
    def restore(body: KeyRestoreRequest, owner: Owner, service: Service) -> KeyRestoreResponse:
        mode, key_id, sealed = service.restore(owner, unhex(body.card_id, "card_id"),
                                               unhex(body.target_card_id, "target_card_id"),
                                               unb64(body.transport_key, "transport_key"))
        return KeyRestoreResponse(mode=MODE_NAMES[mode], key_id=key_id.hex(), sealed=b64(sealed))

    @app.post("/v1/lost-cards", response_model=LostCardResponse)
    def lost_card(body: LostCardRequest, owner: Owner, service: Service) -> LostCardResponse:
        proven = stepped_up(service, owner, body.proof)
        statement, signature = service.report_lost(proven, unhex(body.card_id, "card_id"),
                                                   unhex(body.new_card_id, "new_card_id") if body.new_card_id else None,
                                                   unb64(body.vault_key, "vault_key"))
        return LostCardResponse(old_card_id=statement.old.hex(), old_public_key=b64(statement.old_key),
                                new_card_id=statement.new.hex() if statement.new else None,
                                new_public_key=b64(statement.new_key) if statement.new_key else None,
                                issued_at=statement.issued_at, signature=b64(signature))

    @app.post("/v1/card-challenges", response_model=CardChallenge)
    def card_challenge(owner: Owner, service: Service) -> CardChallenge:
        challenge, expires = service.card_challenge()
        return CardChallenge(challenge=b64(challenge), expires_at=expires)

    @app.post("/v1/cards", response_model=CardEnrolled)
    def enrol_card(body: CardEnrolment, owner: Owner, service: Service) -> CardEnrolled:
        proven = stepped_up(service, owner, body.proof)
        service.enrol_card(proven, unhex(body.card_id, "card_id"), unb64(body.public_key, "public_key"),
                           unb64(body.attestation, "attestation"), unb64(body.challenge, "challenge"),
                           unb64(body.signature, "signature"))
        return CardEnrolled(card_id=body.card_id)

    from .rekey import router as rekey_router  # here: its routes use this module's dependencies

    app.include_router(rekey_router)
    return app
