"""Raw APDUs for ``evb apdu`` (as ``ykman apdu``): each command through the host's processor
stack (GET RESPONSE, chaining, Le reissue), its answer, and an optional expected answer.

A step is ``HEX`` or ``HEX=EXPECTED`` (``HEX:EXPECTED`` too): EXPECTED is the status word (4 hex
digits) or the whole answer, data then status word. The run stops at the first answer that is not
the one expected, so a script sees where it went wrong.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from apdu import SW, CommandApdu, ResponseApdu
from apdu import wallet as w

from .processors import ApduProcessor


class ApduScriptError(ValueError):
    """A step that is no APDU, or an expectation that is no status word or answer."""


@dataclass(frozen=True)
class Step:
    command: CommandApdu
    expect_sw: int | None = None  # the status word expected, if any
    expect_data: bytes | None = None  # and the data, when the whole answer was given


@dataclass(frozen=True)
class Exchange:
    step: Step
    response: ResponseApdu

    @property
    def ok(self) -> bool:
        """What was expected came back (a step that expects nothing is always fine)."""
        if self.step.expect_sw is not None and self.response.sw != self.step.expect_sw:
            return False
        return self.step.expect_data is None or self.response.data == self.step.expect_data


def _hex(text: str, what: str) -> bytes:
    cleaned = re.sub(r"[\s_]", "", text)
    try:
        return bytes.fromhex(cleaned)
    except ValueError as exc:
        raise ApduScriptError(f"{what} {text!r} is not hex") from exc


def parse_step(text: str) -> Step:
    """``HEX``, ``HEX=EXPECTED`` or ``HEX:EXPECTED`` (spaces and underscores in HEX are ignored)."""
    apdu_text, sep, expected = (re.split(r"([=:])", text, maxsplit=1) + ["", ""])[:3]
    raw = _hex(apdu_text, "APDU")
    try:
        command = CommandApdu.from_bytes(raw)
    except ValueError as exc:  # ApduFormatError: the lengths do not add up
        raise ApduScriptError(f"APDU {apdu_text!r}: {exc}") from exc
    if not sep:
        return Step(command)
    answer = _hex(expected, "expected answer")
    if len(answer) < 2:
        raise ApduScriptError(f"expected answer {expected!r}: give at least the status word (4 hex digits)")
    sw = int.from_bytes(answer[-2:], "big")
    return Step(command, sw, answer[:-2] if len(answer) > 2 else None)


def run(processor: ApduProcessor, steps: list[Step], select: bool,
        shown: Callable[[Exchange], None] = lambda _: None) -> list[Exchange]:
    """Send the steps (after SELECT of the wallet with ``select``), stopping at the first answer
    not expected. A PIN verified by one of them is forgotten at the end, as every evb command does."""
    done: list[Exchange] = []
    verified = False
    try:
        for step in ([Step(w.select(), SW.OK)] if select else []) + steps:
            exchange = Exchange(step, processor.send_apdu(step.command))
            done.append(exchange)
            shown(exchange)
            verified |= step.command.ins == w.INS_VERIFY and exchange.response.sw == SW.OK
            if not exchange.ok:
                break
    finally:
        if verified:
            processor.send_apdu(w.log_out())
    return done
