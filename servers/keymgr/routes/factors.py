"""The account's factors and policy (seed E5); each change needs a step-up proof."""

from __future__ import annotations

from fastapi import APIRouter

from ...wire import unb64
from ..deps import Owner, Service, Token, stepped_up
from ..models import (
    Enrolled,
    FingerprintEnrolment,
    IdCardEnrolled,
    IdCardEnrolment,
    PasswordChange,
    PolicyOut,
    PolicyRequest,
)

router = APIRouter()


@router.post("/v1/factors/id-card", response_model=IdCardEnrolled)
def enrol_id_card(body: IdCardEnrolment, owner: Owner, service: Service) -> IdCardEnrolled:
    proven = stepped_up(service, owner, body.proof)
    doc = service.accounts.enrol_id_card(proven, unb64(body.document, "document"), unb64(body.challenge, "challenge"),
                                         unb64(body.signature, "signature"))
    return IdCardEnrolled(number=doc.number, holder=doc.holder, expiry=doc.expiry.isoformat())


@router.post("/v1/factors/password", response_model=Enrolled)
def set_password(body: PasswordChange, owner: Owner, token: Token, service: Service) -> Enrolled:
    """A new password; every other session of the account ends, this one goes on."""
    proven = stepped_up(service, owner, body.proof)
    service.accounts.set_password(proven, body.password, token)
    return Enrolled(enrolled=True)


@router.post("/v1/factors/fingerprint", response_model=Enrolled)
def enrol_fingerprint(body: FingerprintEnrolment, owner: Owner, service: Service) -> Enrolled:
    proven = stepped_up(service, owner, body.proof)
    service.accounts.enrol_fingerprint(proven, [unb64(s, "samples") for s in body.samples])
    return Enrolled(enrolled=True)


@router.put("/v1/policy", response_model=PolicyOut)
def set_policy(body: PolicyRequest, owner: Owner, service: Service) -> PolicyOut:
    proven = stepped_up(service, owner, body.proof)
    return PolicyOut(policy=service.accounts.set_policy(proven, body.policy))
