"""The key manager over HTTP/JSON (FastAPI); OpenAPI at ``/openapi.json``, refusals are 4xx
with ``{"detail": message}``.

Laid out as the FastAPI full-stack template: this module assembles the app, ``routes/`` holds one
router per resource, ``models.py`` the wire shapes, ``deps.py`` the dependencies, ``services/``
the rules per resource and ``repository.py`` the tables (only the services reach it)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from ..wire import RESPONSES, install_error_handler
from .errors import Busy
from .routes import accounts, cards, escrow, factors, lost_cards, rotation
from .services import KeyManagerService


def openapi_schema() -> dict[str, Any]:
    return create_app(None).openapi()


async def busy(request: Request, exc: Exception) -> JSONResponse:
    """Saturated verifications: 503 with Retry-After, so clients back off instead of queueing."""
    assert isinstance(exc, Busy)
    return JSONResponse(status_code=exc.status, content={"detail": exc.message},
                        headers={"Retry-After": str(exc.retry_after)})


def create_app(service: KeyManagerService | None) -> FastAPI:
    app = FastAPI(title="evb key manager", version="1",
                  description="Escrows card keys under the owner's authentication.", responses=RESPONSES)
    install_error_handler(app)
    app.add_exception_handler(Busy, busy)
    app.state.service = service
    for resource in (accounts, factors, cards, escrow, rotation, lost_cards):
        app.include_router(resource.router)
    return app
