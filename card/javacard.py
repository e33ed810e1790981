"""The wallet as a Java Card applet (javacard/), running in jCardSim in a JVM child.

The same card as :class:`card.SimulatedCard` to whoever talks to it: the vpcd bridge puts it in
pcscd's virtual reader (``evb card serve --javacard``), the tests drive it in process. The JVM
speaks a line protocol (javacard/harness): a hex APDU a line, the hex response a line; ``RESET``
for a power cycle; ``NEW`` for a new card; ``ATR``; ``PROTOCOL T=0|T=1`` the reader's PPS; ``CUT n`` arms a power cut after n more
persistent writes, ``WRITES`` counts them (the harness journals the applet's writes and rolls
back what a transaction left uncommitted: javacard/README.md).

With a ``state_file`` the applet's persistent heap lives in that file (the card's EEPROM): the
harness loads it at start and saves it, crash-safe, before answering each command that wrote,
so a card served again from the same file is the same card.

The Java Card kit is third-party and never copied here: :func:`build` compiles the applet and
the harness from ``JC_HOME`` (../shared/javacard/README.md) with ``scripts/javacard build``.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from apdu.atr import build_atr
from apdu.wallet import AID_WALLET

from .card import CardMute
from .eeprom import lock_image

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
            *(ROOT / "javacard").glob("probe/**/*.java"), ROOT / "scripts" / "javacard"]


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
    jars += [str(out / "classes"), str(out / "harness"), str(out / "probe")]
    return AppletBuild(out, caps[0], os.pathsep.join(jars))


class PowerCut(CardMute):
    """The armed power cut fell inside the command: no answer, the card is off until a reset."""


class AppletCard:
    """One simulated card holding one applet (the wallet by default, or the ID card): installed
    afresh (a new card id, or a new ID-card key pair), or the card whose heap ``state_file``
    holds (created there when the file does not exist yet).

    It has what the vpcd bridge needs of a card (``card.bridge.vpcd.BridgedCard``). The applet
    shapes answers by the protocol (``APDU.getProtocol``: 61xx for data without Le on T=0), so
    :meth:`select_protocol` passes the reader's choice on, and a power cycle or a new card is back
    on T=0, the first protocol the ATR offers, as :class:`card.SimulatedCard` is.
    """

    def __init__(self, built: AppletBuild, applet_class: str = APPLET_CLASS, aid: bytes = AID_WALLET, *,
                 state_file: Path | None = None) -> None:
        self.atr = build_atr()
        self.protocol = "T=0"  # jCardSim's too, until a PPS
        # one card, one reader: a second process on the same heap would interleave its saves
        self._lock = lock_image(state_file) if state_file is not None else None
        heap = [str(state_file)] if state_file is not None else []
        self._errors = tempfile.TemporaryFile("w+")  # noqa: SIM115 (closed by close())
        # one request and its answer at a time: behind the vpcd bridge its thread sends what pcscd
        # asks while a test's own thread arms a power cut or counts writes
        self._turn = threading.Lock()
        self.powered = False
        self._process = subprocess.Popen(
            ["java", f"-Dcom.licel.jcardsim.card.ATR={self.atr.hex().upper()}", "-cp", built.classpath,
             "evb.harness.Harness", applet_class, aid.hex(), *heap],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._errors, text=True, bufsize=1,
        )
        try:
            while self._line() != "READY":  # jCardSim prints a notice or two first
                pass
        except CardMute as exc:
            self._process.wait()
            reason = self._stderr()
            self.close()
            raise KitError(f"the applet's harness did not start: {reason}") from exc

    def __enter__(self) -> AppletCard:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()

    def _stderr(self) -> str:
        self._errors.seek(0)
        lines = [line for line in self._errors.read().splitlines() if line.strip() and "\tat " not in line]
        errors = [line for line in lines if "Exception" in line or "Error" in line]
        return (errors or lines or [f"exit status {self._process.returncode}"])[0]

    # --- the harness's line protocol ---------------------------------------------------------

    def _line(self) -> str:
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            raise CardMute("the applet's JVM ended")
        return line.strip()

    def _ask(self, request: str) -> str:
        assert self._process.stdin is not None
        with self._turn:
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
        """One command APDU in, the response APDU (data ‖ SW1 SW2) out; :class:`CardMute` when
        the power was cut in it (:class:`PowerCut`) or is off since."""
        answer = self._ask(apdu.hex())
        if answer == "TORN":
            raise PowerCut("power cut at a persistent write of the applet")
        if answer == "MUTE":
            raise CardMute("card not powered")
        return bytes.fromhex(answer)

    # --- tearing (tests) ---------------------------------------------------------------------

    @property
    def writes(self) -> int:
        """The applet's persistent writes since the JVM started: diff it around a command."""
        return int(self._ask("WRITES"))

    def cut_power_after(self, writes: int | None) -> None:
        """After ``writes`` more persistent writes, cut the power at the next one (None: never)."""
        self._expect_ok(f"CUT {-1 if writes is None else writes}")

    def set_commit_capacity(self, size: int) -> None:
        """The bytes the commit buffer holds from now on (JCSystem.getMaxCommitCapacity)."""
        self._expect_ok(f"CAPACITY {size}")

    def save_heap(self, path: Path) -> None:
        """The persistent heap as it is now into ``path`` (a snapshot to come back to)."""
        self._expect_ok(f"SAVE {path}")

    def load_heap(self, path: Path) -> None:
        """The card becomes the one ``path`` holds, powered off and on (RAM cleared)."""
        self._expect_ok(f"LOAD {path}")

    def footprint(self) -> dict[str, int]:
        """What the applet holds in EEPROM, measured on its heap: each persistent array or key
        (an OwnerPIN, a key pair: what they keep) by the field path that reaches it, in bytes."""
        return {path: int(n) for path, _, n in (word.partition("=") for word in self._ask("FOOTPRINT").split())}

    def power_on(self) -> bytes:
        self.powered = True
        return self.atr

    def power_off(self) -> None:
        """Power lost: RAM cleared and nothing selected, EEPROM kept (jCardSim's reset); T=0."""
        self._expect_ok("RESET")
        self.select_protocol("T=0")
        self.powered = False

    def reset(self) -> bytes:
        self.power_off()
        return self.power_on()

    def select_protocol(self, protocol: str) -> None:
        if protocol not in ("T=0", "T=1"):
            raise ValueError(f"the card offers T=0 and T=1, not {protocol}")
        self._expect_ok(f"PROTOCOL {protocol}")
        self.protocol = protocol

    def new_card(self) -> None:
        """Replace the card by a new one: every applet deleted, the wallet installed afresh."""
        self._expect_ok("NEW")
        self.select_protocol("T=0")

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
        self._errors.close()
        if self._lock is not None:
            self._lock.close()
            self._lock = None

    def kill(self) -> None:
        """End the JVM at once, as a crash or a pulled plug would (tests of the state file)."""
        self._process.kill()
        self.close()
