"""The host's key flows end to end on the Java Card applet in pcscd's virtual reader, against a
vault and a key manager on loopback (issue 19): the card's key escrowed and restored onto a
second applet instance after the first is lost (E3, with the lost card's values handed over);
rotation on the card, then every value restored under the new key (E7); assisted restore onto a
replacement that never held the key (E6); the ID-card applet in the second reader as a login
factor (E5). Each ends with every value backed up exactly once on the card in the reader, none
pending, no certificate left, and nothing left registered at the vault.

The cards are what ``evb card serve --javacard`` serves (card/javacard.py's :class:`AppletCard`
behind the vpcd bridge), driven by the host's own code through pcscd; a "second instance" is a
new JVM, a new card id. The per-command checks of these flows are tests/javacard's (in process);
these prove the applet keeps them through pcscd's T=0 and T=1 framing, 61xx and all.
"""

from __future__ import annotations

import itertools
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

from apdu.idcard import AID_IDCARD
from apdu.keys import KeyInfo, KeyMode
from apdu.records import ValueFlags
from card import ATR
from card.bridge.vpcd import BASE_PORT, EchoCard, VpcdBridge, wait_connected
from card.javacard import ID_APPLET_CLASS, NO_KIT, AppletCard, build
from host import factors
from host.assisted import assisted_restore
from host.backup import backup, connect, release_unneeded, restore
from host.demo import FIG15
from host.idcard import IdCardSession
from host.keymgr_client import KeyManagerClient, KeyManagerClientError
from host.keys import backup_key, enrol_card, restore_key
from host.recovery import inherited, recover, report_lost, take_handovers
from host.rotation import rotate
from host.session import WalletSession
from host.vault_client import VaultClient
from keyfile import load_or_create_key, public_bytes
from servers.keymgr.server import running as keymgr_running
from servers.keymgr.server import statement_key_path
from servers.vault.server import running as vault_running

from ..conftest import ISSUER, PIN, PUK
from ..readers import PcscReader
from ..servers.test_split_key import FAST
from .test_serve import SLOT1

if not os.environ.get("JC_HOME"):
    pytest.skip(NO_KIT, allow_module_level=True)

PASSWORD = "correct horse battery"
ID_PIN = "2468"
VALUES = FIG15[:2]  # few values: each costs a handful of round trips through pcscd per flow
owners = (f"owner{i}" for i in itertools.count())


@dataclass(frozen=True)
class World:
    """The vault and the key manager on loopback, each trusting the other as the real pair does
    (the vault takes the key manager's lost-card statements; the key manager fetches registered
    values for an assisted restore), and an owner logged in."""

    vault: VaultClient
    keymgr: KeyManagerClient
    owner: str


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    km_key = tmp_path / "km.pem"
    trusted = public_bytes(load_or_create_key(statement_key_path(km_key)).public_key())
    with vault_running(f"sqlite:///{tmp_path / 'vault.db'}", tmp_path / "vault.pem", keymgr_key=trusted) as vault_url:
        config = FAST.__class__(**{**FAST.__dict__, "vault_url": vault_url})
        with keymgr_running(f"sqlite:///{tmp_path / 'km.db'}", km_key, tmp_path / "master.key", config) as km_url, \
                KeyManagerClient(km_url) as keymgr, VaultClient(vault_url) as vault:
            owner = next(owners)
            keymgr.create_account(owner, PASSWORD)
            factors.login(keymgr, owner, PASSWORD)
            yield World(vault, keymgr, owner)


@pytest.fixture
def applets() -> Iterator[list[AppletCard]]:
    """Wallet applets made by :func:`new_card`, each in a JVM of its own, closed at the end."""
    made: list[AppletCard] = []
    try:
        yield made
    finally:
        for card in made:
            card.close()


@pytest.fixture
def slot0(pcsc_bridge: VpcdBridge, applets: list[AppletCard]) -> Iterator[PcscReader]:
    reader = PcscReader(pcsc_bridge)
    try:
        yield reader
    finally:
        reader.close()
        # the bridge outlives this test, its applets do not: out of the reader before their JVMs end
        pcsc_bridge.swap_card(EchoCard(ATR))


def new_card(reader: PcscReader, applets: list[AppletCard]) -> WalletSession:
    """A new applet instance (a blank card, its own card id) put in the reader, issued, unlocked."""
    card = AppletCard(build())
    applets.append(card)
    session = WalletSession(reader.insert(card))
    ISSUER.personalize(session, PIN, PUK)
    session.verify_pin(PIN)
    return session


def backed_up(s: WalletSession, world: World, mode: KeyMode = KeyMode.PUBLIC) -> tuple[KeyInfo, list[bytes]]:
    """The owner's card: a key made and escrowed, then every value stored and backed up
    encrypted, its certificate left in its place. Answers the key and the values' bodies."""
    info = s.generate_key(mode)
    assert backup_key(s, world.keymgr) == info
    vault_key = connect(s, world.vault)
    bodies = []
    for record in VALUES:
        value_id = s.store(record)
        bodies.append(s.read(value_id).body())
        assert backup(s, world.vault, vault_key, value_id).action == "backed up, encrypted"
    return info, bodies


def exactly_once(s: WalletSession, world: World, bodies: list[bytes]) -> None:
    """Every value once on the card in the reader, as it was: none twice, none pending, no
    certificate left; and the vault keeps nothing once the card's receipts released it."""
    entries = s.list()
    assert not [e.id for e in entries if e.flags & (ValueFlags.PENDING | ValueFlags.CERTIFICATE)]
    assert Counter(s.read(e.id).body() for e in entries) == Counter(bodies)
    release_unneeded(s, world.vault)
    assert world.vault.registrations() == []


def test_key_escrowed_then_restored_onto_a_second_applet(slot0: PcscReader, applets: list[AppletCard],
                                                        world: World) -> None:
    """E3 and the lost card: the first applet's key comes back whole onto a second instance,
    which takes the lost card's certificates and restores their values (encrypted: the restored
    key opens them)."""
    first = new_card(slot0, applets)
    info, bodies = backed_up(first, world)
    enrol_card(first, world.keymgr)
    lost = first.identity().card_id
    second = new_card(slot0, applets)  # the first is lost: a new card in the reader
    assert second.identity().card_id != lost
    connect(second, world.vault)  # as 'evb recover' does: the card's session at the vault
    result = recover(second, world.vault, world.keymgr, lost)
    assert result.key == f"restored key {info.key_id.hex().upper()}" and second.key_info() == info
    assert result.imported == len(bodies) and not result.failed
    exactly_once(second, world, bodies)
    again = recover(second, world.vault, world.keymgr, lost)  # a re-run brings nothing twice
    assert again.imported == 0 and again.restored == [] and again.key == "kept the card's own key"
    exactly_once(second, world, bodies)


@pytest.mark.parametrize("mode", [KeyMode.PUBLIC, KeyMode.SYMMETRIC])
def test_rotation_on_the_card_then_every_value_restored(slot0: PcscReader, applets: list[AppletCard],
                                                       world: World, mode: KeyMode) -> None:
    """E7: the next key escrowed, every encrypted backup re-encrypted on the card and registered
    anew, the commit, the old registrations released; every value restores under the new key."""
    s = new_card(slot0, applets)
    old, bodies = backed_up(s, world, mode)
    result = rotate(s, world.vault, world.keymgr)
    assert result.moved == len(bodies) and result.key.key_id != old.key_id and result.key.mode == mode
    assert s.key_info() == result.key
    assert len(world.vault.registrations()) == len(bodies)  # the old ones released
    for entry in s.list():
        assert restore(s, world.vault, entry.id).action == "restored"
    exactly_once(s, world, bodies)


def test_assisted_restore_onto_a_card_without_the_key(slot0: PcscReader, applets: list[AppletCard],
                                                      world: World) -> None:
    """E6: the replacement never holds the key; the key manager opens each value with the escrowed
    key and seals it to the card's transport key, the terminal relaying a blob it cannot open."""
    first = new_card(slot0, applets)
    _, bodies = backed_up(first, world)
    lost = first.identity().card_id
    second = new_card(slot0, applets)
    enrol_card(second, world.keymgr)
    connect(second, world.vault)
    report_lost(world.keymgr, world.vault, lost, second.identity().card_id)
    assert take_handovers(second, world.vault) == len(bodies)
    for value_id in inherited(second):
        assert assisted_restore(second, world.keymgr, value_id, world.vault).action == "restored via the key manager"
        assert assisted_restore(second, world.keymgr, value_id, world.vault).action == "already done"
    assert second.key_info().mode == KeyMode.NONE  # the card never held the key
    exactly_once(second, world, bodies)


@pytest.fixture
def id_card(pcscd: None) -> Iterator[IdCardSession]:
    """The ID-card applet in the second reader (slot 1), issued through it, its PIN verified."""
    card = AppletCard(build(), ID_APPLET_CLASS, AID_IDCARD)
    bridge = VpcdBridge(card, port=BASE_PORT + 1)
    reader = PcscReader(bridge, SLOT1)
    try:
        bridge.start()
        wait_connected(bridge)
        IdCardSession(reader.insert(card)).issue("Hanako Yamada", "DL-777", date(2099, 12, 31), ISSUER.sign, ID_PIN)
        session = IdCardSession(reader.insert(card))  # taken out and in again, as after issuing
        session.verify_pin(ID_PIN)
        yield session
    finally:
        reader.close()
        bridge.stop()
        card.close()


def test_login_with_the_id_card_applet_in_the_second_reader(slot0: PcscReader, applets: list[AppletCard],
                                                           world: World, id_card: IdCardSession) -> None:
    """E5: the ID card enrolled and the policy raised; the password alone is then refused, and the
    password with the ID-card applet (slot 1, while slot 0 holds the wallet) logs in and restores
    the lost wallet's key and values onto a second wallet applet."""
    first = new_card(slot0, applets)
    info, bodies = backed_up(first, world)
    enrol_card(first, world.keymgr)
    factors.enrol_id_card(world.keymgr, id_card)
    world.keymgr.set_policy("password and id-card")
    lost = first.identity().card_id
    second = new_card(slot0, applets)
    with KeyManagerClient(world.keymgr.url) as keymgr:
        with pytest.raises(KeyManagerClientError) as refused:
            keymgr.login(world.owner, PASSWORD)
        assert refused.value.status == 401 and "password and id-card" in refused.value.message
        factors.login(keymgr, world.owner, PASSWORD, id_card=id_card)
        assert restore_key(second, keymgr, lost) == info
        connect(second, world.vault)
        result = recover(second, world.vault, keymgr, lost)
    assert result.imported == len(bodies) and not result.failed
    exactly_once(second, world, bodies)
