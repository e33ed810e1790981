"""The vault's part in re-keying by the key manager (seed E7 steps 1-10/1-11, claim 46): on the
key manager's signed request, register the re-sealed value as the successor of the old one and
sign the succession for the card that holds the certificate. The old registration stays until
that card's receipt (:meth:`VaultService.release`), so the card holds a valid certificate at
every moment; a retried request finds the successor by its hash (the key manager's sealing is
deterministic per value and key) and answers the same certificate."""

from __future__ import annotations

import time
from dataclasses import replace
from typing import Annotated

from fastapi import APIRouter, Depends, Request
from pydantic import Field

from apdu import backup as b
from apdu import rekey as rk
from apdu.certificate import Certificate, CertificateError, Mode, value_hash
from apdu.records import MAX_RECORD
from apdu.signature import verify

from ..keyfile import sign
from ..statements import Rekey
from ..wire import B64_PATTERN, HEX_PATTERN, MAX_TIME, StrictModel, b64, unb64, unhex
from .service import VaultError, VaultService

B64 = Annotated[str, Field(description="base64", max_length=4096, pattern=B64_PATTERN)]


def replace_registration(service: VaultService, request: Rekey, signature: bytes) -> tuple[bytes, bytes]:
    """Answers the successor certificate and the succession signed for the holding card."""
    service.check_keymgr_request(request.message(service.public_key), request.issued_at, signature)
    try:
        cert = Certificate.from_bytes(request.certificate)
        registered = b.RegisteredValue.from_bytes(request.registered)
    except (CertificateError, ValueError) as exc:
        raise VaultError(400, f"malformed certificate or registered value: {exc}") from exc
    if cert.mode != Mode.ENCRYPTED:
        raise VaultError(400, "a plain backup holds no key to replace")
    if len(request.registered) > 4 * MAX_RECORD:
        raise VaultError(400, "a registered value is at most 4096 bytes")
    found = service.repo.lookup(cert)
    if found is None or not found.redeemable or found.holder != request.card_id:
        raise VaultError(404, "unknown certificate: this card holds no registration for it")
    holder, key = service.repo.card_state(found.holder), service.repo.card_key(found.holder)
    if holder is None or holder.revoked or key is None:
        raise VaultError(403, "the card holding this certificate was reported lost and is revoked")
    if registered.digest != cert.digest:
        raise VaultError(409, "the re-sealed value's digest is not the certificate's: not the same value")
    assert service.config.keymgr_key is not None  # checked with the request
    if not verify(service.config.keymgr_key, registered.signature,
                  rk.rekeyed_message(registered, found.holder, service.public_key)):
        raise VaultError(403, "the key manager's signature over the re-sealed value is not valid")
    x = value_hash(registered.ciphertext)
    successor = service.repo.find_by_hash(found.holder, x)
    if successor is None:
        def certify(counter: int) -> bytes:
            new = Certificate(found.holder, counter, x, registered.digest, Mode.ENCRYPTED)
            return replace(new, signature=sign(service.key, new.message())).to_bytes()

        successor = service.repo.register(found.holder, x, request.registered, int(time.time()), certify)
    new = Certificate.from_bytes(successor.certificate)
    named = rk.succession_message(found.holder, key, cert.signed_part(), new.signed_part())
    return successor.certificate, sign(service.key, named)


class RekeyRequest(StrictModel):
    """Signed by the key manager's statement key (purpose REKEY) over all of it."""

    card_id: Annotated[str, Field(description="the card holding the certificate, 16 hex digits", min_length=16,
                                  max_length=16, pattern=HEX_PATTERN)]
    certificate: B64
    registered_value: B64 = Field(description="the value re-sealed under the card's new key, signed REKEYED")
    issued_at: int = Field(ge=0, le=MAX_TIME, description="seconds since the epoch")
    signature: B64


class RekeyResponse(StrictModel):
    certificate: B64 = Field(description="the successor certificate")
    succession: B64 = Field(description="the vault's signature for the card: it succeeds the old one")


def _service(request: Request) -> VaultService:
    service: VaultService = request.app.state.service
    return service


router = APIRouter()


@router.post("/v1/keymgr/rekeyed-values", response_model=RekeyResponse)
def rekeyed_value(body: RekeyRequest, service: Annotated[VaultService, Depends(_service)]) -> RekeyResponse:
    """Service to service (seed E7, claim 46): no card session, the key manager's signature."""
    request = Rekey(unhex(body.card_id, "card_id"), unb64(body.certificate, "certificate"),
                    unb64(body.registered_value, "registered_value"), body.issued_at)
    certificate, succession = replace_registration(service, request, unb64(body.signature, "signature"))
    return RekeyResponse(certificate=b64(certificate), succession=b64(succession))
