"""Whose signature a registered value may carry, as the key manager checks it (E6, E7)."""

from __future__ import annotations

from apdu import backup as b
from apdu import rekey as rk
from apdu.signature import verify


def signed_by_card_or_us(statement_key: bytes, registered: b.RegisteredValue, card_id: bytes, card_key: bytes,
                         vault_key: bytes) -> bool:
    """The backing card's signature (purpose REGISTERED), or ours over a value we re-sealed for
    that card in a re-keying (purpose REKEYED): the card could not sign what it never saw."""
    return verify(card_key, registered.signature, registered.signed_part(card_id, vault_key)) or verify(
        statement_key, registered.signature, rk.rekeyed_message(registered, card_id, vault_key))
