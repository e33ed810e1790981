"""``evb card issue-id`` and ``evb card id-info``: the ID card (seed E5), a second card kind."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import click

from apdu import wallet as w

from ..idcard import IdCardSession
from ..transport.open import open_card
from .errors import CliFail
from .issuer import issuer_file_option, load_issuer
from .options import id_image_option, id_reader_option, json_option
from .render import console, print_json
from .secrets import secret_option


@contextmanager
def id_card(image: Path | None, reader: str | None) -> Iterator[IdCardSession]:
    if image is None and reader is None:
        raise CliFail("which ID card? pass --id-card-image or --id-reader")
    with open_card(image, reader) as transport:
        yield IdCardSession(transport)


@contextmanager
def optional_id_card(image: Path | None, reader: str | None) -> Iterator[IdCardSession | None]:
    if image is None and reader is None:
        yield None
        return
    with id_card(image, reader) as session:
        yield session


@click.command("issue-id")
@click.option("--id-card-image", "id_image", type=click.Path(dir_okay=False, path_type=Path),
              help="Make a simulated ID card in this image and issue it.")
@id_reader_option
@click.option("--holder", required=True, help="The holder's name as on the document.")
@click.option("--number", required=True, help="The document number.")
@click.option("--expiry", type=click.DateTime(["%Y-%m-%d"]), required=True, help="YYYY-MM-DD.")
@secret_option("pin", "EVB_ID_PIN", "A PIN guarding the ID card's signature (4-8 digits)")
@click.option("--force", is_flag=True, help="Replace an existing image.")
@issuer_file_option
@json_option
def issue_id(id_image: Path | None, id_reader: str | None, holder: str, number: str, expiry: datetime,
             pin: str | None, force: bool, issuer_file: Path | None, as_json: bool) -> None:
    """Issue an ID card (a driver's licence or passport stand-in): a blank card in a reader
    (the ID-card applet), or a simulated one made in an image. Its key pair is made on the
    card; the issuer's key signs the document naming it."""
    from card import SimulatedCard

    if (id_image is None) == (id_reader is None):
        raise click.UsageError("issue the card in --id-card-image or the blank one in --id-reader")
    issuer = load_issuer(issuer_file)
    if pin is not None:
        w.pin_block(pin)
    if id_image is not None:
        if id_image.exists() and not force:
            raise CliFail(f"{id_image} already holds a card; pass --force to replace it")
        SimulatedCard.manufacture_idcard(image=id_image).close()
    with id_card(id_image, id_reader) as session:
        doc = session.issue(holder, number, expiry.date(), issuer.sign, pin)
    where = str(id_image) if id_image is not None else f"reader {id_reader}"
    if as_json:
        print_json({"holder": doc.holder, "number": doc.number, "expiry": doc.expiry.isoformat(),
                    "public_key": doc.public_key.hex(), "pin": doc.has_pin, "where": where})
        return
    console.print(f"ID card {doc.number} for {doc.holder}, valid to {doc.expiry}, in {where}.")


@click.command("id-info")
@id_image_option
@id_reader_option
@json_option
def id_info(id_image: Path | None, id_reader: str | None, as_json: bool) -> None:
    """What an ID card shows: holder, number, expiry, public key."""
    with id_card(id_image, id_reader) as session:
        doc = session.document()
    data = {"holder": doc.holder, "number": doc.number, "expiry": doc.expiry.isoformat(),
            "public_key": doc.public_key.hex(), "pin": doc.has_pin}
    if as_json:
        print_json(data)
    else:
        console.print(f"{doc.holder}, document {doc.number}, valid to {doc.expiry}"
                      + (" (PIN protected)" if doc.has_pin else ""))
