"""The vault's share of a card's split key (seed E4): kept, and handed to the replacing card."""

from __future__ import annotations

from fastapi import APIRouter

from ...wire import b64, unb64, unhex
from ..deps import Service, Token, blocking
from ..models import KeyShareRequest, KeyShareResponse, ShareRestoreRequest, ShareRestoreResponse

router = APIRouter()


@router.post("/v1/key-shares", response_model=KeyShareResponse)
async def key_share(body: KeyShareRequest, token: Token, service: Service) -> KeyShareResponse:
    key_id, sealed = unhex(body.key_id, "key_id"), unb64(body.sealed_share, "sealed_share")
    await blocking(lambda: service.keep_key_share(service.sessions.subject(token), key_id, sealed))
    return KeyShareResponse(kept=True)


@router.post("/v1/share-restorations", response_model=ShareRestoreResponse)
async def share_restoration(body: ShareRestoreRequest, token: Token, service: Service) -> ShareRestoreResponse:
    old, key_id = unhex(body.old_card_id, "old_card_id"), unhex(body.key_id, "key_id")
    transport = unb64(body.transport_key, "transport_key")
    sealed, public = await blocking(lambda: service.key_share_for(service.sessions.subject(token), old, key_id,
                                                                  transport))
    return ShareRestoreResponse(sealed_share=b64(sealed), public_key=b64(public) if public else None)
