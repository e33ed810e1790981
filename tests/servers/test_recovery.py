"""A lost card's values restored onto its replacement (issue 6's value restore, issue 7's lost
card), with a real key manager and vault on loopback — the vault on SQLite and PostgreSQL:
each value comes back exactly once, the lost card's certificates are refused, values that were
only on the lost card stay lost; a lost answer at every request and a power cut at every card
write of the recovery, each followed by a re-run, change neither."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from apdu.backup import Audience
from apdu.records import ValueFlags
from card import SimulatedCard
from host import factors
from host.backup import backup, connect
from host.demo import FIG15
from host.keymgr_client import KeyManagerClient, KeyManagerClientError
from host.keys import backup_key_parts, enrol_card, split_key
from host.recovery import recover, report_lost
from host.session import WalletSession
from host.transport import CardRemovedError
from host.transport.inprocess import connect_card
from host.vault_client import VaultClient, VaultClientError
from servers.keymgr.server import running as keymgr_running
from servers.vault.server import running as vault_running

from ..card.helpers import PIN, personalized
from ..conftest import FULL, ISSUER
from .test_split_key import FAST

PASSWORD = "correct horse battery"
names = (f"owner{i}" for i in itertools.count())


@dataclass(frozen=True)
class World:
    keymgr_url: str
    vault_url: str


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[World]:
    with keymgr_running(f"sqlite:///{tmp_path / 'km.db'}", tmp_path / "km.pem", tmp_path / "master.key",
                        FAST) as km_url:
        with KeyManagerClient(km_url) as km:
            trusted = km.statement_key()
        with vault_running(db_url, tmp_path / "vault.pem", keymgr_key=trusted) as vault_url:
            yield World(km_url, vault_url)


@dataclass
class Lost:
    """Card A after its owner backed some values up, before it was lost."""

    name: str
    card_id: bytes
    backed_up: list[bytes]  # each exactly once on the new card after recovery
    only_on_card: list[bytes]  # lost with the card
    a: SimulatedCard


def lose_a_card(world: World, encrypted: bool, per_value: bool = False,
                value_names: Sequence[str] = ()) -> Lost:
    """Owner with card A: values 1 and 2 backed up, 3 backed up and kept, 4 never backed up;
    each named after its owner, or as ``value_names`` has it (its sizes then fixed)."""
    name = next(names)
    card, a = personalized()
    renamed = [*value_names, *(f"{r.name} of {name}" for r in FIG15[len(value_names):])]
    bodies = [a.read(a.store(replace(r, name=n))).body() for r, n in zip(FIG15, renamed, strict=True)]
    with KeyManagerClient(world.keymgr_url) as km, VaultClient(world.vault_url) as vault:
        km.create_account(name, PASSWORD)
        factors.login(km, name, PASSWORD)
        key = connect(a, vault)
        if encrypted:
            a.generate_key()
            if per_value:  # part 405 to the key manager, 406 with every encrypted backup
                backup_key_parts(a, km)
            else:
                split_key(a, km, vault)  # share 1 to the key manager, 2 to the vault, 3 the owner's code
        else:
            enrol_card(a, km)
        for value_id, keep in ((1, False), (2, False), (3, True)):
            backup(a, vault, key, value_id, keep=keep)
    return Lost(name, a.identity().card_id, bodies[:3], bodies[3:], card)


def unlocked(card: SimulatedCard) -> WalletSession:
    s = WalletSession(connect_card(card))
    s.verify_pin(PIN)
    return s


def recover_onto(world: World, lost: Lost, card: SimulatedCard,
                 km_client: type[KeyManagerClient] = KeyManagerClient,
                 vault_client: type[VaultClient] = VaultClient) -> None:
    with km_client(world.keymgr_url) as km, vault_client(world.vault_url) as vault:
        factors.login(km, lost.name, PASSWORD)
        s = unlocked(card)
        connect(s, vault)
        recover(s, vault, km, lost.card_id)


def assert_recovered(world: World, lost: Lost, card: SimulatedCard) -> None:
    """Each backed-up value exactly once, live; nothing else; the vault keeps nothing for it."""
    s = unlocked(card)
    entries = s.list()
    assert {e.flags for e in entries} <= {ValueFlags.NONE}
    assert Counter(s.read(e.id).body() for e in entries) == Counter(lost.backed_up)
    with VaultClient(world.vault_url) as vault:
        connect(s, vault)
        assert vault.registrations() == []  # released against the card's receipts


@pytest.mark.parametrize(("encrypted", "per_value"), [(False, False), (True, False), (True, True)],
                         ids=["plain", "encrypted", "per-value"])
def test_a_lost_cards_values_come_back_once_on_the_new_card(world: World, encrypted: bool, per_value: bool) -> None:
    lost = lose_a_card(world, encrypted, per_value)
    b, s = personalized()
    with KeyManagerClient(world.keymgr_url) as km, VaultClient(world.vault_url) as vault:
        factors.login(km, lost.name, PASSWORD)
        connect(s, vault)
        result = recover(s, vault, km, lost.card_id)
        assert result.imported == 3 and len(result.restored) == 3 and not result.failed
        if encrypted:  # rebuilt from two shares, no recovery code
            assert "rebuilt key" in result.key
        again = recover(s, vault, km, lost.card_id)  # a re-run finds nothing more to do
        assert again.imported == 0 and again.restored == [] and again.failed == []
    assert_recovered(world, lost, b)
    for body in lost.only_on_card:
        assert body not in {s.read(e.id).body() for e in s.list()}  # never invented
    with VaultClient(world.vault_url) as vault:  # the lost card is revoked: no session, no redemption
        with pytest.raises(VaultClientError) as refused:
            connect(unlocked(lost.a), vault)
        assert refused.value.status == 403 and "revoked" in refused.value.message


def test_a_card_replaced_twice_hands_everything_to_the_last(world: World) -> None:
    lost = lose_a_card(world, encrypted=False)
    b, _ = personalized()
    c, _ = personalized()
    with KeyManagerClient(world.keymgr_url) as km, VaultClient(world.vault_url) as vault:
        factors.login(km, lost.name, PASSWORD)
        sb = unlocked(b)
        enrol_card(sb, km)
        connect(sb, vault)
        report_lost(km, vault, lost.card_id, sb.identity().card_id)
        # B takes one certificate, then is lost too before restoring anything
        handover, waiting = vault.handover(sb.import_counter())
        assert handover is not None and waiting == 2
        sb.import_certificate(handover)
    recover_onto(world, replace(lost, card_id=sb.identity().card_id), c)
    assert_recovered(world, lost, c)


def test_refusals(world: World) -> None:
    lost = lose_a_card(world, encrypted=False)
    with KeyManagerClient(world.keymgr_url) as anonymous:
        with pytest.raises(KeyManagerClientError) as refused:
            anonymous.report_lost(lost.card_id, None, ISSUER.public_key)  # any vault key
        assert refused.value.status == 401
    with KeyManagerClient(world.keymgr_url) as thief, VaultClient(world.vault_url) as vault:
        name = next(names)
        thief.create_account(name, PASSWORD)
        factors.login(thief, name, PASSWORD)
        _, theirs = personalized()
        enrol_card(theirs, thief)
        with pytest.raises(KeyManagerClientError) as refused:  # not the thief's card
            thief.report_lost(lost.card_id, theirs.identity().card_id, vault.public_key())
        assert refused.value.status == 403
        with pytest.raises(KeyManagerClientError) as refused:  # enrolling it needs the card itself
            challenge = thief.card_challenge()
            thief.enrol_card(lost.card_id, theirs.identity().public_key, theirs.attestation(), challenge,
                             theirs.authenticate(Audience.KEY_MANAGER, challenge))
        assert refused.value.status == 403 and "attestation" in refused.value.message
        statement = thief.report_lost(theirs.identity().card_id, None, vault.public_key())
        forged = replace(statement, old_card_id=lost.card_id)  # their signed word, bent to another card
        with pytest.raises(VaultClientError) as refused:
            vault.replace_card(forged)
        assert refused.value.status == 403 and "signature" in refused.value.message
    s = unlocked(lost.a)  # the owner's card still works: nothing was revoked by the attempts
    with VaultClient(world.vault_url) as vault:
        connect(s, vault)
        assert len(vault.registrations()) == 3


def test_a_vault_trusting_no_key_manager_replaces_no_card(tmp_path: Path) -> None:
    from host.vault_client import LostCardStatement

    with vault_running(f"sqlite:///{tmp_path / 'v.db'}", tmp_path / "v.pem") as url, VaultClient(url) as vault:
        with pytest.raises(VaultClientError) as refused:
            vault.replace_card(LostCardStatement(bytes(8), b"\x04" + bytes(64), None, None, 0, b"\x30\x00"))
        assert refused.value.status == 403 and "trusts no key manager" in refused.value.message


def test_handovers_are_numbered_by_the_cards_counter(world: World) -> None:
    lost = lose_a_card(world, encrypted=False)
    _, s = personalized()
    with KeyManagerClient(world.keymgr_url) as km, VaultClient(world.vault_url) as vault:
        factors.login(km, lost.name, PASSWORD)
        enrol_card(s, km)
        connect(s, vault)
        assert report_lost(km, vault, lost.card_id, s.identity().card_id) == 3
        first, _ = vault.handover(0)
        assert first is not None and vault.handover(0)[0].certificate == first.certificate  # a retry: the same
        with pytest.raises(VaultClientError) as ahead:
            vault.handover(5)
        assert ahead.value.status == 409
        from apdu.certificate import Certificate

        c = Certificate.from_bytes(first.certificate)
        assert not vault.release(c.counter, c.value_hash, s.sign_receipt(c.counter, c.value_hash))  # counter 0
        s.import_certificate(first)
        assert vault.restore(first.certificate)
        with pytest.raises(VaultClientError) as refused:  # one not handed over yet is nobody's to redeem
            a = unlocked(lost.a)
            held_by_a = [a.read(e.id).certificate for e in a.list() if e.flags & ValueFlags.CERTIFICATE]
            vault.restore(next(c for c in held_by_a if c != first.certificate))
        assert refused.value.status == 403 and "handed over" in refused.value.message


class Faults:
    """Loses the answer to the k-th request across both services."""

    def __init__(self, k: int) -> None:
        self.k, self.calls = k, 0

    def client(self, base: type[Any]) -> type[Any]:
        faults = self

        class Losing(base):  # type: ignore[misc, valid-type]
            def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
                answer = super()._call(method, path, body)
                faults.calls += 1
                if faults.calls == faults.k:
                    raise self.error(0, "the connection dropped before the answer arrived")
                return answer

        return Losing


def test_a_lost_answer_at_every_request_of_a_recovery(world: World) -> None:
    k, total = 1, None
    while total is None or k <= total:
        lost = lose_a_card(world, encrypted=True)
        b, _ = personalized()
        faults = Faults(k)
        try:
            recover_onto(world, lost, b, faults.client(KeyManagerClient), faults.client(VaultClient))
            total = faults.calls
        except (KeyManagerClientError, VaultClientError):
            pass
        recover_onto(world, lost, b)  # the re-run finishes
        assert_recovered(world, lost, b)
        k += 1
    assert total is not None and total > 15


def test_a_power_cut_at_every_card_write_of_a_recovery(world: World) -> None:
    writes = None
    n = 0
    step = 1 if FULL else 7
    while writes is None or n <= writes:
        lost = lose_a_card(world, encrypted=True)
        b, _ = personalized()
        start = b.eeprom.page_writes
        b.eeprom.cut_power_after(n)
        try:
            recover_onto(world, lost, b)
            writes = b.eeprom.page_writes - start
        except CardRemovedError:
            pass
        b.eeprom.cut_power_after(None)
        recover_onto(world, lost, b)
        assert_recovered(world, lost, b)
        n += step
    assert writes is not None and writes > 10
