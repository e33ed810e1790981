"""IMPORT CERTIFICATE at the APDU level: a handed-over certificate of a replaced card is taken
once, in sequence, only when the vault signed it for this card; its value then restores like
the card's own, and receipts carry the import counter. Tearing at every write of an import."""

from __future__ import annotations

from dataclasses import replace

import pytest

from apdu import SW, ApduError, tlv
from apdu.backup import Handover, Identity, Receipt, receipt_message
from apdu.certificate import Certificate
from apdu.records import ValueFlags, ValueType
from card import crypto
from host.demo import FIG15
from host.session import WalletSession
from host.transport.inprocess import connect_card
from keyfile import sign

from ..conftest import PIN
from ..readers import Reader
from .cards import AnyCard, Cards
from .helpers import observe, tear_every_write
from .test_backup_commands import CELLS, VAULT, Vault, loaded, opened

OLD_CARD = bytes.fromhex("0102030405060708")
VALUE = FIG15[0].body()


OTHER_CARD = Identity(OLD_CARD, VAULT.public_key)  # any valid point serves as another card's key


def handover(target: Identity, sequence: int, vault: Vault = VAULT, cert: bytes | None = None,
             card_id: bytes = OLD_CARD) -> Handover:
    cert = cert or vault.certify(card_id, VALUE)
    h = Handover(sequence, cert)
    return replace(h, signature=sign(vault.key, h.signed_part(target)))


def test_a_handover_is_imported_once_and_its_value_restored(reader: Reader, cards: Cards) -> None:
    card, s = opened(reader, cards)
    me = s.identity()
    assert s.import_counter() == 0
    h = handover(me, 0)
    value_id = s.import_certificate(h)
    entry = next(e for e in s.list() if e.id == value_id)
    assert entry.flags == ValueFlags.CERTIFICATE and entry.name == FIG15[0].name and entry.type == ValueType.TICKET
    assert s.import_counter() == 1
    before = observe(card)
    with pytest.raises(ApduError) as replayed:  # the terminal kept it: taken already
        s.import_certificate(h)
    assert replayed.value.sw == SW.CONDITIONS_NOT_SATISFIED and observe(card) == before
    c = Certificate.from_bytes(h.certificate)
    with pytest.raises(ApduError):  # the card holds the certificate: no receipt
        s.sign_receipt(c.counter, c.value_hash)
    assert s.begin_restore(value_id) == h.certificate
    s.commit_restore(value_id, VALUE)
    assert s.read(value_id).body() == VALUE
    receipt = Receipt.from_bytes(s.sign_receipt(c.counter, c.value_hash))
    assert receipt.imported == 1
    assert crypto.verify(me.public_key, receipt.signature,
                         receipt_message(VAULT.public_key, me.card_id, c.counter, c.value_hash, 1))


def test_a_certificate_without_name_or_type_is_listed_by_its_counter(reader: Reader, cards: Cards) -> None:
    card, s = opened(reader, cards)
    cert = VAULT.certify(OLD_CARD, VALUE, digest=b"")
    value_id = s.import_certificate(handover(s.identity(), 0, cert=cert))
    entry = next(e for e in s.list() if e.id == value_id)
    assert entry.name == f"certificate {Certificate.from_bytes(cert).counter}" and entry.type == ValueType.OTHER


def refusals(me: Identity) -> dict[str, tuple[Handover, SW]]:
    other_vault = Vault()
    genuine = handover(me, 0)
    return {
        "out of sequence": (handover(me, 1), SW.CONDITIONS_NOT_SATISFIED),
        "signed for another card": (handover(OTHER_CARD, 0), SW.VERIFICATION_FAILED),
        "signed for this card id with another key": (handover(Identity(me.card_id, VAULT.public_key), 0),
                                                     SW.VERIFICATION_FAILED),
        "another vault": (handover(me, 0, other_vault, cert=other_vault.certify(OLD_CARD, VALUE)),
                          SW.VERIFICATION_FAILED),
        "tampered handover": (replace(genuine, signature=genuine.signature[:-1] + bytes((genuine.signature[-1] ^ 1,))),
                              SW.VERIFICATION_FAILED),  # a flipped bit: 00 was no change 1 time in 256
        "certificate not signed": (handover(me, 0, cert=replace(Certificate.from_bytes(VAULT.certify(
            OLD_CARD, VALUE)), signature=b"\x30\x00").to_bytes()), SW.VERIFICATION_FAILED),
        "the card's own certificate": (handover(me, 0, card_id=me.card_id), SW.WRONG_DATA),
        # well formed (out of sequence), but longer than a card's receive buffer: refused by its length
        "longer than 4096 bytes": (handover(me, 1, cert=VAULT.certify(OLD_CARD, VALUE, digest=bytes(
            tlv.Tlv(0x8C, bytes(4100))))), SW.WRONG_DATA),
        # signed, but its digest names the issuer: such a certificate could never restore
        "a digest with a field no vault certifies": (handover(me, 0, cert=VAULT.certify(
            OLD_CARD, VALUE, digest=bytes.fromhex("810101820149"))), SW.WRONG_DATA),
    }


@pytest.mark.parametrize("case", list(refusals(OTHER_CARD)))
def test_refused_handovers_change_nothing(reader: Reader, cards: Cards, case: str) -> None:
    card, s = opened(reader, cards)
    h, sw = refusals(s.identity())[case]
    before = observe(card)
    with pytest.raises(ApduError) as refused:
        s.import_certificate(h)
    assert refused.value.sw == sw and observe(card) == before


def test_no_vault_key_no_import(card: AnyCard) -> None:
    s = WalletSession(connect_card(card))
    s.verify_pin(PIN)
    with pytest.raises(ApduError) as refused:
        s.import_certificate(handover(s.identity(), 0))
    assert refused.value.sw == SW.REFERENCE_DATA_NOT_USABLE


def test_tearing_at_every_write_of_an_import() -> None:
    cells = loaded()

    def target(s: WalletSession) -> Identity:
        return s.identity()

    def op(s: WalletSession) -> None:
        s.import_certificate(handover(target(s), s.import_counter()))

    def state(s: WalletSession) -> object:
        return s.import_counter(), [(e.id, e.flags) for e in s.list()]

    assert tear_every_write(cells, op, state) >= 3
    assert CELLS  # the shared image stays untouched
