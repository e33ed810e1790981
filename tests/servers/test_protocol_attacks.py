"""The attacks of issue 14 against the protocol, each as an attacker would run it on loopback,
each refused, and each refusal changing nothing on either server or the card.

The attacker sits on the terminal's links (swaps challenges, rewrites answers) or is a stranger
with a card and an issuer of their own; the victim uses the real servers through the host's flows.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature

from apdu import SW, ApduError
from apdu.backup import Attestation, Audience, Identity, auth_message
from apdu.certificate import Certificate
from apdu.signature import ORDER, verify
from host import factors
from host.backup import BackupError, backup, check_certificate, connect, restore
from host.demo import FIG15
from host.issuer import Issuer
from host.keymgr_client import KeyManagerClient, KeyManagerClientError
from host.keys import enrol_card
from host.vault_client import VaultClient, VaultClientError
from keyfile import load_or_create_key, public_bytes, sign

from ..card.helpers import personalized
from . import test_recovery
from .test_recovery import PASSWORD, World, names

world = test_recovery.world  # the fixture: a key manager and a vault that trusts its statements


def malleated(signature: bytes) -> bytes:
    """The other valid ECDSA signature of the same message: (r, n - s)."""
    r, s = decode_dss_signature(signature)
    return encode_dss_signature(r, ORDER - s)


@contextmanager
def owner(world: World) -> Iterator[KeyManagerClient]:
    """A new account at the key manager, logged in."""
    name = next(names)
    with KeyManagerClient(world.keymgr_url) as km:
        km.create_account(name, PASSWORD)
        factors.login(km, name, PASSWORD)
        yield km


def test_relay_of_a_key_manager_challenge_through_a_vault_session_is_refused(world: World) -> None:
    """R1: the man in the middle of the victim's vault link hands the card a key-manager
    enrolment challenge instead of the vault's; the card signs it for the vault it pinned, so the
    key manager refuses to enrol the victim's card in the attacker's account."""
    _, victim = personalized()
    with VaultClient(world.vault_url) as vault:
        victim.put_vault_key(vault.public_key())
    identity = victim.identity()
    with owner(world) as attacker_km:
        relayed = attacker_km.card_challenge()  # what the victim's card is shown as "the vault's challenge"
        signature = victim.authenticate(Audience.VAULT, relayed)
        with pytest.raises(KeyManagerClientError) as refused:
            attacker_km.enrol_card(identity.card_id, identity.public_key, victim.attestation(), relayed, signature)
        assert refused.value.status == 401 and "not valid for this key manager" in refused.value.message
        assert attacker_km.status()[1] == {}  # no card enrolled in the attacker's account


def test_relay_of_a_vault_challenge_through_a_card_enrolment_is_refused(world: World) -> None:
    """R2: during the victim's 'evb account enrol-card', the man in the middle hands the card a
    vault challenge for the victim's card id; the card signs it for the key manager it pinned, so
    the vault opens no session (and shows no values) to the attacker."""
    _, victim = personalized()
    with VaultClient(world.vault_url) as vault:
        key = connect(victim, vault)  # the victim's card is known to the vault, with a backup
        backup(victim, vault, key, victim.store(FIG15[0]))
    with KeyManagerClient(world.keymgr_url) as km:
        victim.put_keymgr_key(km.public_key())
    identity = victim.identity()
    with VaultClient(world.vault_url) as attacker:
        relayed = attacker.challenge(identity.card_id)
        signature = victim.authenticate(Audience.KEY_MANAGER, relayed)  # "the key manager's challenge"
        with pytest.raises(VaultClientError) as refused:
            attacker.open_session(identity.card_id, identity.public_key, victim.attestation(), relayed, signature)
        assert refused.value.status == 401 and "not valid for this vault" in refused.value.message
        with pytest.raises(VaultClientError) as no_session:
            attacker.registrations()
        assert no_session.value.status == 401


def test_a_card_signs_for_no_server_it_has_not_pinned() -> None:
    _, card = personalized()
    with pytest.raises(ApduError) as refused:
        card.authenticate(Audience.KEY_MANAGER, bytes(32))
    assert refused.value.sw == SW.REFERENCE_DATA_NOT_USABLE


def test_squatting_a_card_id_is_refused(world: World, tmp_path: Any) -> None:
    """A stranger reads the victim's card id (no PIN needed) and opens the first vault session
    for it with a key of their own, signing as the protocol asks: no trusted issuer attested that
    key for that id, so the vault binds nothing and the real card is not locked out."""
    _, victim = personalized()
    _, genuine = personalized()  # the stranger's own, genuinely attested card
    victim_id = victim.identity().card_id
    squat_key = ec.generate_private_key(ec.SECP256R1())
    squat = Identity(victim_id, public_bytes(squat_key.public_key()))
    rogue = Issuer(load_or_create_key(tmp_path / "rogue-issuer.pem"))  # an issuer nobody trusts
    with VaultClient(world.vault_url) as vault:
        for attestation, status, why in (
            (genuine.attestation(), 403, "does not name this card and key"),
            (rogue.attestation(squat), 403, "does not trust"),
            (Attestation(b"\x04" + bytes(64), b""), 400, "malformed attestation"),
        ):
            challenge = vault.challenge(victim_id)
            signature = sign(squat_key, auth_message(Audience.VAULT, vault.public_key(), victim_id, challenge))
            with pytest.raises(VaultClientError) as refused:
                vault.open_session(victim_id, squat.public_key, attestation, challenge, signature)
            assert refused.value.status == status and why in refused.value.message
    with VaultClient(world.vault_url) as vault:  # the real card is not locked out
        connect(victim, vault)
        assert vault.registrations() == []
    with owner(world) as km:
        challenge = km.card_challenge()
        signature = sign(squat_key, auth_message(Audience.KEY_MANAGER, km.public_key(), victim_id, challenge))
        with pytest.raises(KeyManagerClientError) as refused:
            km.enrol_card(victim_id, squat.public_key, rogue.attestation(squat), challenge, signature)
        assert refused.value.status == 403 and "does not trust" in refused.value.message
        assert km.status()[1] == {}
        enrol_card(victim, km)  # the victim enrols its own card afterwards
        assert list(km.status()[1]) == [victim_id]


class MalleatingVault(VaultClient):
    """A man in the middle who rewrites every certificate the vault answers into the other
    valid encoding of its signature: (r, n - s)."""

    def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        answer = super()._call(method, path, body)
        if path == "/v1/registrations" and method == "POST":
            import base64

            cert = Certificate.from_bytes(base64.b64decode(answer["certificate"]))
            bent = replace(cert, signature=malleated(cert.signature)).to_bytes()
            answer = {**answer, "certificate": base64.b64encode(bent).decode()}
        return answer


def test_a_malleated_certificate_is_refused_by_host_and_card_and_strands_nothing(world: World) -> None:
    card, s = personalized()
    value_id = s.store(FIG15[0])
    value = s.read(value_id).body()
    with MalleatingVault(world.vault_url) as bent_link:
        key = connect(s, bent_link)
        with pytest.raises(BackupError, match="signature"):
            backup(s, bent_link, key, value_id)
    assert s.read(value_id).body() == value  # the value stayed on the card
    with VaultClient(world.vault_url) as vault:  # the honest link: the same backup finishes
        connect(s, vault)
        raw = vault.register(value).certificate
        cert = Certificate.from_bytes(raw)
        bent = replace(cert, signature=malleated(cert.signature))
        assert not verify(key, bent.signature, bent.message())  # the high-s twin verifies nowhere
        with pytest.raises(BackupError):
            check_certificate(bent.to_bytes(), value, key, s.identity().card_id)
        s.begin_backup(value_id)
        with pytest.raises(ApduError) as refused:  # the card, even if the host let it through
            s.commit_backup(value_id, bent.to_bytes())
        assert refused.value.sw == SW.VERIFICATION_FAILED
        assert backup(s, vault, key, value_id).action == "backed up"
        # the vault knows its registration by content: the twin still names it, nothing is stranded
        assert vault.restore(bent.to_bytes()) == value
        assert restore(s, vault, value_id).action == "restored"
    assert s.read(value_id).body() == value


def test_a_statement_for_one_vault_is_refused_by_another(world: World, tmp_path: Any) -> None:
    from servers.vault.server import running as vault_running

    _, a = personalized()
    _, b = personalized()
    with owner(world) as km, VaultClient(world.vault_url) as first:
        enrol_card(a, km)
        enrol_card(b, km)
        statement = km.report_lost(a.identity().card_id, b.identity().card_id, first.public_key())
        trusted = km.statement_key()
    with vault_running(f"sqlite:///{tmp_path / 'other.db'}", tmp_path / "other.pem",
                       keymgr_key=trusted) as other_url, VaultClient(other_url) as other:
        with pytest.raises(VaultClientError) as refused:
            other.replace_card(statement)
        assert refused.value.status == 403 and "signature" in refused.value.message
    with VaultClient(world.vault_url) as first:
        assert first.replace_card(statement) == 0  # at the vault it was made for, it works
