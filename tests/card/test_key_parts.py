"""The per-value key parts at the APDU level (seed E4 as written, claims 31 and 32): EXPORT KEY
P1 = 02 seals the key manager's part 405 to the pinned key manager; every registered value the
card makes carries part 406 sealed to the pinned vault, bound to the card and key id; the two
parts are shares of d (the information Q is made from) and rebuild it with IMPORT SHARE on a new
card, which installs nothing else; tearing at every write of the import."""

from __future__ import annotations

from hashlib import sha256

import pytest

from apdu import SW, seal, shamir
from apdu import backup as b
from apdu import keys as k
from apdu.certificate import DigestField
from apdu.signature import verify
from host.session import WalletSession

from .cards import Cards, python_cards
from .helpers import send, tear_every_write
from .test_backup_commands import CELLS, PIN, VAULT, card_link, fill

LOADED = "backup: fig. 15 and the vault's key"

KEYMGR = sha256(b"key manager").digest()
VAULT_SCALAR = VAULT.key.private_numbers().private_value.to_bytes(32, "big")


def keyed(cards: Cards, mode: k.KeyMode = k.KeyMode.PUBLIC) -> tuple[WalletSession, k.KeyInfo, bytes]:
    s = WalletSession(card_link(cards.prepared(LOADED, fill)))
    s.verify_pin(PIN)
    info = s.generate_key(mode)
    s.put_keymgr_key(seal.public_key(KEYMGR))
    return s, info, s.identity().card_id


def parts_of(s: WalletSession, info: k.KeyInfo, card_id: bytes) -> tuple[bytes, bytes, bytes]:
    """(405 as the key manager opens it, 406 as the vault opens it from a registered value, Q)."""
    keymgr_plain = seal.open_sealed(KEYMGR, s.export_key(part=True), k.part_context(card_id, info.key_id, 1))
    registered = b.RegisteredValue.from_bytes(s.begin_encrypted_backup(1, (DigestField.NAME,)))
    vault_plain = seal.open_sealed(VAULT_SCALAR, registered.key_part, k.part_context(card_id, info.key_id, 2))
    ours, public = k.parse_server_share(keymgr_plain, info.mode, info.key_id, 1)
    theirs, again = k.parse_server_share(vault_plain, info.mode, info.key_id, 2)
    assert public == again == info.public_key
    return ours, theirs, public


@pytest.mark.parametrize("mode", [k.KeyMode.PUBLIC, k.KeyMode.SYMMETRIC])
def test_claim_31_every_registered_value_carries_the_vaults_part(cards: Cards, mode: k.KeyMode) -> None:
    """Claim 31: one part rides with each encrypted value, sealed so only the vault opens it, for
    this card and key only; the card signs it with the rest of the registered value."""
    s, info, card_id = keyed(cards, mode)
    registered = b.RegisteredValue.from_bytes(s.begin_encrypted_backup(1, (DigestField.NAME,)))
    context = k.part_context(card_id, info.key_id, 2)
    for outsider in (KEYMGR, sha256(b"terminal").digest()):
        with pytest.raises(seal.SealError):
            seal.open_sealed(outsider, registered.key_part, context)  # the key manager, the terminal
    for other in (k.part_context(sha256(b"x").digest()[:8], info.key_id, 2), k.part_context(card_id, bytes(8), 2)):
        with pytest.raises(seal.SealError):
            seal.open_sealed(VAULT_SCALAR, registered.key_part, other)  # named for another card or key
    assert seal.open_sealed(VAULT_SCALAR, registered.key_part, context)[0] == 2
    stripped = b.RegisteredValue(registered.digest, registered.key_id, registered.ciphertext, registered.signature)
    identity = s.identity()  # the part is signed: a terminal cannot swap in another
    assert verify(identity.public_key, registered.signature, registered.signed_part(card_id, VAULT.public_key))
    assert not verify(identity.public_key, registered.signature, stripped.signed_part(card_id, VAULT.public_key))


@pytest.mark.parametrize("mode", [k.KeyMode.PUBLIC, k.KeyMode.SYMMETRIC])
def test_claim_32_the_parts_split_d_and_only_both_rebuild_it(cards: Cards, mode: k.KeyMode) -> None:
    """Claim 32: the parts are the two halves of d (or K), the information the key pair is
    made from; each alone is not the key, both are, and Q is the public point of what they give."""
    s, info, card_id = keyed(cards, mode)
    ours, theirs, public = parts_of(s, info, card_id)
    secret = shamir.combine([ours, theirs])
    assert k.check_material(secret + public, mode) == info
    for alone in (ours[1:], theirs[1:]):
        assert alone != secret
        if mode == k.KeyMode.PUBLIC:
            assert not seal.pair_matches(alone, public)
        else:
            assert seal.key_id(alone) != info.key_id
    again = b.RegisteredValue.from_bytes(s.begin_encrypted_backup(2, (DigestField.NAME,)))
    plain = seal.open_sealed(VAULT_SCALAR, again.key_part, k.part_context(card_id, info.key_id, 2))
    assert plain[:k.SHARE_LEN] == theirs  # the same part with every value: nothing kept on the card


def test_the_parts_rebuild_the_key_on_a_new_card_and_tearing_leaves_parts_or_key() -> None:
    """IMPORT SHARE takes 405 and 406 like any two shares; torn at every write of the import
    that installs the key, the card has the key or the first part, never a half key."""
    s, info, card_id = keyed(python_cards())
    ours, theirs, public = parts_of(s, info, card_id)

    def prepare(t: WalletSession) -> None:
        assert t.import_share(info.mode, info.key_id, ours, False, public).mode == k.KeyMode.NONE

    tear_every_write(CELLS, lambda t: t.import_share(info.mode, info.key_id, theirs, False, public),
                     lambda t: t.key_info(), prepare)


def test_a_part_of_another_key_installs_nothing(cards: Cards) -> None:
    """Parts of two cards' keys do not combine: the rebuilt d fits neither Q, nothing installs."""
    s, info, card_id = keyed(cards)
    ours, _, public = parts_of(s, info, card_id)
    other_s, other_info, other_id = keyed(cards)
    _, foreign, _ = parts_of(other_s, other_info, other_id)
    card = cards.prepared(LOADED, fill)
    t = WalletSession(card_link(card))
    t.verify_pin(PIN)
    assert t.import_share(info.mode, info.key_id, ours, False, public).mode == k.KeyMode.NONE
    assert t.import_share(info.mode, info.key_id, foreign, False, public).mode == k.KeyMode.NONE
    assert t.key_info().mode == k.KeyMode.NONE


def test_export_key_refuses_p1_beyond_its_bits(cards: Cards) -> None:
    card = cards.prepared(LOADED, fill)
    link = card_link(card)
    s = WalletSession(link)
    s.verify_pin(PIN)
    s.generate_key()
    s.put_keymgr_key(seal.public_key(KEYMGR))
    assert send(link, "8066040000").sw == SW.INCORRECT_P1P2
    assert send(link, "8066020000").sw == SW.OK
