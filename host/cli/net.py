"""How the CLI reaches the vault and the key manager: URL options, the CA their certificates must
chain to (``--ca`` or ``EVB_CA``; the system store without), and one warning line whenever plain
HTTP is used. How it serves them (``--tls-cert/--tls-key``) is in :mod:`host.cli.serve`."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:  # the clients are imported when a command reaches a server, not with every command
    from ..keymgr_client import KeyManagerClient
    from ..triggers import VaultLink
    from ..vault_client import VaultClient

CA_ENV = "EVB_CA"
_CA_KEY, _WARNED_KEY = "evb.ca", "evb.plain-http-warned"


def _keep_ca(ctx: click.Context, _param: click.Parameter, value: Path | None) -> None:
    if value is not None:
        ctx.meta[_CA_KEY] = value


_ca_option = click.option(
    "--ca", type=click.Path(exists=True, dir_okay=False, path_type=Path), envvar=CA_ENV, expose_value=False,
    callback=_keep_ca, help="Trust servers whose TLS certificate this CA (PEM) issued, instead of the system's "
                            "store (or EVB_CA).")


def with_ca(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Give a command ``--ca`` once, however many service URLs it takes."""
    if any(p.name == "ca" for p in getattr(fn, "__click_params__", ())):
        return fn
    return _ca_option(fn)


def url_option(flag: str, dest: str, envvar: str, default: str,
               what: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A service's URL option, with ``--ca`` beside it."""
    option = click.option(flag, dest, envvar=envvar, default=default, show_default=True,
                          help=f"The {what}'s URL (or {envvar}).")

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        return option(with_ca(fn))

    return decorate


def trust() -> Path | None:
    """The CA this command trusts: ``--ca``, else ``EVB_CA``, else none (the system store)."""
    ctx = click.get_current_context(silent=True)
    chosen = ctx.meta.get(_CA_KEY) if ctx is not None else None
    if chosen is None and os.environ.get(CA_ENV):
        chosen = Path(os.environ[CA_ENV])
    return chosen


def warn_plain_http(url: str, what: str) -> None:
    """One line on stderr, once per URL and command: plain HTTP hides nothing from the network."""
    if not url.lower().startswith("http:"):
        return
    ctx = click.get_current_context(silent=True)
    warned: set[str] = ctx.meta.setdefault(_WARNED_KEY, set()) if ctx is not None else set()
    if url not in warned:
        warned.add(url)
        click.echo(f"Warning: plain HTTP to the {what} at {url}: anyone on the network can read and change "
                   "the traffic; use https://", err=True)


def vault_client(url: str) -> VaultClient:
    from ..vault_client import VaultClient

    warn_plain_http(url, "vault")
    return VaultClient(url, ca=trust())


def vault_link(url: str) -> VaultLink:
    from ..triggers import VaultLink

    warn_plain_http(url, "vault")
    return VaultLink(url, ca=trust())


def keymgr_client(url: str) -> KeyManagerClient:
    from ..keymgr_client import KeyManagerClient

    warn_plain_http(url, "key manager")
    return KeyManagerClient(url, ca=trust())
