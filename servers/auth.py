"""Challenges, sessions and the bearer dependency: how both servers let a caller in.

A caller proves itself once (a card signs a fresh challenge at the vault; an owner shows the
account's factors at the key manager) and gets a bearer token for the session. Tokens are random,
handed out once and stored only as their SHA-256, so a copy of the database opens no session.
What differs between the servers is only who the session is for (a card id, an account): the
:class:`Sessions` here takes the repository's two queries and is the same object for both."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

from fastapi import Request
from fastapi.security import HTTPBearer

from .wire import ApiError

CHALLENGE_LEN = 32

S = TypeVar("S")


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def new_challenge(ttl: int) -> tuple[bytes, int, int]:
    """A fresh random challenge, the time now and when it expires (both seconds since the epoch)."""
    now = int(time.time())
    return secrets.token_bytes(CHALLENGE_LEN), now, now + ttl


@dataclass(frozen=True)
class Sessions(Generic[S]):
    """Sessions for subjects of type ``S``, kept by the server's repository: ``add(hash,
    subject, expires_at, now)`` stores one, ``find(hash, now)`` answers the live session's
    subject or None. ``refusal`` is the 401's message for an unknown or expired token."""

    add: Callable[[bytes, S, int, int], None]
    find: Callable[[bytes, int], S | None]
    ttl: int
    refusal: str

    def open(self, subject: S) -> tuple[str, int]:
        """A new session for ``subject``: its token (given out once) and when it expires."""
        token, now = new_token(), int(time.time())
        self.add(token_hash(token), subject, now + self.ttl, now)
        return token, now + self.ttl

    def subject(self, token: str) -> S:
        """Who the live session of ``token`` is for, or a 401."""
        found = self.find(token_hash(token), int(time.time()))
        if found is None:
            raise ApiError(401, self.refusal)
        return found


class _Bearer(HTTPBearer):
    """HTTPBearer (the API's documented security scheme) answering the token itself, or a 401
    with the route's message: one dependency where a function over HTTPBearer made two, and each
    level of FastAPI's dependency solving cost about 0.08 ms of CPU a request."""

    def __init__(self, refusal: str) -> None:
        super().__init__(auto_error=False, description="the token from POST /v1/sessions", scheme_name="HTTPBearer")
        self.refusal = refusal

    async def __call__(self, request: Request) -> str:  # type: ignore[override]
        credentials = await super().__call__(request)
        if credentials is None or not credentials.credentials:
            raise ApiError(401, self.refusal)
        return credentials.credentials


def bearer(refusal: str) -> Callable[..., Awaitable[str]]:
    """A dependency answering the request's bearer token (documented as the API's security
    scheme), or a 401 with ``refusal``. Async: a sync dependency costs a thread hop per request."""
    return _Bearer(refusal)
