"""The host's server-assisted restore (seed E6, host.assisted: what ``evb restore --via-keymgr``
runs) end to end on the applet, through the in-process harness transport, against a real vault
and key manager on loopback that know each other. The card restoring does not hold the key its
values were encrypted under (a lost card's certificates handed over to a new card): the key
manager fetches each registered value from the vault, opens it with the escrowed key and seals it
to the new card's transport key; every value comes back exactly once."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from apdu import keys as k
from apdu.certificate import Mode
from apdu.records import ValueFlags
from host import factors
from host.assisted import assisted_restore
from host.backup import BackupError, backup, certificates_on, connect, restore
from host.demo import FIG15
from host.keymgr_client import KeyManagerClient
from host.keys import backup_key, enrol_card
from host.recovery import inherited, report_lost, take_handovers
from host.vault_client import VaultClient
from keyfile import load_or_create_key, public_bytes
from servers.keymgr.server import running as keymgr_running
from servers.keymgr.server import statement_key_path
from servers.vault.server import running as vault_running

from .applet import NO_KIT, AppletTransport
from .test_key_flows import FAST, opened
from .test_key_flows import second as second  # noqa: F401 (fixture)

if not os.environ.get("JC_HOME"):
    pytest.skip(NO_KIT, allow_module_level=True)


@pytest.fixture
def linked(tmp_path: Path) -> Iterator[tuple[VaultClient, KeyManagerClient]]:
    """A key manager that fetches from the vault, and a vault that trusts its statements."""
    trusted = public_bytes(load_or_create_key(statement_key_path(tmp_path / "km.pem")).public_key())
    with vault_running(f"sqlite:///{tmp_path / 'v.db'}", tmp_path / "v.pem", keymgr_key=trusted) as vault_url, \
            keymgr_running(f"sqlite:///{tmp_path / 'km.db'}", tmp_path / "km.pem", tmp_path / "km.key",
                           FAST.__class__(**{**FAST.__dict__, "vault_url": vault_url})) as keymgr_url, \
            VaultClient(vault_url) as vault, KeyManagerClient(keymgr_url) as keymgr:
        keymgr.create_account("hanako", "correct horse battery")
        factors.login(keymgr, "hanako", "correct horse battery")
        yield vault, keymgr


@pytest.mark.parametrize("mode", [k.KeyMode.PUBLIC, k.KeyMode.SYMMETRIC])
def test_assisted_restore_onto_a_card_without_the_key(applet: AppletTransport, second: AppletTransport,  # noqa: F811
                                                      linked: tuple[VaultClient, KeyManagerClient],
                                                      mode: k.KeyMode) -> None:
    vault, keymgr = linked
    lost = opened(applet)
    lost.generate_key(mode)
    ids = [lost.store(record) for record in FIG15]
    original = sorted(lost.read(i).body() for i in ids)
    vault_key = connect(lost, vault)
    for i in ids:
        assert backup(lost, vault, vault_key, i).action == "backed up, encrypted"
    assert {c.mode for c in certificates_on(lost)} == {Mode.ENCRYPTED}
    backup_key(lost, keymgr)  # escrowed: the key manager can open what the lost card sealed
    lost_id = lost.identity().card_id

    card = opened(second)
    enrol_card(card, keymgr)
    assert report_lost(keymgr, vault, lost_id, card.identity().card_id) == len(ids)
    connect(card, vault)  # the vault's session is now the new card's
    assert take_handovers(card, vault) == len(ids)
    handed = inherited(card)
    assert len(handed) == len(ids) and card.key_info().mode == k.KeyMode.NONE
    with pytest.raises(BackupError, match="no key .*--via-keymgr"):  # the card alone cannot open them (6984)
        restore(card, vault, handed[0])
    assert card.read(handed[0]).flags == ValueFlags.CERTIFICATE  # as it was: not left pending
    for i in handed:
        assert assisted_restore(card, keymgr, i, vault).action == "restored via the key manager"
    for i in handed:  # a re-run restores nothing twice
        assert assisted_restore(card, keymgr, i, vault).action == "already done"
    assert sorted(card.read(e.id).body() for e in card.list()) == original  # every value, once
    assert certificates_on(card) == [] and vault.registrations() == []  # each registration released
