"""The applet (card/javacard.py, jCardSim in a JVM child) behind the host's Transport, so host
code such as :class:`host.session.WalletSession` talks to it as it does to the Python card.

The tests build it once per run into a temporary folder (the converter's errors raise there);
the kit comes from ``JC_HOME`` only (../shared/javacard/README.md), without it they skip.
"""

from __future__ import annotations

from pathlib import Path

from apdu.wallet import AID_WALLET
from card import CardMute
from card.javacard import APPLET_CLASS, NO_KIT, ROOT, AppletBuild, AppletCard, build
from host.transport import CardRemovedError

Build = AppletBuild
__all__ = ["NO_KIT", "ROOT", "AppletTransport", "Build", "build"]


class AppletTransport:
    """One simulated card holding the wallet applet, freshly installed (a new card id), on the
    protocol a reader negotiates after each power-on (T=1, as ``connect_card`` by default)."""

    def __init__(self, built: AppletBuild, applet_class: str = APPLET_CLASS, aid: bytes = AID_WALLET, *,
                 state_file: Path | None = None, protocol: str = "T=1") -> None:
        self.card = AppletCard(built, applet_class, aid, state_file=state_file)
        self.protocol = protocol
        self.card.select_protocol(protocol)

    @property
    def atr(self) -> bytes:
        return self.card.atr

    def send_and_receive(self, apdu: bytes) -> tuple[bytes, int]:
        try:
            raw = self.card.transmit(apdu)
        except CardMute as exc:
            raise CardRemovedError(str(exc)) from exc
        return raw[:-2], raw[-2] << 8 | raw[-1]

    def power_cycle(self) -> None:
        """Power off and on: session state (RAM) is lost, EEPROM kept, nothing selected."""
        try:
            self.card.reset()
            self.card.select_protocol(self.protocol)
        except CardMute as exc:
            raise CardRemovedError(str(exc)) from exc

    def new_card(self) -> None:
        """Replace the card by a new one (every applet deleted, the wallet installed afresh)."""
        try:
            self.card.new_card()
            self.card.select_protocol(self.protocol)
        except CardMute as exc:
            raise CardRemovedError(str(exc)) from exc

    def begin_exclusive(self) -> None:
        """Nothing to do: the JVM child serves this transport alone."""

    def close(self) -> None:
        self.card.close()
