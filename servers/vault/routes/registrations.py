"""Values backed up against certificates (seed E1/E2), one or a batch at a time, restored, and
released by receipt."""

from __future__ import annotations

from fastapi import APIRouter

from ...wire import ApiError, b64, unb64, unhex
from ..deps import Service, Token, blocking
from ..models import (
    RegistrationBatch,
    RegistrationBatchOut,
    RegistrationOut,
    RegistrationRequest,
    ReleaseBatch,
    ReleaseBatchOut,
    ReleaseRequest,
    ReleaseResponse,
    RestoreBatch,
    RestoreBatchOut,
    RestoreRequest,
    RestoreResponse,
)
from ..repository import Registration
from ..service import Submission, VaultService

router = APIRouter()


@router.post("/v1/registrations", response_model=RegistrationOut)
async def register(body: RegistrationRequest, token: Token, service: Service) -> RegistrationOut:
    [r] = await service.register_for_session(token, [submission(service, body)])
    return registration_out(r)


@router.post("/v1/registration-batches", response_model=RegistrationBatchOut)
async def register_batch(body: RegistrationBatch, token: Token, service: Service) -> RegistrationBatchOut:
    submitted = [submission(service, r) for r in body.registrations]
    found = await service.register_for_session(token, submitted)
    return RegistrationBatchOut(registrations=[registration_out(r) for r in found])


@router.get("/v1/registrations", response_model=list[RegistrationOut])
async def registrations(token: Token, service: Service) -> list[RegistrationOut]:
    found = await blocking(lambda: service.list(service.sessions.subject(token)))
    return [registration_out(r) for r in found]


@router.post("/v1/restorations", response_model=RestoreResponse)
async def restore(body: RestoreRequest, token: Token, service: Service) -> RestoreResponse:
    certificate = unb64(body.certificate, "certificate")
    value = await blocking(lambda: service.restore(service.sessions.subject(token), certificate))
    return RestoreResponse(value=b64(value))


@router.post("/v1/releases", response_model=ReleaseResponse)
async def release(body: ReleaseRequest, token: Token, service: Service) -> ReleaseResponse:
    x, receipt = unhex(body.value_hash, "value_hash"), unb64(body.receipt, "receipt")
    released = await blocking(lambda: service.release(service.sessions.subject(token), body.counter, x, receipt))
    return ReleaseResponse(released=released)


@router.post("/v1/restoration-batches", response_model=RestoreBatchOut)
async def restore_batch(body: RestoreBatch, token: Token, service: Service) -> RestoreBatchOut:
    """Several certificates' values at once (a key rotation reads them all): one request, one hop."""
    certificates = [unb64(c, "certificate") for c in body.certificates]
    values = await blocking(lambda: service.restore_many(service.sessions.subject(token), certificates))
    return RestoreBatchOut(values=[b64(v) for v in values])


@router.post("/v1/release-batches", response_model=ReleaseBatchOut)
async def release_batch(body: ReleaseBatch, token: Token, service: Service) -> ReleaseBatchOut:
    """Several receipts at once (a key rotation releases every old registration): one transaction."""
    receipts = [(r.counter, unhex(r.value_hash, "value_hash"), unb64(r.receipt, "receipt")) for r in body.releases]
    released = await blocking(lambda: service.release_many(service.sessions.subject(token), receipts))
    return ReleaseBatchOut(released=list(released))


def submission(service: VaultService, body: RegistrationRequest) -> Submission:
    """The value checked as far as it can be without the database (on the event loop)."""
    if (body.value is None) == (body.registered_value is None):
        raise ApiError(400, "send either value or registered_value")
    if body.registered_value is not None:
        return service.encrypted(unb64(body.registered_value, "registered_value"))
    return service.plain(unb64(body.value or "", "value"))


def registration_out(r: Registration) -> RegistrationOut:
    return RegistrationOut(counter=r.counter, card_id=r.card_id.hex(), value_hash=r.value_hash.hex(),
                           certificate=b64(r.certificate), created_at=r.created_at)
