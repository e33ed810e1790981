"""The Java Card applet (javacard/) in jCardSim, in a JVM child, behind the host's Transport.

:func:`build` runs ``scripts/javacard build`` once per test run (class files, the verified CAP,
the harness); :class:`AppletTransport` starts ``evb.harness.Harness`` and speaks its line
protocol (a hex APDU a line, the hex response a line; ``RESET`` for a power cycle), so host code
such as :class:`host.session.WalletSession` talks to the applet as it does to the Python card.
The kit comes from ``JC_HOME`` only (../shared/javacard/README.md); without it the tests skip.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from apdu import wallet as w
from apdu.atr import build_atr
from host.transport import CardRemovedError

ROOT = Path(__file__).resolve().parents[2]
APPLET_CLASS = "evb.wallet.WalletApplet"
NO_KIT = "JC_HOME is not set: point it at a Java Card kit folder with sdk/ and jcardsim/ (../shared/javacard/README.md)"
DEBIAN_JARS = ("bcprov.jar", "asm.jar", "asm-tree.jar", "asm-commons.jar")  # libbcprov-java, libasm-java


@dataclass(frozen=True)
class Build:
    out: Path
    cap: Path
    classpath: str


def build(out: Path) -> Build:
    """Compile and convert the applet into ``out`` (the converter's errors raise here)."""
    jc_home = os.environ["JC_HOME"]
    done = subprocess.run(["bash", str(ROOT / "scripts" / "javacard"), "build", str(out)],
                          capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f"scripts/javacard build failed:\n{done.stdout}{done.stderr}")
    cap = next(out.glob("cap/**/*.cap"))
    jars = [str(Path(jc_home) / "jcardsim" / "jcardsim-patched.jar")]
    jars += [f"/usr/share/java/{jar}" for jar in DEBIAN_JARS]
    jars += [str(out / "classes"), str(out / "harness")]
    return Build(out, cap, os.pathsep.join(jars))


class AppletTransport:
    """One simulated card holding the wallet applet, freshly installed (a new card id)."""

    def __init__(self, built: Build) -> None:
        self._process = subprocess.Popen(
            ["java", f"-Dcom.licel.jcardsim.card.ATR={build_atr().hex().upper()}", "-cp", built.classpath,
             "evb.harness.Harness", APPLET_CLASS, w.AID_WALLET.hex()],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
        )
        while self._line() != "READY":  # jCardSim prints a notice or two first
            pass

    def _line(self) -> str:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise CardRemovedError("the applet's JVM ended")
        return line.strip()

    def _ask(self, request: str) -> str:
        assert self._process.stdin is not None
        self._process.stdin.write(request + "\n")
        self._process.stdin.flush()
        return self._line()

    @property
    def atr(self) -> bytes:
        return bytes.fromhex(self._ask("ATR"))

    def send_and_receive(self, apdu: bytes) -> tuple[bytes, int]:
        raw = bytes.fromhex(self._ask(apdu.hex()))
        return raw[:-2], raw[-2] << 8 | raw[-1]

    def power_cycle(self) -> None:
        """Power off and on: session state (RAM) is lost, EEPROM kept, nothing selected."""
        if self._ask("RESET") != "OK":
            raise CardRemovedError("the harness did not reset the card")

    def new_card(self) -> None:
        """Replace the card by a new one (every applet deleted, the wallet installed afresh)."""
        if self._ask("NEW") != "OK":
            raise CardRemovedError("the harness did not install a new card")

    def begin_exclusive(self) -> None:
        """Nothing to do: the JVM child serves this transport alone."""

    def close(self) -> None:
        """End the JVM (its stdin closed, it returns from main) and close both pipes."""
        assert self._process.stdin is not None and self._process.stdout is not None
        self._process.stdin.close()
        self._process.wait(timeout=30)
        self._process.stdout.close()
