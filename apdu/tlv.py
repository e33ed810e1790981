"""BER-TLV (ISO/IEC 8825-1 as profiled by ISO 7816-4 section 6.3): tags of 1-3 bytes,
definite lengths of 1-3 bytes. Enough for JavaCard's ``BERTLV`` classes to read the same bytes.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass


class TlvError(ValueError):
    pass


@dataclass(frozen=True, slots=True)
class Tlv:
    tag: int
    value: bytes

    @property
    def constructed(self) -> bool:
        return bool(_first_tag_byte(self.tag) & 0x20)

    def __bytes__(self) -> bytes:
        return encode_tag(self.tag) + encode_length(len(self.value)) + self.value


def _first_tag_byte(tag: int) -> int:
    return tag.to_bytes((tag.bit_length() + 7) // 8 or 1, "big")[0]


@functools.lru_cache(maxsize=256)
def encode_tag(tag: int) -> bytes:
    """Cached (bounded: tags can come from the wire): a handful recur in every record."""
    raw = tag.to_bytes((tag.bit_length() + 7) // 8 or 1, "big")
    parse_tag(raw, 0)  # refuses tags that would not read back as themselves
    return raw


def encode_length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    if n <= 0xFF:
        return bytes((0x81, n))
    if n <= 0xFFFF:
        return b"\x82" + n.to_bytes(2, "big")
    raise TlvError("length over 65535")


def parse_tag(buf: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(buf):
        raise TlvError("truncated tag")
    end = pos + 1
    if buf[pos] & 0x1F == 0x1F:  # high tag number: subsequent bytes while b8 is set
        while True:
            if end >= len(buf):
                raise TlvError("truncated tag")
            if end - pos >= 3:
                raise TlvError("tag longer than 3 bytes")
            more = buf[end] & 0x80
            end += 1
            if not more:
                break
        if buf[pos + 1] == 0x80 or (end - pos == 2 and buf[pos + 1] < 0x1F):
            raise TlvError("non-minimal tag number")
    return int.from_bytes(buf[pos:end], "big"), end


def parse_length(buf: bytes, pos: int) -> tuple[int, int]:
    if pos >= len(buf):
        raise TlvError("truncated length")
    first = buf[pos]
    if first < 0x80:
        return first, pos + 1
    count = first & 0x7F
    if count not in (1, 2):
        raise TlvError("unsupported length form")
    raw = buf[pos + 1 : pos + 1 + count]
    if len(raw) != count:
        raise TlvError("truncated length")
    n = int.from_bytes(raw, "big")
    if (count == 1 and n < 0x80) or (count == 2 and n <= 0xFF):
        raise TlvError("non-minimal length")
    return n, pos + 1 + count


def iter_tlv(buf: bytes) -> Iterator[Tlv]:
    pos = 0
    while pos < len(buf):
        tag, pos = parse_tag(buf, pos)
        n, pos = parse_length(buf, pos)
        if pos + n > len(buf):
            raise TlvError(f"value of tag {tag:X} runs past the end")
        yield Tlv(tag, bytes(buf[pos : pos + n]))
        pos += n


def decode(buf: bytes) -> list[Tlv]:
    return list(iter_tlv(buf))


def decode_map(buf: bytes) -> dict[int, bytes]:
    """Decode a flat TLV list where each tag may appear once (our records and filters)."""
    out: dict[int, bytes] = {}
    for item in iter_tlv(buf):
        if item.tag in out:
            raise TlvError(f"tag {item.tag:X} repeated")
        out[item.tag] = item.value
    return out


def encode(items: Sequence[Tlv | tuple[int, bytes]]) -> bytes:
    return b"".join(bytes(i) if isinstance(i, Tlv) else bytes(Tlv(*i)) for i in items)


def locate_first(buf: bytes, tags: tuple[int, ...]) -> dict[int, tuple[int, int]]:
    """(offset, length) of the first value of each of ``tags`` present, in one pass that stops
    once all are found."""
    found: dict[int, tuple[int, int]] = {}
    pos = 0
    while pos < len(buf) and len(found) < len(tags):
        tag, pos = parse_tag(buf, pos)
        n, pos = parse_length(buf, pos)
        if tag in tags and tag not in found:
            found[tag] = (pos, n)
        pos += n
    return found


def locate(buf: bytes, tag: int) -> tuple[int, int] | None:
    """(offset, length) of the first value with ``tag``, for rewriting a field in place."""
    pos = 0
    while pos < len(buf):
        found, pos = parse_tag(buf, pos)
        n, pos = parse_length(buf, pos)
        if found == tag:
            return pos, n
        pos += n
    return None
