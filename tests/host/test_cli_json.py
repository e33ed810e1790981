"""One JSON shape per record (issue 16, docs/JSON.md): the same names across commands, card ids
as the tables print them, versions as strings, null for nothing; and plain output a file can keep
(a line is never wrapped when stdout is no terminal)."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import click

from host.cli import cli
from host.cli.render import make_console, to_jsonable

from .test_cli import PIN, evb
from .test_cli import image as image  # noqa: F401 (fixture)
from .test_cli import stocked as stocked  # noqa: F401 (fixture)


def out(*args: str) -> object:
    r = evb(*args)
    assert r.exit_code == 0, r.output
    return json.loads(r.stdout)


def test_card_info_shape(image: Path) -> None:  # noqa: F811
    info = out("card", "info", "--card-image", str(image), "--json")
    assert isinstance(info, dict)
    assert info["version"] == "1.0"
    assert re.fullmatch(r"[0-9A-F]{16}", info["card_id"])
    assert "Card ID" in (table := evb("card", "info", "--card-image", str(image)).stdout)
    assert info["card_id"] in table  # the same spelling as the table's
    assert info["pin_tries_remaining"] == 3


def test_a_record_says_null_for_nothing(stocked: Path) -> None:  # noqa: F811
    record = out("card", "show", "2", "--card-image", str(stocked), "--json")
    assert isinstance(record, dict)
    assert record["id"] == 2 and record["issuer"] is None and record["place"] is None and record["payload"] is None


def test_pin_commands_speak_json_with_one_name(image: Path) -> None:  # noqa: F811
    img = ["--card-image", str(image)]
    assert out("card", "pin", "status", *img, "--json") == {"pin_tries_remaining": 3, "blocked": False}
    assert out("card", "pin", "change", *img, "--old", PIN, "--new", "5678", "--json") == {
        "changed": True, "pin_tries_remaining": 3}
    for _ in range(3):
        evb("card", "store", *img, "--pin", "0000", "--type", "coupon", "--name", "C")
    assert out("card", "pin", "status", *img, "--json") == {"pin_tries_remaining": 0, "blocked": True}


def test_init_json_gives_the_unblocking_code_once(tmp_path: Path) -> None:
    made = out("card", "init", "--card-image", str(tmp_path / "c.img"), "--pin", PIN, "--json")
    assert isinstance(made, dict)
    assert re.fullmatch(r"\d{8}", made["puk"]) and re.fullmatch(r"[0-9A-F]{16}", made["card_id"])
    given = out("card", "init", "--card-image", str(tmp_path / "d.img"), "--pin", PIN, "--puk", "12345678", "--json")
    assert isinstance(given, dict) and given["puk"] is None  # the user chose it: not echoed


@dataclass(frozen=True)
class _Outcome:
    value_id: int
    old_card_id: bytes
    remarks: str


def test_the_shared_names_apply_to_every_record() -> None:
    assert to_jsonable({"done": [_Outcome(3, bytes.fromhex("0a0b0c0d0e0f1011"), "")],
                        "failed": [{"value_id": 4, "tries_remaining": 1}]}) == {
        "done": [{"id": 3, "old_card_id": "0A0B0C0D0E0F1011", "remarks": None}],
        "failed": [{"id": 4, "pin_tries_remaining": 1}],
    }


def test_plain_output_is_not_wrapped_outside_a_terminal(monkeypatch: object) -> None:
    import pytest

    assert isinstance(monkeypatch, pytest.MonkeyPatch)
    monkeypatch.delenv("COLUMNS", raising=False)
    console = make_console()
    assert not console.is_terminal
    code = "-".join(["ABCD2345"] * 20)  # 179 characters, as a long recovery code would be
    with console.capture() as captured:
        console.print(f"Recovery code 1: {code}")
    assert captured.get().strip() == f"Recovery code 1: {code}"


def test_issuer_and_tls_init_speak_json(tmp_path: Path) -> None:
    made = out("issuer", "init", "--issuer-key-file", str(tmp_path / "issuer.pem"), "--json")
    assert isinstance(made, dict) and made["key_file"] == str(tmp_path / "issuer.pem")
    assert made["public_key"] == out("issuer", "show", "--issuer-key-file", str(tmp_path / "issuer.pem"),
                                     "--json")["public_key"]  # type: ignore[index]
    tls = out("tls", "init", str(tmp_path / "tls"), "--json")
    assert isinstance(tls, dict) and Path(tls["server_cert"]).exists() and tls["names"][0] == "localhost"


# Commands that print no result a script would parse, and why (docs/JSON.md says the same).
WITHOUT_JSON = {
    "card serve": "a server: it runs until stopped, printing where it serves",
    "vault serve": "a server",
    "keymgr serve": "a server",
    "shell": "interactive: each command in it prints its own output",
    "demo": "a story for people, told in steps",
    "vault openapi": "prints a JSON document already",
    "keymgr openapi": "prints a JSON document already",
    "keymgr statement-key": "prints the key as is, one hex line a script can take",
}


def every_command() -> dict[str, click.Command]:
    """Every leaf command by its path, lazy groups imported."""
    found: dict[str, click.Command] = {}

    def walk(command: click.Command, path: tuple[str, ...]) -> None:
        if isinstance(command, click.Group):
            ctx = click.Context(command)
            for name in command.list_commands(ctx):
                sub = command.get_command(ctx, name)
                assert sub is not None, name
                walk(sub, (*path, name))
        else:
            found[" ".join(path)] = command

    walk(cli, ())
    return found


def test_every_command_that_prints_a_result_takes_json() -> None:
    commands = every_command()
    assert len(commands) > 50 and "card map" in commands and "card pin unblock" in commands
    missing = {path for path, command in commands.items()
               if not any("--json" in getattr(p, "opts", ()) for p in command.params)}
    assert missing == set(WITHOUT_JSON), "add --json (docs/JSON.md) or say here why not"
