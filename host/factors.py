"""Authentication factors at the key manager (seed E5): the password, an ID card in a second
reader signing a fresh challenge, a finger on the (simulated) sensor; the account's policy says
which a login needs."""

from __future__ import annotations

import random

from apdu import fingerprint

from .idcard import IdCardSession
from .keymgr_client import Factors, IdCardAnswer, KeyManagerClient


def id_card_answer(keymgr: KeyManagerClient, name: str, id_card: IdCardSession) -> IdCardAnswer:
    """The ID card signs the key manager's fresh challenge for this login."""
    challenge = keymgr.auth_challenge(name)
    return IdCardAnswer(id_card.document().number, challenge, id_card.authenticate(keymgr.public_key(), challenge))


def touch(finger: str, rng: random.Random | None = None) -> bytes:
    """The sensor's sample of the finger named ``finger`` (a simulated person's finger)."""
    from . import sensor  # numpy: imported only when a finger is used

    return fingerprint.encode(sensor.touch(sensor.finger(finger), rng))


def factors(keymgr: KeyManagerClient, name: str, password: str | None = None, id_card: IdCardSession | None = None,
            finger: str | None = None) -> Factors:
    """The owner's factors, fresh: the ID card signs a new challenge, the finger touches again."""
    answer = id_card_answer(keymgr, name, id_card) if id_card is not None else None
    return Factors(password, answer, touch(finger) if finger is not None else None)


def step_up_with(keymgr: KeyManagerClient, name: str, password: str | None = None,
                 id_card: IdCardSession | None = None, finger: str | None = None) -> None:
    """Let the client prove these factors again, afresh, with each sensitive request (step-up)."""
    keymgr.prove_with(lambda: factors(keymgr, name, password, id_card, finger))


def login(keymgr: KeyManagerClient, name: str, password: str | None = None, id_card: IdCardSession | None = None,
          finger: str | None = None) -> int:
    """Log in with these factors; the client then steps up with the same ones (the ID card and
    the finger asked again each time), as the owner at this terminal."""
    given = factors(keymgr, name, password, id_card, finger)
    expires = keymgr.login(name, given.password, given.id_card, given.fingerprint)
    step_up_with(keymgr, name, password, id_card, finger)
    return expires


def enrol_id_card(keymgr: KeyManagerClient, id_card: IdCardSession) -> str:
    """Register the ID card with the logged-in account: it proves it holds its key."""
    challenge = keymgr.card_challenge()
    keymgr.enrol_id_card(id_card.document().to_bytes(), challenge, id_card.authenticate(keymgr.public_key(), challenge))
    return id_card.document().number


def enrol_fingerprint(keymgr: KeyManagerClient, finger: str) -> None:
    """Three touches of the finger; the key manager keeps a template, encrypted at rest."""
    keymgr.enrol_fingerprint([touch(finger) for _ in range(3)])
