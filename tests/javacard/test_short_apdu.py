"""The longest short APDU (ISO 7816-4 case 4: 255 data bytes and an Le, 261 bytes) reaches the
applet as it reaches the Python card. jCardSim's short APDU buffer is 260 bytes and answered 6F00
to it before the applet saw it, so a handover of exactly 255 bytes (about one in two, as the DER
signatures' lengths vary) was refused on the applet and taken by the Python card; the harness
passes it on in extended form (javacard/harness Harness.fitted)."""

from __future__ import annotations

import os

import pytest

from host.session import WalletSession

from ..card.helpers import personalized
from ..conftest import ISSUER, PIN, PUK
from .applet import NO_KIT, AppletTransport

if not os.environ.get("JC_HOME"):
    pytest.skip(NO_KIT, allow_module_level=True)


def import_certificate(lc: int, le: bytes) -> bytes:
    """IMPORT CERTIFICATE of a malformed handover (an A1 envelope of zeros), ``lc`` bytes long."""
    body = bytes([0xA1, 0x81, lc - 3]) + bytes(lc - 3)
    return bytes([0x80, 0x4E, 0, 0, lc]) + body + le


@pytest.mark.parametrize("le", [b"", b"\x02", b"\x00"], ids=["no Le", "Le 02", "Le 00"])
@pytest.mark.parametrize("lc", [254, 255])
def test_the_longest_short_apdu_reaches_the_applet(applet: AppletTransport, lc: int, le: bytes) -> None:
    session = WalletSession(applet)
    ISSUER.personalize(session, PIN, PUK)
    session.verify_pin(PIN)
    _, python = personalized()
    command = import_certificate(lc, le)
    assert applet.send_and_receive(command) == python.protocol.transport.send_and_receive(command) == (b"", 0x6A80)
