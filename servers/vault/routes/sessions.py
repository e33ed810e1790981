"""A card proves its identity key over a fresh challenge and gets a session."""

from __future__ import annotations

from fastapi import APIRouter

from ...wire import b64, unb64, unhex
from ..deps import Service
from ..models import ChallengeRequest, ChallengeResponse, SessionRequest, SessionResponse, VaultInfo

router = APIRouter()


@router.get("/v1/vault", response_model=VaultInfo)
def vault_info(service: Service) -> VaultInfo:
    return VaultInfo(public_key=b64(service.public_key),
                     digest_fields=[f.name.lower() for f in service.config.digest_fields])


@router.post("/v1/challenges", response_model=ChallengeResponse)
def challenge(body: ChallengeRequest, service: Service) -> ChallengeResponse:
    value, expires = service.challenge(unhex(body.card_id, "card_id"))
    return ChallengeResponse(challenge=b64(value), expires_at=expires)


@router.post("/v1/sessions", response_model=SessionResponse)
def session(body: SessionRequest, service: Service) -> SessionResponse:
    token, expires = service.open_session(
        unhex(body.card_id, "card_id"), unb64(body.public_key, "public_key"),
        unb64(body.attestation, "attestation"), unb64(body.challenge, "challenge"),
        unb64(body.signature, "signature"),
    )
    return SessionResponse(token=token, expires_at=expires)
