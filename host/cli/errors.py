from __future__ import annotations

import click


class CliFail(click.ClickException):
    """A failure the CLI reports as one line (``Error: …``) and an exit status."""

    def __init__(self, message: str, status: int = 1) -> None:
        super().__init__(message)
        self.exit_code = status
