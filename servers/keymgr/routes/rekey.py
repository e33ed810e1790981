"""Re-keying by the key manager (seed E7/E8, claims 16, 17, 46): the job, each value, the new key.
The job's finish is the rotation's (/v1/rotations/{card_id}/finish)."""

from __future__ import annotations

from fastapi import APIRouter

from ...wire import b64, unb64, unhex
from ..deps import Owner, Service, stepped_up
from ..models import (
    MODE_NAMES,
    CardPath,
    RekeyJob,
    RekeyKeyRequest,
    RekeyKeyResponse,
    RekeyRequest,
    RekeyValueRequest,
    RekeyValueResponse,
)

router = APIRouter()


@router.post("/v1/rekeys", response_model=RekeyJob)
def begin_rekey(body: RekeyRequest, owner: Owner, service: Service) -> RekeyJob:
    """Begin (or answer, again) the card's re-keying by the key manager; needs a step-up proof."""
    job = service.rekeys.begin(stepped_up(service, owner, body.proof), unhex(body.card_id, "card_id"))
    return RekeyJob(card_id=body.card_id, mode=MODE_NAMES[job.mode], old_key_id=job.old_key_id.hex(),
                    new_key_id=job.new_key_id.hex())


@router.post("/v1/rekeys/{card_id}/values", response_model=RekeyValueResponse)
def rekey_value(card_id: CardPath, body: RekeyValueRequest, owner: Owner, service: Service) -> RekeyValueResponse:
    done = service.rekeys.rekey_value(owner, unhex(card_id, "card_id"), unb64(body.certificate, "certificate"))
    return RekeyValueResponse(certificate=b64(done.certificate), succession=b64(done.signature))


@router.post("/v1/rekeys/{card_id}/key", response_model=RekeyKeyResponse)
def rekey_key(card_id: CardPath, body: RekeyKeyRequest, owner: Owner, service: Service) -> RekeyKeyResponse:
    mode, key_id, sealed = service.rekeys.deliver_key(owner, unhex(card_id, "card_id"),
                                                      unb64(body.transport_key, "transport_key"))
    return RekeyKeyResponse(mode=MODE_NAMES[mode], key_id=key_id.hex(), sealed=b64(sealed))
