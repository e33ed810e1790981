"""The vault over HTTP/JSON (FastAPI): binary fields are base64, card ids hex. The OpenAPI
schema is served at ``/openapi.json``; every refusal is a 4xx with ``{"detail": message}``."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from pydantic import Field

from ..statements import Fetch, Replacement
from ..wire import (
    B64_PATTERN,
    HEX_PATTERN,
    MAX_TIME,
    RESPONSES,
    ApiError,
    StrictModel,
    b64,
    bearer,
    install_error_handler,
    unb64,
    unhex,
)
from .rekey import router as rekey_router
from .repository import Registration
from .service import VaultService

B64 = Annotated[str, Field(description="base64", max_length=4096, pattern=B64_PATTERN)]
HEX_ID = Annotated[str, Field(description="card id, 16 hex digits", min_length=16, max_length=16,
                                 pattern=HEX_PATTERN)]


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


class RegistrationOut(StrictModel):
    counter: int
    card_id: str = Field(description="the card that backed it up (another one after a replacement)")
    value_hash: str
    certificate: B64
    created_at: int


class RestoreRequest(StrictModel):
    certificate: B64


class RestoreResponse(StrictModel):
    value: B64


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


def vault_service(request: Request) -> VaultService:
    service: VaultService = request.app.state.service
    return service


Service = Annotated[VaultService, Depends(vault_service)]


def authenticated_card(service: Service, token: Annotated[str, Depends(bearer(
        "not authenticated: send 'Authorization: Bearer <token>' from /v1/sessions"))]) -> bytes:
    """The card behind the bearer token from /v1/sessions."""
    return service.card_for(token)


Card = Annotated[bytes, Depends(authenticated_card)]


def openapi_schema() -> dict[str, Any]:
    """The published API (docs/vault-openapi.json); it depends on no database or key."""
    return create_app(None).openapi()


def create_app(service: VaultService | None) -> FastAPI:
    """The HTTP app over ``service`` (None only to describe the API)."""
    app = FastAPI(title="evb vault", version="1", description="Backs up electronic value against certificates.",
                  responses=RESPONSES)

    install_error_handler(app)

    app.state.service = service

    @app.get("/v1/vault", response_model=VaultInfo)
    def vault_info(service: Service) -> VaultInfo:
        return VaultInfo(public_key=b64(service.public_key),
                         digest_fields=[f.name.lower() for f in service.config.digest_fields])

    @app.post("/v1/challenges", response_model=ChallengeResponse)
    def challenge(body: ChallengeRequest, service: Service) -> ChallengeResponse:
        value, expires = service.challenge(unhex(body.card_id, "card_id"))
        return ChallengeResponse(challenge=b64(value), expires_at=expires)

    @app.post("/v1/sessions", response_model=SessionResponse)
    def session(body: SessionRequest, service: Service) -> SessionResponse:
        token, expires = service.open_session(
            unhex(body.card_id, "card_id"), unb64(body.public_key, "public_key"),
            unb64(body.attestation, "attestation"), unb64(body.challenge, "challenge"),
            unb64(body.signature, "signature"),
        )
        return SessionResponse(token=token, expires_at=expires)

    @app.post("/v1/registrations", response_model=RegistrationOut)
    def register(body: RegistrationRequest, card_id: Card, service: Service) -> RegistrationOut:
        if (body.value is None) == (body.registered_value is None):
            raise ApiError(400, "send either value or registered_value")
        if body.registered_value is not None:
            r = service.register_encrypted(card_id, unb64(body.registered_value, "registered_value"))
        else:
            r = service.register(card_id, unb64(body.value or "", "value"))
        return registration_out(r)

    @app.get("/v1/registrations", response_model=list[RegistrationOut])
    def registrations(card_id: Card, service: Service) -> list[RegistrationOut]:
        return [registration_out(r) for r in service.list(card_id)]

    @app.post("/v1/restorations", response_model=RestoreResponse)
    def restore(body: RestoreRequest, card_id: Card, service: Service) -> RestoreResponse:
        return RestoreResponse(value=b64(service.restore(card_id, unb64(body.certificate, "certificate"))))

    @app.post("/v1/key-shares", response_model=KeyShareResponse)
    def key_share(body: KeyShareRequest, card_id: Card, service: Service) -> KeyShareResponse:
        service.keep_key_share(card_id, unhex(body.key_id, "key_id"), unb64(body.sealed_share, "sealed_share"))
        return KeyShareResponse(kept=True)

    @app.post("/v1/releases", response_model=ReleaseResponse)
    def release(body: ReleaseRequest, card_id: Card, service: Service) -> ReleaseResponse:
        released = service.release(card_id, body.counter, unhex(body.value_hash, "value_hash"),
                                   unb64(body.receipt, "receipt"))
        return ReleaseResponse(released=released)

    @app.post("/v1/replacements", response_model=ReplacementResponse)
    def replacement(body: ReplacementRequest, service: Service) -> ReplacementResponse:
        """No card session: the key manager's signature authenticates the statement."""
        statement = Replacement(unhex(body.old_card_id, "old_card_id"), unb64(body.old_public_key, "old_public_key"),
                                unhex(body.new_card_id, "new_card_id") if body.new_card_id else None,
                                unb64(body.new_public_key, "new_public_key") if body.new_public_key else None,
                                body.issued_at)
        return ReplacementResponse(waiting=service.replace_card(statement, unb64(body.signature, "signature")))

    @app.post("/v1/keymgr/registered-values", response_model=FetchResponse)
    def fetch(body: FetchRequest, service: Service) -> FetchResponse:
        """Service to service (seed E6): no card session, the key manager's signature."""
        value = service.fetch_for_keymgr(Fetch(unb64(body.certificate, "certificate"), body.issued_at),
                                         unb64(body.signature, "signature"))
        return FetchResponse(registered_value=b64(value))

    @app.post("/v1/handovers", response_model=HandoverResponse)
    def handover(body: HandoverRequest, card_id: Card, service: Service) -> HandoverResponse:
        found, waiting = service.hand_over(card_id, body.imported)
        return HandoverResponse(handover=b64(found.to_bytes()) if found else None, waiting=waiting)

    @app.post("/v1/share-restorations", response_model=ShareRestoreResponse)
    def share_restoration(body: ShareRestoreRequest, card_id: Card, service: Service) -> ShareRestoreResponse:
        sealed, public = service.key_share_for(card_id, unhex(body.old_card_id, "old_card_id"),
                                               unhex(body.key_id, "key_id"), unb64(body.transport_key, "transport_key"))
        return ShareRestoreResponse(sealed_share=b64(sealed), public_key=b64(public) if public else None)

    app.include_router(rekey_router)
    return app


def registration_out(r: Registration) -> RegistrationOut:
    return RegistrationOut(counter=r.counter, card_id=r.card_id.hex(), value_hash=r.value_hash.hex(),
                           certificate=b64(r.certificate), created_at=r.created_at)
