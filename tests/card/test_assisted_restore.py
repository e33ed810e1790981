"""COMMIT ASSISTED RESTORE (seed E6) at the APDU level: the card takes a value only when the
pinned key manager sealed it to the card's transport key for this very certificate, and the
value is the one certified; refusals change nothing; tearing at every write."""

from __future__ import annotations

from hashlib import sha256

import pytest

from apdu import SW, ApduError, seal
from apdu import keys as k
from apdu.records import ValueFlags
from host.demo import FIG15
from host.session import WalletSession

from ..readers import Reader
from .cards import Cards
from .helpers import observe, tear_every_write
from .test_backup_commands import VAULT, loaded, opened

KEYMGR = sha256(b"key manager".ljust(32, b"\0")).digest()
OTHER = sha256(b"somebody else".ljust(32, b"\0")).digest()
VALUE = FIG15[2].body()  # value 3, prepaid card E


def prepared(s: WalletSession) -> tuple[bytes, bytes]:
    """Value 3 backed up (a certificate on the card), the key manager pinned: (certificate,
    transport public key)."""
    s.put_keymgr_key(seal.public_key(KEYMGR))
    s.begin_backup(3)
    cert = VAULT.certify(s.identity().card_id, VALUE)
    s.commit_backup(3, cert)
    return cert, s.new_transport_key()


def sealed_for(s: WalletSession, cert: bytes, transport: bytes, value: bytes = VALUE,
               sender: bytes = KEYMGR) -> bytes:
    return seal.seal_symmetric(seal.ecdh(sender, transport), value, k.assisted_context(s.identity().card_id, cert))


def test_the_key_managers_value_is_restored(reader: Reader, cards: Cards) -> None:
    card, s = opened(reader, cards)
    cert, transport = prepared(s)
    s.begin_restore(3)
    blob = sealed_for(s, cert, transport)
    s.commit_assisted_restore(3, blob)
    s.commit_assisted_restore(3, blob)  # a retry after a lost answer: done already
    assert s.read(3).body() == VALUE and s.list()[2].flags == ValueFlags.NONE


def refusals(s: WalletSession, cert: bytes, transport: bytes) -> dict[str, tuple[bytes, SW]]:
    other_cert = VAULT.certify(s.identity().card_id, VALUE)
    return {
        "sealed by someone else": (sealed_for(s, cert, transport, sender=OTHER), SW.WRONG_DATA),
        "for another certificate": (sealed_for(s, other_cert, transport), SW.WRONG_DATA),
        "not the certified value": (sealed_for(s, cert, transport, FIG15[0].body()), SW.WRONG_DATA),
        "tampered": (sealed_for(s, cert, transport)[:-1] + b"\0", SW.WRONG_DATA),
        # longer than any record's sealing: refused by its length, not opened (a card's buffers)
        "longer than a sealed record": (sealed_for(s, cert, transport) + bytes(1100), SW.WRONG_LENGTH),
    }


@pytest.mark.parametrize("case", ["sealed by someone else", "for another certificate", "not the certified value",
                                  "tampered", "longer than a sealed record"])
def test_refusals_change_nothing(reader: Reader, cards: Cards, case: str) -> None:
    card, s = opened(reader, cards)
    cert, transport = prepared(s)
    blob, sw = refusals(s, cert, transport)[case]
    before = observe(card)
    with pytest.raises(ApduError) as refused:
        s.commit_assisted_restore(3, blob)
    assert refused.value.sw == sw and observe(card) == before


def test_no_transport_key_or_no_key_manager(reader: Reader, cards: Cards) -> None:
    card, s = opened(reader, cards)
    s.begin_backup(3)
    s.commit_backup(3, VAULT.certify(s.identity().card_id, VALUE))
    before = observe(card)
    with pytest.raises(ApduError) as refused:
        s.commit_assisted_restore(3, bytes(64))
    assert refused.value.sw == SW.CONDITIONS_NOT_SATISFIED and observe(card) == before


def test_tearing_at_every_write_of_an_assisted_restore() -> None:
    cells = loaded()
    blobs: dict[bytes, bytes] = {}

    def prepare(s: WalletSession) -> None:
        cert, transport = prepared(s)
        blobs[b""] = sealed_for(s, cert, transport)

    def op(s: WalletSession) -> None:
        s.commit_assisted_restore(3, blobs[b""])

    def state(s: WalletSession) -> object:
        return [(e.id, e.flags, s.read(e.id).body()) for e in s.list()]

    assert tear_every_write(cells, op, state, prepare) >= 3
