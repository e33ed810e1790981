"""``evb account …``, ``evb card lost`` and ``evb recover``: thin over host.recovery, host.factors
and the key manager's client (``evb key …`` is in keys.py, the server's commands in serve.py)."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from .. import factors
from ..backup import connect
from ..keymgr_client import KeyManagerClient, KeyManagerClientError
from ..keys import enrol_card
from ..paths import data_dir
from ..recovery import recover, report_lost
from ..session import WalletSession
from .errors import CliFail
from .idcard import optional_id_card
from .net import (
    keymgr_client,
    vault_client,
    vault_link,
)
from .options import (
    id_image_option,
    id_pin_option,
    id_reader_option,
    json_option,
    keymgr_option,
    pin_option,
    unlock,
    vault_option,
    with_wallet,
)
from .proof import ProofOptions, ask_password, gathered, proof_options
from .render import console, print_json, progress_bar
from .secrets import secret_option
from .shortage import room_maker, shortage_options


def session_file() -> Path:
    return data_dir() / "keymgr-session.json"


def saved_session() -> dict[str, Any]:
    try:
        saved: dict[str, Any] = json.loads(session_file().read_text())
    except (OSError, ValueError):
        saved = {}
    return saved


@contextmanager
def logged_in(url: str, proof: ProofOptions | None = None) -> Iterator[KeyManagerClient]:
    """A client with the session 'evb account login' saved for this key manager; with ``proof``,
    one that proves those factors afresh with each sensitive request (step-up)."""
    saved = saved_session()
    if saved.get("url") != url or saved.get("expires_at", 0) <= time.time() or "name" not in saved:
        raise CliFail("not logged in to this key manager: run 'evb account login'")
    with keymgr_client(url) as client:
        client._token = saved["token"]
        if proof is None:
            yield client
            return
        with gathered(proof) as (secret, card):
            factors.step_up_with(client, saved["name"], secret, card, proof.finger)
            yield client


password_option = secret_option("password", "EVB_PASSWORD", "The account's password")


@click.group()
def account() -> None:
    """Your account at the key manager."""


@account.command("create")
@click.argument("name")
@keymgr_option
@password_option
@json_option
def create(name: str, keymgr_url: str, password: str | None, as_json: bool) -> None:
    """Open an account (the password is stored only as an Argon2id hash)."""
    with keymgr_client(keymgr_url) as client:
        client.create_account(name, ask_password(password, confirm=True))
    print_json({"name": name, "created": True}) if as_json else console.print(
        f"Account {name} created; 'evb account login {name}' next.")


@account.command("login")
@click.argument("name")
@keymgr_option
@proof_options()
@json_option
def login(name: str, keymgr_url: str, proof: ProofOptions, as_json: bool) -> None:
    """Log in with the factors your account's policy needs (password by default; an ID card in a
    second reader; a finger); the session is kept (0600) for the key commands until it expires.
    Enrolling a card, reporting one lost and changing the password, policy or factors ask for
    the same factors again (the same options)."""
    with keymgr_client(keymgr_url) as client, gathered(proof) as (secret, card):
        expires = factors.login(client, name, secret, card, proof.finger)
        token = client._token
    path = session_file()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump({"url": keymgr_url, "name": name, "token": token, "expires_at": expires}, f)
    if as_json:  # the token stays in its file
        print_json({"name": name, "expires_at": datetime.fromtimestamp(expires, UTC)})
        return
    console.print(f"Logged in as {name} until {time.strftime('%H:%M', time.localtime(expires))}.")


@account.command("logout")
@keymgr_option
@json_option
def logout(keymgr_url: str, as_json: bool) -> None:
    """End the session at the key manager and forget its token here."""
    saved = saved_session()
    if saved.get("url") != keymgr_url:
        raise CliFail("not logged in to this key manager")
    session_file().unlink()  # forgotten here first, whatever the key manager answers
    with keymgr_client(keymgr_url) as client:
        client._token = saved.get("token")
        try:
            client.logout()
        except KeyManagerClientError as exc:
            if exc.status != 401:  # 401: it had ended already (expired, or a password change)
                raise CliFail(f"the session is forgotten here, but the key manager did not end it: {exc}") from exc
    print_json({"logged_out": True}) if as_json else console.print("Logged out.")


@account.command("enrol")
@keymgr_option
@click.option("--password", "new_password", is_flag=True,
              help="Set a new password (from --new-password-file, EVB_NEW_PASSWORD or the prompt).")
@secret_option("new-password", "EVB_NEW_PASSWORD", "The new password, with --password", dest="new_password_value")
@id_image_option
@id_reader_option
@id_pin_option
@click.option("--finger", "--fingerprint", "finger", help="Enrol this finger (a simulated finger's name): three touches.")
@proof_options("proof-")
@json_option
def enrol_factor(keymgr_url: str, new_password: bool, new_password_value: str | None, id_image: Path | None,
                 id_reader: str | None, id_pin: str | None, finger: str | None, proof: ProofOptions,
                 as_json: bool) -> None:
    """Add an authentication factor to your account: a password, an ID card, a fingerprint. The
    factors your policy needs are proved again first: the current password (--proof-password-file,
    EVB_PASSWORD or prompted), --proof-id-card-image/--proof-id-reader, --proof-finger. A new
    password ends your other sessions."""
    if not (new_password or id_image or id_reader or finger):
        raise CliFail("what to enrol? --password, --id-card-image/--id-reader or --finger")

    def say(text: str) -> None:
        if not as_json:
            console.print(text)

    enrolled: list[dict[str, str | None]] = []  # the shape 'account policy show' lists factors in
    with logged_in(keymgr_url, proof) as client:
        if new_password:
            client.set_password(ask_password(new_password_value, confirm=True, label="New password",
                                             source="pass --new-password-file FILE or set EVB_NEW_PASSWORD"))
            enrolled.append({"kind": "password", "ref": None})
            say("Password changed; your other sessions ended.")
        with optional_id_card(id_image, id_reader) as card:
            if card is not None:
                if id_pin is not None:
                    card.verify_pin(id_pin)
                number = factors.enrol_id_card(client, card)
                enrolled.append({"kind": "id-card", "ref": number})
                say(f"ID card {number} enrolled.")
        if finger is not None:
            factors.enrol_fingerprint(client, finger)
            enrolled.append({"kind": "fingerprint", "ref": None})
            say("Fingerprint enrolled (the template is kept encrypted).")
    if as_json:
        print_json({"enrolled": enrolled, "other_sessions_ended": new_password})


@account.group("policy")
def policy() -> None:
    """Which factors a login needs."""


@policy.command("set")
@click.argument("expression")
@keymgr_option
@proof_options()
@json_option
def policy_set(expression: str, keymgr_url: str, proof: ProofOptions, as_json: bool) -> None:
    """E.g. 'password and id-card', 'fingerprint or password' (factors must be enrolled). The
    factors the current policy needs are proved again (the options of 'evb account login')."""
    with logged_in(keymgr_url, proof) as client:
        text = client.set_policy(expression)
    print_json({"policy": text}) if as_json else console.print(f"Logins now need: {text}")


@policy.command("show")
@keymgr_option
@json_option
def policy_show(keymgr_url: str, as_json: bool) -> None:
    """The policy and the enrolled factors."""
    with logged_in(keymgr_url) as client:
        text, enrolled = client.factors()
    if as_json:
        print_json({"policy": text, "factors": [{"kind": k, "ref": r} for k, r in enrolled]})
        return
    console.print(f"Logins need: {text}")
    for kind, ref in enrolled:
        console.print(f"  {kind}{' ' + ref if ref else ''}")


@account.command("status")
@keymgr_option
@json_option
def status(keymgr_url: str, as_json: bool) -> None:
    """Your cards and their escrowed keys."""
    with logged_in(keymgr_url) as client:
        name, cards = client.status()
    if as_json:
        print_json({"name": name, "cards": [{"card_id": c, "keys": [
            {"key_id": e.key_id.hex(), "mode": e.mode.name.lower(), "created_at": e.created_at} for e in keys]}
            for c, keys in cards.items()]})
        return
    console.print(f"Account {name}: {len(cards)} card(s)")
    for card_id, keys in cards.items():
        console.print(f"  card {card_id.hex().upper()}: " + (", ".join(
            f"{e.mode.name.lower()} key {e.key_id.hex().upper()}" for e in keys) or "no key escrowed"))


def parse_card_id(text: str, what: str) -> bytes:
    try:
        card_id = bytes.fromhex(text)
    except ValueError:
        card_id = b""
    if len(card_id) != 8:
        raise CliFail(f"{what} is a card id: 16 hex digits")
    return card_id


@account.command("enrol-card")
@with_wallet
@keymgr_option
@pin_option
@proof_options()
@json_option
def enrol(session: WalletSession, keymgr_url: str, pin: str | None, proof: ProofOptions, as_json: bool) -> None:
    """Bind the card in the reader to your account: it signs a fresh challenge with its identity
    key. Only an enrolled card can be reported lost, or replace one. Your login's factors are
    proved again (the options of 'evb account login')."""
    unlock(session, pin)
    with logged_in(keymgr_url, proof) as client:
        enrol_card(session, client)
    card_id = session.identity().card_id
    print_json({"card_id": card_id, "enrolled": True}) if as_json else console.print(
        f"Card {card_id.hex().upper()} enrolled.")


@click.command("lost")
@click.argument("card_id")
@keymgr_option
@vault_option
@proof_options()
@json_option
def lost(card_id: str, keymgr_url: str, vault_url: str, proof: ProofOptions, as_json: bool) -> None:
    """Report a card of yours lost: the vault revokes it at once, so nobody can redeem its
    certificates; 'evb recover' later brings its values to a new card. Your login's factors are
    proved again (the options of 'evb account login')."""
    old = parse_card_id(card_id, "CARD_ID")
    with logged_in(keymgr_url, proof) as client, vault_client(vault_url) as vault:
        report_lost(client, vault, old, None)
    if as_json:
        print_json({"card_id": old, "revoked": True})
        return
    console.print(f"Card {old.hex().upper()} revoked at the vault; recover its values with "
                  f"'evb recover --from-card {old.hex().upper()}' on the new card.")


@click.command("recover")
@with_wallet
@click.option("--from-card", "from_card", required=True, help="The lost card's id (16 hex digits).")
@keymgr_option
@shortage_options
@pin_option
@json_option
@proof_options()
def recover_cmd(session: WalletSession, from_card: str, keymgr_url: str, vault_url: str, on_shortage: str,
                today: datetime | None, pin: str | None, as_json: bool, proof: ProofOptions) -> None:
    """Make the card in the reader the lost card's replacement: its key (if escrowed or split),
    its certificates, one handover each, and their values, each exactly once. Safe to re-run.
    A card too full for the values follows the shortage policy (--on-shortage)."""
    old = parse_card_id(from_card, "--from-card")
    unlock(session, pin)
    with logged_in(keymgr_url, proof) as client, vault_client(vault_url) as vault, vault_link(vault_url) as link:
        connect(session, vault)
        with progress_bar("Taking certificates", as_json) as progress:
            result = recover(session, vault, client, old, lambda taken, waiting: progress(taken, taken + waiting),
                             room_maker(session, link, on_shortage, today))
    if as_json:
        print_json({"key": result.key, "imported": result.imported,
                    "restored": [{"id": o.value_id, "name": o.name} for o in result.restored],
                    "failed": [{"id": i, "error": e} for i, e in result.failed]})
    else:
        console.print(f"Key: {result.key}.")
        console.print(f"{result.imported} certificate(s) taken from the vault; "
                      f"{len(result.restored)} value(s) restored.")
        for o in result.restored:
            console.print(f"  {o.value_id}: {o.name}")
        for value_id, error in result.failed:
            console.print(f"  [red]{value_id}: {error}[/]")
        console.print("Values that were only on the lost card were never at the vault: they cannot come back.")
    if result.failed:
        raise CliFail(f"{len(result.failed)} value(s) not restored; re-run to retry")
