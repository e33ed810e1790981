"""What the key manager's routes take besides the body: the service, the session's account, and
the factors of a login or a step-up proof as the service verifies them."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..auth import bearer
from ..wire import unb64
from .models import FactorsIn
from .repository import Account
from .services import KeyManagerService
from .services.accounts import Factors, IdProof, SteppedUp


def keymgr_service(request: Request) -> KeyManagerService:
    service: KeyManagerService = request.app.state.service
    return service


Service = Annotated[KeyManagerService, Depends(keymgr_service)]


Token = Annotated[str, Depends(bearer("not logged in: send 'Authorization: Bearer <token>' from /v1/sessions"))]


def logged_in(service: Service, token: Token) -> Account:
    return service.accounts.sessions.subject(token)


Owner = Annotated[Account, Depends(logged_in)]


def factors_of(body: FactorsIn) -> Factors:
    """The wire's factors as the service verifies them (a login's, or a step-up's proof)."""
    id_card = None
    if body.id_card is not None:
        id_card = IdProof(body.id_card.number, unb64(body.id_card.challenge, "challenge"),
                          unb64(body.id_card.signature, "signature"))
    return Factors(body.password, id_card, unb64(body.fingerprint, "fingerprint") if body.fingerprint else None)


def stepped_up(service: KeyManagerService, owner: Account, proof: FactorsIn | None) -> SteppedUp:
    """The owner of the session, once the request's proof of the account's factors is verified."""
    return service.accounts.step_up(owner, factors_of(proof) if proof is not None else None)
