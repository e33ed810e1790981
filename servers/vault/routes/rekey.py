"""Re-keying by the key manager (seed E7, claim 46): the registered value replaced by its successor."""

from __future__ import annotations

from fastapi import APIRouter

from ...statements import Rekey
from ...wire import b64, unb64, unhex
from ..deps import Service, blocking
from ..models import RekeyRequest, RekeyResponse

router = APIRouter()


@router.post("/v1/keymgr/rekeyed-values", response_model=RekeyResponse)
async def rekeyed_value(body: RekeyRequest, service: Service) -> RekeyResponse:
    """Service to service: no card session, the key manager's signature."""
    request = Rekey(unhex(body.card_id, "card_id"), unb64(body.certificate, "certificate"),
                    unb64(body.registered_value, "registered_value"), body.issued_at)
    signature = unb64(body.signature, "signature")
    certificate, succession = await blocking(lambda: service.replace_registration(request, signature))
    return RekeyResponse(certificate=b64(certificate), succession=b64(succession))
