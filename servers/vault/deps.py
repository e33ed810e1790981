"""What the vault's routes take besides the body: the service and the bearer token. Every
dependency is async (a sync one costs a thread hop per request), and a route makes one hop for
all its database work, the session's check included: :func:`blocking`, or for registrations the
group commit's thread (:meth:`servers.storage.Database.grouped`)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Annotated, TypeVar

from fastapi import Depends, Request

from ..auth import bearer
from .service import VaultService

T = TypeVar("T")


async def vault_service(request: Request) -> VaultService:
    service: VaultService = request.app.state.service
    return service


Service = Annotated[VaultService, Depends(vault_service)]
Token = Annotated[str, Depends(bearer("not authenticated: send 'Authorization: Bearer <token>' from /v1/sessions"))]
"""The bearer token from /v1/sessions, checked with the route's own work (``service.sessions.subject``
or in a registration's transaction)."""


async def blocking(work: Callable[[], T]) -> T:
    """A request's one thread hop: its database work, off the event loop, on the loop's own
    executor. Starlette's ``run_in_threadpool`` (anyio: a capacity limiter, a cancel scope, a
    context copy) cost about 0.4 ms of CPU a hop, a third of a registration; this costs 0.1."""
    return await asyncio.get_running_loop().run_in_executor(None, work)
