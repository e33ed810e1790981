"""Cards enrol in the owner's account by signing a fresh challenge with their identity key."""

from __future__ import annotations

from fastapi import APIRouter

from ...wire import b64, unb64, unhex
from ..deps import Owner, Service, stepped_up
from ..models import CardChallenge, CardEnrolled, CardEnrolment

router = APIRouter()


@router.post("/v1/card-challenges", response_model=CardChallenge)
def card_challenge(owner: Owner, service: Service) -> CardChallenge:
    challenge, expires = service.cards.card_challenge()
    return CardChallenge(challenge=b64(challenge), expires_at=expires)


@router.post("/v1/cards", response_model=CardEnrolled)
def enrol_card(body: CardEnrolment, owner: Owner, service: Service) -> CardEnrolled:
    proven = stepped_up(service, owner, body.proof)
    service.cards.enrol_card(proven, unhex(body.card_id, "card_id"), unb64(body.public_key, "public_key"),
                             unb64(body.attestation, "attestation"), unb64(body.challenge, "challenge"),
                             unb64(body.signature, "signature"))
    return CardEnrolled(card_id=body.card_id)
