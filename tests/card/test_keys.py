"""The card's key store at the APDU level: keys generated on the card, exported only sealed to
the pinned key manager (the terminal and a vault cannot open the export), imported only when
sealed for this card's one-time transport key; every refusal changes nothing; tearing at every
write of generation and import."""

from __future__ import annotations

from hashlib import sha256

import pytest

from apdu import SW, ApduError, seal, shamir
from apdu import keys as k
from host.session import WalletSession
from host.transport.inprocess import connect_card

from ..readers import Reader
from .cards import AnyCard, Cards, python_cards
from .helpers import PIN, observe, personalized, send, tear_every_write

KEYMGR = sha256(b"key manager".ljust(32, b"\0")).digest()
KEYMGR_PUBLIC = seal.public_key(KEYMGR)
CELLS = personalized()[0].eeprom.snapshot()


def unlocked(card: AnyCard) -> WalletSession:
    s = WalletSession(connect_card(card))
    s.verify_pin(PIN)
    return s


def escrowed(cards: Cards, mode: k.KeyMode = k.KeyMode.PUBLIC) -> tuple[k.KeyInfo, bytes, bytes]:
    """A card with a key, exported to the key manager: (info, the export, the card id)."""
    s = unlocked(cards.new())
    info = s.generate_key(mode)
    s.put_keymgr_key(KEYMGR_PUBLIC)
    return info, s.export_key(), s.identity().card_id


@pytest.mark.parametrize("mode", [k.KeyMode.PUBLIC, k.KeyMode.SYMMETRIC])
def test_generate_export_and_import_onto_a_fresh_card(reader: Reader, cards: Cards, mode: k.KeyMode) -> None:
    old = WalletSession(reader.insert(cards.new()))
    old.verify_pin(PIN)
    assert old.key_info() == k.KeyInfo(k.KeyMode.NONE)
    info = old.generate_key(mode)
    assert old.key_info() == info and len(info.key_id) == 8
    assert (len(info.public_key) == 65) == (mode == k.KeyMode.PUBLIC)
    old.put_keymgr_key(KEYMGR_PUBLIC)
    sealed = old.export_key()
    # the key manager opens it (E3): the key material (d || Q, or K) is exactly the card's key
    seed = seal.open_sealed(KEYMGR, sealed, k.export_context(old.identity().card_id, info.key_id))
    assert k.check_material(seed, mode) == info
    # ... and seals it to the transport key a fresh card made for this import
    new = unlocked(cards.new())
    transport = new.new_transport_key()
    blob = seal.seal(transport, seed, k.import_context(new.identity().card_id, mode))
    assert new.import_key(mode, blob) == info
    with pytest.raises(ApduError) as again:  # the transport key was one-time
        new.import_key(mode, blob)
    assert again.value.sw == SW.CONDITIONS_NOT_SATISFIED


def test_the_export_is_opaque_to_everyone_but_the_key_manager(cards: Cards) -> None:
    info, sealed, card_id = escrowed(cards)
    context = k.export_context(card_id, info.key_id)
    for outsider in (sha256(bytes(32)).digest(), sha256(b"vault".ljust(32, b"\0")).digest()):
        with pytest.raises(seal.SealError):
            seal.open_sealed(outsider, sealed, context)  # the terminal or the vault
    material = seal.open_sealed(KEYMGR, sealed, context)
    assert len(material) == 97 and seal.public_key(material[:32]) == material[32:] == info.public_key


def _fresh_with_transport(cards: Cards) -> tuple[AnyCard, WalletSession, bytes]:
    card = cards.new()
    s = unlocked(card)
    return card, s, s.new_transport_key()


@pytest.mark.parametrize("forgery", ["other-d", "point-off-curve", "compressed", "d-zero", "d-is-n", "short"])
def test_an_import_whose_pair_does_not_fit_is_refused(cards: Cards, forgery: str) -> None:
    """A 3.0.4 card cannot compute d*G: it signs with d and verifies with Q before it takes a
    pair, so key material whose halves do not belong together changes nothing (6A80)."""
    info, sealed, card_id = escrowed(cards)
    material = seal.open_sealed(KEYMGR, sealed, k.export_context(card_id, info.key_id))
    d, q = material[:32], material[32:]
    forged = {
        "other-d": seal.random_scalar() + q,
        "point-off-curve": d + q[:-1] + bytes((q[-1] ^ 1,)),
        "compressed": d + seal.x_only(q) + bytes(32),
        "d-zero": bytes(32) + q,
        "d-is-n": seal.N_BYTES + q,
        "short": material[:-1],
    }[forgery]
    card, s, transport = _fresh_with_transport(cards)
    blob = seal.seal(transport, forged, k.import_context(s.identity().card_id, k.KeyMode.PUBLIC))
    before = observe(card)
    with pytest.raises(ApduError) as refused:
        s.import_key(k.KeyMode.PUBLIC, blob)
    assert refused.value.sw == SW.WRONG_DATA and observe(card) == before
    good = seal.seal(transport, material, k.import_context(s.identity().card_id, k.KeyMode.PUBLIC))
    assert s.import_key(k.KeyMode.PUBLIC, good) == info  # the same card takes the real pair


def test_generated_keys_are_random_pairs(cards: Cards) -> None:
    """GENERATE KEY draws d (no seed to derive it from): two cards never share a key, and what
    EXPORT KEY hands the key manager is d || Q with Q = d*G."""
    materials = []
    for _ in range(2):
        info, sealed, card_id = escrowed(cards)
        material = seal.open_sealed(KEYMGR, sealed, k.export_context(card_id, info.key_id))
        assert seal.valid_scalar(material[:32]) and seal.public_key(material[:32]) == info.public_key
        materials.append(material)
    assert materials[0] != materials[1]


def test_an_import_made_for_another_card_is_refused(cards: Cards) -> None:
    info, sealed, card_id = escrowed(cards)
    seed = seal.open_sealed(KEYMGR, sealed, k.export_context(card_id, info.key_id))
    target = unlocked(cards.new())
    thief_card = cards.new()
    thief = unlocked(thief_card)
    transport = target.new_transport_key()
    thief.new_transport_key()
    blob = seal.seal(transport, seed, k.import_context(target.identity().card_id, k.KeyMode.PUBLIC))
    before = observe(thief_card)
    with pytest.raises(ApduError) as refused:
        thief.import_key(k.KeyMode.PUBLIC, blob)  # sealed to another card's transport key
    assert refused.value.sw == SW.WRONG_DATA and observe(thief_card) == before
    assert thief.key_info().mode == k.KeyMode.NONE


@pytest.mark.parametrize(("name", "setup", "apdu", "sw"), [
    ("generate-without-pin", "", "8060010000", SW.SECURITY_STATUS_NOT_SATISFIED),
    ("generate-bad-mode", "pin", "8060030000", SW.INCORRECT_P1P2),
    ("generate-twice", "pin key", "8060010000", SW.CONDITIONS_NOT_SATISFIED),
    ("export-without-key", "pin keymgr", "8066000000", SW.CONDITIONS_NOT_SATISFIED),
    ("export-without-keymgr", "pin key", "8066000000", SW.CONDITIONS_NOT_SATISFIED),
    ("keymgr-not-a-point", "pin", "8064000041" + "04" + "00" * 64, SW.WRONG_DATA),
    ("keymgr-replaced", "pin keymgr", "8064000041" + seal.public_key(sha256(bytes(32)).digest()).hex(),
     SW.CONDITIONS_NOT_SATISFIED),
    ("import-without-transport", "pin", "806A0100" + "60" + "00" * 96, SW.CONDITIONS_NOT_SATISFIED),
    ("import-garbage", "pin transport", "806A0100" + "60" + "00" * 96, SW.WRONG_DATA),
    ("import-bad-mode", "pin transport", "806A0000" + "60" + "00" * 96, SW.INCORRECT_P1P2),
    ("import-over-a-key", "pin key transport", "806A0100" + "60" + "00" * 96, SW.CONDITIONS_NOT_SATISFIED),
    ("info-with-data", "", "806200000100", SW.WRONG_LENGTH),
])
def test_refusals_change_nothing(reader: Reader, cards: Cards, name: str, setup: str, apdu: str, sw: SW) -> None:
    card = cards.new()
    s = unlocked(card)
    if "key" in setup.split():
        s.generate_key()
    if "keymgr" in setup.split():
        s.put_keymgr_key(KEYMGR_PUBLIC)
    if "transport" in setup.split():
        s.new_transport_key()
    card.power_off()
    before = observe(card)
    link = reader.insert(card)
    session = WalletSession(link)
    session.info()
    if "pin" in setup.split():
        session.verify_pin(PIN)
    assert send(link, apdu).sw == sw, name
    link.close()
    card.power_off()
    assert observe(card) == before


def test_tearing_key_generation() -> None:
    tear_every_write(CELLS, lambda s: s.generate_key(), lambda s: s.key_info().mode)


def test_tearing_key_import() -> None:
    info, sealed, card_id = escrowed(python_cards())
    seed = seal.open_sealed(KEYMGR, sealed, k.export_context(card_id, info.key_id))
    made: list[bytes] = []

    def prepare(s: WalletSession) -> None:
        transport = s.new_transport_key()
        made.append(seal.seal(transport, seed, k.import_context(s.identity().card_id, k.KeyMode.PUBLIC)))

    tear_every_write(CELLS, lambda s: s.import_key(k.KeyMode.PUBLIC, made[0]), lambda s: s.key_info(), prepare)


def test_tearing_share_import() -> None:
    """The second share installs the key: torn anywhere, the card has the key or the shares."""
    info, sealed, card_id = escrowed(python_cards())
    seed = seal.open_sealed(KEYMGR, sealed, k.export_context(card_id, info.key_id))
    from apdu import shamir

    first, second, _ = shamir.split(seed[:32], 2, 3)
    q = info.public_key

    def prepare(s: WalletSession) -> None:
        assert s.import_share(k.KeyMode.PUBLIC, info.key_id, first, False, q).mode == k.KeyMode.NONE

    tear_every_write(CELLS, lambda s: s.import_share(k.KeyMode.PUBLIC, info.key_id, second, False, q),
                     lambda s: s.key_info(), prepare)


@pytest.mark.parametrize("forgery", ["q-of-another-key", "q-not-the-key-ids"])
def test_shares_with_a_public_key_that_does_not_fit_are_refused(cards: Cards, forgery: str) -> None:
    """Q travels beside the shares in clear: the card takes it only when the key id names it,
    and installs only a rebuilt d that is its private key."""
    from apdu import shamir

    info, sealed, card_id = escrowed(cards)
    d = seal.open_sealed(KEYMGR, sealed, k.export_context(card_id, info.key_id))[:32]
    first, second, _ = shamir.split(d, 2, 3)
    other = seal.public_key(seal.random_scalar())
    key_id = seal.key_id(other) if forgery == "q-of-another-key" else info.key_id
    card = cards.new()
    s = unlocked(card)
    if forgery == "q-not-the-key-ids":
        before = observe(card)
        with pytest.raises(ApduError) as refused:
            s.import_share(k.KeyMode.PUBLIC, key_id, first, False, other)
        assert refused.value.sw == SW.WRONG_DATA and observe(card) == before
        return
    # a Q whose key id is given honestly, but the shares are of another d: never installed
    assert s.import_share(k.KeyMode.PUBLIC, key_id, first, False, other).mode == k.KeyMode.NONE
    assert s.import_share(k.KeyMode.PUBLIC, key_id, second, False, other).mode == k.KeyMode.NONE
    assert s.key_info().mode == k.KeyMode.NONE


@pytest.mark.parametrize("install", ["generate", "import"])
def test_shares_left_from_an_unfinished_recovery_do_not_read_as_a_rotation(cards: Cards, install: str) -> None:
    """The share area holds a rotation's next key once the card has a key (card.rotation): one
    share collected, then a key made or imported, must leave no rotation under way (GET KEY INFO
    next: mode 00; BEGIN ROTATION makes a key of its own)."""
    s = unlocked(cards.new())
    material = k.generate_material(k.KeyMode.SYMMETRIC)
    share = shamir.split(material, 2, 3)[0]
    s.new_transport_key()
    assert s.import_share(k.KeyMode.SYMMETRIC, k.key_info_of(material, k.KeyMode.SYMMETRIC).key_id, share,
                          sealed=False).mode == k.KeyMode.NONE
    if install == "generate":
        s.generate_key(k.KeyMode.PUBLIC)
    else:
        mine = k.generate_material(k.KeyMode.PUBLIC)
        transport = s.new_transport_key()
        s.import_key(k.KeyMode.PUBLIC, seal.seal(transport, mine, k.import_context(s.identity().card_id,
                                                                                     k.KeyMode.PUBLIC)))
    assert s.key_info(next_key=True) == k.KeyInfo(k.KeyMode.NONE)
