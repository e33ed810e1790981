"""Power cut at every write of PUT TRIGGERS and RECORD RUN (docs/APDU.md 6), on the applet and on
the Python card, through the same APDUs (tearing.py): after the power-on each card is exactly
before or exactly after, as a terminal sees it (the settings, what the condition selects, card
info), and both cards answer alike. ``-s`` prints the tear-point counts.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from apdu import triggers as t
from apdu import wallet as w
from card.javacard import AppletBuild, AppletCard
from host.demo import FIG15

from .applet import NO_KIT
from .tearing import Case, sweep_both

if not os.environ.get("JC_HOME"):
    pytest.skip(NO_KIT, allow_module_level=True)

PIN = "1234"
TODAY = date(2000, 3, 15)
SELECT = bytes(w.select())
VERIFY = bytes(w.verify(PIN))
SETUP = [SELECT, VERIFY]
WITH_FIG15 = [SELECT, bytes(w.personalize(PIN, "87654321")), VERIFY, *(bytes(w.store_value(r.body())) for r in FIG15)]
RUN_BEFORE = [*WITH_FIG15, bytes(t.record_run(date(2000, 1, 1)))]
NEW = t.TriggerSettings(t.parse_condition("type=ticket and name~Movie"), 7, t.ShortagePolicy.AUTOMATIC,
                        both_below=20)
PROBES = [[SELECT, bytes(t.get_triggers())], [SELECT, bytes(t.select_for_backup(TODAY))],
          [SELECT, bytes(w.get_card_info())]]
CASES = [
    Case("PUT TRIGGERS", WITH_FIG15, SETUP, [bytes(t.put_triggers(NEW))], PROBES),
    Case("PUT TRIGGERS, the last run kept", RUN_BEFORE, SETUP, [bytes(t.put_triggers(NEW))], PROBES),
    Case("RECORD RUN, the first", WITH_FIG15, SETUP, [bytes(t.record_run(TODAY))], PROBES),
    Case("RECORD RUN, again", RUN_BEFORE, SETUP, [bytes(t.record_run(TODAY))], PROBES),
]


@pytest.fixture(scope="module")
def applet_card(applet_build: AppletBuild) -> Iterator[AppletCard]:
    with AppletCard(applet_build) as card:
        yield card


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_tearing_at_every_write_of_the_trigger_commands(case: Case, applet_card: AppletCard, tmp_path: Path) -> None:
    python, _ = sweep_both(case, applet_card, tmp_path)
    assert python.before != python.after
