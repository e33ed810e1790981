"""The JDK's ``javax.smartcardio`` against the card in pcscd's virtual reader, on T=0 and on T=1
(issue 16): every command case, 61xx + GET RESPONSE under CLA 80 for case-4 commands whose Le the
JDK strips on T=0, 6Cxx re-issue, chaining, PIN, log-out and unblock. The client is compiled
with Debian's openjdk-17 ``javac`` from tests/pcsc/java/EvbClient.java."""

from __future__ import annotations

import glob
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from smartcard.scard import (
    SCARD_PROTOCOL_T0,
    SCARD_PROTOCOL_T1,
    SCARD_RESET_CARD,
    SCARD_S_SUCCESS,
    SCARD_SCOPE_USER,
    SCARD_SHARE_SHARED,
    SCardConnect,
    SCardDisconnect,
    SCardEstablishContext,
    SCardGetErrorMessage,
    SCardReleaseContext,
)

from card import SimulatedCard
from host.session import WalletSession
from host.transport.inprocess import connect_card

from ..card.helpers import clone
from ..conftest import PIN, PUK
from ..readers import SLOT0, PcscReader

SOURCE = Path(__file__).parent / "java" / "EvbClient.java"
STEPS = [
    "connect", "select-case-4", "select-case-3", "card-info-case-2", "card-info-6cxx", "card-info-bad-p1p2",
    "get-identity", "get-attestation", "verify-status", "verify", "verify-status-verified", "store-case-4",
    "store-chained-link", "store-chained-last", "list-case-4", "read-case-2", "read-over-256-get-response",
    "modify-case-4", "put-vault-key", "internal-authenticate-case-4", "get-response-nothing-waiting",
    "unknown-ins", "unknown-cla", "delete-case-1", "delete-gone", "log-out", "delete-after-log-out", "memory-map-case-2",
    "change-pin", "wrong-pin", "reset-retry-counter", "verify-status-after-unblock",
]


def need(tool: str) -> str:
    path = shutil.which(tool)
    if path is None:
        pytest.fail(f"{tool} is not installed: run 'bash scripts/install test' (openjdk-17-jdk-headless)")
    return path


def libpcsclite() -> str:
    """The PC/SC library the JDK must load (it looks for libpcsclite.so, which only -dev ships)."""
    for pattern in ("/usr/lib/*/libpcsclite.so.1", "/usr/lib/libpcsclite.so.1", "/lib/*/libpcsclite.so.1",
                    "/usr/lib64/libpcsclite.so.1"):
        found = sorted(glob.glob(pattern))
        if found:
            return found[0]
    listed = subprocess.run(["ldconfig", "-p"], capture_output=True, text=True).stdout
    for line in listed.splitlines():
        if "libpcsclite.so.1 " in line and "=>" in line:
            return line.split("=>")[1].strip()
    pytest.fail("libpcsclite.so.1 not found: install libpcsclite1")


def reset_in_reader(reader: str) -> None:
    """Reset the card through pcscd (SCardDisconnect with SCARD_RESET_CARD), so the next program
    to connect chooses the protocol: pcscd refuses another one (SCARD_E_PROTO_MISMATCH) while a
    protocol agreed earlier stands, which evb, leaving the card powered, no longer ends."""
    hresult, context = SCardEstablishContext(SCARD_SCOPE_USER)
    assert hresult == SCARD_S_SUCCESS
    try:
        hresult, handle, _ = SCardConnect(context, reader, SCARD_SHARE_SHARED, SCARD_PROTOCOL_T0 | SCARD_PROTOCOL_T1)
        assert hresult == SCARD_S_SUCCESS, SCardGetErrorMessage(hresult)
        assert SCardDisconnect(handle, SCARD_RESET_CARD) == SCARD_S_SUCCESS
    finally:
        SCardReleaseContext(context)


@pytest.fixture(scope="module")
def classes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("java")
    done = subprocess.run([need("javac"), "-d", str(out), str(SOURCE)], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return out


@pytest.mark.parametrize("protocol", ["T=0", "T=1"])
def test_jdk_smartcardio_client(pcsc_bridge, classes: Path, card: SimulatedCard,  # type: ignore[no-untyped-def]
                                protocol: str, request: pytest.FixtureRequest) -> None:
    PcscReader(pcsc_bridge).insert(card).close()  # in the slot, powered, no connection of ours
    # vpcd passes no PPS to the card: the bridge tells it the protocol this client will choose
    # (evb card serve --protocol), so the T=1 run sees T=1's rules (no 61xx without Le)
    pcsc_bridge.protocol = protocol
    request.addfinalizer(lambda: setattr(pcsc_bridge, "protocol", None))
    reset_in_reader(SLOT0)  # our probe agreed T=1 and pcscd keeps it until a reset: start afresh
    assert card.protocol == protocol
    vault_key = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        Encoding.X962, PublicFormat.UncompressedPoint)
    done = subprocess.run(
        [need("java"), f"-Dsun.security.smartcardio.library={libpcsclite()}", "-cp", str(classes), "EvbClient",
         SLOT0, protocol, PIN, PUK, vault_key.hex()],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    steps = [line.split()[1] for line in done.stdout.splitlines() if line.startswith("ok ")]
    assert steps == STEPS and done.stdout.splitlines()[-1] == "done", done.stdout
    assert f"ok connect {protocol}" in done.stdout
    assert card.protocol == protocol
    # what the Java client did is on the card: the prepaid value spent to 500, the voucher deleted
    s = WalletSession(connect_card(clone(card.eeprom.snapshot())))
    assert s.info().pin_tries_remaining == 3  # unblocked back to the PIN, with full tries
    s.verify_pin(PIN)
    assert [(e.name, s.read(e.id).balance) for e in s.list()] == [("Java prepaid", 500)]
