"""Accounts and sessions: sign-up, login (any factors the policy takes), logout, the account's status."""

from __future__ import annotations

from fastapi import APIRouter

from ...wire import b64
from ..deps import Owner, Service, Token, factors_of
from ..models import (
    MODE_NAMES,
    AccountCreated,
    AccountStatus,
    AuthChallengeRequest,
    CardChallenge,
    CardOut,
    Credentials,
    FactorOut,
    KeyManagerInfo,
    KeyOut,
    LoggedOut,
    LoginRequest,
    SessionResponse,
)

router = APIRouter()


@router.get("/v1/keymgr", response_model=KeyManagerInfo)
def info(service: Service) -> KeyManagerInfo:
    return KeyManagerInfo(public_key=b64(service.public_key), statement_key=b64(service.statement_key))


@router.post("/v1/accounts", response_model=AccountCreated, status_code=201)
def create_account(body: Credentials, service: Service) -> AccountCreated:
    service.accounts.create_account(body.name, body.password)
    return AccountCreated(name=body.name)


@router.post("/v1/auth-challenges", response_model=CardChallenge)
def auth_challenge(body: AuthChallengeRequest, service: Service) -> CardChallenge:
    """For an ID card to sign at login; issued for any name."""
    challenge, expires = service.accounts.auth_challenge(body.name)
    return CardChallenge(challenge=b64(challenge), expires_at=expires)


@router.post("/v1/sessions", response_model=SessionResponse)
def login(body: LoginRequest, service: Service) -> SessionResponse:
    given = factors_of(body)
    token, expires = service.accounts.login(body.name, given.password, given.id_card, given.fingerprint)
    return SessionResponse(token=token, expires_at=expires)


@router.delete("/v1/sessions/current", response_model=LoggedOut)
def logout(owner: Owner, token: Token, service: Service) -> LoggedOut:
    """End the session whose token this is."""
    service.accounts.logout(owner, token)
    return LoggedOut(logged_out=True)


@router.get("/v1/account", response_model=AccountStatus)
def status(owner: Owner, service: Service) -> AccountStatus:
    found = service.accounts.status(owner)
    cards = [CardOut(card_id=c.hex(), keys=[KeyOut(key_id=e.key_id.hex(), mode=MODE_NAMES[e.mode],
                                                   created_at=e.created_at) for e in escrows])
             for c, escrows in found.cards]
    return AccountStatus(name=owner.name, cards=cards, policy=found.policy,
                         factors=[FactorOut(kind=kind, ref=ref) for kind, ref in found.factors])
