"""``evb key init|info``: the card's key store (seed E2). Escrow to the key manager comes with it."""

from __future__ import annotations

import os

import click

from apdu.keys import KeyInfo, KeyMode

from ..session import WalletSession
from .card import json_option, pin_option, unlock, with_wallet
from .proof import ProofOptions, proof_options
from .render import console, print_json


def info_json(info: KeyInfo) -> dict[str, object]:
    return {"mode": info.mode.name.lower(), "key_id": info.key_id.hex() or None,
            "public_key": info.public_key.hex() or None}


@click.group()
def key() -> None:
    """The card's encryption keys, generated on the card."""


@key.command("init")
@with_wallet
@click.option("--symmetric", is_flag=True, help="One AES-256 key instead of a P-256 pair (claim 10).")
@click.option("--by-keymgr", "keymgr_url", metavar="URL", is_flag=False, flag_value="env", default=None,
              help="Let the key manager generate it, escrowed from the start (claim 6); needs a login.")
@pin_option
@json_option
@proof_options()
def init(session: WalletSession, symmetric: bool, keymgr_url: str | None, pin: str | None, as_json: bool,
         proof: ProofOptions) -> None:
    """Generate the card's key (public-key mode by default); the private part never leaves it
    (with --by-keymgr it is made by the key manager and reaches the card sealed to it; enrolling
    the card there needs your login's factors again, the options of 'evb account login')."""
    unlock(session, pin)
    mode = KeyMode.SYMMETRIC if symmetric else KeyMode.PUBLIC
    if keymgr_url is None:
        info = session.generate_key(mode)
        where = "on the card"
    else:
        from ..keys import key_from_keymgr
        from .keymgr import DEFAULT_KEYMGR, logged_in

        url = os.environ.get("EVB_KEYMGR", DEFAULT_KEYMGR) if keymgr_url == "env" else keymgr_url
        with logged_in(url, proof) as client:
            info = key_from_keymgr(session, client, mode)
        where = "by the key manager (escrowed)"
    print_json(info_json(info)) if as_json else console.print(
        f"Generated a {info.mode.name.lower()} key {where}: key id {info.key_id.hex().upper()}")


@key.command("info")
@with_wallet
@json_option
def info(session: WalletSession, as_json: bool) -> None:
    """Show the card's key mode, key id and public encryption key."""
    data = info_json(session.key_info())
    if as_json:
        print_json(data)
    elif data["mode"] == "none":
        console.print("The card has no key yet: 'evb key init' generates one.")
    else:
        console.print(f"mode {data['mode']}, key id {str(data['key_id']).upper()}"
                      + (f"\npublic key {data['public_key']}" if data["public_key"] else ""))
