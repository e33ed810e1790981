"""Command and response APDUs, ISO/IEC 7816-4:2020 section 5.1 (the four cases).

Nc is the data length and Ne the expected response length, as the standard names them: Ne is
``None`` for "no Le field", and up to 256 (short) or 65536 (extended). Lc = 0 and Le = 0 encode
256 / 65536 exactly as on the wire.
"""

from __future__ import annotations

from dataclasses import dataclass

from .sw import SW

SHORT_MAX_NC = 255
SHORT_MAX_NE = 256
EXTENDED_MAX_NC = 65535
EXTENDED_MAX_NE = 65536
CLA_CHAINING = 0x10


class ApduFormatError(ValueError):
    """Bytes that are not a well-formed command APDU; a card answers :attr:`sw`."""

    sw = SW.WRONG_LENGTH


@dataclass(frozen=True, slots=True)
class CommandApdu:
    cla: int
    ins: int
    p1: int = 0
    p2: int = 0
    data: bytes = b""
    ne: int | None = None

    def __post_init__(self) -> None:
        for name in ("cla", "ins", "p1", "p2"):
            if not 0 <= getattr(self, name) <= 0xFF:
                raise ValueError(f"{name} out of range")
        if len(self.data) > EXTENDED_MAX_NC:
            raise ValueError("data longer than 65535 bytes")
        if self.ne is not None and not 1 <= self.ne <= EXTENDED_MAX_NE:
            raise ValueError("Ne must be 1..65536")

    @property
    def case(self) -> int:
        return (3 if self.data else 1) + (1 if self.ne is not None else 0)

    @property
    def needs_extended(self) -> bool:
        return len(self.data) > SHORT_MAX_NC or (self.ne or 0) > SHORT_MAX_NE

    @property
    def chained(self) -> bool:
        return bool(self.cla & CLA_CHAINING)

    def to_bytes(self, extended: bool | None = None) -> bytes:
        """Encode; ``extended=None`` picks short length unless the sizes need extended."""
        ext = self.needs_extended if extended is None else extended
        if not ext and self.needs_extended:
            raise ValueError("command does not fit short length fields")
        out = bytearray((self.cla, self.ins, self.p1, self.p2))
        nc = len(self.data)
        if ext:
            if nc:
                out += b"\x00" + nc.to_bytes(2, "big") + self.data
            if self.ne is not None:
                le = self.ne & 0xFFFF  # 65536 encodes as 0000
                out += (b"" if nc else b"\x00") + le.to_bytes(2, "big")
        else:
            if nc:
                out += bytes((nc,)) + self.data
            if self.ne is not None:
                out.append(self.ne & 0xFF)  # 256 encodes as 00
        return bytes(out)

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    @classmethod
    def from_bytes(cls, raw: bytes) -> CommandApdu:
        if len(raw) < 4:
            raise ApduFormatError("a command APDU has at least 4 header bytes")
        cla, ins, p1, p2 = raw[:4]
        body = raw[4:]
        n = len(body)
        if n == 0:
            return cls(cla, ins, p1, p2)
        if n == 1:
            return cls(cla, ins, p1, p2, ne=body[0] or 256)
        if body[0] != 0:
            nc = body[0]
            if n == 1 + nc:
                return cls(cla, ins, p1, p2, body[1:])
            if n == 2 + nc:
                return cls(cla, ins, p1, p2, body[1:-1], body[-1] or 256)
            raise ApduFormatError("Lc does not match the body length")
        if n == 3:
            return cls(cla, ins, p1, p2, ne=int.from_bytes(body[1:3], "big") or 65536)
        nc = int.from_bytes(body[1:3], "big")
        if nc == 0:
            raise ApduFormatError("extended Lc of zero")
        if n == 3 + nc:
            return cls(cla, ins, p1, p2, body[3:])
        if n == 5 + nc:
            return cls(cla, ins, p1, p2, body[3:-2], int.from_bytes(body[-2:], "big") or 65536)
        raise ApduFormatError("extended Lc does not match the body length")


@dataclass(frozen=True, slots=True)
class ResponseApdu:
    data: bytes
    sw: int

    @property
    def sw1(self) -> int:
        return self.sw >> 8

    @property
    def sw2(self) -> int:
        return self.sw & 0xFF

    def __bytes__(self) -> bytes:
        return self.data + self.sw.to_bytes(2, "big")

    @classmethod
    def from_bytes(cls, raw: bytes) -> ResponseApdu:
        if len(raw) < 2:
            raise ApduFormatError("a response APDU has at least the two status bytes")
        return cls(bytes(raw[:-2]), int.from_bytes(raw[-2:], "big"))


def split_chain(command: CommandApdu, max_nc: int = SHORT_MAX_NC) -> list[CommandApdu]:
    """ISO 7816-4 5.3.3 command chaining: every link but the last has CLA b5 set and no Le."""
    data = command.data
    if len(data) <= max_nc:
        return [command]
    pieces = [data[i : i + max_nc] for i in range(0, len(data), max_nc)]
    links = [
        CommandApdu(command.cla | CLA_CHAINING, command.ins, command.p1, command.p2, piece)
        for piece in pieces[:-1]
    ]
    links.append(CommandApdu(command.cla, command.ins, command.p1, command.p2, pieces[-1], command.ne))
    return links


def join_chain(links: list[CommandApdu]) -> CommandApdu:
    """The command a chain stands for; the inverse of :func:`split_chain`."""
    *head, last = links
    if last.chained or not all(link.chained for link in head):
        raise ApduFormatError("a chain is chained links followed by one unchained link")
    if any((link.ins, link.p1, link.p2) != (last.ins, last.p1, last.p2) for link in head):
        raise ApduFormatError("chained links differ in INS/P1/P2")
    data = b"".join(link.data for link in links)
    return CommandApdu(last.cla, last.ins, last.p1, last.p2, data, last.ne)
