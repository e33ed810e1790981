"""``evb`` through click's runner: each command's happy path and a bad-input case per command.

A bad input gives exit code != 0, one line starting ``Error:``, no traceback, and an unchanged
card image.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from card import Eeprom
from host.cli import cli

PIN = "1234"


def evb(*args: str, input: str | None = None, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), input=input, env=env, catch_exceptions=False)


@pytest.fixture
def image(tmp_path: Path) -> Path:
    path = tmp_path / "card.img"
    assert evb("card", "init", "--card-image", str(path), "--pin", PIN).exit_code == 0
    return path


@pytest.fixture
def stocked(image: Path) -> Path:
    for name, vtype, extra in [
        ("Movie ticket A", "ticket", ["--face-value", "1600", "--valid-to", "2000-05-31", "--place", "B"]),
        ("Prepaid card E", "prepaid", ["--face-value", "1000", "--balance", "800"]),
    ]:
        r = evb(
            "card", "store", "--card-image", str(image), "--pin", PIN, "--type", vtype, "--name", name, *extra
        )
        assert r.exit_code == 0, r.output
    return image


def app_area(image: Path) -> bytes:
    """The card's state in an image, without the journal's stale bytes."""
    eeprom = Eeprom.load(image)
    return eeprom.snapshot()[eeprom.app_offset :]


def assert_clean_failure(result: Result, message: str) -> None:
    assert result.exit_code != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error:"), result.stderr
    assert message in lines[0]
    assert "Traceback" not in result.output


def test_init_info_json(image: Path) -> None:
    r = evb("card", "info", "--card-image", str(image), "--json")
    assert r.exit_code == 0
    info = json.loads(r.stdout)
    assert info["life_cycle"] == "operational" and info["value_count"] == 0
    assert "Card ID" in evb("card", "info", "--card-image", str(image)).stdout


def test_list_show_modify_delete(stocked: Path) -> None:
    img = ["--card-image", str(stocked)]
    table = evb("card", "list", *img).stdout
    assert "Movie ticket A" in table and "Prepaid card E" in table and "unlimited" in table
    entries = json.loads(evb("card", "list", *img, "--type", "prepaid", "--json").stdout)
    assert [e["name"] for e in entries] == ["Prepaid card E"]
    expiring = json.loads(
        evb("card", "list", *img, "--expiring-within", "90", "--today", "2000-03-15", "--json").stdout
    )
    assert [e["name"] for e in expiring] == ["Movie ticket A"]
    shown = json.loads(evb("card", "show", *img, "2", "--json").stdout)
    assert shown["balance"] == 800 and shown["type"] == "prepaid"
    assert "Balance" in evb("card", "show", *img, "2").stdout
    r = evb("card", "modify", *img, "2", "--spend", "300", "--pin", PIN, "--json")
    assert json.loads(r.stdout) == {"id": 2, "balance": 500}
    r = evb("card", "modify", *img, "1", "--use", "1", "--pin", PIN)
    assert "quantity now 0" in r.stdout
    assert evb("card", "delete", *img, "1", "--pin", PIN).exit_code == 0
    assert [e["id"] for e in json.loads(evb("card", "list", *img, "--json").stdout)] == [2]


def test_pin_status_and_change(image: Path) -> None:
    img = ["--card-image", str(image)]
    assert json.loads(evb("card", "pin", "status", *img, "--json").stdout) == {
        "pin_tries_remaining": 3,
        "blocked": False,
    }
    assert evb("card", "pin", "change", *img, "--old", PIN, "--new", "5678").exit_code == 0
    assert evb("card", "store", *img, "--pin", "5678", "--type", "coupon", "--name", "C").exit_code == 0


def test_init_shows_the_unblocking_code_once_and_it_unblocks_the_pin(tmp_path: Path) -> None:
    img = ["--card-image", str(tmp_path / "card.img")]
    shown = evb("card", "init", *img, "--pin", PIN)
    assert shown.exit_code == 0
    puk = re.search(r"Unblocking code \(PUK\): (\d{8})", shown.stdout)
    assert puk is not None, shown.stdout
    for _ in range(3):
        evb("card", "delete", *img, "1", "--pin", "9999")
    blocked = evb("card", "delete", *img, "1", "--pin", PIN)
    assert_clean_failure(blocked, "PIN blocked")
    assert "evb card pin unblock" in blocked.stderr
    assert "evb card pin unblock" in evb("card", "pin", "status", *img).stdout
    done = evb("card", "pin", "unblock", *img, "--puk", puk.group(1), "--new", "5678")
    assert done.exit_code == 0 and "3 tries" in done.stdout
    assert evb("card", "store", *img, "--pin", "5678", "--type", "coupon", "--name", "C").exit_code == 0


def test_init_with_a_chosen_unblocking_code_does_not_print_it(tmp_path: Path) -> None:
    img = ["--card-image", str(tmp_path / "card.img")]
    done = evb("card", "init", *img, "--pin", PIN, "--puk", "24681357")
    assert done.exit_code == 0 and "24681357" not in done.stdout
    assert evb("card", "pin", "unblock", *img, "--puk", "24681357", "--new", "5678").exit_code == 0
    bad = evb("card", "init", "--card-image", str(tmp_path / "x.img"), "--pin", PIN, "--puk", "123")
    assert_clean_failure(bad, "an unblocking code (PUK) is 8 digits")
    assert not (tmp_path / "x.img").exists()  # refused before a card was made


BAD_INPUTS = [
    # (args after "card", expected fragment of the one-line error)
    (["init", "--pin", "12"], "already holds a card"),
    (["info", "--card-image", "/nonexistent/card.img"], "no card image"),
    (["list", "--today", "2000-01-01"], "--today only makes sense"),
    (["list", "--type", "banana"], "banana"),
    (["show", "99"], "value not found"),
    (["show", "0"], "0"),
    (
        [
            "store",
            "--pin",
            PIN,
            "--type",
            "ticket",
            "--name",
            "X",
            "--valid-from",
            "2000-02-01",
            "--valid-to",
            "2000-01-01",
        ],
        "valid-from is after valid-to",
    ),
    (["store", "--pin", PIN, "--type", "ticket", "--name", "X", "--payload-hex", "zz"], "not hex"),
    (["store", "--pin", "9999", "--type", "ticket", "--name", "X"], "wrong PIN, 2 tries left"),
    (["store", "--type", "ticket", "--name", "X"], "a PIN is required"),
    (["modify", "1", "--pin", PIN], "exactly one of"),
    (["modify", "2", "--spend", "5000", "--pin", PIN], "has no balance left for 5000"),
    (["modify", "7", "--use", "1", "--pin", PIN], "value not found"),
    (["delete", "42", "--pin", PIN], "value not found"),
    (["pin", "change", "--old", "1234", "--new", "12ab"], "a PIN is 4 to 8 digits"),
    (["pin", "change", "--old", "0000", "--new", "5678"], "wrong PIN"),
    (["pin", "unblock", "--puk", "1234", "--new", "5678"], "an unblocking code (PUK) is 8 digits"),
    (["pin", "unblock", "--puk", "12345678", "--new", "56"], "a PIN is 4 to 8 digits"),
    (["pin", "unblock", "--puk", "00000000", "--new", "5678"], "wrong unblocking code, 9 tries left"),
    (["pin", "unblock", "--new", "5678"], "the unblocking code and a new PIN are required"),
]


@pytest.mark.parametrize(("args", "message"), BAD_INPUTS, ids=[" ".join(a[:2]) for a, _ in BAD_INPUTS])
def test_bad_input_is_one_line_and_changes_nothing(stocked: Path, args: list[str], message: str) -> None:
    if "--card-image" not in args:
        args = (
            [args[0], "--card-image", str(stocked), *args[1:]]
            if args[0] != "pin"
            else ["pin", args[1], "--card-image", str(stocked), *args[2:]]
        )
    before = app_area(stocked)
    result = evb("card", *args)
    assert_clean_failure(result, message)
    if "wrong" not in message:  # a wrong guess (PIN or PUK) is the one refusal that must be remembered
        assert app_area(stocked) == before


def test_image_in_use_is_refused(image: Path) -> None:
    from host.transport.inprocess import open_image

    with open_image(image):
        assert_clean_failure(evb("card", "info", "--card-image", str(image)), "in use by another process")


def test_demo_runs_the_fig15_story() -> None:
    r = evb("demo")
    assert r.exit_code == 0, r.output
    for text in [
        "Movie ticket A",
        "Concert ticket C",
        "Prepaid card E",
        "Movie ticket G",
        "balance left: 500 yen",
        "vault at https://127.0.0.1:",  # over TLS, with the demo's own CA
        "(the same key)",
        "1 certificate handed over; restored: Movie ticket A",
        "the lost card, if found, is refused",
        "1 backup re-encrypted, 1 old key destroyed",
        "Movie ticket A: restored under the new key",
        "the card's key now: none",  # re-keying by the key manager of a card that lost its key (E7)
        "1 certificate(s) succeeded, 1 old key destroyed",
        "(the same key) from part 405 and the part 406 of the re-sealed Movie ticket A",  # E4 after E7
        "Movie ticket A: restored with the new key",
        "the password alone is refused",
        "restored onto a spare card (the same key)",
        "Demo complete",
    ]:
        assert text in " ".join(r.stdout.split())  # rich wraps long lines


def test_an_unexpected_failure_is_one_line_with_a_status(image: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The last resort: no traceback, exit status 3, and where to find the trace."""
    from host.session import WalletSession

    def broken(self: WalletSession) -> object:
        raise RuntimeError("the card's answer made no sense")

    monkeypatch.setattr(WalletSession, "info", broken)
    result = CliRunner().invoke(cli, ["card", "info", "--card-image", str(image)])
    assert result.exit_code == 3, result.output
    assert result.output.strip().splitlines() == [
        "Error: unexpected RuntimeError: the card's answer made no sense (run with -v -v for the trace)"]


def test_one_try_left_is_said_so(image: Path) -> None:
    evb("card", "store", "--card-image", str(image), "--pin", "9999", "--type", "ticket", "--name", "X")
    result = evb("card", "store", "--card-image", str(image), "--pin", "9999", "--type", "ticket", "--name", "X")
    assert "wrong PIN, 1 try left" in result.output


def test_a_port_out_of_range_is_a_usage_error() -> None:
    result = evb("vault", "serve", "--port", "99999", "--insecure-http")
    assert result.exit_code == 2 and "99999 is not in the range 1<=x<=65535" in result.output
    assert "Traceback" not in result.output
