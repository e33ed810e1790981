"""Start-up (issue 16): commands import what they use. ``evb --version`` imports no command
module; a card command's ``--help`` imports no library it would use to run; ``evb card info``
and ``evb card list`` on a card image import neither the HTTP client nor the servers' stacks nor
numpy nor any crypto or construct, and with a reader no simulated card; ``evb bench startup``
reports medians and ratios (figures for the closing note, never an assertion about time)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from card import SimulatedCard
from host.session import WalletSession
from host.transport.inprocess import connect_card

from .test_cli import evb

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("httpx", "fastapi", "pydantic", "numpy", "uvicorn", "sqlalchemy", "argon2")
# what reading a card's state needs none of: signatures and sealing, construct's parsers
CARD_READ_HEAVY = ("cryptography", "construct")
# what printing a command's help needs none of: rich prints, pyscard and the simulated card
# open cards, the session speaks to one
HELP_HEAVY = (*HEAVY, *CARD_READ_HEAVY, "rich", "smartcard", "card")
DEFERRED = ("apdu.backup", "apdu.keys", "apdu.rekey", "apdu.rotation", "apdu.triggers", "apdu.idcard")
# the modules that ran: a deferred one (apdu.deferred) is in sys.modules before it runs
RAN = "(n for n, m in sys.modules.items() if m is not None and type(m).__name__ != '_LazyModule')"


def imported_by(*argv: str) -> set[str]:
    """The modules a fresh interpreter holds after running ``evb ARGV``."""
    probe = ("import sys\nfrom host.cli import cli\n"
             "try:\n    cli.main(sys.argv[1:], prog_name='evb')\nexcept SystemExit as e:\n    assert not e.code, e\n"
             f"print('\\n'.join(sorted({RAN})), file=sys.stderr)")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", probe, *argv], env=env, cwd=ROOT, capture_output=True,
                          text=True, check=True)
    return set(done.stderr.split())


def top_level(modules: set[str]) -> set[str]:
    return {m.split(".")[0] for m in modules}


def test_version_imports_no_command_module() -> None:
    mods = imported_by("--version")
    assert not {m for m in mods if m.startswith("host.cli.") and m not in
                {"host.cli.main", "host.cli.errors", "host.cli.lazy"}}
    assert not top_level(mods) & {*HEAVY, "rich", "cryptography", "card", "construct", "email"}


def test_the_version_is_the_packages() -> None:
    import tomllib

    import host

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert host.__version__ == declared
    assert evb("--version").stdout == f"evb, version {declared}\n"


@pytest.mark.parametrize("command", ["info", "list"])
def test_reading_a_card_imports_no_client_server_or_crypto_stack(tmp_path: Path, command: str) -> None:
    image = tmp_path / "card.img"
    card = SimulatedCard.manufacture(image=image)
    WalletSession(connect_card(card)).personalize("1234")  # 'card list' needs a personalized card
    card.close()
    mods = imported_by("card", command, "--card-image", str(image))
    assert "host.session" in mods  # the probe ran the command
    assert not top_level(mods) & {*HEAVY, *CARD_READ_HEAVY, "servers"}
    # in a pipe (the probe's stdout) the table is drawn without rich, and a card image needs no PC/SC
    assert not top_level(mods) & {"rich", "smartcard"}, sorted(top_level(mods) & {"rich", "smartcard"})
    assert not {"host.backup", "host.triggers", "host.cli.keymgr", "host.cli.vault", "host.cli.pcsc",
                "host.transport.pcsc", "card.javacard"} & mods


@pytest.mark.parametrize("command", ["info", "list"])
def test_the_simulated_card_boots_from_an_image_without_the_codecs_of_commands_not_sent(
        tmp_path: Path, command: str) -> None:
    """The card (card/) runs a command family's codec at that family's first command: reading a
    card image sends none of backup's, the key store's, rotation's, re-keying's or the triggers'
    (apdu.deferred; the card dispatches and lays out its header by apdu.ins), and a wallet runs
    no module of the ID card."""
    image = tmp_path / "card.img"
    card = SimulatedCard.manufacture(image=image)
    WalletSession(connect_card(card)).personalize("1234")
    card.close()
    mods = imported_by("card", command, "--card-image", str(image))
    assert "card.triggers" in mods  # the probe ran the card
    codecs = {*DEFERRED, "apdu.certificate", "apdu.shamir", "card.idcard"}
    assert not mods & codecs, sorted(mods & codecs)


@pytest.mark.parametrize("argv", [
    ["card", "info", "--help"], ["card", "list", "--help"], ["card", "show", "--help"], ["card", "store", "--help"],
    ["card", "modify", "--help"], ["card", "delete", "--help"], ["card", "map", "--help"],
    ["card", "pin", "status", "--help"], ["card", "pin", "change", "--help"],
], ids=" ".join)
def test_a_card_commands_help_imports_nothing_it_would_run_with(argv: list[str]) -> None:
    mods = imported_by(*argv)
    assert "host.cli.card" in mods  # the probe reached the command
    assert not top_level(mods) & set(HELP_HEAVY), sorted(top_level(mods) & set(HELP_HEAVY))
    assert "host.session" not in mods


def test_a_reader_never_loads_the_simulated_card() -> None:
    """What ``evb card info --reader NAME`` imports on its way to pcscd: no module of card/ (the
    simulator and its applet runner), no crypto (checked by import, without touching the shared pcscd)."""
    script = ("import sys\nimport host.cli.card, host.session, host.transport.open, host.transport.pcsc\n"
              f"print('\\n'.join(sorted({RAN})))")
    done = subprocess.run([sys.executable, "-c", script], env={**os.environ, "PYTHONPATH": str(ROOT)}, cwd=ROOT,
                          capture_output=True, text=True, check=True)
    mods = set(done.stdout.split())
    assert "host.transport.pcsc" in mods
    assert not top_level(mods) & {"card", *CARD_READ_HEAVY}, sorted(top_level(mods) & {"card", *CARD_READ_HEAVY})
    # nor the codecs of the commands that do more than read (the session runs them on first use)
    assert not mods & set(DEFERRED), sorted(mods & set(DEFERRED))


@pytest.mark.parametrize("args, names", [
    (["--help"], ["card", "vault", "keymgr", "key", "bench", "shell", "apdu", "tls", "issuer", "account"]),
    (["card", "--help"], ["serve", "lost", "issue-id", "id-info", "map", "pin"]),
])
def test_help_still_lists_every_command(args: list[str], names: list[str]) -> None:
    r = evb(*args)
    assert r.exit_code == 0
    assert all(f"  {name} " in r.stdout for name in names), r.stdout


def test_startup_bench_reports_medians_and_ratios() -> None:
    r = evb("bench", "startup", "--rounds", "3", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.stdout)
    assert [row["command"] for row in out["rows"]] == [
        "python3 -c pass", "evb --version", "evb card info --card-image FILE", "evb card list --card-image FILE"]
    assert out["rows"][0]["ratio"] == 1.0 and all(row["median_ms"] > 0 for row in out["rows"])


def test_backup_in_a_pipe_imports_neither_trio_nor_the_progress_bar(tmp_path: Path) -> None:
    """httpcore imports trio whenever it is installed and httpx its command-line client (0.6 s of
    start-up), and our bar is drawn only on a terminal: ``evb backup --all`` (the process, as
    ``run`` starts it) loads the HTTP client and none of them. The vault here is unreachable: the
    command gets as far as its client."""
    from host.bench_suite import stocked_card
    from host.issuer import Issuer

    image = tmp_path / "card.img"
    stocked_card(Issuer.load_or_create(tmp_path / "issuer.pem"), 5, image=image).close()
    done, mods = run_evb("backup", "--all", "--plain", "--card-image", str(image), "--vault", "http://127.0.0.1:9")
    assert "httpcore" in mods and "host.cli.vault" in mods, done.stderr[-2000:]  # it got as far as the client
    assert "trio" not in mods and not {m for m in mods if m.startswith("trio.")}
    assert not {"rich.progress", "httpx._main", "pygments"} & mods


def run_evb(*argv: str) -> tuple[subprocess.CompletedProcess[str], set[str]]:
    """``evb ARGV`` as ``run`` starts it, its stdout a pipe (PIN 1234): what it did, and the
    modules it held at the end (its last stderr line on)."""
    probe = ("import sys\nfrom host.cli.main import run\nsys.argv[0] = 'evb'\n"
             "try:\n    run()\nexcept SystemExit:\n    pass\n"
             f"print('\\n'.join(sorted({RAN})), file=sys.stderr)")
    env = {**os.environ, "PYTHONPATH": str(ROOT), "EVB_PIN": "1234"}
    done = subprocess.run([sys.executable, "-c", probe, *argv], env=env, cwd=ROOT, capture_output=True, text=True)
    return done, set(done.stderr.split())


def test_a_backup_in_a_pipe_says_each_value_without_rich(tmp_path: Path) -> None:
    """``evb backup --all`` prints a line per value; in a pipe ``print`` does it, and rich (0.1 s of
    the command's set-up, issue 18) is never imported. The same lines as before, one per value."""
    from host.bench_suite import stocked_card
    from servers.vault.server import running

    from ..conftest import ISSUER

    image = tmp_path / "card.img"
    stocked_card(ISSUER, 5, image=image).close()
    with running(f"sqlite:///{tmp_path / 'vault.db'}", tmp_path / "vault.pem") as url:
        done, mods = run_evb("backup", "--all", "--plain", "--card-image", str(image), "--vault", url)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.splitlines()
    assert len(lines) == 5 and all(line.endswith(": backed up") for line in lines), done.stdout
    assert lines[0].startswith("    1  "), lines[0]
    assert not top_level(mods) & {"rich"}, sorted(m for m in mods if m.startswith("rich"))
