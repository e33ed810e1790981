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
from .test_handover import HANDOVERS, sign
from .test_identity import VAULT, VAULT_PUB

if not os.environ.get("JC_HOME"):
    pytest.skip(NO_KIT, allow_module_level=True)

PIN = "1234"
SELECT = bytes(w.select())
VERIFY = bytes(w.verify(PIN))
SETUP = [SELECT, VERIFY]
LOADED = [SELECT, bytes(w.personalize(PIN, "87654321")), VERIFY, bytes(b.put_vault_key(VAULT_PUB)),
          *(bytes(w.store_value(r.body())) for r in FIG15)]


def handover(sequence: int) -> Callable[[Tearable], bytes]:
    """IMPORT CERTIFICATE of HANDOVERS[sequence], signed by the vault for the card at hand."""
    def make(card: Tearable) -> bytes:
        identity = b.Identity.from_bytes(bytes.fromhex(card.send(bytes(b.get_identity()))[0]))
        h = b.Handover(sequence, HANDOVERS[sequence])
        return bytes(b.import_certificate(b.Handover(sequence, h.certificate, sign(VAULT, h.signed_part(identity)))))
    return make


NEW = len(FIG15) + 1
PROBES = [[*SETUP, bytes(b.get_import_counter())], [*SETUP, bytes(w.list_values())],
          [*SETUP, bytes(w.read_value(NEW))], [*SETUP, bytes(w.get_card_info())]]
CASES = [
    Case("IMPORT CERTIFICATE, the first", LOADED, SETUP, [handover(0)], PROBES),
    Case("IMPORT CERTIFICATE, the second", [*LOADED, handover(0)], SETUP, [handover(1)],
         [*PROBES, [*SETUP, bytes(w.read_value(NEW + 1))]]),
]


@pytest.fixture(scope="module")
def applet_card(applet_build: AppletBuild) -> Iterator[AppletCard]:
    with AppletCard(applet_build) as card:
        yield card


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_tearing_at_every_write_of_an_import(case: Case, applet_card: AppletCard, tmp_path: Path) -> None:
    python, _ = sweep_both(case, applet_card, tmp_path)
    assert python.answers[-1][1] == "9000"
