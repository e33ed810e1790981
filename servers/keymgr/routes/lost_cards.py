"""A lost card: the owner's step-up proof buys a statement signed for one vault."""

from __future__ import annotations

from fastapi import APIRouter

from ...wire import b64, unb64, unhex
from ..deps import Owner, Service, stepped_up
from ..models import LostCardRequest, LostCardResponse

router = APIRouter()


@router.post("/v1/lost-cards", response_model=LostCardResponse)
def lost_card(body: LostCardRequest, owner: Owner, service: Service) -> LostCardResponse:
    proven = stepped_up(service, owner, body.proof)
    statement, signature = service.lost_cards.report_lost(
        proven, unhex(body.card_id, "card_id"), unhex(body.new_card_id, "new_card_id") if body.new_card_id else None,
        unb64(body.vault_key, "vault_key"))
    return LostCardResponse(old_card_id=statement.old.hex(), old_public_key=b64(statement.old_key),
                            new_card_id=statement.new.hex() if statement.new else None,
                            new_public_key=b64(statement.new_key) if statement.new_key else None,
                            issued_at=statement.issued_at, signature=b64(signature))
