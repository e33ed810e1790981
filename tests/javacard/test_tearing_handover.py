"""Power cut at every write of IMPORT CERTIFICATE (docs/APDU.md 5.3), on the applet and on the
Python card, through the same APDUs (tearing.py): after the power-on each card either holds the
handed-over certificate with its import counter moved on, or neither; both answer alike (the
listing, the record, the counter, card info, and the replay or the next handover). ``-s``
prints the tear-point counts.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from apdu import backup as b
from apdu import wallet as w
from card.javacard import AppletBuild, AppletCard
from host.demo import FIG15

from .applet import NO_KIT
from .tearing import Case, Tearable, sweep_both
from .test_handover import HANDOVERS, old_cert, sign
from .test_identity import VAULT, VAULT_PUB

if not os.environ.get("JC_HOME"):
    pytest.skip(NO_KIT, allow_module_level=True)

PIN = "1234"
SELECT = bytes(w.select())
VERIFY = bytes(w.verify(PIN))
SETUP = [SELECT, VERIFY]
LOADED = [SELECT, bytes(w.personalize(PIN, "87654321")), VERIFY, bytes(b.put_vault_key(VAULT_PUB)),
          *(bytes(w.store_value(r.body())) for r in FIG15)]


def handover(sequence: int, certificate: bytes | None = None) -> Callable[[Tearable], bytes]:
    """IMPORT CERTIFICATE of ``certificate`` (HANDOVERS[sequence]), signed by the vault for the card at hand."""
    def make(card: Tearable) -> bytes:
        identity = b.Identity.from_bytes(bytes.fromhex(card.send(bytes(b.get_identity()))[0]))
        h = b.Handover(sequence, HANDOVERS[sequence] if certificate is None else certificate)
        return bytes(b.import_certificate(b.Handover(sequence, h.certificate, sign(VAULT, h.signed_part(identity)))))
    return make


def filling_a_short_apdu() -> bytes:
    """A certificate whose handover is 255 bytes, a short command's whole data field: the host
    sends it as a case-4 command of 261 bytes (Le too). The lost card's value names its owner, so
    the size follows the name (and the vault's signature, 70 to 72 bytes); in the end-to-end sweep
    (tests/pcsc/test_tearing_javacard.py) the owners' names reached three digits at the handover's
    cut after 33 writes, and the third handover came to 255 bytes."""
    for length in range(64):
        name = b"\x83" + bytes((length,)) + b"n" * length
        cert = old_cert(3, digest=name)
        if len(b.Handover(2, cert, bytes(70)).to_bytes()) == 255:
            return cert
    raise AssertionError("no name makes a handover of 255 bytes")


NEW = len(FIG15) + 1
THREE = [handover(0), handover(1), handover(2, filling_a_short_apdu())]
PROBES = [[*SETUP, bytes(b.get_import_counter())], [*SETUP, bytes(w.list_values())],
          [*SETUP, bytes(w.read_value(NEW))], [*SETUP, bytes(w.get_card_info())]]
CASES = [
    Case("IMPORT CERTIFICATE, the first", LOADED, SETUP, [handover(0)], PROBES),
    Case("IMPORT CERTIFICATE, the second", [*LOADED, handover(0)], SETUP, [handover(1)],
         [*PROBES, [*SETUP, bytes(w.read_value(NEW + 1))]]),
    # a lost card's three certificates as host.recovery.take_handovers imports them, the first
    # torn and then all three re-run: the last, of 255 bytes, answered 6F00 on the applet while
    # jCardSim's short APDU buffer had no room for its Le
    Case("IMPORT CERTIFICATE, the first of three, then the three", LOADED, SETUP, THREE[:1],
         [[*SETUP, *THREE, bytes(b.get_import_counter()), bytes(w.list_values()), bytes(w.read_value(NEW + 2))]]),
]


@pytest.fixture(scope="module")
def applet_card(applet_build: AppletBuild) -> Iterator[AppletCard]:
    with AppletCard(applet_build) as card:
        yield card


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_tearing_at_every_write_of_an_import(case: Case, applet_card: AppletCard, tmp_path: Path) -> None:
    python, _ = sweep_both(case, applet_card, tmp_path)
    assert python.answers[-1][1] == "9000"
