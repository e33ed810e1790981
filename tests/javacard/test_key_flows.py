"""The host's key and encrypted-backup flows (host.keys, host.backup) run end to end on the applet
through the in-process harness transport, against a real vault and key manager on loopback: the
card generates its key, backs values up encrypted (E2), restores them, escrows the key with the
key manager (E3) and splits it (E4); a second applet instance takes the key back from the escrow,
and from the split, and is then the same key holder as the first."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from apdu import keys as k
from apdu.certificate import Mode
from host import factors
from host.backup import backup, certificates_on, connect, release_unneeded, restore
from host.demo import FIG15
from host.keymgr_client import KeyManagerClient
from host.keys import KeyFlowError, backup_key, restore_key, restore_split_key, split_key
from host.rotation import encrypted_certificates, rotate
from host.session import WalletSession
from host.vault_client import VaultClient
from servers.keymgr.config import KeyManagerConfig
from servers.keymgr.server import running as keymgr_running
from servers.vault.server import running as vault_running

from ..conftest import ISSUER, PIN, PUK
from .applet import NO_KIT, AppletTransport, Build

if not os.environ.get("JC_HOME"):
    pytest.skip(NO_KIT, allow_module_level=True)

FAST = KeyManagerConfig(argon2_time_cost=1, argon2_memory_kib=8192, argon2_parallelism=1)


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[VaultClient, KeyManagerClient]]:
    with vault_running(f"sqlite:///{tmp_path / 'vault.db'}", tmp_path / "vault-key.pem") as vault_url, \
            keymgr_running(f"sqlite:///{tmp_path / 'keymgr.db'}", tmp_path / "keymgr-key.pem",
                           tmp_path / "master.key", FAST) as keymgr_url, \
            VaultClient(vault_url) as vault, KeyManagerClient(keymgr_url) as keymgr:
        keymgr.create_account("hanako", "correct horse battery")
        factors.login(keymgr, "hanako", "correct horse battery")
        yield vault, keymgr


@pytest.fixture
def second(applet_build: Build) -> Iterator[AppletTransport]:
    """Another card holding the applet, in its own JVM."""
    transport = AppletTransport(applet_build)
    yield transport
    transport.close()


def opened(transport: AppletTransport) -> WalletSession:
    session = WalletSession(transport)
    ISSUER.personalize(session, PIN, PUK)
    session.verify_pin(PIN)
    return session


@pytest.mark.parametrize("mode", [k.KeyMode.PUBLIC, k.KeyMode.SYMMETRIC])
def test_key_escrow_and_encrypted_backup_on_the_applet(applet: AppletTransport, second: AppletTransport,
                                                       servers: tuple[VaultClient, KeyManagerClient],
                                                       mode: k.KeyMode) -> None:
    vault, keymgr = servers
    session = opened(applet)
    info = session.generate_key(mode)
    ids = [session.store(record) for record in FIG15]
    original = {i: session.read(i).body() for i in ids}
    vault_key = connect(session, vault)
    for i in ids[:-1]:
        assert backup(session, vault, vault_key, i).action == "backed up, encrypted"  # the card has a key
        assert backup(session, vault, vault_key, i).action == "already done"
    assert backup(session, vault, vault_key, ids[-1], keep=True).action == "kept and backed up, encrypted"
    assert {c.mode for c in certificates_on(session)} == {Mode.ENCRYPTED}
    assert len(vault.registrations()) == len(ids)

    assert backup_key(session, keymgr) == info  # E3: escrowed, sealed to the key manager
    _, codes = split_key(session, keymgr, vault, 2, 3)  # E4: one share each to the servers, one code
    assert len(codes) == 1

    for i in ids[:-1]:
        assert restore(session, vault, i).action == "restored"
    assert {i: session.read(i).body() for i in ids} == original
    session.use(ids[-1], 1)  # the kept copy goes stale: every registration can be released now
    release_unneeded(session, vault)
    assert vault.registrations() == []

    # the escrowed key onto a second applet instance: the same key, once
    other = opened(second)
    card_id = session.identity().card_id
    assert restore_key(other, keymgr, card_id) == info
    with pytest.raises(KeyFlowError, match="already has a key"):
        restore_key(other, keymgr, card_id)
    # and from the split: the key manager's share and the owner's recovery code
    second.new_card()
    third = opened(second)
    assert restore_split_key(third, keymgr, card_id, codes) == info


@pytest.mark.parametrize("mode", [k.KeyMode.PUBLIC, k.KeyMode.SYMMETRIC])
def test_key_rotation_on_the_applet(applet: AppletTransport, servers: tuple[VaultClient, KeyManagerClient],
                                    mode: k.KeyMode) -> None:
    """Seed E7 with host.rotation: the next key escrowed, every encrypted backup re-encrypted on
    the card and registered anew, the commit, the old registrations released; every value then
    restores under the new key."""
    vault, keymgr = servers
    session = opened(applet)
    old = session.generate_key(mode)
    ids = [session.store(record) for record in FIG15]
    original = {i: session.read(i).body() for i in ids}
    vault_key = connect(session, vault)
    for i in ids:
        backup(session, vault, vault_key, i)
    assert backup_key(session, keymgr) == old
    result = rotate(session, vault, keymgr)
    assert result.moved == len(ids) and result.key.key_id != old.key_id and result.key.mode == mode
    assert session.key_info() == result.key and encrypted_certificates(session, rotated=True) == []
    assert len(vault.registrations()) == len(ids)  # the old ones released against the card's receipts
    again = rotate(session, vault, keymgr)  # a second rotation moves them all again, to a third key
    assert again.moved == len(ids) and again.key.key_id not in (old.key_id, result.key.key_id)
    for i in ids:
        assert restore(session, vault, i).action == "restored"
    assert {i: session.read(i).body() for i in ids} == original
