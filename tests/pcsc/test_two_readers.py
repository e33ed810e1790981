"""Two readers at once through pcscd (seed E5): the wallet card in slot 0, an ID card served by
``evb card serve --kind idcard`` in slot 1: the Python ID card, then the Java Card ID applet
issued through the reader by ``evb card issue-id --id-reader``. The owner's policy needs the
password and the ID card; the escrowed key is restored onto a fresh wallet card with both."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from card import SimulatedCard
from card.bridge.vpcd import VpcdBridge
from card.javacard import NO_KIT
from host import factors
from host.idcard import IdCardSession
from host.keymgr_client import KeyManagerClient, KeyManagerClientError
from host.keys import backup_key, restore_key
from host.session import WalletSession
from host.transport.pcsc import connect_reader
from servers.keymgr.server import running

from ..conftest import ISSUER
from ..readers import PcscReader, retry
from ..servers.test_split_key import FAST
from .test_serve import SLOT1, evb

PASSWORD = "correct horse battery"


@pytest.fixture(params=["python", "javacard"])
def id_card_in_slot1(request: pytest.FixtureRequest, pcscd: None, tmp_path: Path) -> Iterator[IdCardSession]:
    serve = [sys.executable, "-m", "host.cli", "card", "serve", "--kind", "idcard", "--slot", "1"]
    if request.param == "javacard":
        if not os.environ.get("JC_HOME"):
            pytest.skip(NO_KIT)
        proc = subprocess.Popen([*serve, "--javacard"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    else:
        image = tmp_path / "id.img"
        SimulatedCard.issue_idcard("Hanako Yamada", "DL-777", date(2099, 12, 31), ISSUER.sign, pin="2468",
                                   image=image)
        proc = subprocess.Popen([*serve, "--card-image", str(image)],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def session() -> IdCardSession:
        transport = connect_reader(SLOT1)
        try:
            return IdCardSession(transport)
        except Exception:
            transport.close()  # a connection left to the garbage collector fails there, later
            raise

    card = None
    try:
        card = retry(session, timeout=90)  # the first --javacard run builds the CAP
        if request.param == "javacard":  # a blank card: the issuer issues it through the reader
            card.protocol.transport.close()
            evb("card", "issue-id", "--id-reader", SLOT1, "--holder", "Hanako Yamada", "--number", "DL-777",
                "--expiry", "2099-12-31", "--pin-file", str(pin_file(tmp_path)))
            card = session()
        card.verify_pin("2468")
        yield card
    finally:
        if card is not None:
            card.protocol.transport.close()
        proc.kill()
        proc.wait()


def pin_file(folder: Path) -> Path:
    path = folder / "id-pin"
    path.write_text("2468\n")
    path.chmod(0o600)
    return path


def test_a_key_restored_with_password_and_id_card(pcsc_bridge: VpcdBridge, id_card_in_slot1: IdCardSession,
                                                 tmp_path: Path) -> None:
    slot0 = PcscReader(pcsc_bridge)
    try:
        old = WalletSession(slot0.insert(SimulatedCard.manufacture()))
        ISSUER.personalize(old, "1234")
        old.verify_pin("1234")
        info = old.generate_key()
        with running(f"sqlite:///{tmp_path / 'km.db'}", tmp_path / "km.pem", tmp_path / "km.key", FAST) as url:
            with KeyManagerClient(url) as keymgr:
                keymgr.create_account("hanako", PASSWORD)
                factors.login(keymgr, "hanako", PASSWORD)
                backup_key(old, keymgr)
                factors.enrol_id_card(keymgr, id_card_in_slot1)  # slot 1, while slot 0 holds the wallet
                keymgr.set_policy("password and id-card")
            old_id = old.identity().card_id
            new = WalletSession(slot0.insert(SimulatedCard.manufacture()))  # the card was lost: a new one
            ISSUER.personalize(new, "1234")
            new.verify_pin("1234")
            with KeyManagerClient(url) as keymgr:
                with pytest.raises(KeyManagerClientError) as refused:
                    keymgr.login("hanako", PASSWORD)
                assert refused.value.status == 401 and "password and id-card" in refused.value.message
                factors.login(keymgr, "hanako", PASSWORD, id_card=id_card_in_slot1)
                assert restore_key(new, keymgr, old_id) == info
    finally:
        slot0.close()
    readers = evb("readers", "--json").stdout
    assert "Virtual PCD 00 00" in readers and SLOT1 in readers
