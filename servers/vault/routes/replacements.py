"""Lost cards: the key manager's signed statements, and the handovers to the replacing card."""

from __future__ import annotations

from fastapi import APIRouter

from ...statements import Fetch, Replacement
from ...wire import b64, unb64, unhex
from ..deps import Service, Token, blocking
from ..models import (
    FetchRequest,
    FetchResponse,
    HandoverRequest,
    HandoverResponse,
    ReplacementRequest,
    ReplacementResponse,
)

router = APIRouter()


@router.post("/v1/replacements", response_model=ReplacementResponse)
async def replacement(body: ReplacementRequest, service: Service) -> ReplacementResponse:
    """No card session: the key manager's signature authenticates the statement."""
    statement = Replacement(unhex(body.old_card_id, "old_card_id"), unb64(body.old_public_key, "old_public_key"),
                            unhex(body.new_card_id, "new_card_id") if body.new_card_id else None,
                            unb64(body.new_public_key, "new_public_key") if body.new_public_key else None,
                            body.issued_at)
    signature = unb64(body.signature, "signature")
    return ReplacementResponse(waiting=await blocking(lambda: service.replace_card(statement, signature)))


@router.post("/v1/keymgr/registered-values", response_model=FetchResponse)
async def fetch(body: FetchRequest, service: Service) -> FetchResponse:
    """Service to service (seed E6): no card session, the key manager's signature."""
    request = Fetch(unb64(body.certificate, "certificate"), body.issued_at)
    signature = unb64(body.signature, "signature")
    value = await blocking(lambda: service.fetch_for_keymgr(request, signature))
    return FetchResponse(registered_value=b64(value))


@router.post("/v1/handovers", response_model=HandoverResponse)
async def handover(body: HandoverRequest, token: Token, service: Service) -> HandoverResponse:
    found, waiting = await blocking(lambda: service.hand_over(service.sessions.subject(token), body.imported))
    return HandoverResponse(handover=b64(found.to_bytes()) if found else None, waiting=waiting)
