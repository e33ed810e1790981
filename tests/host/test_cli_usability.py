"""What ykman and OpenSC users expect (issue 16): ``-h``, ``--log-file``, completion of value ids
and types."""

from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.shell_completion import ShellComplete
from click.testing import CliRunner

from host.cli import cli

from .test_cli import PIN, evb
from .test_cli import image as image  # noqa: F401 (fixture)
from .test_cli import stocked as stocked  # noqa: F401 (fixture)


@pytest.mark.parametrize("path", [[], ["card"], ["card", "delete"], ["card", "pin", "unblock"], ["apdu"]])
def test_dash_h_is_help_everywhere(path: list[str]) -> None:
    r = evb(*path, "-h")
    assert r.exit_code == 0 and "Usage: " in r.stdout and "-h, --help" in r.stdout


def test_the_log_file_keeps_the_trace_and_the_failure(image: Path, tmp_path: Path,  # noqa: F811
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    from host.session import WalletSession

    def broken(self: WalletSession) -> object:
        raise RuntimeError("the card's answer made no sense")

    log = tmp_path / "evb.log"
    assert evb("--log-file", str(log), "card", "list", "--card-image", str(image)).exit_code == 0
    assert "evb.apdu: > 80" in log.read_text()  # the APDU trace, though -v was not given
    monkeypatch.setattr(WalletSession, "info", broken)
    result = CliRunner().invoke(cli, ["--log-file", str(log), "card", "info", "--card-image", str(image)])
    assert result.exit_code == 3
    assert result.output.strip().splitlines() == [
        f"Error: unexpected RuntimeError: the card's answer made no sense (the trace is in {log})"]
    text = log.read_text()
    assert "Traceback" in text and "RuntimeError: the card's answer made no sense" in text
    assert PIN not in text


def completions(args: list[str], incomplete: str) -> list[tuple[str, str | None]]:
    complete = ShellComplete(cli, {}, "evb", "_EVB_COMPLETE")
    return [(c.value, c.help) for c in complete.get_completions(args, incomplete)]


def test_value_ids_complete_from_the_card(stocked: Path) -> None:  # noqa: F811
    card = ["--card-image", str(stocked)]
    assert completions(["card", "show", *card], "") == [("1", "Movie ticket A"), ("2", "Prepaid card E")]
    assert completions(["card", "delete", *card], "2") == [("2", "Prepaid card E")]
    assert completions(["backup", *card], "") == [("1", "Movie ticket A"), ("2", "Prepaid card E")]


def test_no_card_completes_nothing(tmp_path: Path) -> None:
    assert completions(["card", "show", "--card-image", str(tmp_path / "none.img")], "") == []


def test_types_complete() -> None:
    assert [v for v, _ in completions(["card", "store", "--type"], "t")] == ["ticket"]


def test_completion_is_installable() -> None:
    r = CliRunner().invoke(cli, [], prog_name="evb", env={"_EVB_COMPLETE": "bash_source"})
    assert "_evb_completion" in r.output and isinstance(cli, click.Group)
