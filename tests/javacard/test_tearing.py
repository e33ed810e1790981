"""Power cut at every write of each state-changing command, on the applet and on the Python card.

For each command (tearing.py runs the sweep): after the cut and a power-on, each card is exactly
as before the command, exactly as after it, or (for a command that checks a PIN or unblocking
code) as before with one try spent, the try counter being spent before the comparison; both
sides of the commit point are reached; and the two cards answer every probe the same, so the
states a tear can leave are the same states on both.

The tear-point counts differ by design: the Python card counts EEPROM page writes (journal
record, commit byte, data pages), the applet its persistent writes (each store, field write,
arrayCopy or setShort: a Java Card's commit buffer is below the applet). ``-s`` prints them.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest

from apdu import idcard as i
from apdu import wallet as w
from apdu.command import CommandApdu
from card.javacard import ID_APPLET_CLASS, AppletBuild, AppletCard

from ..conftest import ISSUER
from .applet import NO_KIT
from .tearing import AppletOnHarness, Case, PythonCard, Sweep, Tearable, sweep

if not os.environ.get("JC_HOME"):
    pytest.skip(NO_KIT, allow_module_level=True)


def apdu(text: str) -> bytes:
    return bytes.fromhex(text)


def pin(digits: str) -> str:
    return digits.encode().hex().upper().ljust(16, "F")


def puk(digits: str) -> str:
    return digits.encode().hex().upper()


SELECT = apdu("00A4040008F0455642574C0101")
CARD_INFO = apdu("801000001D")
PERSONALIZE = apdu("8002000010" + pin("1234") + puk("87654321"))


def verify(digits: str) -> bytes:
    return apdu("0020008108" + pin(digits))


def change(old: str, new: str) -> bytes:
    return apdu("0024008110" + pin(old) + pin(new))


def unblock(code: str, new: str) -> bytes:
    return apdu("002C008110" + puk(code) + pin(new))


# what a terminal sees of the PIN state, each from the recovered card: the card info (life cycle,
# tries), which PIN opens it, and what is left of the unblocking code (a wrong one answers 63Cx)
PROBES = [
    [SELECT, CARD_INFO],
    [SELECT, verify("1234")],
    [SELECT, verify("5678")],
    [SELECT, unblock("11111111", "2468")],
    [SELECT, unblock("87654321", "2468"), verify("2468")],
]
PERSONALIZED = [SELECT, PERSONALIZE]

CASES = [
    Case("personalize", prepare=[], setup=[SELECT], op=[PERSONALIZE], probes=PROBES),
    Case("change PIN", prepare=PERSONALIZED, setup=[SELECT], op=[change("1234", "5678")], probes=PROBES,
         spent=[change("9999", "5678")]),
    Case("verify, wrong PIN", prepare=PERSONALIZED, setup=[SELECT], op=[verify("9999")], probes=PROBES),
    Case("verify, right PIN after a wrong one", prepare=[*PERSONALIZED, verify("9999")], setup=[SELECT],
         op=[verify("1234")], probes=PROBES, spent=[verify("9999")]),
    Case("reset retry counter", prepare=[*PERSONALIZED, *[verify("9999")] * 3], setup=[SELECT],
         op=[unblock("87654321", "5678")], probes=PROBES, spent=[unblock("11111111", "5678")]),
]


# the ID card (seed E5): issued once by PUT DATA, with its PIN; then VERIFY
ID_SELECT = bytes(CommandApdu(0x00, 0xA4, 0x04, 0x00, i.AID_IDCARD))
ID_PIN, ID_WRONG = "2468", "1357"


def issue(card: Tearable) -> bytes:
    """PUT DATA of a document naming the card's own key, signed by the issuer, with a PIN."""
    key = i.parse_public_key(bytes.fromhex(card.send(bytes(i.get_public_key()))[0]))
    document = i.IdDocument.signed("Hanako Yamada", "DL-1", date(2031, 3, 31), key, True, ISSUER.sign)
    return bytes(i.put_document(document, w.pin_block(ID_PIN)))


ID_PROBES = [[ID_SELECT, bytes(i.get_document())], [ID_SELECT, verify(ID_PIN)], [ID_SELECT, verify(ID_WRONG)]]
ID_CASES = [
    Case("ID card: issue", prepare=[ID_SELECT], setup=[ID_SELECT], op=[issue], probes=ID_PROBES, idcard=True),
    Case("ID card: verify, wrong PIN", prepare=[ID_SELECT, issue], setup=[ID_SELECT], op=[verify(ID_WRONG)],
         probes=ID_PROBES, idcard=True),
    Case("ID card: verify, right PIN after a wrong one", prepare=[ID_SELECT, issue, verify(ID_WRONG)],
         setup=[ID_SELECT], op=[verify(ID_PIN)], probes=ID_PROBES, spent=[verify(ID_WRONG)], idcard=True),
]
CASES += ID_CASES


@pytest.fixture(scope="module")
def applet_card(applet_build: AppletBuild) -> Iterator[AppletCard]:
    with AppletCard(applet_build) as card:
        yield card


@pytest.fixture(scope="module")
def id_applet_card(applet_build: AppletBuild) -> Iterator[AppletCard]:
    with AppletCard(applet_build, ID_APPLET_CLASS, i.AID_IDCARD) as card:
        yield card



def check(result: Sweep, case: Case) -> None:
    assert result.writes > 0
    assert not result.unexpected(), f"{result.card}, {case.name}: torn after {result.unexpected()} writes"
    assert {"before", "after"} <= result.reached(), f"{result.card}, {case.name}: both sides of the commit"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_tearing_at_every_write_on_both_cards(case: Case, applet_card: AppletCard, id_applet_card: AppletCard,
                                              tmp_path: Path) -> None:
    python = sweep(PythonCard(case.idcard), case)
    applet = sweep(AppletOnHarness(id_applet_card if case.idcard else applet_card, tmp_path), case)
    check(python, case)
    check(applet, case)
    assert applet.answers == python.answers
    assert (applet.before, applet.after, applet.spent) == (python.before, python.after, python.spent)
    print(f"\n{case.name}: python card {python.writes} page writes, reached {sorted(python.reached())}; "
          f"applet {applet.writes} persistent writes, reached {sorted(applet.reached())}")
