"""The vault over HTTP/JSON (FastAPI): binary fields are base64, card ids hex. The OpenAPI
schema is served at ``/openapi.json``; every refusal is a 4xx with ``{"detail": message}``.

Laid out as the FastAPI full-stack template: this module assembles the app, ``routes/`` holds one
router per resource, ``models.py`` the wire shapes, ``deps.py`` the dependencies, ``service.py``
the rules and ``repository.py`` the tables (only the service reaches it)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig

from ..wire import RESPONSES, install_error_handler
from .routes import key_shares, registrations, rekey, replacements, sessions
from .service import VaultService

NO_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
"""The vault reports to no OpenTelemetry provider; left on, FastAPI looks the global providers up
on every request (0.04 ms of CPU)."""


def openapi_schema() -> dict[str, Any]:
    """The published API (docs/vault-openapi.json); it depends on no database or key."""
    return create_app(None).openapi()


def create_app(service: VaultService | None) -> FastAPI:
    """The HTTP app over ``service`` (None only to describe the API)."""
    app = FastAPI(title="evb vault", version="1", description="Backs up electronic value against certificates.",
                  responses=RESPONSES, telemetry=NO_TELEMETRY)
    install_error_handler(app)
    app.state.service = service
    for resource in (sessions, registrations, key_shares, replacements, rekey):
        app.include_router(resource.router)
    return app
