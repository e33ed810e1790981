"""Power cut at every write of the plain backup and restore commands (docs/APDU.md 5: BEGIN /
COMMIT BACKUP swapping or keeping, CANCEL PENDING, BEGIN / COMMIT RESTORE), on the applet and on
the Python card, through the same APDUs: the sweep of test_tearing.py (tearing.py) over what a
terminal sees of the values (card info, the listing, each value touched read back).

The vault's certificate names the card, so each card gets its own (test_backup.cert, made once
per card from its GET IDENTITY); within a card the states are compared byte for byte, and
across the cards with each card's id and its certificates' signatures named instead of given
(test_identity.masked). ``-s`` prints the tear-point counts.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from apdu import backup as b
from card.javacard import AppletBuild, AppletCard

from .applet import NO_KIT
from .tearing import (
    Answer,
    AppletOnHarness,
    Case,
    Observation,
    PythonCard,
    Step,
    Sweep,
    Tearable,
    exchange,
    sweep,
)
from .test_backup import PIN_VAULT, SMALL, begin_backup, begin_restore, cancel, cert, commit_restore
from .test_differential import CARD_INFO, PERSONALIZE, SELECT
from .test_identity import Card, masked
from .test_tearing import check
from .test_values import BIG, LIST_ALL, MOVIE, PREPAID, VERIFY, command, read, store

if not os.environ.get("JC_HOME"):
    pytest.skip(NO_KIT, allow_module_level=True)

COMMIT_BACKUP = bytes.fromhex("80420000")
CARDS: dict[bytes, Card] = {}  # every card a sweep made a certificate for, by its id


def card_of(card: Tearable) -> Card:
    """The card's own id and identity key (one GET IDENTITY, which writes nothing)."""
    identity = b.Identity.from_bytes(bytes.fromhex(exchange(card, bytes(b.get_identity()))[0]))
    return CARDS.setdefault(identity.card_id, Card(identity.card_id, identity.public_key))


def certified(value_id: int, value: str, option: int = 0) -> Callable[[Tearable], bytes]:
    """COMMIT BACKUP with the vault's certificate of ``value`` for this card (one per card, so a
    tear and the whole run commit the same bytes)."""
    return lambda card: bytes.fromhex(
        command(f"8042{value_id:04X}", f"{option:02X}" + cert(card_of(card), value).hex(), ""))


def hexed(*apdus: str) -> list[bytes]:
    return [bytes.fromhex(apdu) for apdu in apdus]


# four values: a movie ticket, a prepaid card, one shorter than its certificate record (the swap
# puts the record in a gap of its own), one longer (so does its restore)
STORED: list[Step] = [*hexed(SELECT, PERSONALIZE, VERIFY, PIN_VAULT,
                             store(MOVIE), store(PREPAID), store(SMALL), store(BIG))]
SETUP = hexed(SELECT, VERIFY)


def backed_up(value_id: int, value: str) -> list[Step]:
    return [*STORED, *hexed(begin_backup(value_id)), certified(value_id, value)]


def probes(*ids: int) -> list[list[bytes]]:
    """What a terminal sees of the values: card info, the listing, each value touched read."""
    return [hexed(SELECT, VERIFY, s) for s in (CARD_INFO, LIST_ALL, *(read(n) for n in ids))]


CASES = [
    Case("begin backup", STORED, SETUP, hexed(begin_backup(1)), probes(1)),
    Case("commit backup: swap", [*STORED, *hexed(begin_backup(1))], SETUP, [certified(1, MOVIE)], probes(1)),
    Case("commit backup: swap, the certificate record longer than the value",
         [*STORED, *hexed(begin_backup(3))], SETUP, [certified(3, SMALL)], probes(3, 4)),
    Case("commit backup: keep", [*STORED, *hexed(begin_backup(2))], SETUP, [certified(2, PREPAID, 1)],
         probes(2)),
    Case("cancel pending backup", [*STORED, *hexed(begin_backup(1))], SETUP, hexed(cancel(1)), probes(1)),
    Case("begin restore", backed_up(1, MOVIE), SETUP, hexed(begin_restore(1)), probes(1)),
    Case("commit restore", [*backed_up(1, MOVIE), *hexed(begin_restore(1))], SETUP,
         hexed(commit_restore(1, MOVIE)), probes(1)),
    Case("commit restore: the value longer than its certificate record",
         [*backed_up(4, BIG), *hexed(begin_restore(4))], SETUP, hexed(commit_restore(4, BIG)), probes(3, 4)),
    Case("cancel pending restore", [*backed_up(1, MOVIE), *hexed(begin_restore(1))], SETUP, hexed(cancel(1)),
         probes(1)),
]


def named(commands: Sequence[bytes], answers: Sequence[Answer]) -> tuple[Answer, ...]:
    """Answers with every card's own values (its id, the vault's signatures for it) named."""
    def one(apdu: bytes, answer: Answer) -> Answer:
        data = bytes.fromhex(answer[0])
        for card in CARDS.values():
            data = masked(card, apdu, data)
        return data.hex(), answer[1]

    return tuple(one(apdu, answer) for apdu, answer in zip(commands, answers, strict=True))


def across(result: Sweep, case: Case) -> tuple[tuple[Answer, ...], Observation, Observation]:
    """What is compared between the cards: the torn command's answers (its steps made for a card
    are COMMIT BACKUPs), the states before and after it, each card's own values named."""
    op = [step if isinstance(step, bytes) else COMMIT_BACKUP for step in case.op]

    def seen(observation: Observation) -> Observation:
        return tuple(named(probe, answers) for probe, answers in zip(case.probes, observation, strict=True))

    return named(op, result.answers), seen(result.before), seen(result.after)


@pytest.fixture(scope="module")
def applet_card(applet_build: AppletBuild) -> Iterator[AppletCard]:
    with AppletCard(applet_build) as card:
        yield card


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_tearing_at_every_write_of_backup_and_restore(case: Case, applet_card: AppletCard,
                                                      tmp_path: Path) -> None:
    python = sweep(PythonCard(), case)
    applet = sweep(AppletOnHarness(applet_card, tmp_path), case)
    for result in (python, applet):
        check(result, case)
        assert result.reached() == {"before", "after"} and result.before != result.after
    assert across(applet, case) == across(python, case)
    print(f"\n{case.name}: python card {python.writes} page writes; applet {applet.writes} persistent writes")
