"""Backup and restore end to end on the Java Card applet in pcscd's virtual reader, with a power
cut at an applet write and the flow re-run: every value exactly once, on the card or in the vault
(on loopback) with its certificate on the card.

The card is what ``evb card serve --javacard --card-image HEAP`` serves (card/javacard.py's
:class:`AppletCard` on a heap file, behind the vpcd bridge), driven by the host's own code
(host.backup) through pcscd. The test holds the card object behind the bridge, so it arms the
cut through the harness's own test line (``CUT n``), as test_tearing*.py do in process: no
command of the applet, and nothing of the serving process, knows about it. Each trial is a new
card and a new vault. CI cuts at a few writes spread over the flow, ``EVB_TEST_SIZE=full`` at
every one; a cut costs pcscd a presence poll or two (the card leaves the reader and comes back).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from apdu.records import ValueFlags
from card import ATR
from card.bridge.vpcd import EchoCard, VpcdBridge
from card.javacard import NO_KIT, AppletCard, build
from host.backup import backup, connect, release_unneeded, restore
from host.demo import FIG15
from host.session import WalletSession
from host.transport import CardRemovedError
from host.vault_client import VaultClient
from servers.vault.server import running

from ..conftest import FULL, ISSUER, PIN, PUK
from ..readers import PcscReader

if not os.environ.get("JC_HOME"):
    pytest.skip(NO_KIT, allow_module_level=True)

CI_POINTS = 5  # cut points per flow in CI, both ends included
VALUE = 3  # the value the flows back up and restore (the fig. 15 card's third)

Flow = Callable[[WalletSession, VaultClient, bytes], object]
FLOWS: dict[str, Flow] = {
    "backup": lambda s, vault, key: backup(s, vault, key, VALUE, encrypt=False),  # plain: no key store yet
    "restore": lambda s, vault, key: restore(s, vault, VALUE),
}


@dataclass(frozen=True)
class Trial:
    writes: int  # the applet's persistent writes in the flow's first run
    torn: bool  # the cut fell inside it (and the flow was run again)


@pytest.fixture(scope="module")
def applet_card(pcsc_bridge: VpcdBridge, tmp_path_factory: pytest.TempPathFactory) -> Iterator[AppletCard]:
    """The applet ``evb card serve --javacard`` builds and serves, on a heap file of its own."""
    with AppletCard(build(), state_file=tmp_path_factory.mktemp("heap") / "applet.heap") as card:
        try:
            yield card
        finally:  # the bridge outlives this module: its card must outlive the JVM's end
            pcsc_bridge.swap_card(EchoCard(ATR))


def unlocked(reader: PcscReader, card: AppletCard) -> WalletSession:
    """The card (back) in the reader, through pcscd, its PIN verified."""
    session = WalletSession(reader.insert(card))
    session.verify_pin(PIN)
    return session


def exactly_once(s: WalletSession, vault: VaultClient, original: dict[int, bytes]) -> int:
    """Every value once: on the card as it was, or in the vault and its certificate on the card;
    nothing pending, and no registration left at the vault once the card's receipts released
    what it does not hold. Answers how many are in the vault."""
    held = 0
    for value_id, body in original.items():
        entry = s.read(value_id)
        assert not entry.flags & ValueFlags.PENDING, f"value {value_id} left pending"
        if entry.flags & ValueFlags.CERTIFICATE:
            assert vault.restore(s.begin_restore(value_id)) == body, f"value {value_id}: not in the vault"
            s.cancel_pending(value_id)
            held += 1
        else:
            assert entry.body() == body, f"value {value_id} changed on the card"
    release_unneeded(s, vault)
    assert len(vault.registrations()) == held
    return held


def trial(flow: str, card: AppletCard, reader: PcscReader, tmp: Path, cut: int | None) -> Trial:
    """A new card and vault; the flow with the power cut after ``cut`` applet writes (None:
    never), run again until it goes through; then every value exactly once, the flow's done."""
    tmp.mkdir()
    with running(f"sqlite:///{tmp / 'vault.db'}", tmp / "key.pem") as url, VaultClient(url) as vault:
        card.new_card()
        s = WalletSession(reader.insert(card))
        ISSUER.personalize(s, PIN, PUK)
        s.verify_pin(PIN)
        original = {s.store(record): record.body() for record in FIG15}
        key = connect(s, vault)
        if flow == "restore":
            FLOWS["backup"](s, vault, key)
        start = card.writes
        card.cut_power_after(cut)
        torn = False
        while True:
            try:
                FLOWS[flow](s, vault, key)
                break
            except CardRemovedError:
                assert cut is not None and not torn, "the card went mute with no cut armed"
                writes = card.writes - start
                card.cut_power_after(None)
                torn = True
                s = unlocked(reader, card)  # taken out, back in: powered again
                connect(s, vault)
        if not torn:
            writes = card.writes - start
        card.cut_power_after(None)
        assert exactly_once(s, vault, original) == (1 if flow == "backup" else 0)
        return Trial(writes, torn)


def cut_points(total: int) -> list[int]:
    if FULL or total <= CI_POINTS:
        return list(range(total))
    return sorted({round(i * (total - 1) / (CI_POINTS - 1)) for i in range(CI_POINTS)})


@pytest.mark.parametrize("flow", list(FLOWS))
def test_power_cut_at_applet_writes_then_rerun(flow: str, applet_card: AppletCard, pcsc_bridge: VpcdBridge,
                                               tmp_path: Path) -> None:
    reader = PcscReader(pcsc_bridge)
    try:
        whole = trial(flow, applet_card, reader, tmp_path / "whole", None)
        assert whole.writes > 0 and not whole.torn
        points = cut_points(whole.writes)
        for n in points:
            done = trial(flow, applet_card, reader, tmp_path / f"cut-{n}", n)
            assert done.torn and done.writes == n, f"{flow}: the cut after {n} writes did not fall there"
    finally:
        reader.close()
    print(f"\n{flow}: {whole.writes} applet writes, {len(points)} cut points, each re-run to the end")
