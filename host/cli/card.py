"""``evb card …``: thin commands over :class:`host.session.WalletSession`."""

from __future__ import annotations

import sys
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from apdu import SW, ApduError
from apdu import wallet as w
from apdu.records import ValueFlags, ValueRecord, ValueType

from ..transport.open import default_image
from .complete import value_ids
from .errors import CliFail
from .lazy import LazyGroup
from .net import vault_link
from .options import (
    HeldCard,
    card_image_option,
    held_card,
    json_option,
    need_pin,
    pin_option,
    reader_option,
    unlock,
    wallet,
    with_wallet,
)
from .render import console, info_table, listing_table, memory_map_view, print_json, print_sheet, record_table
from .secrets import secret_option
from .shortage import day, decider, policy_for, shortage_options

if TYPE_CHECKING:  # the session (every codec of the card's commands) is imported when a card is opened
    from ..session import WalletSession

# names other modules took from here before options.py held them (branches in flight still may)
__all__ = ["HeldCard", "card", "card_image_option", "held_card", "need_pin", "reader_option", "unlock", "wallet"]

class TypeChoice(click.Choice):  # type: ignore[type-arg]
    def __init__(self) -> None:
        super().__init__([t.name.lower() for t in ValueType], case_sensitive=False)

    def convert(self, value: Any, param: Any, ctx: Any) -> ValueType:
        if isinstance(value, ValueType):
            return value
        return ValueType[str(super().convert(value, param, ctx)).upper()]


DATE = click.DateTime(formats=["%Y-%m-%d"])
DATETIME = click.DateTime(formats=["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S"])


def as_date(value: datetime | None) -> date | None:
    return value.date() if value else None


@click.group(cls=LazyGroup, lazy={
    "serve": "host.cli.pcsc:serve", "lost": "host.cli.keymgr:lost",
    "issue-id": "host.cli.idcard:issue_id", "id-info": "host.cli.idcard:id_info",
})
def card() -> None:
    """Work with the card: create, inspect, store, spend, delete."""


@card.command()
@card_image_option
@reader_option
@secret_option("pin", "EVB_PIN", "The PIN to set (4-8 digits)")
@secret_option("puk", "EVB_PUK", "The unblocking code to set (8 digits); by default a random one, shown once")
@click.option("--size", type=click.IntRange(8192, 65536), default=32768, show_default=True, help="EEPROM bytes.")
@click.option("--index-capacity", type=click.IntRange(8, 1024), default=128, show_default=True)
@click.option("--force", is_flag=True, help="Replace an existing card image.")
@click.option("--issuer-key-file", "issuer_file", type=click.Path(dir_okay=False, path_type=Path),
              help="The issuer's private key that attests the card (or EVB_ISSUER_KEY_FILE; 'evb issuer init').")
@json_option
def init(
    card_image: Path | None, reader: str | None, pin: str | None, puk: str | None, size: int,
    index_capacity: int, force: bool, issuer_file: Path | None, as_json: bool,
) -> None:
    """Manufacture a simulated card (or take a blank one in --reader), have the issuer attest its
    identity key, and set its PIN and unblocking code (PUK)."""
    from .issuer import load_issuer

    issuer = load_issuer(issuer_file)  # before anything is made: an unattested card is no use
    if reader is None:
        card_image = card_image or default_image()
        if card_image.exists() and not force:
            raise CliFail(f"{card_image} already holds a card; pass --force to replace it")
        card_image.parent.mkdir(mode=0o700, parents=True, exist_ok=True)  # the image itself is 0600
    if pin is None:
        if not sys.stdin.isatty():
            raise CliFail("a PIN is required: pass --pin-file FILE or set EVB_PIN")
        pin = str(click.prompt("New PIN", hide_input=True, confirmation_prompt=True))
    w.pin_block(pin)  # refuse a bad PIN or PUK before anything is written
    if puk is not None:
        w.puk_block(puk)
    if reader is None:
        from card import SimulatedCard

        SimulatedCard.manufacture(size=size, index_capacity=index_capacity, image=card_image)
    with wallet(card_image, reader) as session:
        if session.info().life_cycle != w.LifeCycle.PERSONALIZATION:
            raise CliFail("the card in the reader is already personalized")
        if not attested(session):  # a real card may come attested by its own issuer
            issuer.attest(session)
        given = puk is not None
        puk = session.personalize(pin, puk)
        info = session.info()
    where = reader or card_image
    if as_json:  # the generated unblocking code is in it, shown this once
        print_json({"card_id": info.card_id, "where": str(where), "total_memory": info.total_memory,
                    "puk": None if given else puk})
        return
    console.print(f"Card {info.card_id.hex().upper()} ready in {where}: {info.total_memory} bytes for values.")
    if not given:
        console.print(f"Unblocking code (PUK): {puk}\nWrite it down and keep it apart from the card: it is "
                      "shown only now, and sets a new PIN when the PIN is blocked ('evb card pin unblock').")


def attested(session: WalletSession) -> bool:
    try:
        session.attestation()
    except ApduError as exc:
        if exc.sw == SW.REFERENCE_DATA_NOT_FOUND:
            return False
        raise
    return True


@card.command()
@with_wallet
@json_option
def info(session: WalletSession, as_json: bool) -> None:
    """Card ID, memory and PIN state."""
    data = session.info()
    print_json(data) if as_json else print_sheet(info_table(data))


@card.command("list")
@with_wallet
@click.option("--type", "type_", type=TypeChoice(), help="Only values of this type.")
@click.option("--certificates", is_flag=True, help="Only vault certificates.")
@click.option(
    "--expiring-within",
    type=click.IntRange(0, 65535),
    metavar="DAYS",
    help="Only values whose validity ends within DAYS.",
)
@click.option("--today", type=DATE, help="The date to count from (default: today).")
@json_option
def list_(
    session: WalletSession,
    type_: ValueType | None,
    certificates: bool,
    expiring_within: int | None,
    today: datetime | None,
    as_json: bool,
) -> None:
    """List values and certificates from the card's index."""
    if today is not None and expiring_within is None:
        raise CliFail("--today only makes sense with --expiring-within")
    flt = w.ListFilter(
        type=type_,
        certificates_only=certificates,
        today=(as_date(today) or date.today()) if expiring_within is not None else None,
        expiring_within=expiring_within,
    )
    entries = session.list(flt)
    print_json(entries) if as_json else print_sheet(listing_table(entries))


@card.command()
@with_wallet
@click.argument("value_id", type=click.IntRange(1, 65535), shell_complete=value_ids)
@json_option
def show(session: WalletSession, value_id: int, as_json: bool) -> None:
    """Show one value in full."""
    record = session.read(value_id)
    print_json(record) if as_json else print_sheet(record_table(record))


@card.command()
@with_wallet
@click.option("--type", "type_", type=TypeChoice(), required=True)
@click.option("--name", required=True)
@click.option("--issuer", default="")
@click.option("--quantity", type=click.IntRange(0, 2**32 - 1), default=1, show_default=True)
@click.option("--face-value", type=click.IntRange(0, 2**32 - 1), default=0, help="Unit price, minor units.")
@click.option("--balance", type=click.IntRange(0, 2**32 - 1), default=0, help="Prepaid balance left.")
@click.option("--currency", default="JPY", show_default=True)
@click.option("--valid-from", type=DATE)
@click.option("--valid-to", type=DATE)
@click.option("--place", default="")
@click.option("--acquired-at", type=DATETIME, help="Default: now.")
@click.option("--payload-hex", default="", help="Opaque issuer data, hex.")
@click.option("--total", type=click.IntRange(0, 0xFFFFFFFF), default=0, help="The total amount (fig. 2(a)).")
@click.option("--remarks", default="", help="Remarks (fig. 2(a)), up to 64 bytes.")
@shortage_options
@pin_option
@json_option
def store(
    session: WalletSession,
    type_: ValueType,
    name: str,
    issuer: str,
    quantity: int,
    face_value: int,
    balance: int,
    currency: str,
    valid_from: datetime | None,
    valid_to: datetime | None,
    place: str,
    acquired_at: datetime | None,
    payload_hex: str,
    total: int,
    remarks: str,
    on_shortage: str,
    vault_url: str,
    today: datetime | None,
    pin: str | None,
    as_json: bool,
) -> None:
    """Store a new value on the card; when it is full, the shortage policy decides (claims 25-27)."""
    try:
        payload = bytes.fromhex(payload_hex)
    except ValueError as exc:
        raise CliFail("--payload-hex is not hex") from exc
    record = ValueRecord(
        type=type_,
        name=name,
        issuer=issuer,
        quantity=quantity,
        face_value=face_value,
        balance=balance,
        currency=currency.upper(),
        valid_from=as_date(valid_from),
        valid_to=as_date(valid_to),
        place=place,
        acquired_at=(acquired_at or datetime.now()).replace(microsecond=0),
        payload=payload,
        total=total,
        remarks=remarks,
    )
    from .. import triggers

    unlock(session, pin)
    with vault_link(vault_url) as link:
        value_id, made = triggers.store(session, record, link, day(today), policy_for(session, on_shortage), decider())
    if as_json:
        print_json({"id": value_id, "backed_up": made})
        return
    for o in made:
        console.print(f"{o.value_id:>5}  {o.name}: {o.action} to make room")
    console.print(f"Stored value {value_id}: {name}")


@card.command()
@with_wallet
@click.argument("value_id", type=click.IntRange(1, 65535), shell_complete=value_ids)
@click.option("--spend", type=click.IntRange(1, 2**32 - 1), help="Take this amount from the balance.")
@click.option("--use", "use_", type=click.IntRange(1, 2**32 - 1), help="Use this many tickets.")
@pin_option
@json_option
def modify(
    session: WalletSession, value_id: int, spend: int | None, use_: int | None, pin: str | None, as_json: bool
) -> None:
    """Spend from a balance or use tickets."""
    if (spend is None) == (use_ is None):
        raise CliFail("give exactly one of --spend AMOUNT or --use COUNT")
    unlock(session, pin)
    if spend is not None:
        left, what = session.spend(value_id, spend), "balance"
    else:
        left, what = session.use(value_id, use_ or 0), "quantity"
    print_json({"id": value_id, what: left}) if as_json else console.print(
        f"Value {value_id}: {what} now {left}"
    )


def interactive() -> bool:
    """Whether a person can answer a question (tests set this; click's runner has no terminal)."""
    return sys.stdin.isatty()


def deletion_warning(record: ValueRecord) -> str:
    """What is lost by deleting this entry: for a certificate, the value itself, kept only at the vault."""
    if record.flags & ValueFlags.CERTIFICATE:
        return (f"Value {record.id} '{record.name}' is a vault certificate: the value lives only at the vault, "
                "and once the certificate is gone the vault lets it go at the next restore. Delete it?")
    return f"Delete value {record.id} '{record.name}' from the card?"


def confirm_deletion(record: ValueRecord, force: bool) -> None:
    """Ask before deleting on a terminal. Without one, a certificate needs --force (its value is lost
    for good); a plain value is deleted, as scripts that clean a card up have always done."""
    if force:
        return
    if interactive():
        if not click.confirm(deletion_warning(record), default=False):
            raise CliFail("nothing deleted", status=1)
        return
    if record.flags & ValueFlags.CERTIFICATE:
        raise CliFail(f"value {record.id} is a vault certificate (its value lives only at the vault): "
                      "pass --force to delete it")


@card.command()
@with_wallet
@click.argument("value_id", type=click.IntRange(1, 65535), shell_complete=value_ids)
@click.option("--force", is_flag=True, help="Delete without asking, a certificate too.")
@pin_option
@json_option
def delete(session: WalletSession, value_id: int, force: bool, pin: str | None, as_json: bool) -> None:
    """Delete a value or certificate from the card (it is gone: back a value up first if it is worth
    anything). Asks first on a terminal; in a script a certificate needs --force."""
    unlock(session, pin)
    record = session.read(value_id)
    confirm_deletion(record, force)
    session.delete(value_id)
    if as_json:
        print_json({"id": value_id, "deleted": True, "certificate": bool(record.flags & ValueFlags.CERTIFICATE)})
    else:
        console.print(f"Deleted value {value_id}")


@card.command("map")
@with_wallet
@click.option("--svg", "svg_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write the picture as an SVG file, to open in a browser.")
@json_option
def map_(session: WalletSession, svg_file: Path | None, as_json: bool) -> None:
    """A picture of the card's memory: its areas, each value's extent by type, the free gaps and
    how fragmented they are. Needs no PIN (it shows sizes and types, as 'card list' does)."""
    from ..memory_map import layout, svg

    lay = layout(session.memory_map())
    names = {e.id: e.name for e in session.list()}
    if svg_file is not None:
        svg_file.write_text(svg(lay, names), encoding="utf-8")
    if as_json:
        print_json(lay)
        return
    console.print(memory_map_view(lay, names))
    if svg_file is not None:
        console.print(f"Wrote {svg_file}")


@card.group()
def pin() -> None:
    """PIN status, change and unblock."""


@pin.command("status")
@with_wallet
@json_option
def pin_status(session: WalletSession, as_json: bool) -> None:
    """Tries left before the PIN blocks."""
    tries = session.pin_tries_remaining()
    if as_json:
        print_json({"pin_tries_remaining": tries, "blocked": tries == 0})
    else:
        console.print("PIN blocked: set a new one with 'evb card pin unblock' and the unblocking code (PUK)"
                      if tries == 0 else f"PIN: {tries} tries left")


@pin.command("change")
@with_wallet
@secret_option("old", "EVB_PIN", "The current PIN")
@secret_option("new", "EVB_NEW_PIN", "The new PIN, 4-8 digits")
@json_option
def pin_change(session: WalletSession, old: str | None, new: str | None, as_json: bool) -> None:
    """Change the PIN (needs the current one)."""
    old = need_pin(old, "Current PIN")
    if new is None:
        if not sys.stdin.isatty():
            raise CliFail("a new PIN is required: pass --new-file FILE or set EVB_NEW_PIN")
        new = str(click.prompt("New PIN", hide_input=True, confirmation_prompt=True))
    session.change_pin(old, new)
    tries = session.info().pin_tries_remaining
    print_json({"changed": True, "pin_tries_remaining": tries}) if as_json else console.print("PIN changed")


@pin.command("unblock")
@with_wallet
@secret_option("puk", "EVB_PUK", "The unblocking code shown at 'evb card init' (8 digits)")
@secret_option("new", "EVB_NEW_PIN", "The new PIN, 4-8 digits")
@json_option
def pin_unblock(session: WalletSession, puk: str | None, new: str | None, as_json: bool) -> None:
    """Set a new PIN with the unblocking code (PUK), e.g. after the PIN blocked. The code has 10
    tries of its own; when they are spent too, the PIN can never be reset."""
    if puk is None or new is None:
        if not sys.stdin.isatty():
            raise CliFail("the unblocking code and a new PIN are required: pass --puk-file and --new-file "
                          "(or set EVB_PUK and EVB_NEW_PIN)")
        puk = puk or str(click.prompt("Unblocking code (PUK)", hide_input=True))
        new = new or str(click.prompt("New PIN", hide_input=True, confirmation_prompt=True))
    w.puk_block(puk)  # a malformed code or PIN costs no try
    w.pin_block(new)
    session.unblock_pin(puk, new)
    tries = session.info().pin_tries_remaining
    print_json({"unblocked": True, "pin_tries_remaining": tries}) if as_json else console.print(
        f"New PIN set, {tries} tries")
