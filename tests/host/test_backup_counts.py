"""What a backup spends per value, counted (not timed): after a fixed per-run set (SELECT,
VERIFY, GET IDENTITY, the vault's key and session), 2 APDUs per plain value and 3 per encrypted
one, the same on a card of 10 values as of 40, and one vault request per value, or one per
batch with ``backup_many``."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from apdu.records import ValueFlags
from host.backup import BATCH, backup, backup_many, connect
from host.bench_suite import PIN, CountingTransport, CountingVault, measure_backup, stocked_card
from host.session import WalletSession
from host.transport.inprocess import connect_card
from host.vault_client import RegistrationInfo, VaultClientError
from servers.vault.server import running

from ..conftest import ISSUER


@pytest.fixture(scope="module")
def vault_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    tmp = tmp_path_factory.mktemp("vault")
    with running(f"sqlite:///{tmp / 'vault.db'}", Path(tmp) / "vault-key.pem") as url:
        yield url


@pytest.mark.parametrize("encrypted, per_value", [(False, 2), (True, 3)])
def test_apdus_per_value_are_flat_and_requests_go_in_batches(vault_url: str, encrypted: bool,
                                                              per_value: int) -> None:
    small, large = (measure_backup(vault_url, None, ISSUER, n, encrypted) for n in (10, 40))
    assert (large.apdus - small.apdus) / (large.values - small.values) <= per_value
    assert large.apdus <= per_value * large.values + 2  # the fixed set is small too
    assert large.requests == -(-large.values // BATCH) and small.requests == 1


@pytest.mark.parametrize("encrypted, per_value", [(False, 2), (True, 3)])
def test_one_value_at_a_time_is_as_cheap_on_the_card_and_one_request(vault_url: str, encrypted: bool,
                                                                       per_value: int) -> None:
    card = stocked_card(ISSUER, 12, key=encrypted)
    counting = CountingTransport(connect_card(card))
    session = WalletSession(counting)
    session.verify_pin(PIN)
    vault = CountingVault(vault_url)
    with vault:
        key = connect(session, vault)
        ids = [e.id for e in session.list()]
        apdus, requests = counting.count, vault.requests
        outcomes = [backup(session, vault, key, i, encrypt=encrypted) for i in ids]
        assert counting.count - apdus == per_value * len(ids)
        assert vault.requests - requests == len(ids)
        assert all(o.action.startswith("backed up") for o in outcomes)
        again = counting.count
        assert backup_many(session, vault, key, ids, False, encrypted)[0][0].action == "already done"
        assert counting.count - again <= 2 * len(ids)  # a refused BEGIN and one READ VALUE each
        assert {e.name for e in session.list()} == {o.name for o in outcomes}


class NoBatches(CountingVault):
    """A vault without the batch endpoint (404), or, with ``status`` 0, one that cannot be reached."""

    status = 404

    def register_many(self, values: object) -> list[RegistrationInfo]:
        self.requests += 1
        raise VaultClientError(self.status, "Not Found" if self.status else "cannot reach the vault")


def test_a_refused_batch_goes_value_by_value_and_an_unreachable_vault_leaves_values_pending(vault_url: str) -> None:
    card = stocked_card(ISSUER, 5)
    session = WalletSession(connect_card(card))
    session.verify_pin(PIN)
    ids = [e.id for e in session.list()]
    down = NoBatches(vault_url)
    down.status = 0
    with down:
        key = connect(session, down)
        done, failed = backup_many(session, down, key, ids[:2], False, False)
        assert done == [] and [i for i, _ in failed] == ids[:2] and "cannot reach" in failed[0][1]
    assert all(e.flags & ValueFlags.PENDING for e in session.list() if e.id in ids[:2])
    old = NoBatches(vault_url)
    with old:
        key = connect(session, old)
        before = old.requests
        done, failed = backup_many(session, old, key, ids, False, False)
        assert failed == [] and [o.value_id for o in done] == ids
        assert old.requests - before == 1 + len(ids)  # the refused batch, then one request per value
    assert all(e.flags & ValueFlags.CERTIFICATE for e in session.list())
