"""The factors a command proves, as 'evb account login' takes them: at login, and again
(step-up) for the requests that need a fresh proof of them (enrolling a card, reporting one
lost, changing the password, the policy or a factor)."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from .errors import CliFail
from .secrets import secret_option

if TYPE_CHECKING:  # the ID card's commands load the issuer's crypto: imported when a proof is gathered
    from ..idcard import IdCardSession


def ask_password(value: str | None, confirm: bool = False, label: str = "Password",
                 source: str = "pass --password-file FILE or set EVB_PASSWORD") -> str:
    """``value``, or the answer to a prompt on a terminal; ``source`` says where else it comes from."""
    if value is not None:
        return value
    if not sys.stdin.isatty():
        raise CliFail(f"{label.lower()} is required: {source}")
    return str(click.prompt(label, hide_input=True, confirmation_prompt=confirm))


@dataclass(frozen=True)
class ProofOptions:
    """The factors named on the command line, as 'evb account login' takes them: given at login,
    and again (step-up) by the commands whose requests need a fresh proof of them."""

    password: str | None
    no_password: bool
    id_image: Path | None
    id_reader: str | None
    id_pin: str | None
    finger: str | None
    password_option: str = "--password"


def proof_options(prefix: str = "") -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Login's factor options, passed to the command as ``proof``; ``prefix`` (``proof-``) where
    the command's own options already take those names ('evb account enrol')."""
    p = f"--{prefix}"
    options = [
        secret_option(f"{prefix}password", "EVB_PASSWORD", "The account's password", dest="proof_password"),
        click.option(f"{p}no-password", "proof_no_password", is_flag=True,
                     help="Do not give the password (a policy that does without it)."),
        click.option(f"{p}id-card-image", "proof_id_image", type=click.Path(dir_okay=False, path_type=Path),
                     envvar=None if prefix else "EVB_ID_CARD_IMAGE", help="A simulated ID card's image."),
        click.option(f"{p}id-reader", "proof_id_reader", envvar=None if prefix else "EVB_ID_READER",
                     help="Use the ID card in this PC/SC reader (name, index or part of the name)."),
        secret_option(f"{prefix}id-pin", None if prefix else "EVB_ID_PIN", "The ID card's PIN, if it has one",
                      dest="proof_id_pin"),
        click.option(*([f"{p}finger"] + ([] if prefix else ["--fingerprint"])), "proof_finger",
                     help="The finger on the sensor (a simulated finger's name)."),
    ]

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(fn)
        def wrapper(*args: Any, proof_password: str | None, proof_no_password: bool, proof_id_image: Path | None,
                    proof_id_reader: str | None, proof_id_pin: str | None, proof_finger: str | None,
                    **kwargs: Any) -> Any:
            proof = ProofOptions(proof_password, proof_no_password, proof_id_image, proof_id_reader, proof_id_pin,
                                 proof_finger, f"{p}password")
            return fn(*args, proof=proof, **kwargs)

        for option in reversed(options):
            wrapper = option(wrapper)
        return wrapper

    return decorate


@contextmanager
def gathered(proof: ProofOptions) -> Iterator[tuple[str | None, IdCardSession | None]]:
    """The password (unless --no-password) and the ID card, opened and unlocked, as a login
    gathers them."""
    source = f"pass {proof.password_option}-file FILE or set EVB_PASSWORD"
    secret = None if proof.no_password else ask_password(proof.password, source=source)
    from .idcard import optional_id_card

    with optional_id_card(proof.id_image, proof.id_reader) as card:
        if card is not None and proof.id_pin is not None:
            card.verify_pin(proof.id_pin)
        yield secret, card
