"""Escrowed keys and shares (seed E3/E4), keys the key manager generates (claim 6), and
server-assisted restore (E6)."""

from __future__ import annotations

from fastapi import APIRouter

from ...wire import b64, unb64, unhex
from ..deps import Owner, Service
from ..models import (
    MODE_NAMES,
    MODES,
    AssistedRestoreRequest,
    AssistedRestoreResponse,
    EscrowRequest,
    EscrowResponse,
    KeyGenerateRequest,
    KeyRestoreRequest,
    KeyRestoreResponse,
    ShareEscrowRequest,
    ShareRestoreRequest,
    ShareRestoreResponse,
)

router = APIRouter()


def _sealed_key(found: tuple[int, bytes, bytes]) -> KeyRestoreResponse:
    mode, key_id, sealed = found
    return KeyRestoreResponse(mode=MODE_NAMES[mode], key_id=key_id.hex(), sealed=b64(sealed))


@router.post("/v1/escrows", response_model=EscrowResponse)
def escrow(body: EscrowRequest, owner: Owner, service: Service) -> EscrowResponse:
    service.escrows.escrow(owner, unhex(body.card_id, "card_id"), unhex(body.key_id, "key_id"), MODES[body.mode],
                           unb64(body.sealed, "sealed"))
    return EscrowResponse(escrowed=True)


@router.post("/v1/share-escrows", response_model=EscrowResponse)
def escrow_share(body: ShareEscrowRequest, owner: Owner, service: Service) -> EscrowResponse:
    service.escrows.escrow_share(owner, unhex(body.card_id, "card_id"), unhex(body.key_id, "key_id"),
                                 MODES[body.mode], unb64(body.sealed, "sealed"), per_value=body.kind == "per-value")
    return EscrowResponse(escrowed=True)


@router.post("/v1/share-restorations", response_model=ShareRestoreResponse)
def restore_share(body: ShareRestoreRequest, owner: Owner, service: Service) -> ShareRestoreResponse:
    mode, key_id, sealed, public = service.escrows.restore_share(
        owner, unhex(body.card_id, "card_id"), unhex(body.target_card_id, "target_card_id"),
        unb64(body.transport_key, "transport_key"), body.kind,
        None if body.key_id is None else unhex(body.key_id, "key_id"))
    return ShareRestoreResponse(mode=MODE_NAMES[mode], key_id=key_id.hex(), sealed=b64(sealed),
                                public_key=b64(public) if public else None)


@router.post("/v1/assisted-restorations", response_model=AssistedRestoreResponse)
def assisted_restore(body: AssistedRestoreRequest, owner: Owner, service: Service) -> AssistedRestoreResponse:
    sealed = service.escrows.assisted_restore(owner, unhex(body.card_id, "card_id"),
                                              unb64(body.certificate, "certificate"),
                                              unb64(body.transport_key, "transport_key"))
    return AssistedRestoreResponse(sealed_value=b64(sealed))


@router.post("/v1/generated-keys", response_model=KeyRestoreResponse)
def generate(body: KeyGenerateRequest, owner: Owner, service: Service) -> KeyRestoreResponse:
    return _sealed_key(service.escrows.generate(owner, unhex(body.card_id, "card_id"), MODES[body.mode],
                                                unb64(body.transport_key, "transport_key")))


@router.post("/v1/key-restorations", response_model=KeyRestoreResponse)
def restore(body: KeyRestoreRequest, owner: Owner, service: Service) -> KeyRestoreResponse:
    return _sealed_key(service.escrows.restore(owner, unhex(body.card_id, "card_id"),
                                               unhex(body.target_card_id, "target_card_id"),
                                               unb64(body.transport_key, "transport_key")))
