"""The card's half of backup and restore at the APDU level, with a vault signer in the test:
each seed abort path answers its status word and changes nothing; the swaps are idempotent;
receipts are refused while the card still needs a registration; tearing at every write."""

from __future__ import annotations

from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from apdu import SW, ApduError
from apdu.backup import Audience, Receipt, receipt_message
from apdu.certificate import Certificate, make_digest, value_hash
from apdu.records import ValueFlags, ValueRecord
from card import SimulatedCard, crypto
from host.demo import FIG15
from host.session import WalletSession
from host.transport import CardRemovedError
from keyfile import sign

from ..conftest import ISSUER
from ..readers import Reader
from .cards import AnyCard, Cards
from .helpers import clone, observe

PIN = "1234"


class Vault:
    """Just enough of a vault to certify: a P-256 key and a counter."""

    def __init__(self) -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.public_key = crypto_public(self.key)
        self.counter = 0

    def certify(self, card_id: bytes, value: bytes, **changes: object) -> bytes:
        self.counter += 1
        cert = Certificate(card_id, self.counter, value_hash(value), make_digest(value))
        cert = replace(cert, **changes)  # type: ignore[arg-type]
        return replace(cert, signature=sign(self.key, cert.message())).to_bytes()


def crypto_public(key: ec.EllipticCurvePrivateKey) -> bytes:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    return key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


VAULT = Vault()


def fill(s: WalletSession) -> None:
    """The fig. 15 values and the vault's key pinned: where each test here starts."""
    for r in FIG15:
        s.store(r)
    s.put_vault_key(VAULT.public_key)


def loaded() -> bytes:
    card = SimulatedCard.manufacture(index_capacity=16)
    s = WalletSession(card_link(card))
    ISSUER.personalize(s, PIN)
    s.verify_pin(PIN)
    fill(s)
    card.power_off()
    return card.eeprom.snapshot()


def card_link(card: SimulatedCard):  # type: ignore[no-untyped-def]
    from host.transport.inprocess import connect_card

    return connect_card(card)


CELLS = loaded()


def opened(reader: Reader, cards: Cards) -> tuple[AnyCard, WalletSession]:
    card = cards.prepared("backup: fig. 15 and the vault's key", fill)
    s = WalletSession(reader.insert(card))
    s.verify_pin(PIN)
    return card, s


def test_backup_then_restore_round_trip(reader: Reader, cards: Cards) -> None:
    card, s = opened(reader, cards)
    before = s.read(3)
    value = s.begin_backup(3)
    assert s.list()[2].flags & ValueFlags.PENDING
    with pytest.raises(ApduError) as spent:
        s.spend(3, 100)  # a pending value cannot change under the vault's hash
    assert spent.value.sw == SW.CONDITIONS_NOT_SATISFIED
    cert = VAULT.certify(s.identity().card_id, value)
    s.commit_backup(3, cert)
    s.commit_backup(3, cert)  # a retry after a lost response: done already, 9000
    entry = s.list()[2]
    assert entry.flags == ValueFlags.CERTIFICATE and entry.name == before.name
    assert s.info().certificate_count == 1
    assert s.begin_restore(3) == cert
    s.commit_restore(3, value)
    s.commit_restore(3, value)  # idempotent too
    assert s.read(3) == before


def test_unknown_commit_option_is_refused(reader: Reader, cards: Cards) -> None:
    """Option bits other than 01 are wrong data, not a plain commit by another name."""
    card, s = opened(reader, cards)
    value = s.begin_backup(1)
    cert = VAULT.certify(s.identity().card_id, value)
    for option in (0x02, 0x03, 0x80):
        apdu = bytes((0x80, 0x42, 0x00, 0x01, 1 + len(cert), option)) + cert
        assert s.protocol.transport.send_and_receive(apdu)[1] == SW.WRONG_DATA
    assert s.list()[0].flags == ValueFlags.PENDING  # nothing swapped


def test_keep_option_marks_backed_up(reader: Reader, cards: Cards) -> None:
    card, s = opened(reader, cards)
    value = s.begin_backup(1)
    cert = VAULT.certify(s.identity().card_id, value)
    s.commit_backup(1, cert, keep=True)
    s.commit_backup(1, cert, keep=True)
    assert s.list()[0].flags == ValueFlags.BACKED_UP
    c = Certificate.from_bytes(cert)
    with pytest.raises(ApduError):  # the vault's copy is still the backup: no receipt
        s.sign_receipt(c.counter, c.value_hash)
    s.use(1, 1)  # spending makes the copy stale: the flag goes, the receipt is granted
    assert s.list()[0].flags == ValueFlags.NONE
    receipt = Receipt.from_bytes(s.sign_receipt(c.counter, c.value_hash))
    assert receipt.imported == 0
    assert crypto.verify(s.identity().public_key, receipt.signature,
                         receipt_message(VAULT.public_key, s.identity().card_id, c.counter, c.value_hash, 0))


BAD_CERTS = {
    "digest mismatch": (lambda cid, v: VAULT.certify(cid, v, digest=make_digest(FIG15[0].body())), SW.WRONG_DATA),
    "hash mismatch": (lambda cid, v: VAULT.certify(cid, v, value_hash=value_hash(v + b"x")), SW.WRONG_DATA),
    "other card": (lambda cid, v: VAULT.certify(bytes(8), v), SW.WRONG_DATA),
    "bad vault signature": (lambda cid, v: Vault().certify(cid, v), SW.VERIFICATION_FAILED),
    "malformed": (lambda cid, v: VAULT.certify(cid, v)[:-3], SW.WRONG_DATA),
}


@pytest.mark.parametrize("case", list(BAD_CERTS))
def test_bad_certificate_is_refused_and_changes_nothing(reader: Reader, cards: Cards, case: str) -> None:
    card, s = opened(reader, cards)
    value = s.begin_backup(2)
    before = observe(card)
    make, sw = BAD_CERTS[case]
    with pytest.raises(ApduError) as refused:
        s.commit_backup(2, make(s.identity().card_id, value))
    assert refused.value.sw == sw
    assert observe(card) == before
    s.cancel_pending(2)
    assert s.list()[1].flags == ValueFlags.NONE


def test_restore_refuses_a_value_that_is_not_the_certified_one(reader: Reader, cards: Cards) -> None:
    card, s = opened(reader, cards)
    value = s.begin_backup(4)
    s.commit_backup(4, VAULT.certify(s.identity().card_id, value))
    s.begin_restore(4)
    before = observe(card)
    other = replace(ValueRecord.from_bytes(value), quantity=9).body()
    with pytest.raises(ApduError) as refused:
        s.commit_restore(4, other)
    assert refused.value.sw == SW.WRONG_DATA
    assert observe(card) == before


def test_receipts_only_for_registrations_the_card_no_longer_needs(reader: Reader, cards: Cards) -> None:
    card, s = opened(reader, cards)
    value = s.begin_backup(2)
    x = value_hash(value)
    with pytest.raises(ApduError):  # pending: the registration is about to be needed
        s.sign_receipt(1, x)
    cert = VAULT.certify(s.identity().card_id, value)
    s.commit_backup(2, cert)
    c = Certificate.from_bytes(cert)
    with pytest.raises(ApduError):  # the card holds the certificate
        s.sign_receipt(c.counter, c.value_hash)
    s.sign_receipt(c.counter + 1000, c.value_hash)  # an unknown registration may go
    s.begin_restore(2)
    s.commit_restore(2, value)
    s.sign_receipt(c.counter, c.value_hash)  # consumed: now it may go


def test_vault_key_is_pinned_while_certificates_exist(reader: Reader, cards: Cards) -> None:
    card, s = opened(reader, cards)
    value = s.begin_backup(1)
    s.commit_backup(1, VAULT.certify(s.identity().card_id, value))
    with pytest.raises(ApduError) as refused:
        s.put_vault_key(Vault().public_key)
    assert refused.value.sw == SW.CONDITIONS_NOT_SATISFIED
    s.put_vault_key(VAULT.public_key)  # the same key again is fine


def test_commands_need_the_pin(reader: Reader, cards: Cards) -> None:
    card = cards.prepared("backup: fig. 15 and the vault's key", fill)
    s = WalletSession(reader.insert(card))
    for call in (lambda: s.begin_backup(1), lambda: s.authenticate(Audience.VAULT, bytes(32)),
                 lambda: s.sign_receipt(1, bytes(32))):
        with pytest.raises(ApduError) as refused:
            call()
        assert refused.value.sw == SW.SECURITY_STATUS_NOT_SATISFIED
    assert s.identity().card_id == s.info().card_id  # identity is public


SWAPS = {
    "begin-backup": lambda s, ctx: s.begin_backup(3),
    "commit-backup": lambda s, ctx: s.commit_backup(3, ctx["cert"]),
    "commit-backup-keep": lambda s, ctx: s.commit_backup(3, ctx["cert"], keep=True),
    "begin-restore": lambda s, ctx: s.begin_restore(1),
    "commit-restore": lambda s, ctx: s.commit_restore(1, ctx["value1"]),
    "cancel": lambda s, ctx: s.cancel_pending(3),
}


def swap_ready() -> tuple[bytes, dict[str, bytes]]:
    """Value 3 pending with its certificate at hand; value 1 a pending certificate."""
    card = clone(CELLS)
    s = WalletSession(card_link(card))
    s.verify_pin(PIN)
    value1 = s.begin_backup(1)
    s.commit_backup(1, VAULT.certify(s.identity().card_id, value1))
    s.begin_restore(1)
    value3 = s.begin_backup(3)
    cert = VAULT.certify(s.identity().card_id, value3)
    card.power_off()
    return card.eeprom.snapshot(), {"cert": cert, "value1": value1}


@pytest.mark.parametrize("name", list(SWAPS))
def test_tearing_at_every_write_of_a_swap(name: str) -> None:
    """Both sides of each swap's commit point are reached and nothing else is ever seen:
    the value and its certificate are never both live nor both gone."""
    cells, ctx = swap_ready()
    if name.startswith("begin"):  # undo the setup's own begin for this one
        s0 = WalletSession(card_link(c0 := clone(cells)))
        s0.verify_pin(PIN)
        s0.cancel_pending(3 if name == "begin-backup" else 1)
        c0.power_off()
        cells = c0.eeprom.snapshot()
    before = observe(clone(cells))
    done = clone(cells)
    s = WalletSession(card_link(done))
    s.verify_pin(PIN)
    start = done.eeprom.page_writes
    SWAPS[name](s, ctx)
    total = done.eeprom.page_writes - start
    done.power_off()
    after = observe(done)
    assert total > 0 and after != before
    seen = set()
    for n in range(total):
        card = clone(cells)
        s = WalletSession(card_link(card))
        s.verify_pin(PIN)
        card.eeprom.cut_power_after(n)
        with pytest.raises(CardRemovedError):
            SWAPS[name](s, ctx)
        card.eeprom.cut_power_after(None)
        card.power_on()
        card.power_off()
        state = observe(card)
        assert state in (before, after), f"{name}: torn after {n} of {total} writes"
        seen.add(state == after)
    assert seen == {False, True}
