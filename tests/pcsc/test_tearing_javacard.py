"""Backup and restore end to end on the Java Card applet in pcscd's virtual reader, plain and
encrypted (seed E1, E2), and the card's key made and escrowed to the key manager (E3), with a
power cut at an applet write and the flow re-run: every value exactly once, on the card or in
the vault (on loopback) with its certificate on the card; nothing pending; the key manager
escrows the card's key and no other; no registration left at the vault once the card's receipts
released what it does not hold.

The card is what ``evb card serve --javacard --card-image HEAP`` serves (card/javacard.py's
:class:`AppletCard` on a heap file, behind the vpcd bridge), driven by the host's own code
(host.backup, host.keys) through pcscd. The test holds the card object behind the bridge, so it
arms the cut through the harness's own test line (``CUT n``), as test_tearing*.py do in process:
no command of the applet, and nothing of the serving process, knows about it. Each trial is a new
card, vault and key manager account. CI cuts at a few writes spread over the flow,
``EVB_TEST_SIZE=full`` at every one; a cut costs pcscd a presence poll or two (the card leaves
the reader and comes back). The per-command sweeps of the key store's commands are
tests/javacard/test_keys.py's and test_tearing*.py's; these cut the flows the host runs.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import pytest

from apdu import backup as b
from apdu import triggers as t
from apdu.certificate import Certificate, make_digest, value_hash
from apdu.keys import KeyMode
from apdu.records import ValueFlags, ValueRecord
from card import ATR
from card.bridge.vpcd import EchoCard, VpcdBridge
from card.javacard import NO_KIT, AppletCard, build
from host import factors
from host.backup import backup, connect, release_unneeded, restore
from host.demo import FIG15
from host.keymgr_client import KeyManagerClient
from host.keys import backup_key, enrol_card, key_from_keymgr, restore_key
from host.recovery import report_lost, take_handovers
from host.session import WalletSession
from host.transport import CardRemovedError
from host.triggers import VaultLink, free_percent, run_if_due
from host.vault_client import VaultClient
from servers.keymgr.server import running as keymgr_running
from servers.vault.server import running

from ..card.helpers import personalized
from ..conftest import FULL, ISSUER, PIN, PUK
from ..host.test_triggers_flow import TODAY
from ..readers import PcscReader
from ..servers.test_recovery import PASSWORD, Lost, lose_a_card, names
from ..servers.test_recovery import World as Servers
from ..servers.test_split_key import FAST

if not os.environ.get("JC_HOME"):
    pytest.skip(NO_KIT, allow_module_level=True)

CI_POINTS = 5  # cut points per flow in CI, both ends included
VALUE = 3  # the value the flows back up and restore (the fig. 15 card's third)
# the factory condition (C and G, the fig. 15 card's second and fourth, on TODAY), a week apart
TRIGGERS = replace(t.FACTORY_SETTINGS, period_days=7, policy=t.ShortagePolicy.AUTOMATIC)


@dataclass(frozen=True)
class World:
    """What a flow talks to besides the card: the vault (its key, as the card pinned it) and the
    key manager, logged in as the card's owner; the owner's lost card when the flow recovers it."""

    vault: VaultClient
    vault_key: bytes
    keymgr: KeyManagerClient
    vault_url: str
    lost: Lost | None = None

    @property
    def lost_card(self) -> Lost:
        assert self.lost is not None, "a flow recovering a lost card in a world without one"
        return self.lost


def key_and_escrow(s: WalletSession, world: World) -> None:
    """``evb key init`` then ``evb key backup``; re-run as the owner would after a failed one:
    ``evb key info`` first, so a key the card already made is escrowed, not refused (6985)."""
    if s.key_info().mode == KeyMode.NONE:
        s.generate_key()
    backup_key(s, world.keymgr)


def key_from_keymgr_once(s: WalletSession, world: World) -> None:
    """``evb key init --by-keymgr``; re-run as the owner would after a failed one: not when the
    card has its key already (refused: "the card already has a key")."""
    if s.key_info().mode == KeyMode.NONE:
        key_from_keymgr(s, world.keymgr)


def lost_reported(s: WalletSession, world: World) -> None:
    """``evb keymgr lost`` (host.recovery.recover's first steps): the replacement enrolled, the
    lost card revoked, its certificates waiting at the vault for this one."""
    enrol_card(s, world.keymgr)
    report_lost(world.keymgr, world.vault, world.lost_card.card_id, s.identity().card_id)


def triggered(s: WalletSession, world: World) -> None:
    """``evb triggers set`` then the periodic run a terminal session starts with (fig. 40)."""
    s.put_triggers(TRIGGERS)
    with VaultLink(world.vault_url) as link:
        run_if_due(s, link, TODAY)


def run_recorded(s: WalletSession, world: World) -> None:
    """The run recorded (today, once: not due again today) with the settings as set."""
    settings = s.triggers()
    assert settings == replace(TRIGGERS, last_run=TODAY), f"the run not recorded as set: {settings}"
    assert not settings.due(TODAY, free_percent(s)), "the run is due again the day it ran"


@dataclass(frozen=True)
class Flow:
    after: tuple[str, ...]  # the flows run (uncut) first, in order
    run: Callable[[WalletSession, World], object]
    in_vault: int = 0  # values in the vault once it is done
    lost: bool = False  # the owner had a card before this one, lost with three values backed up
    check: Callable[[WalletSession, World], None] | None = None  # before the values are checked


def _backup(encrypt: bool) -> Flow:
    return Flow(("key",) if encrypt else (), lambda s, w: backup(s, w.vault, w.vault_key, VALUE, encrypt=encrypt), 1)


FLOWS: dict[str, Flow] = {
    "backup": _backup(encrypt=False),
    "restore": Flow(("backup",), lambda s, w: restore(s, w.vault, VALUE)),
    "key": Flow((), key_and_escrow),
    "key by the key manager": Flow((), key_from_keymgr_once),
    "encrypted backup": _backup(encrypt=True),
    "encrypted restore": Flow(("key", "encrypted backup"), lambda s, w: restore(s, w.vault, VALUE)),
    "lost card reported": Flow((), lost_reported, lost=True),
    "handover": Flow(("lost card reported",), lambda s, w: take_handovers(s, w.vault), lost=True),
    "triggered backup": Flow((), triggered, 2, check=run_recorded),
}
CUT = [name for name in FLOWS if name != "lost card reported"]  # it writes nothing on the card

# The lost card's three backed-up values (fig. 15's first three) are named so that their handovers
# are of these sizes, whatever the trial count: the longest short APDU's data and the first
# extended one (the same boundary twice), and a long extended one. A size is counted with both of
# the vault's signatures in it (the certificate's, the handover's) at 70 bytes; each is 70 or 71
# (r's DER), so a handover is its size or up to 2 more: 254 is 254, 255 or 256 (as 70 + 70,
# 70 + 71, 71 + 71), on either side of 255, the short data field's end. The host sends none
# chained: the card's ATR offers extended length (chains are tests/javacard's, in process).
HANDOVER_SIZES = (254, 300, 254)


def handover_size(record: ValueRecord, name: str) -> int:
    """The handover of ``record`` named ``name``, with 70-byte signatures (sequence and counter
    are fixed-width, the card id 8 bytes)."""
    body = replace(record, name=name).body()
    cert = Certificate(bytes(8), 1, value_hash(body), make_digest(body), signature=bytes(70))
    return len(b.Handover(0, cert.to_bytes(), bytes(70)).to_bytes())


def sized_names() -> list[str]:
    names = []
    for record, size in zip(FIG15, HANDOVER_SIZES, strict=False):
        fits = [n for n in range(1, 65) if handover_size(record, record.name[0] * n) == size]
        assert fits, f"no name makes {record.name}'s handover {size} bytes"
        names.append(record.name[0] * fits[0])
    return names


HANDOVER_NAMES = sized_names()


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


@pytest.fixture(scope="module")
def keymgr_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One key manager for the module; each trial's owner has an account of their own."""
    tmp = tmp_path_factory.mktemp("keymgr")
    with keymgr_running(f"sqlite:///{tmp / 'km.db'}", tmp / "km.pem", tmp / "master.key", FAST) as url:
        yield url


def unlocked(reader: PcscReader, card: AppletCard) -> WalletSession:
    """The card (back) in the reader, through pcscd, its PIN verified."""
    session = WalletSession(reader.insert(card))
    session.verify_pin(PIN)
    return session


def exactly_once(s: WalletSession, world: World, original: dict[int, bytes]) -> int:
    """Every value once: on the card as it was, or in the vault with its certificate on the card
    (restored through the host's own flow, the card checking the vault's answer against the
    certificate, so an encrypted one is proved too); nothing pending; the lost card's backed-up
    values each once more, from certificates handed over one per step of the import counter
    (none twice), and nothing else; the vault keeps nothing once the card's receipts released
    what it does not hold; the key manager escrows the card's key and no other, and gives it
    back onto a new (Python) card. Answers how many of the card's own values were in the vault."""
    held = 0
    inherited = [e.id for e in s.list() if e.id not in original]
    assert s.import_counter() == len(inherited), "the import counter is not the certificates handed over"
    for value_id in [*original, *inherited]:
        entry = s.read(value_id)
        assert not entry.flags & ValueFlags.PENDING, f"value {value_id} left pending"
        assert value_id in original or entry.flags & ValueFlags.CERTIFICATE, f"value {value_id} from nowhere"
        if entry.flags & ValueFlags.CERTIFICATE:
            restore(s, world.vault, value_id)
            held += value_id in original
        assert value_id not in original or s.read(value_id).body() == original[value_id], \
            f"value {value_id} not what it was"
    backed_up = world.lost.backed_up if world.lost else []
    assert Counter(s.read(i).body() for i in inherited) == Counter(backed_up), "the lost card's values not once each"
    release_unneeded(s, world.vault)
    assert world.vault.registrations() == [], "a registration left at the vault"
    info, card_id = s.key_info(), s.identity().card_id
    escrowed = {e.key_id for e in world.keymgr.status()[1].get(card_id, [])}
    assert escrowed == ({info.key_id} if info.mode != KeyMode.NONE else set()), "the escrow is not the card's key"
    if info.mode != KeyMode.NONE:  # and what a new card would be given is the card's key
        assert restore_key(personalized()[1], world.keymgr, card_id) == info, "the key manager gives back another key"
    return held


def trial(flow: str, card: AppletCard, reader: PcscReader, keymgr_url: str, tmp: Path, cut: int | None) -> Trial:
    """A new card, vault and owner; the flow with the power cut after ``cut`` applet writes
    (None: never), run again until it goes through; then every value exactly once, the flow's done."""
    tmp.mkdir()
    with KeyManagerClient(keymgr_url) as keymgr, \
            running(f"sqlite:///{tmp / 'vault.db'}", tmp / "key.pem", keymgr_key=keymgr.statement_key()) as url, \
            VaultClient(url) as vault:
        lost = lose_a_card(Servers(keymgr_url, url), encrypted=False, value_names=HANDOVER_NAMES) \
            if FLOWS[flow].lost else None
        owner = lost.name if lost else next(names)
        if not lost:
            keymgr.create_account(owner, PASSWORD)
        factors.login(keymgr, owner, PASSWORD)
        card.new_card()
        s = WalletSession(reader.insert(card))
        ISSUER.personalize(s, PIN, PUK)
        s.verify_pin(PIN)
        original = {s.store(record): record.body() for record in FIG15}
        world = World(vault, connect(s, vault), keymgr, url, lost)
        for before in FLOWS[flow].after:
            FLOWS[before].run(s, world)
        start = card.writes
        card.cut_power_after(cut)
        torn = False
        while True:
            try:
                FLOWS[flow].run(s, world)
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
        if (check := FLOWS[flow].check) is not None:
            check(s, world)
        assert exactly_once(s, world, original) == FLOWS[flow].in_vault
        return Trial(writes, torn)


def cut_points(total: int) -> list[int]:
    if FULL or total <= CI_POINTS:
        return list(range(total))
    return sorted({round(i * (total - 1) / (CI_POINTS - 1)) for i in range(CI_POINTS)})


@pytest.mark.parametrize("flow", CUT)
def test_power_cut_at_applet_writes_then_rerun(flow: str, applet_card: AppletCard, pcsc_bridge: VpcdBridge,
                                               keymgr_url: str, tmp_path: Path) -> None:
    reader = PcscReader(pcsc_bridge)
    try:
        whole = trial(flow, applet_card, reader, keymgr_url, tmp_path / "whole", None)
        assert whole.writes > 0 and not whole.torn
        points = cut_points(whole.writes)
        for n in points:
            done = trial(flow, applet_card, reader, keymgr_url, tmp_path / f"cut-{n}", n)
            assert done.torn and done.writes == n, f"{flow}: the cut after {n} writes did not fall there"
    finally:
        reader.close()
    print(f"\n{flow}: {whole.writes} applet writes, {len(points)} cut points, each re-run to the end")
