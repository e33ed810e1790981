from __future__ import annotations


class CliFail(Exception):
    """A failure the CLI reports as one line and an exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
