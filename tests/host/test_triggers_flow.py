"""Automatic backup against a real vault on loopback: the periodic run of the card's conditions,
each storage-shortage policy on store and on restore, an automatic backup that cannot free
enough (nothing changes), and a power cut at every card write of an automatic run."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import date, timedelta
from pathlib import Path

import pytest

from apdu import triggers as t
from apdu.records import ValueFlags, ValueRecord
from card import SimulatedCard
from host import triggers as tr
from host.backup import BackupError, backup, connect, restore
from host.demo import FIG15
from host.session import WalletSession
from host.transport import CardRemovedError
from host.transport.inprocess import connect_card
from host.vault_client import VaultClient
from servers.vault.server import running

from ..card.helpers import clone, personalized

PIN = "1234"
TODAY = date(2000, 3, 15)
NEW = replace(FIG15[0], name="Movie ticket X", payload=bytes(512))  # needs two backups' room


@pytest.fixture
def vault_url(tmp_path: Path) -> Iterator[str]:
    with running(f"sqlite:///{tmp_path / 'vault.db'}", tmp_path / "vault-key.pem") as url:
        yield url


def full_card_cells() -> bytes:
    """Fig. 15 with 400 bytes of ticket data each, on an 8 KiB card filled up to the brim."""
    card, s = personalized(size=8192)
    for r in FIG15:
        s.store(replace(r, payload=bytes(400)))
    while s.info().free_memory > 800:
        s.store(ValueRecord(FIG15[2].type, f"Filler {s.info().index_used}", payload=bytes(500)))
    last = ValueRecord(FIG15[2].type, f"Filler {s.info().index_used}")
    s.store(replace(last, payload=bytes(s.info().free_memory - 300 - len(last.body()) - 3)))
    assert 280 <= s.info().free_memory <= 320  # NEW then needs the room of two backups
    card.power_off()
    return card.eeprom.snapshot()


FULL = full_card_cells()


def unlocked(card: SimulatedCard) -> WalletSession:
    s = WalletSession(connect_card(card))
    s.verify_pin(PIN)
    return s


def registrations(url: str, s: WalletSession) -> int:
    with VaultClient(url) as client:
        connect(s, client)
        return len(client.registrations())


def certificates(s: WalletSession) -> list[int]:
    return [e.id for e in s.list() if e.flags & ValueFlags.CERTIFICATE]


def test_periodic_run_backs_up_what_the_conditions_select(vault_url: str) -> None:
    s = unlocked(clone(FULL))
    with tr.VaultLink(vault_url) as link:
        run = tr.run_if_due(s, link, TODAY)  # factory: every 30 days, never run yet
        assert run is not None and [c.value_id for c in run.selected] == [2, 4]  # fig. 16(b)
        assert [o.action for o in run.done] == ["backed up", "backed up"] and not run.failed
        assert certificates(s) == [2, 4] and s.triggers().last_run == TODAY
        assert tr.run_if_due(s, link, TODAY + timedelta(days=29)) is None
        again = tr.run_if_due(s, link, TODAY + timedelta(days=30))
        assert again is not None and again.selected == ()  # C and G are certificates now
    assert registrations(vault_url, s) == 2


def decide(choice: tr.Choice, ids: tuple[int, ...] = ()) -> tr.Decide:
    return lambda shortage: (choice, ids)


def test_both_runs_the_period_only_when_the_card_is_short(vault_url: str) -> None:
    """Seed para. 0133: triggers combined as "both", periodic and shortage together."""
    s = unlocked(clone(FULL))
    free = tr.free_percent(s)
    assert 0 < free < 10  # the full card
    with tr.VaultLink(vault_url) as link:
        s.put_triggers(replace(s.triggers(), both_below=free))  # not short by this mark: no run
        assert tr.run_if_due(s, link, TODAY) is None and certificates(s) == []
        s.put_triggers(replace(s.triggers(), both_below=free + 1))  # short: the due run happens
        run = tr.run_if_due(s, link, TODAY)
        assert run is not None and certificates(s) == [2, 4]
        assert s.triggers().both_below == free + 1 and s.triggers().last_run == TODAY  # RECORD RUN kept it



@pytest.mark.parametrize(("policy", "decider", "backed_up"), [
    (t.ShortagePolicy.AUTOMATIC, None, [2, 4]),
    (t.ShortagePolicy.ASK, decide(tr.Choice.AUTOMATIC), [2, 4]),
    (t.ShortagePolicy.ASK, decide(tr.Choice.MANUAL, (1, 3)), [1, 3]),
])
def test_store_makes_room(vault_url: str, policy: t.ShortagePolicy, decider: tr.Decide | None,
                          backed_up: list[int]) -> None:
    s = unlocked(card := clone(FULL))
    with tr.VaultLink(vault_url) as link:
        value_id, made = tr.store(s, NEW, link, TODAY, policy, decider)
    assert sorted(o.value_id for o in made) == backed_up
    assert sorted(certificates(s)) == backed_up and s.read(value_id).name == NEW.name
    assert registrations(vault_url, s) == len(backed_up)
    card.power_off()


@pytest.mark.parametrize(("policy", "decider", "words"), [
    (t.ShortagePolicy.ABORT, None, "shortage policy: abort"),
    (t.ShortagePolicy.ASK, None, "--on-shortage"),
    (t.ShortagePolicy.ASK, decide(tr.Choice.ABORT), "aborted"),
    (t.ShortagePolicy.ASK, decide(tr.Choice.MANUAL, (2,)), "would free only"),
    (t.ShortagePolicy.ASK, decide(tr.Choice.MANUAL, (99,)), "not a live value"),
])
def test_store_refused_changes_nothing(vault_url: str, policy: t.ShortagePolicy, decider: tr.Decide | None,
                                       words: str) -> None:
    card = clone(FULL)
    s = unlocked(card)
    before = card.eeprom.snapshot()
    with tr.VaultLink(vault_url) as link, pytest.raises(tr.ShortageError, match=words):
        tr.store(s, NEW, link, TODAY, policy, decider)
    assert card.eeprom.snapshot() == before
    assert registrations(vault_url, s) == 0


def test_automatic_backup_that_cannot_free_enough_aborts_with_nothing_lost(vault_url: str) -> None:
    card = clone(FULL)
    s = unlocked(card)
    s.put_triggers(t.TriggerSettings(t.parse_condition("name~Concert")))  # C alone frees ~240 bytes
    before = card.eeprom.snapshot()
    with tr.VaultLink(vault_url) as link, pytest.raises(tr.ShortageError, match="would free at most"):
        tr.store(s, NEW, link, TODAY, t.ShortagePolicy.AUTOMATIC)
    assert card.eeprom.snapshot() == before and registrations(vault_url, s) == 0


def test_restore_makes_room_or_keeps_the_certificate(vault_url: str) -> None:
    card = clone(FULL)
    s = unlocked(card)
    with VaultClient(vault_url) as client, tr.VaultLink(vault_url) as link:
        key = connect(s, client)
        backup(s, client, key, 3)  # prepaid E goes to the vault ...
        s.store(ValueRecord(FIG15[2].type, "Late filler", payload=bytes(200)))  # ... and its room is taken
        original = s.list()[2]
        assert original.flags == ValueFlags.CERTIFICATE

        def refuse(needed: int, what: str) -> object:
            return tr.make_room(s, link, needed, what, TODAY, t.ShortagePolicy.ABORT)

        with pytest.raises(BackupError, match="shortage policy: abort"):
            restore(s, client, 3, refuse)
        assert s.list()[2].flags == ValueFlags.CERTIFICATE  # not left pending

        def automatic(needed: int, what: str) -> object:
            return tr.make_room(s, link, needed, what, TODAY, t.ShortagePolicy.AUTOMATIC)

        assert restore(s, client, 3, automatic).action == "restored"
        assert s.list()[2].flags == ValueFlags.NONE and s.read(3).payload == bytes(400)
        assert set(certificates(s)) & {2, 4}  # the conditions' values made the room


def test_power_cut_at_every_card_write_of_an_automatic_run(vault_url: str, tmp_path: Path) -> None:
    """Torn anywhere, the re-run ends with C and G backed up exactly once and the run recorded."""

    def trial(tear_after: int | None) -> int:
        card = clone(FULL)
        s = unlocked(card)
        originals = {i: s.read(i).body() for i in (2, 4)}
        start = card.eeprom.page_writes
        card.eeprom.cut_power_after(tear_after)
        with tr.VaultLink(vault_url) as link:
            try:
                tr.run_auto(s, link, TODAY)
            except CardRemovedError:
                assert tear_after is not None
        writes = card.eeprom.page_writes - start
        card.eeprom.cut_power_after(None)
        card.power_on()
        s = unlocked(card)
        with tr.VaultLink(vault_url) as link:
            tr.run_auto(s, link, TODAY)  # the re-run
        assert certificates(s) == [2, 4] and s.triggers().last_run == TODAY
        with VaultClient(vault_url) as client:
            connect(s, client)
            for i, body in originals.items():
                assert client.restore(s.begin_restore(i)) == body
                s.cancel_pending(i)
        return writes

    total = trial(None)
    assert total > 0
    for n in range(total):
        trial(n)
