"""What the CLI makes only when a command needs it: subcommands (click's lazy-group pattern) and
costly shared objects (:func:`lazy`, e.g. rich's console).

Why: importing every command module costs what the slowest needs (the servers' FastAPI and
pydantic, the fingerprint matcher's numpy, httpx), for ``evb --version`` too. A group names its
commands as ``module:attribute`` and imports one when the command line reaches it; ``--help``
and completion import them all, to show their help. A start-up goal of at most twice an empty
Python's start (``evb bench startup``) leaves no room for what a command does not use.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib import import_module
from typing import Any, Generic, TypeVar, cast

import click

T = TypeVar("T")


class _Deferred(Generic[T]):
    """Stands in for the object ``make`` answers, made at the first attribute read."""

    __slots__ = ("_make", "_made")

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._made: T | None = None

    def made(self) -> T:
        if self._made is None:
            self._made = self._make()
        return self._made

    def __getattr__(self, name: str) -> Any:
        return getattr(self.made(), name)


def lazy(make: Callable[[], T]) -> T:
    """An object made by ``make`` when first used, typed as what it stands for. Attribute reads
    (``console.print``) pass through; nothing else does (no ``with``, no ``isinstance``): give
    code that needs the object itself :func:`made` of it."""
    return cast(T, _Deferred(make))


def made(obj: T) -> T:
    """The object behind a :func:`lazy` stand-in, made now if it was not yet (rich's ``Live``
    enters its console with ``with``); any other object as it is."""
    return cast(T, obj.made()) if isinstance(obj, _Deferred) else obj


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
