"""Values backed up against certificates (seed E1/E2), restored, and released by receipt."""

from __future__ import annotations

from fastapi import APIRouter

from ...wire import ApiError, b64, unb64, unhex
from ..deps import Card, Service
from ..models import (
    RegistrationOut,
    RegistrationRequest,
    ReleaseRequest,
    ReleaseResponse,
    RestoreRequest,
    RestoreResponse,
)
from ..repository import Registration

router = APIRouter()


@router.post("/v1/registrations", response_model=RegistrationOut)
def register(body: RegistrationRequest, card_id: Card, service: Service) -> RegistrationOut:
    if (body.value is None) == (body.registered_value is None):
        raise ApiError(400, "send either value or registered_value")
    if body.registered_value is not None:
        r = service.register_encrypted(card_id, unb64(body.registered_value, "registered_value"))
    else:
        r = service.register(card_id, unb64(body.value or "", "value"))
    return registration_out(r)


@router.get("/v1/registrations", response_model=list[RegistrationOut])
def registrations(card_id: Card, service: Service) -> list[RegistrationOut]:
    return [registration_out(r) for r in service.list(card_id)]


@router.post("/v1/restorations", response_model=RestoreResponse)
def restore(body: RestoreRequest, card_id: Card, service: Service) -> RestoreResponse:
    return RestoreResponse(value=b64(service.restore(card_id, unb64(body.certificate, "certificate"))))


@router.post("/v1/releases", response_model=ReleaseResponse)
def release(body: ReleaseRequest, card_id: Card, service: Service) -> ReleaseResponse:
    released = service.release(card_id, body.counter, unhex(body.value_hash, "value_hash"),
                               unb64(body.receipt, "receipt"))
    return ReleaseResponse(released=released)


def registration_out(r: Registration) -> RegistrationOut:
    return RegistrationOut(counter=r.counter, card_id=r.card_id.hex(), value_hash=r.value_hash.hex(),
                           certificate=b64(r.certificate), created_at=r.created_at)
