"""``evb card serve --javacard``: the Java Card applet, in jCardSim, in pcscd's virtual reader,
driven by the same evb commands as the Python card (slot 1; slot 0 belongs to the test bridge)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from apdu import wallet as w
from card.javacard import NO_KIT

from ..readers import retry
from .test_serve import SLOT1, evb

if not os.environ.get("JC_HOME"):
    pytest.skip(NO_KIT, allow_module_level=True)

PERSONALIZE = bytes(w.personalize("1234", "12345678")).hex()
WRONG_PIN = bytes(w.verify("9999")).hex()


def applet_in_slot1() -> dict[str, object]:
    info: dict[str, object] = json.loads(evb("card", "info", "--reader", SLOT1, "--json").stdout)
    return info


def serve(*extra: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-m", "host.cli", "card", "serve", "--javacard", "--slot", "1", *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        retry(applet_in_slot1, timeout=90)  # the first run builds the CAP
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc


def remove(proc: subprocess.Popen[str]) -> str:
    """Ctrl-C: the card taken out, cleanly."""
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=15)
    assert proc.returncode == 0, out
    assert "Card removed." in out and "Traceback" not in out
    return out


@pytest.fixture
def served(pcscd: None) -> Iterator[subprocess.Popen[str]]:
    proc = serve()
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_the_applet_in_a_pcsc_reader(served: subprocess.Popen[str]) -> None:
    info = applet_in_slot1()
    assert info["life_cycle"] == "personalization" and len(str(info["card_id"])) == 16

    evb("apdu", "--reader", SLOT1, "--select", f"{PERSONALIZE}=9000", f"{WRONG_PIN}=63C2")
    status = json.loads(evb("card", "pin", "status", "--reader", SLOT1, "--json").stdout)
    assert status["pin_tries_remaining"] == 2  # the wrong PIN above was counted, through pcscd
    assert applet_in_slot1()["card_id"] == info["card_id"]
    assert "a new wallet applet (Java Card" in remove(served)


def test_the_applet_keeps_its_memory_in_a_card_image(pcscd: None, tmp_path: Path) -> None:
    """--card-image with --javacard: the applet's heap file, kept across restarts of the serving
    process as a card's EEPROM across power-offs; one serving process per file."""
    heap = tmp_path / "applet.heap"
    proc = serve("--card-image", str(heap))
    try:
        first = applet_in_slot1()
        evb("apdu", "--reader", SLOT1, "--select", f"{PERSONALIZE}=9000", f"{WRONG_PIN}=63C2")
        busy = evb("card", "serve", "--javacard", "--slot", "0", "--card-image", str(heap), ok=False)
        assert busy.returncode == 1 and "Traceback" not in busy.stderr
        assert len(busy.stderr.strip().splitlines()) == 1
        out = remove(proc)
        assert "kept in" in out and heap.name in out
        proc = serve("--card-image", str(heap))
        again = applet_in_slot1()
        assert again["card_id"] == first["card_id"] and again["life_cycle"] == "operational"
        assert again["pin_tries_remaining"] == 2  # the wrong guess survived the restart
        remove(proc)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_javacard_echo_is_a_usage_error() -> None:
    done = evb("card", "serve", "--javacard", "--kind", "echo", ok=False)
    assert done.returncode == 2 and "--javacard" in done.stderr and "Traceback" not in done.stderr
