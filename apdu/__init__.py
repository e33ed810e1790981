"""ISO 7816-4 codec and the wallet command set: pure, no I/O, imports nothing else of ours."""

from .command import ApduFormatError, CommandApdu, ResponseApdu, join_chain, split_chain
from .sw import SW, ApduError, InvalidPinError, PinBlockedError, describe, error_for

__all__ = [
    "SW",
    "ApduError",
    "ApduFormatError",
    "CommandApdu",
    "InvalidPinError",
    "PinBlockedError",
    "ResponseApdu",
    "describe",
    "error_for",
    "join_chain",
    "split_chain",
]
