"""The wallet applet's command set (docs/APDU.md): constants, typed messages, builders.

Fixed-layout messages are ``construct`` structs, defined here and built when first used
(:class:`LazyStruct`); the value record is BER-TLV (:mod:`apdu.records`). Every message has a
frozen dataclass with ``from_bytes`` and ``__bytes__`` so card and host share one definition of
each byte.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from enum import IntEnum
from struct import error as struct_error
from types import ModuleType
from typing import Any

from .command import CommandApdu
from .records import ValueFlags, ValueType, decode_bcd_date, encode_bcd_date

AID_WALLET = bytes.fromhex("F0455642574C0101")  # F0 (unregistered RID) "EVBWL" app 01 v01
VERSION = (1, 0)

CLA_ISO = 0x00
CLA_PROPRIETARY = 0x80

INS_PERSONALIZE = 0x02
INS_GET_CARD_INFO = 0x10
INS_LIST_VALUES = 0x12
INS_READ_VALUE = 0x14
INS_STORE_VALUE = 0x16
INS_MODIFY_VALUE = 0x18
INS_DELETE_VALUE = 0x1A
INS_GET_MEMORY_MAP = 0x1C
INS_VERIFY = 0x20
INS_CHANGE_REFERENCE_DATA = 0x24
INS_RESET_RETRY_COUNTER = 0x2C
INS_SELECT = 0xA4
INS_GET_RESPONSE = 0xC0

P1_SELECT_BY_DF_NAME = 0x04
P2_PIN = 0x81  # specific (application) reference data, ISO 7816-4 table 65
P1_VERIFY_RESET = 0xFF  # VERIFY with P1 FF and no data: forget that the PIN was verified

PIN_BLOCK_LEN = 8
PIN_MIN, PIN_MAX = 4, 8
PIN_PAD = 0xFF
PUK_LEN = 8  # the unblocking code: exactly 8 digits, sent as 8 ASCII bytes


class MessageError(ValueError):
    """Bytes that do not decode as the message expected; the card answers 6A80."""


class LifeCycle(IntEnum):
    PERSONALIZATION = 1  # no PIN yet: only PERSONALIZE and GET CARD INFO work
    OPERATIONAL = 2


class ModifyOp(IntEnum):
    SPEND = 1  # take an amount from a prepaid balance
    USE = 2  # use N of the tickets or coupons in a record


class LazyStruct:
    """A ``construct`` struct, defined where the message is and made when first used.

    Why: importing construct (it loads pdb) and compiling a struct cost tens of milliseconds, which
    every ``evb`` command paid at start-up though most parse none of these messages (GET CARD
    INFO is a plain ``struct``). ``define`` takes the construct module and answers the struct;
    ``compiled`` says whether compiling pays: it does for what the card parses or builds on every
    command, not for a message parsed once per run."""

    def __init__(self, define: Callable[[ModuleType], Any], compiled: bool = True) -> None:
        self._define = define
        self._compiled = compiled
        self._struct: Any = None

    @property
    def struct(self) -> Any:
        """The construct struct itself, to nest in another definition."""
        if self._struct is None:
            import construct

            made = self._define(construct)
            self._struct = made.compile() if self._compiled else made
        return self._struct

    def parse(self, raw: bytes) -> Any:
        """The parsed container, or MessageError for bytes that do not decode."""
        from construct import ConstructError

        try:
            return self.struct.parse(raw)
        except (ConstructError, UnicodeDecodeError, struct_error) as exc:  # compiled structs raise struct.error
            raise MessageError(str(exc)) from exc

    def build(self, fields: dict[str, Any]) -> bytes:
        return bytes(self.struct.build(fields))

    def sizeof(self) -> int:
        return int(self.struct.sizeof())


# --- PIN ------------------------------------------------------------------------------------


def pin_block(pin: str) -> bytes:
    """ASCII digits padded with FF to 8 bytes: a format JavaCard's OwnerPIN checks directly."""
    if not (pin.isascii() and pin.isdigit() and PIN_MIN <= len(pin) <= PIN_MAX):
        raise MessageError(f"a PIN is {PIN_MIN} to {PIN_MAX} digits")
    return pin.encode().ljust(PIN_BLOCK_LEN, bytes((PIN_PAD,)))


def parse_pin_block(raw: bytes) -> bytes:
    """The digits of a PIN block, or MessageError for anything malformed."""
    if len(raw) != PIN_BLOCK_LEN:
        raise MessageError("a PIN block is 8 bytes")
    digits = raw.rstrip(bytes((PIN_PAD,)))
    if not (PIN_MIN <= len(digits) <= PIN_MAX and all(0x30 <= b <= 0x39 for b in digits)):
        raise MessageError("a PIN block holds 4 to 8 ASCII digits padded with FF")
    return digits


def puk_block(puk: str) -> bytes:
    """The unblocking code as the card takes it: its 8 ASCII digits, no padding."""
    if not (puk.isascii() and puk.isdigit() and len(puk) == PUK_LEN):
        raise MessageError(f"an unblocking code (PUK) is {PUK_LEN} digits")
    return puk.encode()


def parse_puk_block(raw: bytes) -> bytes:
    if not (len(raw) == PUK_LEN and all(0x30 <= b <= 0x39 for b in raw)):
        raise MessageError(f"an unblocking code block is {PUK_LEN} ASCII digits")
    return raw


# --- GET CARD INFO --------------------------------------------------------------------------

CARD_INFO = struct.Struct(">BBB8sIIHHHHBB")
"""version major, minor, life cycle, card id, total and free memory, index capacity and entries
used, values, certificates, PIN tries left and allowed. struct, not construct: the card answers
GET CARD INFO in a few microseconds instead of tens."""


@dataclass(frozen=True, slots=True)
class CardInfo:
    version: tuple[int, int]
    life_cycle: LifeCycle
    card_id: bytes
    total_memory: int  # bytes of the data area
    free_memory: int  # bytes of it not held by any value or certificate
    index_capacity: int
    index_used: int
    value_count: int
    certificate_count: int
    pin_tries_remaining: int
    pin_max_tries: int

    def __bytes__(self) -> bytes:
        return CARD_INFO.pack(*self.version, int(self.life_cycle), self.card_id, self.total_memory, self.free_memory,
                              self.index_capacity, self.index_used, self.value_count, self.certificate_count,
                              self.pin_tries_remaining, self.pin_max_tries)

    @classmethod
    def from_bytes(cls, raw: bytes) -> CardInfo:
        if len(raw) != CARD_INFO.size:
            raise MessageError("card info has the wrong length")
        major, minor, life_cycle, card_id, *counts = CARD_INFO.unpack(raw)
        try:
            return cls((major, minor), LifeCycle(life_cycle), card_id, *counts)
        except ValueError as exc:
            raise MessageError("unknown life cycle state") from exc


# --- LIST VALUES ----------------------------------------------------------------------------

FILTER_BY_TYPE = 0x01
FILTER_CERTIFICATES = 0x02
FILTER_EXPIRING = 0x04

LIST_FILTER = LazyStruct(lambda c: c.Struct(
    "flags" / c.Int8ub,
    "type" / c.Int8ub,
    "today" / c.Bytes(4),
    "days" / c.Int16ub,
))


@dataclass(frozen=True, slots=True)
class ListFilter:
    """Which index entries LIST VALUES returns. An empty command data field means all.

    ``expiring_within`` keeps values whose valid-to date lies in [today, today + days]: the
    host supplies "today" because a card has no clock.
    """

    type: ValueType | None = None
    certificates_only: bool = False
    today: date | None = None
    expiring_within: int | None = None

    def __post_init__(self) -> None:
        if (self.today is None) != (self.expiring_within is None):
            raise MessageError("an expiry filter needs both today and a number of days")
        if self.expiring_within is not None and not 0 <= self.expiring_within <= 0xFFFF:
            raise MessageError("days out of range")

    @property
    def is_empty(self) -> bool:
        return self == ListFilter()

    def __bytes__(self) -> bytes:
        if self.is_empty:
            return b""
        flags = (
            (FILTER_BY_TYPE if self.type is not None else 0)
            | (FILTER_CERTIFICATES if self.certificates_only else 0)
            | (FILTER_EXPIRING if self.today is not None else 0)
        )
        return LIST_FILTER.build(
            dict(
                flags=flags,
                type=int(self.type or 0),
                today=encode_bcd_date(self.today) if self.today else bytes(4),
                days=self.expiring_within or 0,
            )
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> ListFilter:
        if not raw:
            return cls()
        if len(raw) != LIST_FILTER.sizeof():
            raise MessageError("a list filter is 8 bytes")
        f = LIST_FILTER.parse(raw)
        if f.flags & ~(FILTER_BY_TYPE | FILTER_CERTIFICATES | FILTER_EXPIRING):
            raise MessageError("unknown filter flag")
        try:
            vtype = ValueType(f.type) if f.flags & FILTER_BY_TYPE else None
            today = decode_bcd_date(bytes(f.today)) if f.flags & FILTER_EXPIRING else None
        except ValueError as exc:
            raise MessageError(str(exc)) from exc
        return cls(
            type=vtype,
            certificates_only=bool(f.flags & FILTER_CERTIFICATES),
            today=today,
            expiring_within=f.days if f.flags & FILTER_EXPIRING else None,
        )


NO_DATE = bytes(4)


@dataclass(frozen=True, slots=True)
class ListEntry:
    """One line of a listing: what the index and the record's title give (seed, index 851)."""

    id: int
    type: ValueType
    flags: ValueFlags
    size: int
    valid_to: date | None
    name: str

    def __bytes__(self) -> bytes:
        return list_entry(self.id, self.type, self.flags, self.size,
                          encode_bcd_date(self.valid_to) if self.valid_to else NO_DATE, self.name.encode())


LIST_ENTRY_HEAD = struct.Struct(">HBBH4sB")
"""A listing entry: id, type, flags, record size, valid-to (BCD, 00000000 for none), then the
name's length and its UTF-8 bytes. struct, not construct, both ways: the card builds a LIST of
many entries, and ``evb card list`` parses one without paying for construct's import."""


def list_entry(value_id: int, vtype: int, flags: int, size: int, valid_to: bytes, name: bytes) -> bytes:
    """A listing entry's bytes (``LIST_ENTRY_HEAD`` and the name) from what the card's index and
    record hold as they are: the BCD date and the UTF-8 name, not decoded and encoded again per
    entry and LIST."""
    return LIST_ENTRY_HEAD.pack(value_id, vtype, flags, size, valid_to, len(name)) + name


def parse_listing(raw: bytes) -> list[ListEntry]:
    """The entries of a LIST VALUES answer, or MessageError for one cut short, with bytes left
    over, or with a type, flag, date or name that does not decode."""
    entries, at = [], 0
    try:
        while at < len(raw):
            value_id, vtype, flags, size, valid_to, name_len = LIST_ENTRY_HEAD.unpack_from(raw, at)
            at += LIST_ENTRY_HEAD.size + name_len
            if at > len(raw):
                raise MessageError("a malformed listing: an entry's name runs past the end")
            entries.append(ListEntry(value_id, ValueType(vtype), ValueFlags(flags), size,
                                     None if valid_to == NO_DATE else decode_bcd_date(valid_to),
                                     raw[at - name_len:at].decode()))
    except MessageError:
        raise
    except (struct_error, ValueError) as exc:  # UnicodeDecodeError is a ValueError
        raise MessageError(f"a malformed listing: {exc}") from exc
    return entries


# --- MODIFY VALUE, STORE VALUE --------------------------------------------------------------

MODIFY_REQUEST = LazyStruct(lambda c: c.Struct("op" / c.Int8ub, "amount" / c.Int32ub))
REMAINING = LazyStruct(lambda c: c.Struct("remaining" / c.Int32ub))
STORED_ID = LazyStruct(lambda c: c.Struct("id" / c.Int16ub))


@dataclass(frozen=True, slots=True)
class ModifyRequest:
    op: ModifyOp
    amount: int

    def __post_init__(self) -> None:
        if not 1 <= self.amount <= 0xFFFFFFFF:
            raise MessageError("amount must be positive")

    def __bytes__(self) -> bytes:
        return MODIFY_REQUEST.build(dict(op=int(self.op), amount=self.amount))

    @classmethod
    def from_bytes(cls, raw: bytes) -> ModifyRequest:
        if len(raw) != MODIFY_REQUEST.sizeof():
            raise MessageError("a modify request is 5 bytes")
        m = MODIFY_REQUEST.parse(raw)
        try:
            return cls(ModifyOp(m.op), m.amount)
        except ValueError as exc:
            raise MessageError(str(exc)) from exc


def encode_u16(n: int) -> bytes:
    return STORED_ID.build(dict(id=n))


def parse_u16(raw: bytes) -> int:
    if len(raw) != 2:
        raise MessageError("expected 2 bytes")
    return int(STORED_ID.parse(raw).id)


def encode_remaining(n: int) -> bytes:
    return REMAINING.build(dict(remaining=n))


def parse_remaining(raw: bytes) -> int:
    if len(raw) != 4:
        raise MessageError("expected 4 bytes")
    return int(REMAINING.parse(raw).remaining)


# --- GET MEMORY MAP -------------------------------------------------------------------------


class AreaKind(IntEnum):
    """What a stretch of the card's memory holds. A card lists the areas it has, in address
    order: a Java Card applet, whose runtime owns the transaction journal, lists no journal."""

    MEMORY_HEADER = 1  # the card OS's geometry record
    JOURNAL = 2  # the transaction journal (two redo slots)
    APPLET_HEADER = 3  # the wallet's fields, keys, triggers, attestation, PIN and unblocking code
    INDEX = 4  # the index of fig. 851: capacity x 8-byte entries
    DATA = 5  # the data area the index entries point into


MAP_AREA = LazyStruct(lambda c: c.Struct("kind" / c.Int8ub, "start" / c.Int32ub, "length" / c.Int32ub),
                      compiled=False)
MAP_ENTRY = LazyStruct(lambda c: c.Struct(
    "slot" / c.Int16ub,
    "id" / c.Int16ub,
    "type" / c.Int8ub,
    "flags" / c.Int8ub,
    "offset" / c.Int16ub,
    "size" / c.Int16ub,
), compiled=False)
MEMORY_MAP = LazyStruct(lambda c: c.Struct(
    "memory_size" / c.Int32ub,
    "areas" / c.PrefixedArray(c.Int8ub, MAP_AREA.struct),
    "entries" / c.PrefixedArray(c.Int16ub, MAP_ENTRY.struct),
    c.Terminated,
), compiled=False)  # one map a run: compiling it costs more than parsing it
MAP_FIXED_LEN = 4 + 1 + 2  # memory size, area count, entry count
MAP_AREA_LEN, MAP_ENTRY_LEN = 9, 10
INDEX_ENTRY_LEN = 8  # the index area holds its capacity of entries of this size


@dataclass(frozen=True, slots=True)
class MapArea:
    kind: AreaKind
    start: int  # bytes from the start of the card's memory
    length: int

    @property
    def end(self) -> int:
        return self.start + self.length


@dataclass(frozen=True, slots=True)
class MapEntry:
    """One occupied index entry as stored: where its record lies in the data area."""

    slot: int  # its place in the index
    id: int
    type: ValueType
    flags: ValueFlags
    offset: int  # from the start of the data area
    size: int


@dataclass(frozen=True, slots=True)
class MemoryMap:
    """The card's memory as GET MEMORY MAP tells it: the areas, and each index entry's extent.

    Sizes, types and places only, the same facts LIST VALUES gives without the PIN, so the
    command needs none (docs/APDU.md 3.10)."""

    memory_size: int
    areas: tuple[MapArea, ...]
    entries: tuple[MapEntry, ...]  # in slot order

    def __post_init__(self) -> None:
        kinds = [a.kind for a in self.areas]
        if kinds.count(AreaKind.INDEX) != 1 or kinds.count(AreaKind.DATA) != 1:
            raise MessageError("a memory map names one index and one data area")
        ends = 0
        for a in self.areas:
            if a.start < ends or a.end > self.memory_size:
                raise MessageError("memory map areas overlap or run out of the memory")
            ends = a.end
        data = self.area(AreaKind.DATA)
        for e in self.entries:
            if e.size == 0 or e.offset + e.size > data.length:
                raise MessageError(f"entry {e.id} runs out of the data area")

    def area(self, kind: AreaKind) -> MapArea:
        return next(a for a in self.areas if a.kind == kind)

    def __bytes__(self) -> bytes:
        return MEMORY_MAP.build(dict(
            memory_size=self.memory_size,
            areas=[dict(kind=int(a.kind), start=a.start, length=a.length) for a in self.areas],
            entries=[dict(slot=e.slot, id=e.id, type=int(e.type), flags=int(e.flags), offset=e.offset,
                          size=e.size) for e in self.entries],
        ))

    @classmethod
    def from_bytes(cls, raw: bytes) -> MemoryMap:
        m = MEMORY_MAP.parse(raw)
        try:
            return cls(
                m.memory_size,
                tuple(MapArea(AreaKind(a.kind), a.start, a.length) for a in m.areas),
                tuple(MapEntry(e.slot, e.id, ValueType(e.type), ValueFlags(e.flags), e.offset, e.size)
                      for e in m.entries),
            )
        except ValueError as exc:  # an unknown area kind or value type
            raise MessageError(str(exc)) from exc


# --- command builders -----------------------------------------------------------------------


def select(aid: bytes = AID_WALLET) -> CommandApdu:
    return CommandApdu(CLA_ISO, INS_SELECT, P1_SELECT_BY_DF_NAME, 0x00, aid, ne=256)


def get_response(ne: int) -> CommandApdu:
    return CommandApdu(CLA_ISO, INS_GET_RESPONSE, 0, 0, ne=ne)


def verify(pin: str | None) -> CommandApdu:
    """VERIFY; with no PIN it asks only for the retry counter (answer 63Cx or 9000)."""
    return CommandApdu(CLA_ISO, INS_VERIFY, 0x00, P2_PIN, pin_block(pin) if pin is not None else b"")


def log_out() -> CommandApdu:
    """VERIFY with P1 FF (ISO 7816-4 11.5.6): the card forgets that the PIN was verified."""
    return CommandApdu(CLA_ISO, INS_VERIFY, P1_VERIFY_RESET, P2_PIN)


def change_pin(old: str, new: str) -> CommandApdu:
    return CommandApdu(CLA_ISO, INS_CHANGE_REFERENCE_DATA, 0x00, P2_PIN, pin_block(old) + pin_block(new))


def reset_retry_counter(puk: str, new_pin: str) -> CommandApdu:
    """RESET RETRY COUNTER (ISO 7816-4 11.5.10) with P1 00: the unblocking code and a new PIN."""
    return CommandApdu(CLA_ISO, INS_RESET_RETRY_COUNTER, 0x00, P2_PIN, puk_block(puk) + pin_block(new_pin))


def personalize(pin: str, puk: str) -> CommandApdu:
    return CommandApdu(CLA_PROPRIETARY, INS_PERSONALIZE, 0, 0, pin_block(pin) + puk_block(puk))


def get_card_info() -> CommandApdu:
    return CommandApdu(CLA_PROPRIETARY, INS_GET_CARD_INFO, ne=CARD_INFO.size)


def list_values(flt: ListFilter | None = None, ne: int = 256) -> CommandApdu:
    return CommandApdu(CLA_PROPRIETARY, INS_LIST_VALUES, 0, 0, bytes(flt or ListFilter()), ne=ne)


def _id_p1p2(value_id: int) -> tuple[int, int]:
    if not 1 <= value_id <= 0xFFFF:
        raise MessageError("a value id is 1..65535")
    return value_id >> 8, value_id & 0xFF


def read_value(value_id: int, ne: int = 256) -> CommandApdu:
    return CommandApdu(CLA_PROPRIETARY, INS_READ_VALUE, *_id_p1p2(value_id), ne=ne)


def store_value(body: bytes) -> CommandApdu:
    return CommandApdu(CLA_PROPRIETARY, INS_STORE_VALUE, 0, 0, body, ne=2)


def modify_value(value_id: int, request: ModifyRequest) -> CommandApdu:
    return CommandApdu(CLA_PROPRIETARY, INS_MODIFY_VALUE, *_id_p1p2(value_id), bytes(request), ne=4)


def delete_value(value_id: int) -> CommandApdu:
    return CommandApdu(CLA_PROPRIETARY, INS_DELETE_VALUE, *_id_p1p2(value_id))


def get_memory_map(ne: int = 256) -> CommandApdu:
    return CommandApdu(CLA_PROPRIETARY, INS_GET_MEMORY_MAP, 0, 0, ne=ne)
