"""Key rotation at the APDU level (seed E7), with a vault signer in the test: the next key is
kept until every encrypted certificate moved; each step refuses what does not fit and changes
nothing; tearing at every write of begin, swap and commit."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from apdu import SW, ApduError
from apdu.backup import RegisteredValue
from apdu.certificate import DigestField, Mode, value_hash
from apdu.keys import KeyMode
from apdu.records import ValueFlags
from card import SimulatedCard
from host.demo import FIG15
from host.session import WalletSession

from ..readers import Reader
from .cards import AnyCard, Cards, python_cards
from .helpers import observe, tear_every_write
from .test_backup_commands import PIN, VAULT, card_link, fill

TAGS = (DigestField.TYPE, DigestField.NAME)


def certify(s: WalletSession, registered: bytes, card_id: bytes | None = None) -> bytes:
    r = RegisteredValue.from_bytes(registered)
    return VAULT.certify(card_id or s.identity().card_id, b"", value_hash=value_hash(r.ciphertext),
                         mode=Mode.ENCRYPTED, digest=r.digest)


def encrypted(s: WalletSession, value_id: int) -> bytes:
    """Back value_id up encrypted; answers the registered value the vault keeps."""
    registered = s.begin_encrypted_backup(value_id, TAGS)
    s.commit_backup(value_id, certify(s, registered))
    return registered


REGISTERED: dict[bytes, dict[int, bytes]] = {}  # by card id: the registered values 1 and 2 of its backups
BACKED_UP = "rotation: a key, values 1 and 2 backed up encrypted, 3 plain"


def backed_up(s: WalletSession) -> None:
    """The backup tests' card with a key, values 1 and 2 backed up encrypted, 3 plain."""
    fill(s)
    s.generate_key()
    REGISTERED[s.identity().card_id] = {i: encrypted(s, i) for i in (1, 2)}
    s.commit_backup(3, VAULT.certify(s.identity().card_id, s.begin_backup(3)))


def kept(s: WalletSession) -> dict[int, bytes]:
    return REGISTERED[s.identity().card_id]


def with_backups() -> tuple[bytes, dict[int, bytes]]:
    """The Python card of :func:`backed_up`: (cells, registered)."""
    card = python_cards().prepared(BACKED_UP, backed_up)
    assert isinstance(card, SimulatedCard)
    registered = kept(WalletSession(card_link(card)))
    card.power_off()
    return card.eeprom.snapshot(), registered


CELLS, KEPT = with_backups()  # the Python card's, for its tearing


def opened(reader: Reader, cards: Cards) -> tuple[AnyCard, WalletSession]:
    card = cards.prepared(BACKED_UP, backed_up)
    s = WalletSession(reader.insert(card))
    s.verify_pin(PIN)
    return card, s


def move(s: WalletSession, value_id: int, old: bytes) -> bytes:
    new = s.reencrypt(value_id, old)
    s.swap_certificate(value_id, certify(s, new), new)
    return new


def test_a_whole_rotation(reader: Reader, cards: Cards) -> None:
    card, s = opened(reader, cards)
    before = s.key_info()
    nxt = s.begin_rotation()
    assert nxt != before and s.begin_rotation() == nxt and s.key_info(next_key=True) == nxt
    with pytest.raises(ApduError) as waiting:  # no new encrypted backup under the old key now
        s.begin_encrypted_backup(4, TAGS)
    assert waiting.value.sw == SW.CONDITIONS_NOT_SATISFIED
    with pytest.raises(ApduError) as early:  # value 2 has not moved yet
        s.commit_rotation()
    assert early.value.sw == SW.CONDITIONS_NOT_SATISFIED
    new = {i: move(s, i, kept(s)[i]) for i in (1, 2)}
    assert {e.id: e.flags for e in s.list()}[1] == ValueFlags.CERTIFICATE | ValueFlags.ROTATED
    cert = s.read(1).certificate
    s.swap_certificate(1, cert, new[1])  # a retry after the swap: done already
    assert s.commit_rotation() == nxt and s.key_info() == nxt
    assert s.key_info(next_key=True).mode == KeyMode.NONE
    assert s.commit_rotation() == nxt  # again: done already
    assert {e.flags for e in s.list() if e.id in (1, 2)} == {ValueFlags.CERTIFICATE}
    s.begin_restore(1)
    s.commit_restore(1, new[1])  # the new key opens it
    assert s.read(1).body() == FIG15[0].body()


def test_a_value_restores_mid_rotation_from_either_side(reader: Reader, cards: Cards) -> None:
    _, s = opened(reader, cards)
    s.begin_rotation()
    new = move(s, 1, kept(s)[1])
    s.begin_restore(1)
    s.commit_restore(1, new)
    s.begin_restore(2)
    s.commit_restore(2, kept(s)[2])  # not moved yet: the old key opens it
    assert [s.read(i).body() for i in (1, 2)] == [FIG15[0].body(), FIG15[1].body()]


def refusals(registered: dict[int, bytes]) -> dict[str, tuple[Callable[[WalletSession], object], SW]]:
    """The refused steps on the card whose registered values are ``registered``."""

    def swap_other_value(s: WalletSession) -> None:
        new2 = s.reencrypt(2, registered[2])
        s.swap_certificate(1, certify(s, new2), new2)  # value 2's ciphertext for value 1

    def swap_unsigned(s: WalletSession) -> None:

        from apdu.certificate import Certificate

        new = s.reencrypt(1, registered[1])
        cert = replace(Certificate.from_bytes(certify(s, new)), signature=b"\x30\x00").to_bytes()
        s.swap_certificate(1, cert, new)

    one = RegisteredValue.from_bytes(registered[1])
    flipped = bytearray(one.ciphertext)
    flipped[-20] ^= 1  # in the ciphertext (the key part is the vault's, the card never reads it)
    tampered = replace(one, ciphertext=bytes(flipped)).to_bytes()
    return {
        "reencrypt a tampered value": (lambda s: s.reencrypt(1, bytes(tampered)), SW.WRONG_DATA),
        "reencrypt another value's": (lambda s: s.reencrypt(1, registered[2]), SW.WRONG_DATA),
        "reencrypt a plain certificate": (lambda s: s.reencrypt(3, registered[1]), SW.CONDITIONS_NOT_SATISFIED),
        "swap in another value": (swap_other_value, SW.WRONG_DATA),
        "swap in an unsigned certificate": (swap_unsigned, SW.VERIFICATION_FAILED),
    }


@pytest.mark.parametrize("case", list(refusals(KEPT)))
def test_refusals_change_nothing(reader: Reader, cards: Cards, case: str) -> None:
    card, s = opened(reader, cards)
    s.begin_rotation()
    step, sw = refusals(kept(s))[case]
    before = observe(card)
    with pytest.raises(ApduError) as refused:
        step(s)
    assert refused.value.sw == sw and observe(card) == before


def test_no_rotation_without_a_key_or_while_a_swap_is_pending(reader: Reader, cards: Cards) -> None:
    _, s = opened(reader, cards)
    with pytest.raises(ApduError) as idle:
        s.reencrypt(1, kept(s)[1])
    assert idle.value.sw == SW.CONDITIONS_NOT_SATISFIED
    s.begin_restore(1)
    with pytest.raises(ApduError) as pending:
        s.begin_rotation()
    assert pending.value.sw == SW.CONDITIONS_NOT_SATISFIED


def state(s: WalletSession) -> object:
    return (s.key_info(), s.key_info(next_key=True), [(e.id, e.flags, s.read(e.id).certificate) for e in s.list()])


def test_tearing_at_every_write_of_begin_swap_and_commit() -> None:
    swapped: dict[str, bytes] = {}

    def prepare_swap(s: WalletSession) -> None:
        s.begin_rotation()
        swapped["new"] = s.reencrypt(1, KEPT[1])
        swapped["cert"] = certify(s, swapped["new"])

    def swap(s: WalletSession) -> None:
        s.swap_certificate(1, swapped["cert"], swapped["new"])

    def prepare_commit(s: WalletSession) -> None:
        s.begin_rotation()
        for i in (1, 2):
            move(s, i, KEPT[i])

    def begun(s: WalletSession) -> object:  # the next key is random: whether there is one
        return s.key_info(), s.key_info(next_key=True).mode

    writes = [
        tear_every_write(CELLS, lambda s: s.begin_rotation(), begun),
        tear_every_write(CELLS, swap, state, prepare_swap),
        tear_every_write(CELLS, lambda s: s.commit_rotation(), state, prepare_commit),
    ]
    assert all(n >= 2 for n in writes), writes
