"""Re-keying driven by the key manager (seed E7 claims 16 and 46, E8 claim 17) with a real key
manager and vault that talk to each other (the vault on SQLite and PostgreSQL): a card that
lost its key is re-keyed in one flow; every value moves to the new key exactly once (or, E8,
comes back to the card); the key manager keeps only the new key; a lost answer at every request
(the terminal's and the key manager's to the vault) and a power cut at card writes, each
followed by a re-run, end in the same place."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from apdu.backup import RegisteredValue
from apdu.certificate import Certificate
from apdu.keys import KeyInfo, KeyMode
from apdu.records import ValueFlags
from card import SimulatedCard
from card.keys import wipe_key_store
from host import factors
from host.backup import BackupError, connect, release_unneeded, restore, run_all
from host.keymgr_client import KeyManagerClient, KeyManagerClientError
from host.keys import KeyFlowError, backup_key_parts, enrol_card, restore_key_parts
from host.recovery import inherited, report_lost, take_handovers
from host.rekey import Rekeying, rekey_by_keymgr
from host.rotation import encrypted_certificates, rotate
from host.transport import CardRemovedError
from host.vault_client import VaultClient, VaultClientError
from keyfile import load_or_create_key, public_bytes
from servers.keymgr.errors import KeyManagerError
from servers.keymgr.server import running as keymgr_running
from servers.keymgr.server import statement_key_path
from servers.keymgr.services.escrow import Escrows
from servers.vault.server import running as vault_running

from ..card.helpers import personalized
from ..conftest import FULL
from .test_recovery import Faults, World
from .test_rotation import PASSWORD, Owner, assert_rotated, owner_with_backups, unlocked
from .test_split_key import FAST


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[World]:
    """A key manager that knows the vault, and a vault that trusts its statements."""
    km_key = tmp_path / "km.pem"
    trusted = public_bytes(load_or_create_key(statement_key_path(km_key)).public_key())
    with vault_running(db_url, tmp_path / "vault.pem", keymgr_key=trusted) as vault_url:
        config = FAST.__class__(**{**FAST.__dict__, "vault_url": vault_url})
        with keymgr_running(f"sqlite:///{tmp_path / 'km.db'}", km_key, tmp_path / "master.key", config) as km_url:
            yield World(km_url, vault_url)


def rekey_once(world: World, owner: Owner, restore_all: bool = False,
               km_client: type[KeyManagerClient] = KeyManagerClient,
               vault_client: type[VaultClient] = VaultClient) -> Rekeying:
    with km_client(world.keymgr_url) as km, vault_client(world.vault_url) as vault:
        factors.login(km, owner.name, PASSWORD)
        s = unlocked(owner.card)
        connect(s, vault)
        return rekey_by_keymgr(s, vault, km, restore_all=restore_all)


def test_claim_16_46_the_key_manager_rekeys_a_card_that_lost_its_key(world: World) -> None:
    """E7: the key manager opens every backup with the escrowed key, re-seals it under a new
    pair, has the vault replace the registered value, replaces its escrow and gives the card
    the new pair; the card never had a key during the run."""
    owner = owner_with_backups(world)
    old = unlocked(owner.card).key_info().key_id
    wipe_key_store(owner.card.eeprom)
    s = unlocked(owner.card)
    assert s.key_info().mode == KeyMode.NONE
    before = {v: Certificate.from_bytes(s.read(v).certificate) for v in encrypted_certificates(s)}
    result = rekey_once(world, owner)
    assert result.moved == len(owner.originals) - 3 and result.destroyed == 1 and result.restored == 0
    after = {v: Certificate.from_bytes(s.read(v).certificate) for v in encrypted_certificates(s)}
    assert after.keys() == before.keys()
    assert all(after[v].counter != before[v].counter and after[v].digest == before[v].digest for v in after)
    assert result.key.mode == KeyMode.PUBLIC and s.key_info() == result.key
    assert_rotated(world, owner, old)  # one key everywhere, old registrations released, every value restores


def test_claim_16_the_card_with_its_key_is_rekeyed_the_same_way(world: World) -> None:
    owner = owner_with_backups(world)
    old = unlocked(owner.card).key_info().key_id
    rekey_once(world, owner)
    assert_rotated(world, owner, old)


def test_claim_17_e8_brings_every_value_back_under_the_new_key(world: World) -> None:
    """E8: the values come back to the card (sealed under the new key), the vault lets them go."""
    owner = owner_with_backups(world)
    old = unlocked(owner.card).key_info().key_id
    wipe_key_store(owner.card.eeprom)
    result = rekey_once(world, owner, restore_all=True)
    assert result.restored == len(owner.originals) - 3 and not result.failed
    s = unlocked(owner.card)
    assert encrypted_certificates(s) == []
    assert_rotated(world, owner, old)


def test_a_rekeyed_value_restores_through_the_key_manager_too(world: World) -> None:
    """E6 after E7: the key manager accepts its own signature on a value it re-sealed."""
    from host.assisted import assisted_restore

    owner = owner_with_backups(world, 4)
    wipe_key_store(owner.card.eeprom)
    rekey_once(world, owner)
    s = unlocked(owner.card)
    value_id = encrypted_certificates(s)[0]
    with KeyManagerClient(world.keymgr_url) as km, VaultClient(world.vault_url) as vault:
        factors.login(km, owner.name, PASSWORD)
        connect(s, vault)
        assisted_restore(s, km, value_id, vault)
    assert s.read(value_id).body() == owner.originals[value_id]


def test_the_card_side_mode_and_this_one_do_not_mix(world: World) -> None:
    """A job of the key manager's under way: the card-side rotation points to it, and back."""
    owner = owner_with_backups(world, 4)
    wipe_key_store(owner.card.eeprom)
    with KeyManagerClient(world.keymgr_url) as km, VaultClient(world.vault_url) as vault:
        factors.login(km, owner.name, PASSWORD)
        s = unlocked(owner.card)
        connect(s, vault)
        km.begin_rekey(s.identity().card_id)
        s.generate_key()  # the owner makes a key of the card's own meanwhile
        with pytest.raises(KeyFlowError, match="--by-keymgr"):
            rotate(s, vault, km)
    other = owner_with_backups(world, 4)
    with KeyManagerClient(world.keymgr_url) as km, VaultClient(world.vault_url) as vault:
        factors.login(km, other.name, PASSWORD)
        s = unlocked(other.card)
        connect(s, vault)
        s.begin_rotation()  # a card-side rotation cut before it reached the key manager
        with pytest.raises(KeyFlowError, match="card-side rotation is under way"):
            rekey_by_keymgr(s, vault, km)
        assert km.rotation(s.identity().card_id) is None


def test_a_value_whose_key_is_not_escrowed_stops_the_run_before_the_key_moves(world: World) -> None:
    owner = owner_with_backups(world, 4)
    s = unlocked(owner.card)
    wipe_key_store(owner.card.eeprom)
    s.generate_key()  # a key the key manager never saw: its backups cannot be re-keyed
    value_id = next(e.id for e in s.list() if e.flags == ValueFlags.NONE)
    with VaultClient(world.vault_url) as vault:
        from host.backup import backup

        backup(s, vault, connect(s, vault), value_id)
    key = s.key_info()
    with pytest.raises(KeyFlowError, match="the key did not move: value"):
        rekey_once(world, owner)
    assert s.key_info() == key  # the card keeps what opens that backup


def test_no_escrowed_key_is_a_clear_refusal(world: World) -> None:
    """A card whose key never reached the key manager: nothing could open its backups."""
    owner = owner_with_backups(world, 3)
    _, s = personalized()
    s.generate_key()
    with KeyManagerClient(world.keymgr_url) as km, VaultClient(world.vault_url) as vault:
        factors.login(km, owner.name, PASSWORD)
        connect(s, vault)
        with pytest.raises(KeyFlowError, match="no key of this card is escrowed"):
            rekey_by_keymgr(s, vault, km)
        assert km.rotation(s.identity().card_id) is None


def test_beginning_needs_a_step_up_proof(world: World) -> None:
    owner = owner_with_backups(world, 3)
    s = unlocked(owner.card)
    with KeyManagerClient(world.keymgr_url) as km:
        factors.login(km, owner.name, PASSWORD)
        km.prove_with(None)  # a session token alone
        with pytest.raises(KeyManagerClientError) as refused:
            km.begin_rekey(s.identity().card_id)
        assert refused.value.status == 403 and km.rotation(s.identity().card_id) is None


class LosingVault:
    """Loses the vault's answer to the key manager's k-th request (it was carried out)."""

    def __init__(self, faults: Faults, monkeypatch: pytest.MonkeyPatch) -> None:
        real = Escrows.post_to_vault

        def post(escrows: Escrows, path: str, body: dict[str, object]) -> dict[str, Any]:
            answer = real(escrows, path, body)
            faults.calls += 1
            if faults.calls == faults.k:
                raise KeyManagerError(503, "cannot reach the vault: the answer was lost")
            return answer

        monkeypatch.setattr(Escrows, "post_to_vault", post)


@pytest.mark.parametrize("restore_all", [False, True], ids=["e7", "e8"])
def test_a_lost_answer_at_every_request_of_a_rekeying(world: World, monkeypatch: pytest.MonkeyPatch,
                                                      restore_all: bool) -> None:
    k, total = 1, None
    while total is None or k <= total:
        owner = owner_with_backups(world, 4)
        old = unlocked(owner.card).key_info().key_id
        wipe_key_store(owner.card.eeprom)
        faults = Faults(k)
        LosingVault(faults, monkeypatch)
        try:
            rekey_once(world, owner, restore_all, faults.client(KeyManagerClient), faults.client(VaultClient))
            total = faults.calls
        except (KeyManagerClientError, VaultClientError):
            pass
        monkeypatch.undo()
        rekey_once(world, owner, restore_all)  # the re-run finishes
        assert_rotated(world, owner, old)
        k += 1 if FULL or total is None or k < 12 else 3
    assert total is not None and total > 10


@pytest.mark.parametrize("restore_all", [False, True], ids=["e7", "e8"])
def test_a_power_cut_at_every_card_write_of_a_rekeying(world: World, restore_all: bool) -> None:
    n, writes = 0, None
    while writes is None or n <= writes:
        owner = owner_with_backups(world, 4)
        old = unlocked(owner.card).key_info().key_id
        wipe_key_store(owner.card.eeprom)
        start = owner.card.eeprom.page_writes
        owner.card.eeprom.cut_power_after(n)
        try:
            rekey_once(world, owner, restore_all)
            writes = owner.card.eeprom.page_writes - start
        except CardRemovedError:
            pass
        owner.card.eeprom.cut_power_after(None)
        rekey_once(world, owner, restore_all)
        assert_rotated(world, owner, old)
        n += 1 if FULL else 5
    assert writes is not None and writes > 10


def test_restore_after_rekey_needs_no_other_key(world: World) -> None:
    """Every certificate the card holds after the run restores with the card's new key alone."""
    owner = owner_with_backups(world, 4)
    wipe_key_store(owner.card.eeprom)
    rekey_once(world, owner)
    s = unlocked(owner.card)
    with VaultClient(world.vault_url) as vault:
        connect(s, vault)
        for value_id in encrypted_certificates(s):
            restore(s, vault, value_id)
            assert s.read(value_id).body() == owner.originals[value_id]


def recover_per_value(world: World, owner: Owner, new_card: SimulatedCard,
                      km_client: type[KeyManagerClient] = KeyManagerClient,
                      vault_client: type[VaultClient] = VaultClient) -> KeyInfo:
    """The owner's card lost: on ``new_card`` report it, take its certificates, rebuild its key
    from the key manager's part and the vault's (seed E4, claim 49: no recovery code), restore
    every value and release. Each step idempotent, so a cut run finishes by running it again."""
    with km_client(world.keymgr_url) as km, vault_client(world.vault_url) as vault:
        factors.login(km, owner.name, PASSWORD)
        s = unlocked(new_card)
        connect(s, vault)
        enrol_card(s, km)
        old_id = unlocked(owner.card).identity().card_id
        report_lost(km, vault, old_id, s.identity().card_id)
        take_handovers(s, vault)
        if s.key_info().mode == KeyMode.NONE:
            restore_key_parts(s, km, vault, old_id)  # the certificate: a handed-over one on this card
        _, failed = run_all(inherited(s), lambda i: restore(s, vault, i))
        if failed:
            raise BackupError(f"values not restored: {failed}")
        release_unneeded(s, vault)
        return s.key_info()


def backed_up_bodies(owner: Owner) -> Counter[bytes]:
    """What a new card must end with after the loss: each value the card held as a certificate."""
    s = unlocked(owner.card)
    return Counter(owner.originals[e.id] for e in s.list() if e.flags & ValueFlags.CERTIFICATE)


def test_claims_16_and_49_a_card_rekeyed_by_the_key_manager_restores_per_value_once_lost(world: World) -> None:
    """E7 then E4: every value the key manager re-sealed carries the vault's part 406 of the new
    key (tag 83), and the key manager answers its part 405 of the key it made; so once the card
    is lost a new card rebuilds the new key from the two parts and takes every value back
    exactly once. Before, a re-sealed value had no part and the vault answered 404."""
    owner = owner_with_backups(world)
    with KeyManagerClient(world.keymgr_url) as km:
        factors.login(km, owner.name, PASSWORD)
        backup_key_parts(unlocked(owner.card), km)  # the owner's per-value split of the old key
    wipe_key_store(owner.card.eeprom)
    new_key = rekey_once(world, owner).key
    s = unlocked(owner.card)
    with VaultClient(world.vault_url) as vault:
        connect(s, vault)
        for value_id in encrypted_certificates(s):
            registered = RegisteredValue.from_bytes(vault.restore(s.read(value_id).certificate))
            assert registered.key_id == new_key.key_id and registered.key_part
    expected = backed_up_bodies(owner)
    assert sum(expected.values()) == len(owner.originals) - 2  # the encrypted ones and the plain one
    card, _ = personalized()
    assert recover_per_value(world, owner, card) == new_key
    assert recover_per_value(world, owner, card) == new_key  # a re-run changes nothing
    t = unlocked(card)
    assert Counter(t.read(e.id).body() for e in t.list()) == expected
    assert {e.flags for e in t.list()} == {ValueFlags.NONE}
    with VaultClient(world.vault_url) as vault:
        connect(t, vault)
        assert vault.registrations() == []


def test_the_vault_replaces_a_registration_only_on_the_key_managers_word(world: World, tmp_path: Path) -> None:
    """Claim 46's replacement, refused unless the key manager signed the request and the
    re-sealed value, for the card that holds the certificate, lately, with the same digest;
    each refusal registers nothing. Every case is a check that, removed, lets it through."""
    import base64
    import time
    from dataclasses import replace as with_

    import httpx
    from cryptography.hazmat.primitives.asymmetric import ec

    from apdu import rekey as rk
    from apdu.backup import RegisteredValue
    from keyfile import sign
    from servers.statements import Rekey

    owner = owner_with_backups(world, 4)
    s = unlocked(owner.card)
    card_id, value_id = s.identity().card_id, encrypted_certificates(s)[0]
    cert = s.read(value_id).certificate
    digest = Certificate.from_bytes(cert).digest
    keymgr = load_or_create_key(statement_key_path(tmp_path / "km.pem"))
    stranger = ec.generate_private_key(ec.SECP256R1())
    with VaultClient(world.vault_url) as vault:
        vault_key = vault.public_key()
        connect(s, vault)
        registered_before = len(vault.registrations())

    def attempt(signer: object = keymgr, value_signer: object = keymgr, card: bytes = card_id, value_digest: bytes = digest,
                issued_at: int | None = None) -> httpx.Response:
        value = RegisteredValue(value_digest, bytes(8), b"\x01" * 80)
        value = with_(value, signature=sign(value_signer, rk.rekeyed_message(value, card, vault_key)))  # type: ignore[arg-type]
        request = Rekey(card, cert, value.to_bytes(), int(time.time()) if issued_at is None else issued_at)
        return httpx.post(f"{world.vault_url}/v1/keymgr/rekeyed-values", json={
            "card_id": card.hex(), "certificate": base64.b64encode(cert).decode(),
            "registered_value": base64.b64encode(request.registered).decode(), "issued_at": request.issued_at,
            "signature": base64.b64encode(sign(signer, request.message(vault_key))).decode()})  # type: ignore[arg-type]

    refusals = {
        "a request someone else signed": (attempt(signer=stranger), 403),
        "a value the key manager did not sign": (attempt(value_signer=stranger), 403),
        "another card's certificate": (attempt(card=bytes(8)), 404),
        "another digest": (attempt(value_digest=b""), 409),
        "a stale request": (attempt(issued_at=int(time.time()) - 3600), 403),
    }
    for what, (answer, status) in refusals.items():
        assert answer.status_code == status, (what, answer.text)
    with VaultClient(world.vault_url) as vault:
        connect(s, vault)
        assert len(vault.registrations()) == registered_before  # nothing registered by a refusal
    accepted = attempt()
    assert accepted.status_code == 200, accepted.text
    again = attempt()  # the same value again: the same successor
    assert again.json()["certificate"] == accepted.json()["certificate"]
    body = accepted.json()
    s.succeed_certificate(value_id, base64.b64decode(body["certificate"]), base64.b64decode(body["succession"]))


def test_another_owner_cannot_rekey_my_card(world: World) -> None:
    owner = owner_with_backups(world, 4)
    mine = unlocked(owner.card)
    other = owner_with_backups(world, 3)
    theirs = unlocked(other.card)
    with KeyManagerClient(world.keymgr_url) as km:
        factors.login(km, other.name, PASSWORD)
        with pytest.raises(KeyManagerClientError) as begin:
            km.begin_rekey(mine.identity().card_id)
        assert begin.value.status == 403
        km.begin_rekey(theirs.identity().card_id)
        with pytest.raises(KeyManagerClientError) as value:  # my certificate, through their card's job
            km.rekey_value(theirs.identity().card_id, mine.read(encrypted_certificates(mine)[0]).certificate)
        assert value.value.status == 403
