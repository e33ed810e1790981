"""The wallet as a Java Card applet (javacard/), running in jCardSim in a JVM child.

The same card as :class:`card.SimulatedCard` to whoever talks to it: the vpcd bridge puts it in
pcscd's virtual reader (``evb card serve --javacard``), the tests drive it in process. The JVM
speaks a line protocol (javacard/harness): a hex APDU a line, the hex response a line; ``RESET``
for a power cycle; ``NEW`` for a new card; ``ATR``.

The Java Card kit is third-party and never copied here: :func:`build` compiles the applet and
the harness from ``JC_HOME`` (../shared/javacard/README.md) with ``scripts/javacard build``.
"""

from __future__ import annotations

import os
import subprocess
from dataclasses import dataclass
from pathlib import Path

from apdu.atr import build_atr
from apdu.wallet import AID_WALLET

from .card import CardMute

ROOT = Path(__file__).resolve().parents[1]
APPLET_CLASS = "evb.wallet.WalletApplet"
ID_APPLET_CLASS = "evb.wallet.IdCardApplet"  # the ID card (seed E5), in the same package
DEFAULT_OUT = ROOT / "javacard" / "build"
NO_KIT = "JC_HOME is not set: point it at a Java Card kit folder with sdk/ and jcardsim/ (../shared/javacard/README.md)"
DEBIAN_JARS = ("bcprov.jar", "asm.jar", "asm-tree.jar", "asm-commons.jar")  # libbcprov-java, libasm-java


class KitError(RuntimeError):
    """No Java Card kit, or the applet did not build: the message says which and what to do."""


@dataclass(frozen=True)
class AppletBuild:
    """What ``scripts/javacard build`` made: the verified CAP and the classpath of the harness."""

    out: Path
    cap: Path
    classpath: str


def _sources() -> list[Path]:
    return [*(ROOT / "javacard").glob("src/**/*.java"), *(ROOT / "javacard").glob("harness/**/*.java"),
            ROOT / "scripts" / "javacard"]


def build(out: Path = DEFAULT_OUT, *, force: bool = False) -> AppletBuild:
    """The applet's CAP and harness in ``out``, rebuilt when a source is newer than the CAP.

    The converter's refusals raise :class:`KitError` with its log: a CAP that does not verify
    must never be served.
    """
    jc_home = os.environ.get("JC_HOME")
    if not jc_home:
        raise KitError(NO_KIT)
    caps = sorted(out.glob("cap/**/*.cap"))
    stale = force or not caps or max(p.stat().st_mtime for p in _sources()) > caps[0].stat().st_mtime
    if stale:
        done = subprocess.run(["bash", str(ROOT / "scripts" / "javacard"), "build", str(out)],
                              capture_output=True, text=True, check=False)
        if done.returncode:
            raise KitError(f"scripts/javacard build failed:\n{done.stdout}{done.stderr}")
        caps = sorted(out.glob("cap/**/*.cap"))
    jars = [str(Path(jc_home) / "jcardsim" / "jcardsim-patched.jar")]
    jars += [f"/usr/share/java/{jar}" for jar in DEBIAN_JARS]
    jars += [str(out / "classes"), str(out / "harness")]
    return AppletBuild(out, caps[0], os.pathsep.join(jars))


class AppletCard:
    """One simulated card holding one applet (the wallet by default, or the ID card), installed
    afresh: a new card id, or a new ID-card key pair.

    It has what the vpcd bridge needs of a card (``card.bridge.vpcd.BridgedCard``). jCardSim
    answers on T=1's terms whatever protocol the reader chose, so :meth:`select_protocol` only
    records the choice.
    """

    def __init__(self, built: AppletBuild, applet_class: str = APPLET_CLASS, aid: bytes = AID_WALLET) -> None:
        self.atr = build_atr()
        self.protocol = "T=1"
        self._process = subprocess.Popen(
            ["java", f"-Dcom.licel.jcardsim.card.ATR={self.atr.hex().upper()}", "-cp", built.classpath,
             "evb.harness.Harness", applet_class, aid.hex()],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
        )
        while self._line() != "READY":  # jCardSim prints a notice or two first
            pass

    # --- the harness's line protocol ---------------------------------------------------------

    def _line(self) -> str:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise CardMute("the applet's JVM ended")
        return line.strip()

    def _ask(self, request: str) -> str:
        assert self._process.stdin is not None
        try:
            self._process.stdin.write(request + "\n")
            self._process.stdin.flush()
        except (BrokenPipeError, ValueError) as exc:
            raise CardMute("the applet's JVM ended") from exc
        return self._line()

    def _expect_ok(self, request: str) -> None:
        if (answer := self._ask(request)) != "OK":
            raise CardMute(f"the harness answered {answer!r} to {request}")

    # --- the card ----------------------------------------------------------------------------

    def transmit(self, apdu: bytes) -> bytes:
        """One command APDU in, the response APDU (data ‖ SW1 SW2) out."""
        return bytes.fromhex(self._ask(apdu.hex()))

    def power_on(self) -> bytes:
        return self.atr

    def power_off(self) -> None:
        """Power lost: RAM cleared and nothing selected, EEPROM kept (jCardSim's reset)."""
        self._expect_ok("RESET")

    def reset(self) -> bytes:
        self.power_off()
        return self.power_on()

    def select_protocol(self, protocol: str) -> None:
        self.protocol = protocol

    def new_card(self) -> None:
        """Replace the card by a new one: every applet deleted, the wallet installed afresh."""
        self._expect_ok("NEW")

    def close(self) -> None:
        """End the JVM (its stdin closed, it returns from main) and close both pipes."""
        assert self._process.stdin is not None and self._process.stdout is not None
        try:
            self._process.stdin.close()
        except BrokenPipeError:
            pass
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process.stdout.close()
