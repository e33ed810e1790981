"""``evb apdu HEX…``: raw APDUs to the card through the host's processor stack (host.raw_apdu)."""

from __future__ import annotations

from pathlib import Path

import click

from apdu import describe

from ..processors import build_stack
from ..raw_apdu import ApduScriptError, Exchange, parse_step, run
from ..transport.open import open_card
from .errors import CliFail
from .options import card_image_option, json_option, reader_option
from .render import console, print_json


def exchange_json(e: Exchange) -> dict[str, object]:
    return {"command": e.step.command.to_bytes().hex().upper(), "data": e.response.data.hex().upper() or None,
            "sw": f"{e.response.sw:04X}", "expected_sw": None if e.step.expect_sw is None else f"{e.step.expect_sw:04X}",
            "ok": e.ok}


def show(e: Exchange) -> None:
    console.print(f"> {e.step.command.to_bytes().hex().upper()}", markup=False)
    data = f"{e.response.data.hex().upper()} " if e.response.data else ""
    console.print(f"< {data}{e.response.sw:04X} ({describe(e.response.sw)})", markup=False)


@click.command("apdu")
@click.argument("steps", nargs=-1, required=True, metavar="HEX[=SW]…")
@click.option("-s", "--select", is_flag=True, help="SELECT the wallet application first.")
@card_image_option
@reader_option
@json_option
def apdu_cmd(steps: tuple[str, ...], select: bool, card_image: Path | None, reader: str | None,
             as_json: bool) -> None:
    """Send raw APDUs and print each answer and status word. HEX=SW (or HEX:SW) expects that status
    word, HEX=DATASW that whole answer; the run stops, exit status 1, at the first other answer.
    GET RESPONSE (61xx) and Le reissue (6Cxx) are handled as for every evb command."""
    try:
        parsed = [parse_step(s) for s in steps]
    except ApduScriptError as exc:
        raise click.BadParameter(str(exc), param_hint="HEX") from exc
    with open_card(card_image, reader) as transport:
        done = run(build_stack(transport), parsed, select, shown=lambda e: None if as_json else show(e))
    if as_json:
        print_json([exchange_json(e) for e in done])
    last = done[-1]
    if not last.ok:
        raise CliFail(f"{last.step.command.to_bytes().hex().upper()} answered {answer(last)}, expected "
                      f"{(last.step.expect_data or b'').hex().upper()}{last.step.expect_sw or 0:04X}")


def answer(e: Exchange) -> str:
    """The answer as a step's expectation spells it: the data (when one was expected) and the SW."""
    data = e.response.data.hex().upper() if e.step.expect_data is not None else ""
    return f"{data}{e.response.sw:04X}"
