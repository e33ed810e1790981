"""The options more than one command group takes, defined once (as yubikey-manager's
``_cli/util.py``): which card (``--card-image``, ``--reader``) and how it is opened, the PIN,
``--json``, the servers' URLs, the date conditions count from, the ID card.

Light on purpose: every command module imports it, so it imports nothing a command may not
need (the card, the session and the transports are imported when a card is opened).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .complete import reader_names
from .errors import CliFail
from .net import url_option
from .secrets import secret_option

if TYPE_CHECKING:
    from ..session import WalletSession

json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for scripts.")

# --- the card ----------------------------------------------------------------------------------

card_image_option = click.option(
    "--card-image",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="EVB_CARD_IMAGE",
    help="A simulated card's EEPROM image [default: $XDG_DATA_HOME/evb/card.img].",
)
reader_option = click.option(
    "--reader",
    envvar="EVB_READER",
    help="Use the card in this PC/SC reader (name, index or unique part of the name).",
    shell_complete=reader_names,
)
pin_option = secret_option("pin", "EVB_PIN", "The card PIN")


@dataclass
class HeldCard:
    """Set as the click context's object by ``evb shell``: commands use this open card and PIN."""

    session: WalletSession
    pin: str | None = None


def held_card() -> HeldCard | None:
    ctx = click.get_current_context(silent=True)
    return ctx.find_object(HeldCard) if ctx else None


@contextmanager
def wallet(card_image: Path | None, reader: str | None = None) -> Iterator[WalletSession]:
    """The card for one operation: held for this program once the PIN is verified, and the PIN
    forgotten again at the end, before the card is let go (left powered for other programs)."""
    from ..session import WalletSession
    from ..transport.open import open_card

    with open_card(card_image, reader) as transport:
        session = WalletSession(transport)
        try:
            yield session
        finally:
            session.release()


def with_wallet(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Open the card named by ``--card-image`` or ``--reader``; pass the session as ``session``."""

    @card_image_option
    @reader_option
    @wraps(fn)
    def wrapper(card_image: Path | None, reader: str | None, **kwargs: Any) -> Any:
        if (held := held_card()) is not None:
            if card_image or reader:
                raise CliFail("the shell already holds a card: leave it to use another")
            return fn(session=held.session, **kwargs)
        with wallet(card_image, reader) as session:
            return fn(session=session, **kwargs)

    return wrapper


def need_pin(pin: str | None, prompt: str = "PIN") -> str:
    if pin is not None:
        return pin
    if (held := held_card()) is not None and held.pin is not None:
        return held.pin
    if not sys.stdin.isatty():
        raise CliFail("a PIN is required: pass --pin-file FILE or set EVB_PIN")
    return str(click.prompt(prompt, hide_input=True))


def unlock(session: WalletSession, pin: str | None) -> None:
    session.verify_pin(need_pin(pin))


# --- the servers and the date ----------------------------------------------------------------

DEFAULT_VAULT = "https://127.0.0.1:8470"
DEFAULT_KEYMGR = "https://127.0.0.1:8471"
vault_option = url_option("--vault", "vault_url", "EVB_VAULT", DEFAULT_VAULT, "vault")
keymgr_option = url_option("--keymgr", "keymgr_url", "EVB_KEYMGR", DEFAULT_KEYMGR, "key manager")
today_option = click.option("--today", type=click.DateTime(formats=["%Y-%m-%d"]), envvar="EVB_TODAY",
                            help="The date the conditions are evaluated on (or EVB_TODAY) [default: today].")

# --- the servers' own side ----------------------------------------------------------------------


def serve_options(port: int, key_help: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """What each server's ``serve`` takes first: its database (``db_url``), its own key
    (``key_path``) and where it listens (``host``, ``port``)."""
    options = [
        click.option("--db", "db_url", help="sqlite:///PATH (default under $XDG_DATA_HOME/evb) or postgresql://…"),
        click.option("--key", "key_path", type=click.Path(dir_okay=False, path_type=Path), help=key_help),
        click.option("--host", default="127.0.0.1", show_default=True),
        click.option("--port", type=click.IntRange(1, 65535), default=port, show_default=True),
    ]

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        for option in reversed(options):  # listed in --help in this order
            fn = option(fn)
        return fn

    return decorate


# --- the ID card (seed E5) ---------------------------------------------------------------------

id_pin_option = secret_option("id-pin", "EVB_ID_PIN", "The ID card's PIN, if it has one")
id_image_option = click.option("--id-card-image", "id_image", type=click.Path(dir_okay=False, path_type=Path),
                               envvar="EVB_ID_CARD_IMAGE", help="A simulated ID card's image.")
id_reader_option = click.option("--id-reader", envvar="EVB_ID_READER",
                                help="Use the ID card in this PC/SC reader (name, index or part of the name).")
