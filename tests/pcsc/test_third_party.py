"""Third-party PC/SC clients see our card as a card: opensc-tool and scriptor (pcsc-tools)."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from apdu import wallet as w
from card import SimulatedCard

from ..readers import SLOT0, PcscReader

SELECT = w.select().to_bytes().hex().upper()


def tool(*argv: str, stdin: str | None = None) -> str:
    if shutil.which(argv[0]) is None:
        pytest.fail(f"{argv[0]} is not installed: run 'bash scripts/install test'")
    done = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"{argv} exited {done.returncode}: {done.stderr}"
    return done.stdout


def responses(scriptor_output: str) -> list[bytes]:
    """scriptor prints "< 90 00 : Normal processing.", wrapping long answers every 16 bytes."""
    found, current = [], None
    for line in scriptor_output.splitlines():
        if line.startswith("<"):
            current = line[1:]
        elif current is not None:
            current += " " + line
        if current is not None and ":" in current:
            found.append(bytes.fromhex(current.split(":")[0]))
            current = None
    return found


@pytest.fixture
def inserted(pcsc_bridge, card: SimulatedCard) -> PcscReader:  # type: ignore[no-untyped-def]
    r = PcscReader(pcsc_bridge)
    r.insert(card).close()  # in the slot, powered, and no connection of ours holding it
    return r


def test_opensc_tool_reads_the_atr_and_selects_the_wallet(inserted: PcscReader, card: SimulatedCard) -> None:
    atr = tool("opensc-tool", "--reader", SLOT0, "--atr")
    assert atr.strip().replace(":", "").lower() == card.atr.hex()
    out = tool("opensc-tool", "--reader", SLOT0, "--send-apdu", SELECT)
    assert "SW1=0x90, SW2=0x00" in out or "SW1=0x61" in out, out


def test_scriptor_gets_the_card_info(inserted: PcscReader) -> None:
    out = tool("scriptor", "-r", SLOT0, stdin=f"{SELECT}\n{w.get_card_info().to_bytes().hex()}\n")
    answers = responses(out)
    assert len(answers) == 2, out
    assert answers[0][-2:] == b"\x90\x00", out
    info = w.CardInfo.from_bytes(answers[1][:-2])
    assert answers[1][-2:] == b"\x90\x00" and info.index_used == 0, out
