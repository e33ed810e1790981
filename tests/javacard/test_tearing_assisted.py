"""Power cut at every write of COMMIT ASSISTED RESTORE (docs/APDU.md 5.2, seed E6), in place of a
plain and of an encrypted certificate, on the applet and on the Python card, through the same
APDUs (tearing.py): after the power-on each card holds either the certificate or the value the key
manager sealed to its transport key, never half of either; both answer alike (card info, the
listing, and for the plain certificate the record, each card's id and signatures named).
``-s`` prints the tear-point counts.

Each card makes its own transport key while the step is made (part of the prepared state), and
gets its own blob of the same value.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from apdu import backup as b
from apdu import keys as k
from apdu import seal
from apdu.certificate import Mode, make_digest, value_hash
from card.javacard import AppletBuild, AppletCard

from .applet import NO_KIT
from .tearing import AppletOnHarness, Case, PythonCard, Step, Tearable, exchange, sweep
from .test_backup import cert
from .test_tearing import check
from .test_tearing_backup import across, backed_up, card_of, hexed, probes
from .test_tearing_keys import KEYMGR_D, MATERIAL, PERSONALIZED, PUBLIC, SETUP, VALUE, import_key
from .test_values import MOVIE, command, store

if not os.environ.get("JC_HOME"):
    pytest.skip(NO_KIT, allow_module_level=True)

PIN_KEYMGR = PERSONALIZED[-1]  # PUT KEY MANAGER KEY: a blob opens only under the pinned key


def plain(value: str) -> Callable[[Tearable], bytes]:
    """The vault's plain certificate of ``value`` for this card (made once per card)."""
    return lambda card: cert(card_of(card), value)


def encrypted(value: str) -> Callable[[Tearable], bytes]:
    """The vault's certificate of the E2 ciphertext of ``value`` under MATERIAL (once per card)."""
    raw = bytes.fromhex(value)

    def made(card: Tearable) -> bytes:
        own = card_of(card)
        x = value_hash(k.seal_value(MATERIAL[PUBLIC], PUBLIC, raw, own.card_id))
        return cert(own, value, x=x, digest=make_digest(raw), mode=Mode.ENCRYPTED)
    return made


def commit_backup(value_id: int, certificate: Callable[[Tearable], bytes]) -> Step:
    return lambda card: bytes.fromhex(command(f"8042{value_id:04X}", "00" + certificate(card).hex(), ""))


def assisted(value_id: int, value: str, certificate: Callable[[Tearable], bytes]) -> Step:
    """COMMIT ASSISTED RESTORE of ``value``, sealed by the key manager to a transport key the card
    makes now, for the card and its certificate."""
    def made(card: Tearable) -> bytes:
        data, sw = exchange(card, bytes(k.new_transport_key()))
        assert sw == "9000", sw
        context = k.assisted_context(card_of(card).card_id, certificate(card))
        sealed = seal.seal_symmetric(seal.ecdh(KEYMGR_D, bytes.fromhex(data)), bytes.fromhex(value), context)
        return bytes(b.commit_assisted_restore(value_id, sealed))
    return made


ENCRYPTED = VALUE.hex()
CASES = [
    Case("commit assisted restore, plain", [*backed_up(1, MOVIE), PIN_KEYMGR], SETUP,
         [assisted(1, MOVIE, plain(MOVIE))], probes(1)),
    Case("commit assisted restore, encrypted",
         [*PERSONALIZED, import_key(PUBLIC), *hexed(store(ENCRYPTED)), bytes(b.begin_encrypted_backup(1, b"")),
          commit_backup(1, encrypted(ENCRYPTED))],
         SETUP, [assisted(1, ENCRYPTED, encrypted(ENCRYPTED))], probes(1)),
]


@pytest.fixture(scope="module")
def applet_card(applet_build: AppletBuild) -> Iterator[AppletCard]:
    with AppletCard(applet_build) as card:
        yield card


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_tearing_at_every_write_of_an_assisted_restore(case: Case, applet_card: AppletCard, tmp_path: Path) -> None:
    python = sweep(PythonCard(), case)
    applet = sweep(AppletOnHarness(applet_card, tmp_path), case)
    for result in (python, applet):
        check(result, case)
        assert result.reached() == {"before", "after"} and result.before != result.after
        assert result.answers == (("", "9000"),)
    mine, theirs = across(applet, case), across(python, case)
    # an encrypted certificate's X is each card's own ciphertext: its record is compared within a card
    shared = slice(None) if case.name.endswith("plain") else slice(0, 2)
    assert (mine[1][shared], mine[2]) == (theirs[1][shared], theirs[2])
    print(f"\n{case.name}: python card {python.writes} page writes; applet {applet.writes} persistent writes")
