"""SUCCEED CERTIFICATE and REPLACE KEY (re-keying by the key manager, seed E7/E8) at the APDU
level, with a vault and a key manager signer in the test: the card takes a successor only on
its pinned vault's succession for this very certificate and card, and a key only sealed by its
pinned key manager for this card and purpose; every refusal changes nothing; tearing at every
write of both."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from apdu import SW, ApduError, seal
from apdu import keys as k
from apdu import rekey as rk
from apdu.certificate import Certificate
from apdu.keys import KeyMode
from apdu.records import ValueFlags
from card import SimulatedCard
from card.keys import wipe_key_store
from host.session import WalletSession
from keyfile import sign

from ..readers import Reader
from .cards import AnyCard, Cards, python_cards
from .helpers import observe, tear_every_write
from .test_assisted_restore import KEYMGR, OTHER
from .test_backup_commands import PIN, VAULT
from .test_rotation import backed_up

KEPT_AND_KEYMGR = "rekey: the rotation tests' card, value 4 backed up and kept, the key manager pinned"


def kept_and_keymgr(s: WalletSession) -> None:
    """The rotation tests' card (values 1, 2 encrypted backups, 3 plain) with value 4 backed up
    and kept, and the key manager pinned."""
    backed_up(s)
    s.put_keymgr_key(seal.public_key(KEYMGR))
    s.commit_backup(4, VAULT.certify(s.identity().card_id, s.begin_backup(4)), keep=True)


def prepared() -> bytes:
    card = python_cards().prepared(KEPT_AND_KEYMGR, kept_and_keymgr)
    assert isinstance(card, SimulatedCard)
    return card.eeprom.snapshot()


CELLS = prepared()  # the Python card's, for its tearing
MATERIAL = k.generate_material(KeyMode.PUBLIC)  # d || Q, as the key manager makes it
MISFIT = MATERIAL[:k.SECRET_LEN] + k.generate_material(KeyMode.PUBLIC)[k.SECRET_LEN:]  # d of another Q


def opened(reader: Reader, cards: Cards) -> tuple[AnyCard, WalletSession]:
    card = cards.prepared(KEPT_AND_KEYMGR, kept_and_keymgr)
    s = WalletSession(reader.insert(card))
    s.verify_pin(PIN)
    return card, s


def successor(s: WalletSession, value_id: int, of: int | None = None, audience_key: bytes | None = None,
              signer: object = None, **changes: object) -> tuple[bytes, bytes]:
    """A successor of ``of``'s certificate (default: value_id's) and the vault's succession."""
    old, named_old = (Certificate.from_bytes(s.read(v).certificate) for v in (value_id, of or value_id))
    identity = s.identity()
    VAULT.counter += 1
    new = replace(Certificate(identity.card_id, VAULT.counter, bytes(32), old.digest, old.mode), **changes)  # type: ignore[arg-type]
    new = replace(new, signature=sign(VAULT.key, new.message()))
    named = rk.succession_message(identity.card_id, audience_key or identity.public_key, named_old.signed_part(),
                                  new.signed_part())
    return new.to_bytes(), sign(signer or VAULT.key, named)  # type: ignore[arg-type]


def sealed_key(s: WalletSession, transport: bytes, mode: KeyMode = KeyMode.PUBLIC, sender: bytes = KEYMGR,
               card_id: bytes | None = None, material: bytes = MATERIAL) -> bytes:
    context = rk.replace_context(card_id or s.identity().card_id, mode)
    return seal.seal_symmetric(seal.ecdh(sender, transport), material, context)


def test_a_successor_replaces_the_certificate_once(reader: Reader, cards: Cards) -> None:
    _, s = opened(reader, cards)
    cert, signature = successor(s, 1)
    s.succeed_certificate(1, cert, signature)
    assert s.read(1).certificate == cert and s.list()[0].flags == ValueFlags.CERTIFICATE
    s.succeed_certificate(1, cert, signature)  # a retry after the swap: done already
    assert s.read(1).certificate == cert


@pytest.mark.python_only("a card that lost its key: its key store wiped in EEPROM, which no APDU does")
def test_a_card_without_its_key_takes_successors_and_a_new_key(reader: Reader, cards: Cards) -> None:
    card, s = opened(reader, cards)
    assert isinstance(card, SimulatedCard)
    wipe_key_store(card.eeprom)
    assert s.key_info().mode == KeyMode.NONE
    for value_id in (1, 2):
        s.succeed_certificate(value_id, *successor(s, value_id))
    info = s.replace_key(KeyMode.PUBLIC, sealed_key(s, s.new_transport_key()))
    assert info == k.key_info_of(MATERIAL, KeyMode.PUBLIC) and s.key_info() == info


def test_the_new_key_replaces_the_old_and_drops_the_kept_marks(reader: Reader, cards: Cards) -> None:
    _, s = opened(reader, cards)
    old = s.key_info()
    assert s.list()[3].flags == ValueFlags.BACKED_UP
    info = s.replace_key(KeyMode.PUBLIC, sealed_key(s, s.new_transport_key()))
    assert info != old and info.key_id == k.key_info_of(MATERIAL, KeyMode.PUBLIC).key_id
    assert s.list()[3].flags == ValueFlags.NONE  # its registration was under the old key: released later
    with pytest.raises(ApduError) as used:  # the transport key went with it: no second key from one
        s.replace_key(KeyMode.PUBLIC, bytes(64))
    assert used.value.sw == SW.CONDITIONS_NOT_SATISFIED


Step = Callable[[WalletSession], object]


def refusals() -> dict[str, tuple[Step | None, Step, SW]]:
    """(what to do first, the refused step, its status word)."""
    other_card = bytes(8)

    def succeed(value_id: int, **options: object) -> Step:
        return lambda s: s.succeed_certificate(value_id, *successor(s, value_id, **options))  # type: ignore[arg-type]

    def replace_key(**options: object) -> Step:
        mode = options.pop("p1", KeyMode.PUBLIC)
        return lambda s: s.replace_key(mode, sealed_key(s, s.new_transport_key(), **options))  # type: ignore

    def anonymous(s: WalletSession) -> object:  # sealed as for IMPORT KEY: anyone can make that
        return s.replace_key(KeyMode.PUBLIC, seal.seal(s.new_transport_key(), MATERIAL, rk.replace_context(
            s.identity().card_id, KeyMode.PUBLIC)))

    from cryptography.hazmat.primitives.asymmetric import ec

    stranger = ec.generate_private_key(ec.SECP256R1())
    return {
        "a succession for another certificate": (None, succeed(1, of=2), SW.VERIFICATION_FAILED),
        "a succession another key signed": (None, succeed(1, signer=stranger), SW.VERIFICATION_FAILED),
        "a succession for another card's key": (None, succeed(1, audience_key=VAULT.public_key),
                                                SW.VERIFICATION_FAILED),
        "a successor naming another card": (None, succeed(1, card_id=other_card), SW.WRONG_DATA),
        "a successor with another digest": (None, succeed(1, digest=b""), SW.WRONG_DATA),
        "a plain backup's certificate": (None, succeed(3), SW.WRONG_DATA),
        "a live value": (None, lambda s: s.succeed_certificate(4, *successor(s, 1)), SW.CONDITIONS_NOT_SATISFIED),
        "a pending certificate": (lambda s: s.begin_restore(1), succeed(1), SW.CONDITIONS_NOT_SATISFIED),
        "a key sealed by someone else": (None, replace_key(sender=OTHER), SW.WRONG_DATA),
        "a key sealed anonymously": (None, anonymous, SW.WRONG_DATA),
        "a key sealed for another card": (None, replace_key(card_id=other_card), SW.WRONG_DATA),
        "a key sealed for the other mode": (None, replace_key(p1=KeyMode.SYMMETRIC), SW.WRONG_DATA),
        "a key of the wrong length": (None, replace_key(material=bytes(31)), SW.WRONG_DATA),
        "a pair that does not fit": (None, replace_key(material=MISFIT), SW.WRONG_DATA),
        "a key without a transport key": (None, lambda s: s.replace_key(KeyMode.PUBLIC, bytes(64)),
                                          SW.CONDITIONS_NOT_SATISFIED),
        "a key while a restore is pending": (lambda s: s.begin_restore(2), replace_key(),
                                             SW.CONDITIONS_NOT_SATISFIED),
        "a key during a card-side rotation": (lambda s: s.begin_rotation(), replace_key(),
                                              SW.CONDITIONS_NOT_SATISFIED),
    }


@pytest.mark.parametrize("case", list(refusals()))
def test_refusals_change_nothing(reader: Reader, cards: Cards, case: str) -> None:
    """Each a test that fails without its check: the card would take the certificate or key."""
    card, s = opened(reader, cards)
    first, step, sw = refusals()[case]
    if first is not None:
        first(s)
    before = observe(card), state(s)
    with pytest.raises(ApduError) as refused:
        step(s)
    assert refused.value.sw == sw and (observe(card), state(s)) == before


def state(s: WalletSession) -> object:
    return s.key_info(), [(e.id, e.flags, s.read(e.id).certificate) for e in s.list()]


def test_tearing_at_every_write_of_succeed_and_replace_key() -> None:
    made: dict[str, bytes] = {}

    def prepare_succeed(s: WalletSession) -> None:
        made["cert"], made["signature"] = successor(s, 1)

    def prepare_replace(s: WalletSession) -> None:
        made["sealed"] = sealed_key(s, s.new_transport_key())

    writes = [
        tear_every_write(CELLS, lambda s: s.succeed_certificate(1, made["cert"], made["signature"]), state,
                         prepare_succeed),
        tear_every_write(CELLS, lambda s: s.replace_key(KeyMode.PUBLIC, made["sealed"]), state, prepare_replace),
    ]
    assert all(n >= 2 for n in writes), writes
