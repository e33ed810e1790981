"""The batches a key rotation sends (POST /v1/restoration-batches, /v1/release-batches) on both
storage backends: answers in the order sent, a refusal anywhere refuses the whole batch and
changes nothing, a release batch sent again releases nothing twice, and another card's
certificate is refused in a batch as it is alone."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from host.backup import connect
from host.session import WalletSession
from host.vault_client import MAX_BATCH, VaultClient, VaultClientError
from servers.vault.server import running

from .test_keymgr import refused
from .test_vault_api import new_card


@pytest.fixture
def vault_url(db_url: str, tmp_path: Path) -> Iterator[str]:
    with running(db_url, tmp_path / "vault-key.pem") as url:
        yield url


def registered(vault: VaultClient, s: WalletSession) -> tuple[list[bytes], list[bytes]]:
    """Every value of the card registered (the card keeps them: it holds no certificate, so it
    signs a receipt for each): (values, certificates)."""
    values = [s.read(e.id).body() for e in s.list()]
    return values, [r.certificate for r in vault.register_many(values)]


def receipts(s: WalletSession, vault: VaultClient) -> list[tuple[int, bytes, bytes]]:
    return [(r.counter, r.value_hash, s.sign_receipt(r.counter, r.value_hash)) for r in vault.registrations()]


def test_restorations_come_in_the_order_sent(vault_url: str) -> None:
    s = new_card("A", "B", "C")
    with VaultClient(vault_url) as vault:
        connect(s, vault)
        values, certs = registered(vault, s)
        order = [2, 0, 2, 1]
        assert vault.restore_many([certs[i] for i in order]) == [values[i] for i in order]
        assert len(vault.restore_many(certs * (MAX_BATCH // 2 + 1))) == 3 * (MAX_BATCH // 2 + 1)  # the client splits


def test_another_cards_certificate_refuses_the_whole_restoration_batch(vault_url: str) -> None:
    owner, thief = new_card("A"), new_card("B")
    with VaultClient(vault_url) as vault:
        connect(owner, vault)
        _, [theirs] = registered(vault, owner)
    with VaultClient(vault_url) as vault:
        connect(thief, vault)
        _, [mine] = registered(vault, thief)
        refused(lambda: vault.restore_many([mine, theirs]), 403, "certificate 2 of 2: this certificate belongs to "
                                                                 "another card")
        refused(lambda: vault.restore_many([mine, b"not a certificate"]), 400, "certificate 2 of 2: malformed")


def test_a_release_batch_with_one_forged_receipt_releases_nothing(vault_url: str) -> None:
    s = new_card("A", "B", "C")
    with VaultClient(vault_url) as vault:
        connect(s, vault)
        registered(vault, s)
        signed = receipts(s, vault)
        counter, x, receipt = signed[2]
        forged = (counter, x, receipt[:-1] + bytes((receipt[-1] ^ 1,)))
        refused(lambda: vault.release_many([signed[0], signed[1], forged]), 403,
                "release 3 of 3: the card's receipt is not valid")
        assert len(vault.registrations()) == 3  # the first two did not go either
        refused(lambda: vault.release_many([signed[0], (counter + 1, x, receipt)]), 403, "release 2 of 2")
        assert len(vault.registrations()) == 3


def test_a_release_batch_sent_again_releases_nothing_twice(vault_url: str) -> None:
    s = new_card("A", "B")
    with VaultClient(vault_url) as vault:
        connect(s, vault)
        registered(vault, s)
        signed = receipts(s, vault)
        assert vault.release_many(signed) == [True, True]
        assert vault.registrations() == []
        assert vault.release_many(signed) == [False, False]


def test_rotation_batches_need_a_session_and_have_a_limit(vault_url: str) -> None:
    s = new_card("A")
    with VaultClient(vault_url) as vault:
        refused(lambda: vault.restore_many([b"x"]), 401, "not authenticated")
        refused(lambda: vault.release_many([(1, bytes(32), b"x")]), 401, "not authenticated")
        connect(s, vault)
        _, [cert] = registered(vault, s)
        for path, body in (("/v1/restoration-batches", {"certificates": ["AAEC"] * (MAX_BATCH + 1)}),
                           ("/v1/restoration-batches", {"certificates": []}),
                           ("/v1/release-batches", {"releases": []})):
            with pytest.raises(VaultClientError) as exc:
                vault._call("POST", path, body)
            assert exc.value.status in (400, 422), (path, exc.value)
        assert len(vault.registrations()) == 1 and vault.restore_many([cert])
