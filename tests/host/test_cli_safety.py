"""Safety prompts (issue 16): deleting a certificate loses its value for good, so it is asked on a
terminal and needs ``--force`` in a script; ``evb restore`` says what the vault let go; the shell
backs nothing up at start unasked."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from host.cli import card as card_cli
from host.cli.shell import wants_auto
from servers.tls import Issued
from servers.vault.server import running

from .test_cli import PIN, app_area, assert_clean_failure, evb
from .test_cli import image as image  # noqa: F401 (fixture)
from .test_cli import stocked as stocked  # noqa: F401 (fixture)


@pytest.fixture
def vault_url(tmp_path: Path, cli_tls: Issued) -> Iterator[str]:
    with running(f"sqlite:///{tmp_path / 'vault.db'}", tmp_path / "key.pem", cli_tls.server) as url:
        yield url


@pytest.fixture
def with_cert(stocked: Path, vault_url: str) -> Path:  # noqa: F811
    """Value 1 backed up: the card holds its certificate, the vault the value."""
    r = evb("backup", "1", "--card-image", str(stocked), "--vault", vault_url, "--pin", PIN)
    assert r.exit_code == 0, r.output
    return stocked


def ids(image: Path) -> list[int]:  # noqa: F811
    return [e["id"] for e in json.loads(evb("card", "list", "--card-image", str(image), "--json").output)]


def test_a_script_cannot_delete_a_certificate_without_force(with_cert: Path) -> None:
    before = app_area(with_cert)
    r = evb("card", "delete", "1", "--card-image", str(with_cert), "--pin", PIN)
    assert_clean_failure(r, "value 1 is a vault certificate")
    assert "--force" in r.stderr
    assert app_area(with_cert) == before
    r = evb("card", "delete", "1", "--force", "--card-image", str(with_cert), "--pin", PIN, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output) == {"id": 1, "deleted": True, "certificate": True}
    assert ids(with_cert) == [2]


def test_a_script_may_delete_a_plain_value(stocked: Path) -> None:  # noqa: F811
    r = evb("card", "delete", "2", "--card-image", str(stocked), "--pin", PIN)
    assert r.exit_code == 0 and "Deleted value 2" in r.output
    assert ids(stocked) == [1]


@pytest.mark.parametrize("answer, left", [("n\n", [1, 2]), ("y\n", [2])])
def test_a_terminal_is_asked(with_cert: Path, monkeypatch: pytest.MonkeyPatch, answer: str,
                             left: list[int]) -> None:
    monkeypatch.setattr(card_cli, "interactive", lambda: True)
    r = evb("card", "delete", "1", "--card-image", str(with_cert), "--pin", PIN, input=answer)
    assert "the value lives only at the vault" in r.output
    assert (r.exit_code == 0) == (answer == "y\n"), r.output
    assert ids(with_cert) == left


def test_a_terminal_is_asked_for_a_plain_value_too(stocked: Path, monkeypatch: pytest.MonkeyPatch) -> None:  # noqa: F811
    monkeypatch.setattr(card_cli, "interactive", lambda: True)
    r = evb("card", "delete", "2", "--card-image", str(stocked), "--pin", PIN, input="\n")  # default: no
    assert "Delete value 2 'Prepaid card E' from the card?" in r.output
    assert_clean_failure(r, "nothing deleted")
    assert ids(stocked) == [1, 2]


def test_restore_says_what_the_vault_released(with_cert: Path, vault_url: str) -> None:
    common = ["--card-image", str(with_cert), "--vault", vault_url, "--pin", PIN]
    assert evb("backup", "2", *common).exit_code == 0
    assert evb("card", "delete", "1", "--force", "--card-image", str(with_cert), "--pin", PIN).exit_code == 0
    r = evb("restore", "2", *common)
    assert r.exit_code == 0, r.output
    assert "Prepaid card E: restored" in r.output
    assert "The vault released 1 value no certificate on this card names any more" in r.output
    r = evb("restore", "--all", *common, "--json")  # nothing left to release
    assert json.loads(r.output) == {"done": [], "failed": [], "released": 0}


@pytest.mark.parametrize(
    "due, auto, tty, answer, runs",
    [
        (False, True, True, True, False),  # not due: nothing to ask
        (True, True, False, False, True),  # --auto: runs, unasked, in a script too
        (True, False, True, True, False),  # --no-auto
        (True, None, False, True, False),  # a script without --auto: none
        (True, None, True, True, True),  # a person says yes
        (True, None, True, False, False),  # or no
    ],
)
def test_the_shell_backs_up_at_start_only_when_wanted(monkeypatch: pytest.MonkeyPatch, due: bool,
                                                      auto: bool | None, tty: bool, answer: bool,
                                                      runs: bool) -> None:
    monkeypatch.setattr("sys.stdin.isatty", lambda: tty)
    asked: list[bool] = []

    def ask() -> bool:
        asked.append(True)
        return answer

    assert wants_auto(due, auto, ask) == runs
    assert bool(asked) == (due and auto is None and tty)
