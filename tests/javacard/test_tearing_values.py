"""Power cut at every write of the value commands (docs/APDU.md: STORE, STORE with compaction,
MODIFY, DELETE VALUE), on the applet and on the Python card, through the same APDUs: the sweep
of test_tearing.py (tearing.py) over the card's values (its listing, the values touched read
back, GET CARD INFO's free memory and index use). ``-s`` prints the tear-point counts.

Skipped while the applet has no value index (a branch implements it): they run once it lands.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest

from apdu import wallet as w
from apdu.records import ValueRecord, ValueType
from card.javacard import ROOT, AppletBuild, AppletCard
from host.demo import FIG15

from .applet import NO_KIT
from .tearing import Case, sweep_both

if not os.environ.get("JC_HOME"):
    pytest.skip(NO_KIT, allow_module_level=True)
if "INS_STORE_VALUE" not in (ROOT / "javacard" / "src" / "evb" / "wallet" / "WalletApplet.java").read_text():
    pytest.skip("the applet has no value index yet (javacard/README.md)", allow_module_level=True)

PIN = "1234"
SELECT = bytes(w.select())
VERIFY = bytes(w.verify(PIN))
PERSONALIZED = [SELECT, bytes(w.personalize(PIN, "87654321")), VERIFY]
WITH_FIG15 = [*PERSONALIZED, *(bytes(w.store_value(r.body())) for r in FIG15)]
# the data area full of 300-byte coupons, every other one deleted: free space only in holes,
# so a wide value must compact (ids beyond the last stored are refused alike, 6A88)
FRAGMENTED = [*PERSONALIZED,
              *(bytes(w.store_value(ValueRecord(ValueType.COUPON, f"C{n}", payload=bytes(300)).body()))
                for n in range(100)),
              *(bytes(w.delete_value(n)) for n in range(1, 99, 2))]
WIDE = ValueRecord(ValueType.COUPON, "Wide", payload=bytes(range(256)) * 2)


def probes(*ids: int) -> list[list[bytes]]:
    """What a terminal sees of the values: card info, the listing, the values touched."""
    seen = [[SELECT, VERIFY, bytes(w.get_card_info())], [SELECT, VERIFY, bytes(w.list_values())]]
    return seen + [[SELECT, VERIFY, bytes(w.read_value(n))] for n in ids]


SETUP = [SELECT, VERIFY]
NEW = len(FIG15) + 1
CASES = [
    Case("store", WITH_FIG15, SETUP, [bytes(w.store_value(replace(FIG15[0], name="New ticket").body()))],
         probes(NEW)),
    Case("store with compaction", FRAGMENTED, SETUP, [bytes(w.store_value(WIDE.body()))], probes(99, 100, 101)),
    Case("modify: spend", WITH_FIG15, SETUP,
         [bytes(w.modify_value(3, w.ModifyRequest(w.ModifyOp.SPEND, 300)))], probes(3)),
    Case("modify: use", WITH_FIG15, SETUP, [bytes(w.modify_value(2, w.ModifyRequest(w.ModifyOp.USE, 1)))],
         probes(2)),
    Case("delete", WITH_FIG15, SETUP, [bytes(w.delete_value(2))], probes(2, 3)),
]


@pytest.fixture(scope="module")
def applet_card(applet_build: AppletBuild) -> Iterator[AppletCard]:
    with AppletCard(applet_build) as card:
        yield card


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_tearing_at_every_write_of_the_value_commands(case: Case, applet_card: AppletCard, tmp_path: Path) -> None:
    sweep_both(case, applet_card, tmp_path)
