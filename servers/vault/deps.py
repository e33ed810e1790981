"""What the vault's routes take besides the body: the service, and the card a session is for."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..auth import bearer
from .service import VaultService


def vault_service(request: Request) -> VaultService:
    service: VaultService = request.app.state.service
    return service


Service = Annotated[VaultService, Depends(vault_service)]


def authenticated_card(service: Service, token: Annotated[str, Depends(bearer(
        "not authenticated: send 'Authorization: Bearer <token>' from /v1/sessions"))]) -> bytes:
    """The card behind the bearer token from /v1/sessions."""
    return service.sessions.subject(token)


Card = Annotated[bytes, Depends(authenticated_card)]
