"""Batches of registrations (POST /v1/registration-batches) on both storage backends: a batch
whose answer was lost and is sent again registers nothing twice, a batch with one refused value
registers none, and a registration is one transaction with its session's check."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from apdu import backup as b
from apdu.certificate import Certificate, DigestField
from host.backup import connect
from host.vault_client import MAX_BATCH, VaultClient, VaultClientError
from servers.auth import new_token, token_hash
from servers.serverkey import ServerKey
from servers.storage import Database
from servers.vault.repository import MIGRATIONS, VaultRepository
from servers.vault.server import running
from servers.vault.service import VaultService

from .test_keymgr import refused
from .test_vault_api import new_card

NAMES = [f"Ticket {i}" for i in range(6)]


@pytest.fixture
def vault_url(db_url: str, tmp_path: Path) -> Iterator[str]:
    with running(db_url, tmp_path / "vault-key.pem") as url:
        yield url


class LosesAnswers(httpx.HTTPTransport):
    """Delivers every request, then loses the answer of the first ``lose`` batches."""

    def __init__(self, lose: int) -> None:
        super().__init__()
        self.lose = lose

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.url.path.endswith("/registration-batches") and self.lose:
            self.lose -= 1
            response.read()
            raise httpx.ReadError("connection reset after the vault answered", request=request)
        return response


def values_of(names: list[str]) -> tuple[Any, list[bytes]]:
    s = new_card(*names)
    return s, [s.read(e.id).body() for e in s.list()]


def test_a_batch_sent_again_after_a_lost_answer_registers_nothing_twice(vault_url: str) -> None:
    s, values = values_of(NAMES)
    with VaultClient(vault_url, transport=LosesAnswers(1)) as vault:
        connect(s, vault)
        with pytest.raises(VaultClientError, match="connection reset after the vault answered"):
            vault.register_many(values)
        first = vault.registrations()
        assert len(first) == len(values)  # the vault did register them: only the answer was lost
        again = vault.register_many(values)
        assert [r.certificate for r in again] == [r.certificate for r in first]
        assert len(vault.registrations()) == len(values)
        for value, r in zip(values, again, strict=True):
            assert Certificate.from_bytes(r.certificate).matches(value)
            assert vault.restore(r.certificate) == value


def test_answers_come_in_the_order_sent_and_a_value_twice_is_one_registration(vault_url: str) -> None:
    s, values = values_of(NAMES[:3])
    with VaultClient(vault_url) as vault:
        connect(s, vault)
        got = vault.register_many([values[2], values[0], values[2], values[1]])
        assert [vault.restore(r.certificate) for r in got] == [values[2], values[0], values[2], values[1]]
        assert got[0] == got[2] and len(vault.registrations()) == 3
        assert vault.register(values[1]) == got[3]  # one value at a time agrees


def test_one_refused_value_registers_none_of_the_batch(vault_url: str) -> None:
    s, values = values_of(NAMES[:2])
    s.generate_key()
    with VaultClient(vault_url) as vault:
        connect(s, vault)
        raw = b.RegisteredValue.from_bytes(s.begin_encrypted_backup(1, tuple(DigestField)))
        forged = b.RegisteredValue(raw.digest, raw.key_id, raw.ciphertext + b"x" * 16, raw.signature)
        refused(lambda: vault.register_many([values[1], forged]), 400, "signature over the registered value")
        refused(lambda: vault.register_many([values[1], b"not a value"]), 400, "not a value record")
        assert vault.registrations() == []
        done = vault.register_many([values[1], raw])
        assert [Certificate.from_bytes(r.certificate).mode.name for r in done] == ["PLAIN", "ENCRYPTED"]


def test_batches_need_a_session_and_have_a_limit(vault_url: str) -> None:
    s, values = values_of(NAMES[:1])
    with VaultClient(vault_url) as vault:
        refused(lambda: vault.register_many(values), 401, "not authenticated")
        connect(s, vault)
        body = {"registrations": [{"value": "AAEC"}] * (MAX_BATCH + 1)}
        with pytest.raises(VaultClientError) as exc:
            vault._call("POST", "/v1/registration-batches", body)
        assert exc.value.status in (400, 422)
        assert len(vault.register_many(values * (MAX_BATCH + 3))) == MAX_BATCH + 3  # the client splits
        assert len(vault.registrations()) == 1


@contextmanager
def counting_transactions(db: Database) -> Iterator[list[int]]:
    count = [0]
    real = db.transaction

    def transaction() -> Any:
        count[0] += 1
        return real()

    db.transaction = transaction  # type: ignore[method-assign]
    try:
        yield count
    finally:
        db.transaction = real  # type: ignore[method-assign]


def test_a_registration_and_its_session_check_are_one_transaction(db_url: str, tmp_path: Path) -> None:
    db = Database.open(db_url, MIGRATIONS)
    vault = VaultService(VaultRepository(db), ServerKey.load_or_create(tmp_path / "key.pem"))
    card_id = bytes.fromhex("0102030405060708")
    token = new_token()
    vault.repo.add_session(token_hash(token), card_id, 2**40)
    _, values = values_of(NAMES[:4])
    with counting_transactions(db) as count:
        asyncio.run(vault.register_for_session(token, [vault.plain(values[0])]))
        assert count == [1]
        asyncio.run(vault.register_for_session(token, [vault.plain(v) for v in values]))  # a batch too
        assert count == [2]
    assert vault.repo.count() == 4
    db.close()
