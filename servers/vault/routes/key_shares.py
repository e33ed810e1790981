"""The vault's share of a card's split key (seed E4): kept, and handed to the replacing card."""

from __future__ import annotations

from fastapi import APIRouter

from ...wire import b64, unb64, unhex
from ..deps import Card, Service
from ..models import KeyShareRequest, KeyShareResponse, ShareRestoreRequest, ShareRestoreResponse

router = APIRouter()


@router.post("/v1/key-shares", response_model=KeyShareResponse)
def key_share(body: KeyShareRequest, card_id: Card, service: Service) -> KeyShareResponse:
    service.keep_key_share(card_id, unhex(body.key_id, "key_id"), unb64(body.sealed_share, "sealed_share"))
    return KeyShareResponse(kept=True)


@router.post("/v1/share-restorations", response_model=ShareRestoreResponse)
def share_restoration(body: ShareRestoreRequest, card_id: Card, service: Service) -> ShareRestoreResponse:
    sealed, public = service.key_share_for(card_id, unhex(body.old_card_id, "old_card_id"),
                                           unhex(body.key_id, "key_id"), unb64(body.transport_key, "transport_key"))
    return ShareRestoreResponse(sealed_share=b64(sealed), public_key=b64(public) if public else None)
