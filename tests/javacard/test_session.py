"""The host's own code (WalletSession, its APDU processors) drives the applet as it drives the
Python card: the applet is just another Transport."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from apdu import wallet as w
from apdu.sw import InvalidPinError, PinBlockedError
from card import SimulatedCard
from host.backup import backup, connect, release_unneeded, restore
from host.demo import FIG15
from host.session import UnblockRefusedError, WalletSession
from host.transport import Transport
from host.transport.inprocess import connect_card
from host.vault_client import VaultClient
from servers.vault.server import running

from ..conftest import ISSUER, PIN, PUK
from .applet import NO_KIT, AppletTransport

if not os.environ.get("JC_HOME"):
    pytest.skip(NO_KIT, allow_module_level=True)


@pytest.fixture(params=["python card", "applet"])
def fresh_card(request: pytest.FixtureRequest) -> Transport:
    """A new, unpersonalized card: the Python card, then the applet (the same test for both)."""
    if request.param == "applet":
        applet: AppletTransport = request.getfixturevalue("applet")
        return applet
    return connect_card(SimulatedCard.manufacture())


def test_personalize_verify_change_and_unblock(fresh_card: Transport) -> None:
    session = WalletSession(fresh_card)
    info = session.info()
    assert info.life_cycle == w.LifeCycle.PERSONALIZATION and len(info.card_id) == 8
    assert session.personalize(PIN, PUK) == PUK
    assert session.info().life_cycle == w.LifeCycle.OPERATIONAL
    assert session.pin_tries_remaining() == 3
    with pytest.raises(InvalidPinError):
        session.verify_pin("9999")
    assert session.pin_tries_remaining() == 2
    session.verify_pin(PIN)
    assert session.pin_tries_remaining() is None
    session.change_pin(PIN, "5678")
    session.release()
    assert session.pin_tries_remaining() == 3
    for _ in range(3):
        with pytest.raises((InvalidPinError, PinBlockedError)):
            session.verify_pin(PIN)
    assert session.info().pin_tries_remaining == 0
    with pytest.raises(UnblockRefusedError):
        session.unblock_pin("11111111", "2468")
    session.unblock_pin(PUK, "2468")
    session.verify_pin("2468")
    assert session.info().pin_tries_remaining == 3


@pytest.fixture
def vault(tmp_path: Path) -> Iterator[VaultClient]:
    with running(f"sqlite:///{tmp_path / 'vault.db'}", tmp_path / "vault-key.pem") as url, VaultClient(url) as client:
        yield client


def test_backup_and_restore_through_a_real_vault(applet: AppletTransport, vault: VaultClient) -> None:
    """The host's backup flow (host.backup, a vault on loopback) on the applet: attested by the
    test issuer, the fig. 15 values backed up (one kept on the card), refused twice as done,
    restored, and every registration released against the card's receipts."""
    session = WalletSession(applet)
    ISSUER.personalize(session, PIN, PUK)
    session.verify_pin(PIN)
    ids = [session.store(record) for record in FIG15]
    original = {i: session.read(i).body() for i in ids}
    key = connect(session, vault)
    for i in ids[:-1]:  # plain (E1): the key store is not the applet's yet
        assert backup(session, vault, key, i, encrypt=False).action == "backed up"
        assert backup(session, vault, key, i, encrypt=False).action == "already done"
    assert backup(session, vault, key, ids[-1], keep=True, encrypt=False).action == "kept and backed up"
    info = session.info()
    assert (info.certificate_count, info.value_count) == (len(ids) - 1, 1)
    assert len(vault.registrations()) == len(ids)
    for i in ids[:-1]:
        assert restore(session, vault, i).action == "restored"
    assert {i: session.read(i).body() for i in ids} == original
    session.use(ids[-1], 1)  # the kept copy goes stale: its registration can be released too
    release_unneeded(session, vault)
    assert vault.registrations() == []
