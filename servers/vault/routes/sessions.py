"""A card proves its identity key over a fresh challenge and gets a session."""

from __future__ import annotations

from fastapi import APIRouter

from ...wire import b64, unb64, unhex
from ..deps import Service, blocking
from ..models import ChallengeRequest, ChallengeResponse, SessionRequest, SessionResponse, VaultInfo

router = APIRouter()


@router.get("/v1/vault", response_model=VaultInfo)
async def vault_info(service: Service) -> VaultInfo:
    return VaultInfo(public_key=b64(service.public_key),
                     digest_fields=[f.name.lower() for f in service.config.digest_fields])


@router.post("/v1/challenges", response_model=ChallengeResponse)
async def challenge(body: ChallengeRequest, service: Service) -> ChallengeResponse:
    card_id = unhex(body.card_id, "card_id")
    value, expires = await blocking(lambda: service.challenge(card_id))
    return ChallengeResponse(challenge=b64(value), expires_at=expires)


@router.post("/v1/sessions", response_model=SessionResponse)
async def session(body: SessionRequest, service: Service) -> SessionResponse:
    card_id, public_key = unhex(body.card_id, "card_id"), unb64(body.public_key, "public_key")
    attestation, challenge = unb64(body.attestation, "attestation"), unb64(body.challenge, "challenge")
    signature = unb64(body.signature, "signature")
    token, expires = await blocking(lambda: service.open_session(card_id, public_key, attestation, challenge,
                                                                 signature))
    return SessionResponse(token=token, expires_at=expires)
