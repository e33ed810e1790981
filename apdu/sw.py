"""ISO 7816-4 status words (section 5.6) and the one error type that carries them.

The host raises :class:`ApduError` for any non-success status word; the card answers with
:class:`SW` values only, so a Python exception never crosses the card boundary as a reply.
Unknown status words are kept as plain ints rather than dropped, as a real card may answer
with codes this list does not name.
"""

from __future__ import annotations

from enum import IntEnum


class SW(IntEnum):
    OK = 0x9000
    # 61xx and 6Cxx carry a length in SW2; the enum names the SW1 families via helpers below.
    WARNING_NV_UNCHANGED = 0x6200
    VERIFICATION_FAILED = 0x6300  # a signature did not verify
    VERIFY_FAILED = 0x63C0  # 63Cx: x tries remaining
    MEMORY_FAILURE = 0x6581
    WRONG_LENGTH = 0x6700
    LOGICAL_CHANNEL_NOT_SUPPORTED = 0x6881
    LAST_COMMAND_OF_CHAIN_EXPECTED = 0x6883
    CHAINING_NOT_SUPPORTED = 0x6884
    COMMAND_NOT_ALLOWED = 0x6900
    SECURITY_STATUS_NOT_SATISFIED = 0x6982
    AUTH_METHOD_BLOCKED = 0x6983
    REFERENCE_DATA_NOT_USABLE = 0x6984
    CONDITIONS_NOT_SATISFIED = 0x6985
    WRONG_DATA = 0x6A80
    FUNC_NOT_SUPPORTED = 0x6A81
    FILE_NOT_FOUND = 0x6A82
    RECORD_NOT_FOUND = 0x6A83
    NOT_ENOUGH_MEMORY = 0x6A84
    INCORRECT_P1P2 = 0x6A86
    REFERENCE_DATA_NOT_FOUND = 0x6A88
    WRONG_P1P2 = 0x6B00
    INS_NOT_SUPPORTED = 0x6D00
    CLA_NOT_SUPPORTED = 0x6E00
    NO_PRECISE_DIAGNOSIS = 0x6F00


_MEANINGS: dict[int, str] = {
    SW.OK: "success",
    SW.WARNING_NV_UNCHANGED: "warning, non-volatile memory unchanged",
    SW.VERIFICATION_FAILED: "verification failed (signature not valid)",
    SW.MEMORY_FAILURE: "memory failure",
    SW.WRONG_LENGTH: "wrong length",
    SW.LOGICAL_CHANNEL_NOT_SUPPORTED: "logical channel not supported",
    SW.LAST_COMMAND_OF_CHAIN_EXPECTED: "last command of the chain expected",
    SW.CHAINING_NOT_SUPPORTED: "command chaining not supported",
    SW.COMMAND_NOT_ALLOWED: "command not allowed",
    SW.SECURITY_STATUS_NOT_SATISFIED: "security status not satisfied (PIN not verified)",
    SW.AUTH_METHOD_BLOCKED: "PIN blocked",
    SW.REFERENCE_DATA_NOT_USABLE: "reference data not usable",
    SW.CONDITIONS_NOT_SATISFIED: "conditions of use not satisfied",
    SW.WRONG_DATA: "incorrect data in the command",
    SW.FUNC_NOT_SUPPORTED: "function not supported",
    SW.FILE_NOT_FOUND: "application not found",
    SW.RECORD_NOT_FOUND: "value not found",
    SW.NOT_ENOUGH_MEMORY: "not enough memory on the card",
    SW.INCORRECT_P1P2: "incorrect P1-P2",
    SW.REFERENCE_DATA_NOT_FOUND: "reference data not found",
    SW.WRONG_P1P2: "wrong P1-P2",
    SW.INS_NOT_SUPPORTED: "instruction not supported",
    SW.CLA_NOT_SUPPORTED: "class not supported",
    SW.NO_PRECISE_DIAGNOSIS: "no precise diagnosis",
}


def describe(sw: int) -> str:
    """A human sentence for any status word, including the length-carrying families."""
    sw1, sw2 = sw >> 8, sw & 0xFF
    if sw1 == 0x61:
        return f"{sw2 or 256} more response bytes available"
    if sw1 == 0x6C:
        return f"wrong Le, {sw2 or 256} bytes available"
    if sw & 0xFFF0 == SW.VERIFY_FAILED:
        return f"wrong PIN, {_tries(sw & 0x0F)} left"
    return _MEANINGS.get(sw, "unknown status")


def verify_failed(tries_remaining: int) -> int:
    return SW.VERIFY_FAILED | (tries_remaining & 0x0F)


class ApduError(Exception):
    """A response whose status word is not 9000; keeps the data and the raw word."""

    def __init__(self, sw: int, data: bytes = b"") -> None:
        super().__init__(sw, data)
        self.sw = sw
        self.data = data

    @property
    def known(self) -> SW | None:
        try:
            return SW(self.sw)
        except ValueError:
            return None

    def __str__(self) -> str:
        return f"card answered {self.sw:04X}: {describe(self.sw)}"


class InvalidPinError(ApduError):
    """Wrong PIN: the card answered 63Cx."""

    @property
    def tries_remaining(self) -> int:
        return self.sw & 0x0F

    def __str__(self) -> str:
        return f"wrong PIN, {_tries(self.tries_remaining)} left"


class PinBlockedError(ApduError):
    def __str__(self) -> str:
        return ("PIN blocked after too many wrong tries: set a new one with the unblocking code (PUK) "
                "shown at card init: 'evb card pin unblock'")


def error_for(sw: int, data: bytes = b"") -> ApduError:
    """The most specific error for a status word, so callers can catch by meaning."""
    if sw & 0xFFF0 == SW.VERIFY_FAILED:
        return InvalidPinError(sw, data)
    if sw == SW.AUTH_METHOD_BLOCKED:
        return PinBlockedError(sw, data)
    return ApduError(sw, data)


def _tries(n: int) -> str:
    return f"{n} try" if n == 1 else f"{n} tries"
