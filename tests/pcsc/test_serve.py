"""``evb card serve`` as a user runs it: a card image in slot 1, driven by ``evb card --reader``.

Slot 0 belongs to the test bridge; slot 1 is free for a separate serving process.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..readers import retry

SLOT1 = "Virtual PCD 00 01"


def evb(*args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [sys.executable, "-m", "host.cli", *args], capture_output=True, text=True, timeout=60,
        env={**os.environ, "EVB_PIN": "1234"},
    )
    if ok:
        assert done.returncode == 0, f"evb {' '.join(args)}: {done.stderr}"
    return done


def card_in_slot1() -> None:
    readers = json.loads(evb("readers", "--json").stdout)
    if not any(r["name"] == SLOT1 and r["atr"] for r in readers):
        raise AssertionError("no card in slot 1 yet")


@pytest.fixture
def served(pcscd: None, tmp_path: Path) -> Iterator[tuple[Path, subprocess.Popen[str]]]:
    image = tmp_path / "card.img"
    evb("card", "init", "--card-image", str(image))
    proc = subprocess.Popen(
        [sys.executable, "-m", "host.cli", "card", "serve", "--card-image", str(image), "--slot", "1"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    try:
        retry(card_in_slot1, timeout=15)
        yield image, proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_serve_store_list_and_ctrl_c(served: tuple[Path, subprocess.Popen[str]]) -> None:
    image, proc = served
    evb("card", "store", "--reader", SLOT1, "--type", "ticket", "--name", "Concert C", "--quantity", "2")
    listed = json.loads(evb("card", "list", "--reader", "00 01", "--json").stdout)  # unique part of the name
    assert [v["name"] for v in listed] == ["Concert C"]

    busy = evb("card", "info", "--card-image", str(image), ok=False)  # one card, one reader
    assert busy.returncode == 1 and "in use by another process" in busy.stderr
    assert "Traceback" not in busy.stderr and len(busy.stderr.strip().splitlines()) == 1

    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, out
    assert "connected to vpcd" in out and "Card removed." in out and "Traceback" not in out

    # what was written through the reader is in the image file
    listed = json.loads(evb("card", "list", "--card-image", str(image), "--json").stdout)
    assert [v["name"] for v in listed] == ["Concert C"]


def test_unknown_reader_is_one_clear_line(pcscd: None) -> None:
    done = evb("card", "info", "--reader", "No Such Reader", ok=False)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert "No Such Reader" in done.stderr and len(done.stderr.strip().splitlines()) == 1


def test_serving_a_missing_image_fails_cleanly(tmp_path: Path) -> None:
    done = evb("card", "serve", "--card-image", str(tmp_path / "nope.img"), "--slot", "1", ok=False)
    assert done.returncode == 1 and "no card image" in done.stderr and "Traceback" not in done.stderr
