"""JSON wire helpers shared by the servers: binary fields are base64, ids hex, and a field that
does not decode is a 400 with the field's name."""

from __future__ import annotations

import base64
import binascii

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse


class ApiError(Exception):
    """A refusal with its HTTP status and a message for the user: ``{"detail": message}``."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def install_error_handler(app: FastAPI, *errors: type[Exception]) -> None:
    async def handler(request: Request, exc: Exception) -> JSONResponse:
        status = getattr(exc, "status", 400)
        return JSONResponse(status_code=status, content={"detail": getattr(exc, "message", str(exc))})

    kinds: tuple[type[Exception], ...] = (ApiError, *errors)
    for kind in kinds:
        app.add_exception_handler(kind, handler)


def unb64(text: str, what: str) -> bytes:
    try:
        return base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ApiError(400, f"{what} is not valid base64") from exc


def unhex(text: str, what: str) -> bytes:
    try:
        return bytes.fromhex(text)
    except ValueError as exc:
        raise ApiError(400, f"{what} is not valid hex") from exc


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()
