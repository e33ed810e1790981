"""Open the card a command names: a simulated card's image file, or a card in a PC/SC reader."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from ..paths import data_dir
from . import Transport, TransportError


def default_image() -> Path:
    return data_dir() / "card.img"


@contextmanager
def open_card(card_image: Path | None = None, reader: str | None = None) -> Iterator[Transport]:
    """``reader`` wins when given; otherwise the image (default path when neither is given)."""
    if card_image is not None and reader is not None:
        raise TransportError("give --card-image or --reader, not both")
    if reader is not None:
        from .pcsc import connect_reader

        card = connect_reader(reader)
        try:
            yield card
        finally:
            card.close()
        return
    from .inprocess import open_image

    with open_image(card_image or default_image()) as transport:
        yield transport
