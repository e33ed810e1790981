"""``evb key init|info|backup|rotate|restore``: the card's key store (seed E2), its escrow at the
key manager (E3, E4) and its rotation (E7, E8), all of the ``key`` group in one place."""

from __future__ import annotations

import os
from datetime import datetime

import click

from apdu.keys import KeyInfo, KeyMode

from ..backup import connect
from ..keys import backup_key, backup_key_parts, restore_key, restore_key_parts, restore_split_key, split_key
from ..rekey import rekey_by_keymgr
from ..rotation import rotate
from ..session import WalletSession
from .errors import CliFail
from .keymgr import logged_in, parse_card_id
from .net import vault_client, vault_link
from .options import DEFAULT_KEYMGR, json_option, keymgr_option, pin_option, unlock, vault_option, with_wallet
from .proof import ProofOptions, proof_options
from .render import console, print_json, progress_bar
from .secrets import secret_option
from .shortage import room_maker, shortage_options


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


@key.command("backup")
@with_wallet
@keymgr_option
@click.option("--split", is_flag=True, help="Split the key 2 of 3 (E4): key manager, vault, a recovery code.")
@click.option("--per-value", is_flag=True,
              help="Split the key in two (E4 as the seed has it): one part at the key manager, the other riding "
                   "with every encrypted backup to the vault; restore needs no recovery code.")
@vault_option
@pin_option
@json_option
@proof_options()
def key_backup(session: WalletSession, keymgr_url: str, split: bool, per_value: bool, vault_url: str,
               pin: str | None, as_json: bool, proof: ProofOptions) -> None:
    """Escrow the card's key at the key manager (sealed on the card), or split it (--split,
    --per-value). Enrolling the card needs your login's factors again (the options of 'evb
    account login')."""
    if split and per_value:
        raise CliFail("choose one mode: --split (2 of 3 with a recovery code) or --per-value")
    unlock(session, pin)
    with logged_in(keymgr_url, proof) as client:
        if per_value:
            info = backup_key_parts(session, client)
            print_json({**info_json(info), "kind": "per-value"}) if as_json else console.print(
                f"Key {info.key_id.hex().upper()} split in two: a part at the key manager; the other part rides "
                "with every encrypted backup to the vault.")
            return
        if not split:
            info = backup_key(session, client)
            print_json({**info_json(info), "kind": "whole"}) if as_json else console.print(
                f"Key {info.key_id.hex().upper()} escrowed; this terminal never saw it.")
            return
        with vault_client(vault_url) as vault:
            connect(session, vault)
            info, codes = split_key(session, client, vault)
    if as_json:
        print_json({**info_json(info), "kind": "shamir", "recovery_codes": list(codes)})
        return
    console.print(f"Key {info.key_id.hex().upper()} split 2 of 3: a share at the key manager, one at the vault.")
    for code in codes:
        console.print("Your recovery code (write it down; with the key manager's share it rebuilds the key):")
        click.echo(f"  {code}")  # never wrapped: it is copied by hand


@key.command("rotate")
@with_wallet
@click.option("--by-keymgr", "by_keymgr", is_flag=True,
              help="The key manager re-keys with the escrowed key (seed E7): also for a card that lost its key.")
@click.option("--restore-all", is_flag=True,
              help="Seed E8: every encrypted backup back on the card (card-side: before the key moves; "
                   "--by-keymgr: under the new key).")
@keymgr_option
@shortage_options
@pin_option
@json_option
@proof_options()
def key_rotate(session: WalletSession, by_keymgr: bool, restore_all: bool, keymgr_url: str, vault_url: str,
               on_shortage: str, today: datetime | None, pin: str | None, as_json: bool, proof: ProofOptions) -> None:
    """Move the card to a new key pair (seed E7). By default the card re-encrypts every backup
    itself (it needs its key); with --by-keymgr the key manager does, with the key it escrowed,
    and gives the card the new key (your login's factors are proved again). Then the old key is
    destroyed. Cut anywhere, run it again. With --restore-all (E8) a card too full for its
    values follows the shortage policy."""
    unlock(session, pin)
    with logged_in(keymgr_url, proof) as client, vault_client(vault_url) as vault, vault_link(vault_url) as link:
        connect(session, vault)
        room = room_maker(session, link, on_shortage, today)
        with progress_bar("Re-sealing at the key manager" if by_keymgr else "Re-encrypting", as_json) as progress:
            if by_keymgr:
                rekeyed = rekey_by_keymgr(session, vault, client, progress, restore_all, room)
                key, moved, restored, failed = rekeyed.key, rekeyed.moved, rekeyed.restored, rekeyed.failed
                destroyed = rekeyed.destroyed
            else:
                result = rotate(session, vault, client, progress, restore_all=restore_all, make_room=room)
                key, moved, restored, failed = result.key, result.moved, result.restored, ()
                destroyed = result.destroyed
    if as_json:
        print_json({**info_json(key), "moved": moved, "restored": restored, "destroyed": destroyed,
                    "failed": [{"id": i, "error": e} for i, e in failed]})
    else:
        console.print(f"The card now uses key {key.key_id.hex().upper()}: {moved} backup(s) "
                      f"{'re-sealed by the key manager' if by_keymgr else 're-encrypted'}, {restored} restored to "
                      f"the card, {destroyed} old key(s) destroyed.")
        for value_id, error in failed:
            console.print(f"  [red]{value_id}: {error}[/]")
    if failed:
        raise CliFail(f"{len(failed)} value(s) not restored (they stay certificates under the new key); "
                      "'evb restore' retries")


@key.command("restore")
@with_wallet
@click.option("--from-card", "from_card", required=True, help="The card id (16 hex digits) whose key to restore.")
@secret_option("code", "EVB_RECOVERY_CODE", "A recovery code of a split key", dest="codes", multiple=True)
@click.option("--per-value", is_flag=True,
              help="Rebuild a key split with 'key backup --per-value': the key manager's part and the vault's, "
                   "which the vault returns for a certificate of that card.")
@click.option("--certificate", "certificate_hex", metavar="HEX",
              help="With --per-value: a certificate (hex) of an encrypted backup of that card; default: one on "
                   "this card.")
@keymgr_option
@vault_option
@pin_option
@json_option
@proof_options()
def key_restore(session: WalletSession, from_card: str, codes: tuple[str, ...], per_value: bool,
                certificate_hex: str | None, keymgr_url: str, vault_url: str, pin: str | None, as_json: bool,
                proof: ProofOptions) -> None:
    """Restore an escrowed key onto this card (it must have none): whole, from a 2-of-3 split
    with a recovery code (--code), or from the two parts of a per-value split (--per-value)."""
    source = parse_card_id(from_card, "--from-card")
    if certificate_hex is not None and not per_value:
        raise CliFail("--certificate goes with --per-value")
    if per_value and codes:
        raise CliFail("a per-value split needs no recovery code: give --per-value or --code")
    certificate = parse_hex(certificate_hex, "--certificate") if certificate_hex is not None else None
    unlock(session, pin)
    with logged_in(keymgr_url, proof) as client:
        if per_value:
            with vault_client(vault_url) as vault:
                connect(session, vault)
                info = restore_key_parts(session, client, vault, source, certificate)
        else:
            info = restore_split_key(session, client, source, codes) if codes else restore_key(session, client, source)
    print_json(info_json(info)) if as_json else console.print(
        f"Key {info.key_id.hex().upper()} ({info.mode.name.lower()}) restored onto this card.")


def parse_hex(text: str, what: str) -> bytes:
    try:
        return bytes.fromhex(text.replace(" ", ""))
    except ValueError as exc:
        raise CliFail(f"{what} is hex digits") from exc
