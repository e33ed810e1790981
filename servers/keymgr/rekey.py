"""Re-keying driven by the key manager (seed E7/E8, claims 16, 17, 46): the second rotation mode.

After the owner proves the account's factors (step-up), the key manager makes the card's next
key and escrows it with the job, in one transaction (the card's old key is the newest escrowed
one). Then, per certificate the card holds, it fetches the registered value from the vault with
the signed request of E6, checks it, opens it with the escrowed key of the card that sealed it,
re-seals the value under the new key for this card, signs the new registered value (REKEYED)
and has the vault register it as the old one's successor (REKEY; :mod:`servers.vault.rekey`);
last it seals the new key to the card's transport key under ECDH with its own key, for REPLACE
KEY. ``/v1/rotations/{card}/finish`` then destroys the old key, as in the card-side mode.

Each step is idempotent: the job answers the same key until it is finished, the sealing of a
value is deterministic per key (the vault finds the successor it registered before), and a
certificate already under the new key is answered as it is.
"""

from __future__ import annotations

import base64
import time
from dataclasses import dataclass

from fastapi import APIRouter
from pydantic import Field

from apdu import backup as b
from apdu import keys as k
from apdu import rekey as rk
from apdu import seal

from ..keyfile import sign
from ..statements import Rekey
from ..wire import StrictModel, b64, unb64, unhex
from .app import B64, HEX_ID, MODE_NAMES, STEP_UP, CardPath, FactorsIn, Owner, Service, stepped_up
from .repository import Account, Escrow
from .service import KeyManagerError, KeyManagerService, SteppedUp, _escrow_aad


@dataclass(frozen=True)
class Job:
    mode: int
    old_key_id: bytes
    new_key_id: bytes


@dataclass(frozen=True)
class Rekeyed:
    certificate: bytes  # the successor, or the certificate given when it was under the new key already
    succession: bytes  # the vault's signature for the card; empty when nothing was replaced


def begin(service: KeyManagerService, owner: SteppedUp, card_id: bytes) -> Job:
    """Seed E7 steps 1-3 and 1-8: the old key found by the owner's authentication, the new pair made."""
    service._enrolled(owner, card_id)
    escrows = service.repo.escrows(card_id)
    under_way = service.repo.rotation(card_id)
    if under_way is None:
        if not escrows:
            raise KeyManagerError(404, "no key of this card is escrowed here, so the key manager cannot open its "
                                       "backups (a split key's share is not enough): back the key up with 'evb key "
                                       "backup', or restore it first")
        old = escrows[-1]
        material = k.generate_material(k.KeyMode(old.mode))
        new_id = k.key_info_of(material, k.KeyMode(old.mode)).key_id
        sealed = service.master.seal(material, _escrow_aad(card_id, new_id, old.mode))
        under_way = service.repo.begin_rekey(card_id, old.key_id, Escrow(card_id, new_id, old.mode, sealed,
                                                                         int(time.time())), owner.name)
    new = _escrow(service, card_id, under_way[1])
    return Job(new.mode, under_way[0], new.key_id)


def rekey_value(service: KeyManagerService, owner: Account, card_id: bytes, certificate: bytes) -> Rekeyed:
    """Seed E7 steps 1-4..1-11 for one certificate the card holds (its own, or handed over)."""
    service._enrolled(owner, card_id)
    new = _escrow(service, card_id, _under_way(service, card_id)[1])
    cert, registered, _ = service.fetch_registered(owner, certificate)
    vault_key = service._vault_key()
    if registered.key_id == new.key_id:
        return Rekeyed(certificate, b"")  # moved already
    old = next((e for e in service.repo.escrows(cert.card_id) if e.key_id == registered.key_id), None)
    if old is None:
        raise KeyManagerError(404, "the key that encrypted this value is not escrowed here: it cannot be re-keyed")
    try:
        value = k.open_value(_material(service, old), k.KeyMode(old.mode), registered.ciphertext, cert.card_id)
    except seal.SealError as exc:
        raise KeyManagerError(409, f"the escrowed key does not open the value: {exc}") from exc
    resealed = b.RegisteredValue(cert.digest, new.key_id,
                                 k.seal_value(_material(service, new), k.KeyMode(new.mode), value, card_id))
    resealed = b.RegisteredValue(resealed.digest, resealed.key_id, resealed.ciphertext,
                                 sign(service.signer, rk.rekeyed_message(resealed, card_id, vault_key)))
    replacement = Rekey(card_id, certificate, resealed.to_bytes(), int(time.time()))
    answer = service.post_to_vault("/v1/keymgr/rekeyed-values", {
        "card_id": card_id.hex(), "certificate": b64(certificate), "registered_value": b64(replacement.registered),
        "issued_at": replacement.issued_at, "signature": b64(sign(service.signer, replacement.message(vault_key)))})
    service.repo.log(owner.name, f"value {cert.counter} of card {cert.card_id.hex()} re-sealed under key "
                                 f"{new.key_id.hex()} of card {card_id.hex()}", int(time.time()))
    return Rekeyed(base64.b64decode(answer["certificate"]), base64.b64decode(answer["succession"]))


def deliver_key(service: KeyManagerService, owner: Account, card_id: bytes, transport_key: bytes) -> tuple[int, bytes,
                                                                                                           bytes]:
    """Seed E7 steps 1-13: the new key sealed for REPLACE KEY under ECDH(our key, the card's
    transport key), so the card knows its pinned key manager made it. Answers (mode, key id, blob)."""
    service._enrolled(owner, card_id)
    new = _escrow(service, card_id, _under_way(service, card_id)[1])
    try:
        secret = seal.ecdh(service._scalar(), transport_key)
    except (seal.SealError, ValueError) as exc:
        raise KeyManagerError(400, "the transport key is not a P-256 public key") from exc
    blob = seal.seal_symmetric(secret, _material(service, new), rk.replace_context(card_id, k.KeyMode(new.mode)))
    service.repo.log(owner.name, f"key {new.key_id.hex()} sealed for card {card_id.hex()} to replace its key",
                     int(time.time()))
    return new.mode, new.key_id, blob


def _under_way(service: KeyManagerService, card_id: bytes) -> tuple[bytes, bytes]:
    under_way = service.repo.rotation(card_id)
    if under_way is None:
        raise KeyManagerError(409, "no re-keying of this card is under way: begin one (POST /v1/rekeys)")
    return under_way


def _escrow(service: KeyManagerService, card_id: bytes, key_id: bytes) -> Escrow:
    found = next((e for e in service.repo.escrows(card_id) if e.key_id == key_id), None)
    if found is None:
        raise KeyManagerError(409, "the rotation under way moves to a key not escrowed here")
    return found


def _material(service: KeyManagerService, e: Escrow) -> bytes:
    return service.master.open(e.sealed_seed, _escrow_aad(e.card_id, e.key_id, e.mode))


# --- HTTP ------------------------------------------------------------------------------------


class RekeyRequest(StrictModel):
    card_id: HEX_ID
    proof: FactorsIn | None = Field(default=None, description=STEP_UP)


class RekeyJob(StrictModel):
    card_id: str
    mode: str
    old_key_id: str
    new_key_id: str


class RekeyValueRequest(StrictModel):
    certificate: B64 = Field(description="a certificate the card holds")


class RekeyValueResponse(StrictModel):
    certificate: B64 = Field(description="the successor (the one given, when it was under the new key already)")
    succession: B64 = Field(description="the vault's signature for SUCCEED CERTIFICATE; empty when nothing moved")


class RekeyKeyRequest(StrictModel):
    transport_key: B64 = Field(description="from the card's NEW TRANSPORT KEY")


class RekeyKeyResponse(StrictModel):
    mode: str
    key_id: str
    sealed: B64 = Field(description="for REPLACE KEY; only the card opens it")


router = APIRouter()


@router.post("/v1/rekeys", response_model=RekeyJob)
def begin_rekey(body: RekeyRequest, owner: Owner, service: Service) -> RekeyJob:
    """Begin (or answer, again) the card's re-keying by the key manager; needs a step-up proof."""
    job = begin(service, stepped_up(service, owner, body.proof), unhex(body.card_id, "card_id"))
    return RekeyJob(card_id=body.card_id, mode=MODE_NAMES[job.mode], old_key_id=job.old_key_id.hex(),
                    new_key_id=job.new_key_id.hex())


@router.post("/v1/rekeys/{card_id}/values", response_model=RekeyValueResponse)
def rekey_one(card_id: CardPath, body: RekeyValueRequest, owner: Owner, service: Service) -> RekeyValueResponse:
    done = rekey_value(service, owner, unhex(card_id, "card_id"), unb64(body.certificate, "certificate"))
    return RekeyValueResponse(certificate=b64(done.certificate), succession=b64(done.succession))


@router.post("/v1/rekeys/{card_id}/key", response_model=RekeyKeyResponse)
def rekey_key(card_id: CardPath, body: RekeyKeyRequest, owner: Owner, service: Service) -> RekeyKeyResponse:
    mode, key_id, sealed = deliver_key(service, owner, unhex(card_id, "card_id"),
                                       unb64(body.transport_key, "transport_key"))
    return RekeyKeyResponse(mode=MODE_NAMES[mode], key_id=key_id.hex(), sealed=b64(sealed))
