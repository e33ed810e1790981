"""Secret options, one scheme for all of them: ``--pin 1234`` (visible to every user in ``ps``
and kept in shell history), the environment variable, or ``--pin-file FILE``, where FILE is ``-``
for standard input or ``/dev/fd/N`` for an open descriptor (``--pin-file /dev/fd/3 3<pin.txt``,
``--pin-file <(pass show evb/pin)``); without any, the command prompts on a terminal."""

from __future__ import annotations

import sys
from collections.abc import Callable
from functools import wraps
from typing import Any

import click
from click.core import ParameterSource

from .errors import CliFail


def secret_option(name: str, envvar: str | None, what: str, *, dest: str | None = None,
                  multiple: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """``--NAME VALUE``, ``$ENVVAR`` and ``--NAME-file FILE``, passed to the command as ``dest``
    (a tuple of lines when ``multiple``). A file given on the command line wins over the variable."""
    dest = dest or name.replace("-", "_")
    file_dest = f"{dest}_file"
    env_help = f" or {envvar}" if envvar else ""
    value_help = (f"{what} ({'repeatable; ' if multiple else ''}visible in 'ps': prefer --{name}-file"
                  f"{env_help}{', or the prompt' if not multiple else ''}).")
    file_help = (f"{what} from FILE ({'one per line' if multiple else 'its first line'}): '-' is standard "
                 "input, /dev/fd/N an open descriptor.")

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @click.option(f"--{name}", dest, envvar=envvar, multiple=multiple, help=value_help)
        @click.option(f"--{name}-file", file_dest, metavar="FILE",
                      type=click.Path(dir_okay=False, allow_dash=True), help=file_help)
        @wraps(fn)
        def wrapper(**kwargs: Any) -> Any:
            source = kwargs.pop(file_dest)
            if source is not None:
                ctx = click.get_current_context()
                if ctx.get_parameter_source(dest) == ParameterSource.COMMANDLINE:
                    raise CliFail(f"give --{name} or --{name}-file, not both")
                lines = read_secret_lines(source, f"--{name}-file")
                kwargs[dest] = tuple(lines) if multiple else lines[0]
            return fn(**kwargs)

        return wrapper

    return decorate


def read_secret_lines(source: str, option: str) -> list[str]:
    """The non-empty lines of FILE (``-``: standard input), without their line ends."""
    try:
        if source == "-":
            text = sys.stdin.read()
        else:
            with open(source, encoding="utf-8") as f:
                text = f.read()
    except OSError as exc:
        raise CliFail(f"cannot read {option} {source}: {exc.strerror or exc}") from exc
    lines = [line for line in text.splitlines() if line]
    if not lines:
        raise CliFail(f"{option} {source} is empty")
    return lines
