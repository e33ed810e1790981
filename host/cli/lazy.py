"""Subcommands imported when first used (click's lazy-group pattern).

Why: importing every command module costs what the slowest needs (the servers' FastAPI and
pydantic, the fingerprint matcher's numpy, httpx), for ``evb --version`` too. A group names its
commands as ``module:attribute`` and imports one when the command line reaches it; ``--help``
and completion import them all, to show their help.
"""

from __future__ import annotations

from importlib import import_module

import click


class LazyGroup(click.Group):
    def __init__(self, *args: object, lazy: dict[str, str] | None = None, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.lazy = dict(lazy or {})

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted({*self.commands, *self.lazy})

    def get_command(self, ctx: click.Context | None, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            module, _, attr = self.lazy[cmd_name].partition(":")
            command = getattr(import_module(module), attr)
            if not isinstance(command, click.Command):
                raise TypeError(f"{self.lazy[cmd_name]} is not a click command")
            self.add_command(command, cmd_name)
        return self.commands.get(cmd_name)

    def load_all(self) -> None:
        """Every command, imported: for callers that walk ``commands`` (the shell)."""
        for name in list(self.lazy):
            self.get_command(None, name)
