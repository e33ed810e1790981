"""``evb shell`` through a pseudo-terminal, as a person types: set a condition, list, store until
the card is full, choose automatic backup at the shortage prompt, complete a command with Tab,
see a clear error, and leave cleanly."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pexpect
import pytest

from card import SimulatedCard
from host.session import WalletSession
from host.transport.inprocess import open_image
from servers.tls import Issued
from servers.vault.server import running

from ..conftest import ISSUER

PIN = "1234"
PROMPT = "evb> "
COUPON = "store --type coupon --name 'Coupon {n}' --payload-hex " + "ab" * 500


@pytest.fixture
def vault_url(tmp_path: Path, cli_tls: Issued) -> Iterator[str]:
    with running(f"sqlite:///{tmp_path / 'vault.db'}", tmp_path / "vault-key.pem", cli_tls.server) as url:
        yield url


def spawn(tmp_path: Path, vault_url: str, image: Path) -> pexpect.spawn:
    env = {**os.environ, "XDG_DATA_HOME": str(tmp_path / "data"), "TERM": "dumb", "NO_COLOR": "1",
           "COLUMNS": "120"}
    env.pop("EVB_PIN", None)
    child = pexpect.spawn(
        sys.executable, ["-m", "host.cli", "shell", "--card-image", str(image), "--today", "2000-03-15",
                         "--vault", vault_url],
        env=env, encoding="utf-8", timeout=30, dimensions=(50, 120),
    )
    child.expect("PIN: ")
    child.sendline(PIN)  # asked once, hidden, for the whole session
    return child


def test_a_session_that_stores_until_shortage_and_chooses_automatic(tmp_path: Path, vault_url: str) -> None:
    image = tmp_path / "card.img"
    SimulatedCard.manufacture(size=8192, index_capacity=16, image=image)
    with open_image(image) as transport:
        ISSUER.personalize(WalletSession(transport), PIN)
    child = spawn(tmp_path, vault_url, image)
    transcript = []
    child.logfile_read = _Collect(transcript)
    child.expect(r"Automatic backup is due: back the selected values up to the vault now\? \[y/N\]")
    child.sendline("y")  # the periodic trigger at session start runs only when the user agrees
    child.expect("Automatic backup ran: nothing selected")
    child.expect(PROMPT)
    child.send("store --type coupon --name Never")
    child.expect("Never")  # echoed: readline is reading the line
    child.sendintr()  # Ctrl-C cancels the line, not the shell
    child.expect(r"\^C")
    child.expect(PROMPT)
    child.sendline("triggers set --condition type=coupon --on-shortage ask")
    child.expect("Triggers set: type=coupon")
    child.expect(PROMPT)
    stored = 0
    while True:
        child.sendline(COUPON.format(n=stored + 1))
        if child.expect([r"Stored value \d+", r"\[a\]bort, a\[u\]tomatic, \[m\]anual"]) == 1:
            break
        stored += 1
        child.expect(PROMPT)
    assert stored >= 8
    child.sendline("u")
    child.expect(r"backed up to make room")
    child.expect(rf"Stored value \d+: Coupon {stored + 1}")
    child.expect(PROMPT)
    child.send("cer\t")  # Tab completes the command name
    child.sendline("")
    child.expect("Certificates")
    child.expect(PROMPT)
    child.sendline("show 999")
    child.expect("Error: card answered 6A83: value not found")
    child.expect(PROMPT)
    child.sendline("exit")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    with open_image(image) as transport:  # nothing was lost: every coupon is there or certified
        entries = WalletSession(transport).list()
    assert len(entries) == stored + 1 and any(e.flags for e in entries)
    assert all(e.name != "Never" for e in entries)
    assert (tmp_path / "data" / "evb" / "shell_history").read_text().count("store") >= stored
    Path(os.environ.get("EVB_SHELL_TRANSCRIPT", tmp_path / "transcript.txt")).write_text("".join(transcript))


class _Collect:
    def __init__(self, into: list[str]) -> None:
        self.into = into

    def write(self, text: str) -> None:
        self.into.append(text)

    def flush(self) -> None:
        pass
