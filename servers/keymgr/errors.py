"""The key manager's refusals: each a :class:`KeyManagerError` with its HTTP status and a message
for the user; :class:`Busy` adds when to retry."""

from __future__ import annotations

from ..wire import ApiError


class KeyManagerError(ApiError):
    """A refusal of this service: HTTP status and message."""


class Busy(KeyManagerError):
    """Too many expensive verifications at once: the client retries after ``retry_after`` s."""

    def __init__(self, status: int, message: str, retry_after: int) -> None:
        super().__init__(status, message)
        self.retry_after = retry_after
