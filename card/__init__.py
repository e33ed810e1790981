"""The simulated IC card. Imports ``apdu`` and nothing of the host."""

from .card import ATR, CardMute, SimulatedCard
from .eeprom import Eeprom, PowerLoss

__all__ = ["ATR", "CardMute", "Eeprom", "PowerLoss", "SimulatedCard"]
