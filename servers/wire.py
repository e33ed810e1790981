"""JSON wire helpers shared by the servers: binary fields are base64, ids hex, and a field that
does not decode is a 400 with the field's name. Every refusal is ``{"detail": message}``, and no
message echoes the request (422s once sent passwords and 10 MB inputs back). :class:`BodyLimit`
caps and vets request bodies before FastAPI parses them."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Annotated, Any

from fastapi import FastAPI, Request
from fastapi.exception_handlers import http_exception_handler
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from fastapi.routing import APIRoute
from pydantic import BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from .storage import StorageUnavailable

MAX_BODY = 64 * 1024
"""The largest request body either server reads: the biggest legitimate one (five fingerprint
samples, base64) is well under it."""

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


B64_PATTERN = r"^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
HEX_PATTERN = r"^(?:[0-9a-fA-F]{2})*$"
MAX_TIME = 2**53 - 1
"""The largest time on the wire: every JSON reader carries it exactly, and statements sign it in
8 bytes (beyond 2**64 once raised OverflowError, a 500)."""
TEXT_PATTERN = r"^[^\x00]*$"
"""Free text holds no NUL: PostgreSQL's text type cannot store one."""

B64 = Annotated[str, Field(description="base64", max_length=4096, pattern=B64_PATTERN)]
"""A binary field on the wire (keys, signatures, certificates, sealed blobs)."""
HEX_ID = Annotated[str, Field(description="8 bytes, 16 hex digits", min_length=16, max_length=16,
                                 pattern=HEX_PATTERN)]
"""A card id or a key id on the wire."""


class StrictModel(BaseModel):
    """A body model without lax coercion (``false`` or ``132557.0`` is no integer, ``1`` no
    string) and without fields it does not know."""

    model_config = ConfigDict(strict=True, extra="forbid")


class Refusal(BaseModel):
    detail: str


_REFUSALS = {
    400: "a field does not decode, or the request contradicts itself",
    401: "no valid session token, challenge or signature",
    403: "the caller may not do this",
    404: "no such record",
    409: "conflicts with the stored state",
    413: "the body is larger than the limit",
    422: "the body is not strict JSON or does not match the schema",
    423: "locked after too many failed logins",
    429: "too many attempts at once; retry later",
    503: "busy or a service it needs is unreachable; retry later",
}
RESPONSES: dict[int | str, dict[str, Any]] = {
    status: {"model": Refusal, "description": text} for status, text in _REFUSALS.items()}
"""Every refusal either server can answer, on every route (FastAPI's ``responses=``)."""

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
    app.add_exception_handler(RequestValidationError, invalid_request)
    app.add_exception_handler(StarletteHTTPException, http_refusal)
    app.add_exception_handler(StorageUnavailable, database_unavailable)
    app.add_middleware(BodyLimit)


async def database_unavailable(request: Request, exc: Exception) -> JSONResponse:
    """A failover in progress: 503 with Retry-After, so the client retries (idempotently)."""
    assert isinstance(exc, StorageUnavailable)
    return JSONResponse(status_code=exc.status, content={"detail": exc.message},
                        headers={"Retry-After": str(exc.retry_after)})


async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """A 422 naming each bad field and what is wrong with it, never the value sent: FastAPI's own
    handler echoes the input (passwords, megabytes) and fails with a 500 on what it cannot
    serialise back (NaN, lone surrogates)."""
    assert isinstance(exc, RequestValidationError)
    return JSONResponse(status_code=422, content={"detail": describe_errors(exc.errors())})


async def http_refusal(request: Request, exc: Exception) -> Response:
    """Starlette's own refusals (404, 405) as usual, but a 405's Allow header lists every method
    the path takes, not only those of the first route that matched it."""
    assert isinstance(exc, StarletteHTTPException)
    if exc.status_code != 405:
        return await http_exception_handler(request, exc)
    allowed = sorted({method for route in api_routes(request.app)
                      if route.matches(request.scope)[0] != Match.NONE for method in route.methods or ()})
    return JSONResponse(status_code=405, content={"detail": "method not allowed"},
                        headers={"Allow": ", ".join(allowed)})


def api_routes(app: FastAPI) -> list[APIRoute]:
    """Every API route of ``app``, also those of the routers it includes: FastAPI 0.165 keeps an
    included router as one entry of ``app.routes`` (older versions copied its routes in). Our
    routers take no prefix, so a route's path is the one served."""
    found: list[APIRoute] = []
    pending: list[Any] = list(app.routes)
    while pending:
        route = pending.pop(0)
        if isinstance(route, APIRoute):
            found.append(route)
        elif hasattr(route, "original_router"):
            pending[:0] = route.original_router.routes
    return found


def describe_errors(errors: Any) -> str:
    parts = []
    for error in list(errors)[:10]:
        where = ".".join(str(part) if isinstance(part, int | str) else "?" for part in error.get("loc", ()))
        parts.append(f"{where[:80]}: {str(error.get('msg', 'invalid'))[:200]}")
    text = "; ".join(parts) or "the request is not valid"
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


class BadBody(ValueError):
    """A body that is not strict JSON text."""


def _no_constants(name: str) -> object:
    raise BadBody(f"{name} is not a JSON number")


def _finite(literal: str) -> float:
    value = float(literal)
    if value in (float("inf"), float("-inf")):
        raise BadBody("a number is out of range")
    return value


def check_json(body: bytes) -> None:
    """Raise :class:`BadBody` unless ``body`` is JSON that every part of the server can carry:
    no NaN or Infinity (nor numbers that overflow to it), no lone surrogates and no NUL in any
    string (PostgreSQL's text refuses NUL; UTF-8 cannot encode a lone surrogate). A syntax error
    is left to FastAPI's own 422."""
    try:
        parsed = json.loads(body, parse_constant=_no_constants, parse_float=_finite)
    except (ValueError, RecursionError) as exc:
        if isinstance(exc, BadBody):
            raise
        if isinstance(exc, RecursionError):
            raise BadBody("the body nests too deeply") from None
        return  # not JSON at all (or not UTF-8): FastAPI answers 422
    stack = [parsed]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            strings = [item]
        elif isinstance(item, dict):
            strings = list(item)
            stack.extend(item.values())
        else:
            strings = []
            if isinstance(item, list):
                stack.extend(item)
        for text in strings:
            if "\x00" in text:
                raise BadBody("a string holds a NUL character")
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise BadBody("a string holds a lone surrogate") from None


class BodyLimit:
    """ASGI middleware: refuse a body over ``limit`` bytes with 413 as soon as it is announced
    (Content-Length) or, for a chunked body, as soon as the bytes read pass it, before anything
    parses it; then refuse a JSON body that :func:`check_json` refuses, with 422."""

    def __init__(self, app: ASGIApp, limit: int = MAX_BODY) -> None:
        self.app = app
        self.limit = limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length", b"0")
        if not declared.isdigit() or int(declared) > self.limit:
            await _refuse(send, 413, f"the request body is larger than {self.limit} bytes")
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, _replay(b"", receive, message), send)
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.limit:
                await _refuse(send, 413, f"the request body is larger than {self.limit} bytes")
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        content_type = headers.get(b"content-type", b"").lower()
        if body and (not content_type or b"json" in content_type):
            try:
                check_json(body)
            except BadBody as exc:
                await _refuse(send, 422, f"the body is not acceptable JSON: {exc}")
                return
        await self.app(scope, _replay(body, receive), send)


def _replay(body: bytes, receive: Receive, first: Message | None = None) -> Receive:
    """``receive`` for the app: the body read already, then the client's own messages."""
    pending: list[Message] = [first] if first is not None else [
        {"type": "http.request", "body": body, "more_body": False}]

    async def replay() -> Message:
        if pending:
            return pending.pop()
        return await receive()

    return replay


async def _refuse(send: Send, status: int, message: str) -> None:
    content = json.dumps({"detail": message}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(content)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": content})


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
