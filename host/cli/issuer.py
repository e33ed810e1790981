"""``evb issuer init|show``, and the issuer options of ``evb card init``/``issue-id`` and of the
servers: who attests cards, and whom the servers trust to have done so."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from ..issuer import Issuer, default_key_file
from .errors import CliFail
from .options import json_option
from .render import console, print_json

F = TypeVar("F", bound=Callable[..., Any])

issuer_file_option = click.option(
    "--issuer-key-file", "issuer_file", type=click.Path(dir_okay=False, path_type=Path),
    help="The card issuer's private key, PEM (or EVB_ISSUER_KEY_FILE) [default: beside the data].")


def trusted_option(flag: str, variable: str, what: str) -> Callable[[F], F]:
    return click.option(flag, multiple=True, envvar=variable,
                        help=f"A trusted {what} issuer's public key, hex ('evb issuer show'); repeatable, or "
                             f"{variable} [default: the local issuer key, if there is one].")


def load_issuer(path: Path | None) -> Issuer:
    try:
        return Issuer.load(path or default_key_file())
    except (FileNotFoundError, ValueError) as exc:
        raise CliFail(str(exc)) from exc


def trusted_keys(given: tuple[str, ...], what: str) -> tuple[bytes, ...]:
    """The issuer keys a server pins: the ones given, else the local issuer's (one machine, one
    issuer: the embedded default); none is an error, since no card could then be let in."""
    from keyfile import parse_public_keys

    try:
        keys = parse_public_keys(" ".join(given))
    except ValueError as exc:
        raise CliFail(f"--{what}-key: {exc}") from exc
    if keys:
        return keys
    local = default_key_file()
    if local.exists():
        return (load_issuer(local).public_key,)
    raise CliFail(f"no {what} issuer is trusted: pass --{what}-key HEX ('evb issuer show' prints it) "
                  "or run 'evb issuer init' on this machine")


@click.group()
def issuer() -> None:
    """The card issuer's key: it attests every card (and signs every ID document) it issues."""


@issuer.command("init")
@issuer_file_option
@json_option
def init(issuer_file: Path | None, as_json: bool) -> None:
    """Make the issuer's key pair (once; the private key stays in its file, mode 0600)."""
    path = issuer_file or default_key_file()
    if path.exists():
        raise CliFail(f"{path} already holds an issuer key: 'evb issuer show' prints it")
    key = Issuer.load_or_create(path)
    if as_json:
        print_json({"key_file": str(path), "public_key": key.public_key.hex().upper()})
        return
    console.print(f"Issuer key in {path}; give the servers its public key:\n{key.public_key.hex().upper()}")


@issuer.command("show")
@issuer_file_option
@json_option
def show(issuer_file: Path | None, as_json: bool) -> None:
    """The issuer's public key, hex: what servers pin (--issuer-key, EVB_ISSUER_KEY)."""
    key = load_issuer(issuer_file).public_key.hex().upper()
    if as_json:
        print_json({"public_key": key})
    else:
        click.echo(key)
