"""The vault over real HTTP on both storage backends: card authentication, access between
cards, the seed's restore checks, 1,000 registrations through a wrapping counter, and the
published OpenAPI schema."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import httpx
import pytest

from apdu.backup import Audience
from apdu.certificate import Certificate, Mode, value_hash
from apdu.records import ValueFlags, ValueRecord, ValueType
from card import SimulatedCard
from host.backup import BackupError, backup, connect, restore
from host.session import WalletSession
from host.transport.inprocess import connect_card
from host.vault_client import VaultClient
from servers.serverkey import ServerKey
from servers.storage import Database
from servers.vault.app import openapi_schema
from servers.vault.repository import MIGRATIONS, VaultRepository
from servers.vault.server import running
from servers.vault.service import VaultService

from ..conftest import ISSUER
from .test_keymgr import refused

PIN = "1234"
SCHEMA = Path(__file__).parents[2] / "docs" / "vault-openapi.json"


@pytest.fixture
def vault_url(db_url: str, tmp_path: Path) -> Iterator[str]:
    with running(db_url, tmp_path / "vault-key.pem") as url:
        yield url


def new_card(*names: str) -> WalletSession:
    s = WalletSession(connect_card(SimulatedCard.manufacture(index_capacity=16)))
    ISSUER.personalize(s, PIN)
    s.verify_pin(PIN)
    for name in names:
        s.store(ValueRecord(ValueType.TICKET, name, issuer="Cinema B", valid_to=date(2000, 5, 31), place="B"))
    return s


def test_a_challenge_opens_one_session_only(vault_url: str) -> None:
    s = new_card()
    identity = s.identity()
    attestation = s.attestation()
    with VaultClient(vault_url) as vault:
        s.put_vault_key(vault.public_key())
        challenge = vault.challenge(identity.card_id)
        signature = s.authenticate(Audience.VAULT, challenge)
        vault.open_session(identity.card_id, identity.public_key, attestation, challenge, signature)
        assert vault.registrations() == []
        refused(lambda: vault.open_session(identity.card_id, identity.public_key, attestation, challenge, signature),
                401, "unknown or expired challenge")  # a replayed signature is worthless
        other = vault.challenge(identity.card_id)
        refused(lambda: vault.open_session(identity.card_id, identity.public_key, attestation, other, signature),
                401, "signature over the challenge is not valid")  # signed another challenge
        refused(lambda: vault.open_session(identity.card_id, identity.public_key, attestation, other,
                                           s.authenticate(Audience.VAULT, other)),
                401, "unknown or expired challenge")  # the failed try used it up


def test_a_card_id_is_bound_to_its_first_key(vault_url: str) -> None:
    mine, impostor = new_card(), new_card()
    card_id = mine.identity().card_id
    with VaultClient(vault_url) as vault:
        connect(mine, vault)
        impostor.put_vault_key(vault.public_key())
        challenge = vault.challenge(card_id)  # the impostor claims my id with its own key
        refused(lambda: vault.open_session(card_id, impostor.identity().public_key, impostor.attestation(), challenge,
                                           impostor.authenticate(Audience.VAULT, challenge)), 401, "not valid")


def test_cards_see_and_release_only_their_own(vault_url: str) -> None:
    mine, theirs = new_card("Movie ticket A"), new_card("Concert C")
    with VaultClient(vault_url) as a, VaultClient(vault_url) as b:
        backup(mine, a, connect(mine, a), 1)
        connect(theirs, b)
        cert = mine.begin_restore(1)
        c = Certificate.from_bytes(cert)
        assert len(a.registrations()) == 1 and b.registrations() == []
        refused(lambda: b.restore(cert), 403, "another card")
        receipt = mine.sign_receipt(c.counter + 1, c.value_hash)  # a genuine receipt, for an unknown entry
        refused(lambda: b.release(c.counter + 1, c.value_hash, receipt), 403, "receipt is not valid")
        assert not b.release(c.counter, c.value_hash, theirs.sign_receipt(c.counter, c.value_hash))
        assert a.restore(cert) == ValueRecord.from_bytes(a.restore(cert)).body()
        assert len(a.registrations()) == 1


def test_inconsistent_vault_entry_is_refused_and_the_card_keeps_its_certificate(db_url: str, vault_url: str) -> None:
    s = new_card("Movie ticket A")
    original = s.read(1).body()
    with VaultClient(vault_url) as vault:
        backup(s, vault, connect(s, vault), 1)
        db = Database.open(db_url, MIGRATIONS)
        with db.transaction() as tx:  # the stored value rots behind the vault's back
            tx.execute("UPDATE registrations SET value = ?", (original.replace(b"Movie", b"Mouse"),))
        db.close()
        cert = s.begin_restore(1)
        s.cancel_pending(1)
        refused(lambda: vault.restore(cert), 409, "inconsistent vault entry")
        with pytest.raises(BackupError, match="inconsistent vault entry"):
            restore(s, vault, 1)
        assert s.read(1).certificate == cert and s.list()[0].flags == ValueFlags.CERTIFICATE  # not left pending


@pytest.mark.parametrize(("body", "status", "words"), [
    ({"value": "not base64!"}, 422, "should match pattern"),
    ({"value": ""}, 400, "1.."),
    ({"value": "AAEC"}, 400, "not a value record"),
    ({}, 400, "send either value or registered_value"),
    ({"value": "AAEC", "registered_value": "AAEC"}, 400, "send either value or registered_value"),
    ({"registered_value": "AAEC"}, 400, "malformed registered value"),
])
def test_bad_registrations_get_a_4xx_with_a_message(vault_url: str, body: dict[str, str], status: int,
                                                    words: str) -> None:
    s = new_card()
    with VaultClient(vault_url) as vault:
        connect(s, vault)
        refused(lambda: vault._call("POST", "/v1/registrations", body), status, words)
        assert vault.registrations() == []


def test_a_thousand_registrations_through_a_wrapping_counter(db_url: str, tmp_path: Path) -> None:
    """Counters wrap at 256 four times over: every certificate still finds its own value."""
    db = Database.open(db_url, MIGRATIONS)
    vault = VaultService(VaultRepository(db, counter_modulus=256), ServerKey.load_or_create(tmp_path / "key.pem"))
    card_id = bytes.fromhex("0102030405060708")
    values = [ValueRecord(ValueType.COUPON, f"Coupon {i}", quantity=i + 1).body() for i in range(1000)]
    certs = [vault.register(card_id, v).certificate for v in values]
    counters = [Certificate.from_bytes(c).counter for c in certs]
    assert counters == [i % 256 for i in range(1000)]
    for value, cert in zip(values, certs, strict=True):
        assert vault.restore(card_id, cert) == value
    assert vault.register(card_id, values[7]).certificate == certs[7]  # a retry creates nothing
    assert vault.repo.count() == 1000
    db.close()


def test_the_published_openapi_schema_is_current() -> None:
    published = json.loads(SCHEMA.read_text())
    assert published == openapi_schema(), "regenerate with: evb vault openapi > docs/vault-openapi.json"
    assert {"/v1/challenges", "/v1/sessions", "/v1/registrations", "/v1/restorations", "/v1/releases"} <= set(
        published["paths"])


def test_the_running_vault_serves_its_schema(vault_url: str) -> None:
    schema = httpx.get(f"{vault_url}/openapi.json").json()
    assert schema["info"]["title"] == "evb vault"


def test_encrypted_registrations_need_the_cards_signature(vault_url: str) -> None:
    from apdu import backup as b
    from apdu.certificate import DigestField

    s = new_card("Movie ticket A")
    s.generate_key()
    with VaultClient(vault_url) as vault:
        connect(s, vault)
        raw = s.begin_encrypted_backup(1, tuple(DigestField))
        r = b.RegisteredValue.from_bytes(raw)
        forged = b.RegisteredValue(r.digest, r.key_id, r.ciphertext + b"x" * 16, r.signature).to_bytes()
        refused(lambda: vault.register_encrypted(forged), 400, "signature over the registered value")
        cert = Certificate.from_bytes(vault.register_encrypted(raw).certificate)
        assert cert.value_hash == value_hash(r.ciphertext) and cert.mode == Mode.ENCRYPTED
        assert vault.register_encrypted(raw).certificate == cert.to_bytes()  # a retry: the same
