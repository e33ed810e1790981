"""``evb apdu HEX…`` (issue 16, as ``ykman apdu``): raw commands through the processor stack,
each answer shown, an expected answer checked, a mismatch a non-zero exit at that step."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from apdu import SW, CommandApdu, ResponseApdu
from apdu import wallet as w
from host.processors import ApduProcessor, build_stack
from host.raw_apdu import ApduScriptError, Step, parse_step, run
from host.transport.inprocess import open_image

from .test_cli import PIN, assert_clean_failure, evb
from .test_cli import image as image  # noqa: F401 (fixture)

SELECT = w.select().to_bytes().hex().upper()
INFO = w.get_card_info().to_bytes().hex().upper()


def test_select_and_card_info_with_expected_sw(image: Path) -> None:  # noqa: F811
    r = evb("apdu", "--card-image", str(image), f"{SELECT}=9000", f"{INFO}:9000")
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert lines[0] == f"> {SELECT}" and lines[1].endswith("9000 (success)")
    assert lines[2] == f"> {INFO}" and lines[3].startswith("< 01") and lines[3].endswith("9000 (success)")


def test_dash_s_selects_first_and_json_says_each_answer(image: Path) -> None:  # noqa: F811
    r = evb("apdu", "--card-image", str(image), "-s", INFO, "--json")
    assert r.exit_code == 0, r.output
    answers = json.loads(r.stdout)
    assert [a["command"] for a in answers] == [SELECT, INFO]
    assert [a["sw"] for a in answers] == ["9000", "9000"] and answers[1]["expected_sw"] is None


def test_an_unexpected_answer_stops_the_run_with_one_line(image: Path) -> None:  # noqa: F811
    r = evb("apdu", "--card-image", str(image), f"{INFO}=9000", SELECT)  # not selected: the card refuses
    assert_clean_failure(r, f"{INFO} answered 6985, expected 9000")  # conditions not satisfied
    assert f"> {SELECT}" not in r.stdout  # the run stopped there


def test_a_whole_expected_answer_is_compared(image: Path) -> None:  # noqa: F811
    fci = evb("apdu", "--card-image", str(image), SELECT, "--json")
    data = json.loads(fci.stdout)[0]["data"]
    assert evb("apdu", "--card-image", str(image), f"{SELECT}={data}9000").exit_code == 0
    assert_clean_failure(evb("apdu", "--card-image", str(image), f"{SELECT}=00{data}9000"),
                         f"answered {data}9000, expected 00{data}9000")


@pytest.mark.parametrize("bad, message", [("zz", "is not hex"), ("00A4", "at least 4 header bytes"),
                                          ("00A40400=9", "is not hex"), ("00A40400=90", "status word")])
def test_bad_steps_are_usage_errors(image: Path, bad: str, message: str) -> None:  # noqa: F811
    r = evb("apdu", "--card-image", str(image), bad)
    assert_clean_failure(r, message)
    assert r.exit_code == 2


def test_parse_step() -> None:
    assert parse_step("00A4 0400=6A82") == Step(CommandApdu(0, 0xA4, 4, 0), 0x6A82)
    assert parse_step("80CA0000").expect_sw is None
    with pytest.raises(ApduScriptError):
        parse_step("=9000")


class Recorder:
    def __init__(self, inner: ApduProcessor) -> None:
        self.inner, self.sent = inner, list[CommandApdu]()

    def send_apdu(self, command: CommandApdu) -> ResponseApdu:
        self.sent.append(command)
        return self.inner.send_apdu(command)


def test_a_pin_verified_by_hand_is_forgotten_at_the_end(image: Path) -> None:  # noqa: F811
    with open_image(image) as transport:
        recorder = Recorder(build_stack(transport))
        done = run(recorder, [Step(w.verify(PIN), SW.OK)], select=True)
        assert [e.response.sw for e in done] == [SW.OK, SW.OK]
        assert recorder.sent[-1] == w.log_out()
