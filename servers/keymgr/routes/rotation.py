"""Key rotation (seed E7): the job's record, so an interrupted rotation resumes."""

from __future__ import annotations

from fastapi import APIRouter

from ...wire import unhex
from ..deps import Owner, Service
from ..models import CardPath, RotationFinish, RotationFinished, RotationOut, RotationRequest

router = APIRouter()


@router.post("/v1/rotations", response_model=RotationOut)
def begin_rotation(body: RotationRequest, owner: Owner, service: Service) -> RotationOut:
    service.rotations.begin_rotation(owner, unhex(body.card_id, "card_id"), unhex(body.old_key_id, "old_key_id"),
                                     unhex(body.new_key_id, "new_key_id"))
    return RotationOut(card_id=body.card_id, old_key_id=body.old_key_id, new_key_id=body.new_key_id)


@router.get("/v1/rotations/{card_id}", response_model=RotationOut)
def rotation(card_id: CardPath, owner: Owner, service: Service) -> RotationOut:
    """The card's rotation under way; both key ids null when none is."""
    found = service.rotations.rotation(owner, unhex(card_id, "card_id"))
    return RotationOut(card_id=card_id, old_key_id=found[0].hex() if found else None,
                       new_key_id=found[1].hex() if found else None)


@router.post("/v1/rotations/{card_id}/finish", response_model=RotationFinished)
def finish_rotation(card_id: CardPath, body: RotationFinish, owner: Owner, service: Service) -> RotationFinished:
    return RotationFinished(destroyed=service.rotations.finish_rotation(owner, unhex(card_id, "card_id"),
                                                                        unhex(body.key_id, "key_id")))
