"""Backup conditions and triggers (seed E9, backup-trigger manager 109, figs. 39-40), shared by
card and host.

A condition is a small tree: leaves test one fact of a live value, ``all``/``any``/``not``
combine them. It is stored on the card as BER-TLV, evaluated there against the index with the
date the host supplies (a card has no clock), and written in a one-line text form for people::

    type=ticket and name~Movie                 fig. 16(a)
    unusable-within=30                         fig. 16(b): no usable day within a month
    (size>=300 or share-of-free>=50) and not type=prepaid
    held-over=90                               held longer than 90 days

Leaves:

=====================  ====  ==============================================================
text                   tag   true for a value when
=====================  ====  ==============================================================
type=T[,T…]            80    its type is one of the listed (1-8 types, one byte each)
name~TEXT              81    its name contains TEXT (UTF-8 bytes, 1-32, case-sensitive)
size>=N                82    its record takes at least N bytes (u16)
share-of-free>=P       83    its record is at least P percent of the free memory (u8, 1-255)
unusable-within=D      84    it has no usable day in [today, today + D] (u16): expired, or
                             valid only from a later day
held-over=D            85    it was acquired more than D days before today (u16)
=====================  ====  ==============================================================

Combinations: ``A0`` all (and), ``A1`` any (or), ``A2`` not (exactly one child). At most
depth 4 and 8 children per node, so a JavaCard evaluates it with a fixed stack.

Settings (GET/PUT TRIGGERS), version 1::

    C0 01 01            version
    E0 L <node>         the condition (absent: automatic backup selects nothing)
    C1 02 days          periodic trigger: run every N days (0: off)
    C2 01 policy        on storage shortage: 00 abort, 01 automatic backup, 02 ask the user
    C3 04 yyyymmdd      last automatic run (BCD); written by RECORD RUN only, never by PUT
    C4 01 percent       present: the triggers combine as "both" (seed para. 0133): the periodic
                        run happens only when it is due *and* the card is short of memory, i.e.
                        less than this percent (1-99) of the data area is free. Absent: "either",
                        the periodic run happens whenever it is due (and a store or restore that
                        does not fit triggers the shortage policy on its own, in both modes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from enum import IntEnum

from . import tlv
from .command import CommandApdu
from .ins import INS_GET_TRIGGERS as INS_GET_TRIGGERS
from .ins import INS_PUT_TRIGGERS as INS_PUT_TRIGGERS
from .ins import INS_RECORD_RUN as INS_RECORD_RUN
from .ins import INS_SELECT_FOR_BACKUP as INS_SELECT_FOR_BACKUP
from .ins import MAX_SETTINGS as MAX_SETTINGS
from .records import RecordError, ValueType, decode_bcd_date, encode_bcd_date
from .wallet import CLA_PROPRIETARY, MessageError

VERSION = 1
MAX_DEPTH = 4
MAX_CHILDREN = 8
MAX_NAME = 32
MAX_TYPES = 8


class Leaf(IntEnum):
    TYPE = 0x80
    NAME_CONTAINS = 0x81
    MIN_SIZE = 0x82
    SHARE_OF_FREE = 0x83
    UNUSABLE_WITHIN = 0x84
    HELD_OVER = 0x85


class Combinator(IntEnum):
    ALL = 0xA0
    ANY = 0xA1
    NOT = 0xA2


class Setting(IntEnum):
    VERSION = 0xC0
    CONDITION = 0xE0
    PERIOD = 0xC1
    POLICY = 0xC2
    LAST_RUN = 0xC3
    BOTH_BELOW = 0xC4


class ShortagePolicy(IntEnum):
    """What to do when a store or restore does not fit (claims 25-27, 37)."""

    ABORT = 0
    AUTOMATIC = 1
    ASK = 2


# --- the condition tree ------------------------------------------------------------------------


@dataclass(frozen=True)
class TypeIs:
    types: tuple[ValueType, ...]


@dataclass(frozen=True)
class NameContains:
    text: str


@dataclass(frozen=True)
class MinSize:
    size: int


@dataclass(frozen=True)
class ShareOfFree:
    percent: int


@dataclass(frozen=True)
class UnusableWithin:
    days: int


@dataclass(frozen=True)
class HeldOver:
    days: int


@dataclass(frozen=True)
class AllOf:
    children: tuple[Condition, ...]


@dataclass(frozen=True)
class AnyOf:
    children: tuple[Condition, ...]


@dataclass(frozen=True)
class Not:
    child: Condition


Condition = TypeIs | NameContains | MinSize | ShareOfFree | UnusableWithin | HeldOver | AllOf | AnyOf | Not


def _number(value: int, width: int, low: int, what: str) -> bytes:
    if not low <= value < 1 << (8 * width):
        raise MessageError(f"{what} must be {low}..{(1 << (8 * width)) - 1}")
    return value.to_bytes(width, "big")


def encode_condition(c: Condition, depth: int = 1) -> bytes:
    if depth > MAX_DEPTH:
        raise MessageError(f"conditions nest at most {MAX_DEPTH} deep")
    match c:
        case TypeIs(types):
            if not 1 <= len(types) <= MAX_TYPES:
                raise MessageError(f"type= takes 1..{MAX_TYPES} types")
            return bytes(tlv.Tlv(Leaf.TYPE, bytes(int(t) for t in types)))
        case NameContains(text):
            raw = text.encode("utf-8")
            if not 1 <= len(raw) <= MAX_NAME:
                raise MessageError(f"name~ takes 1..{MAX_NAME} bytes of text")
            return bytes(tlv.Tlv(Leaf.NAME_CONTAINS, raw))
        case MinSize(size):
            return bytes(tlv.Tlv(Leaf.MIN_SIZE, _number(size, 2, 0, "size>=")))
        case ShareOfFree(percent):
            return bytes(tlv.Tlv(Leaf.SHARE_OF_FREE, _number(percent, 1, 1, "share-of-free>=")))
        case UnusableWithin(days):
            return bytes(tlv.Tlv(Leaf.UNUSABLE_WITHIN, _number(days, 2, 0, "unusable-within=")))
        case HeldOver(days):
            return bytes(tlv.Tlv(Leaf.HELD_OVER, _number(days, 2, 0, "held-over=")))
        case Not(child):
            return bytes(tlv.Tlv(Combinator.NOT, encode_condition(child, depth + 1)))
        case AllOf(children) | AnyOf(children):
            if not 2 <= len(children) <= MAX_CHILDREN:
                raise MessageError(f"and/or combine 2..{MAX_CHILDREN} conditions")
            tag = Combinator.ALL if isinstance(c, AllOf) else Combinator.ANY
            return bytes(tlv.Tlv(tag, b"".join(encode_condition(x, depth + 1) for x in children)))
    raise MessageError(f"not a condition: {c!r}")


def decode_condition(raw: bytes, depth: int = 1) -> Condition:
    """Strict: exactly one node, known tags, the limits above; canonical (re-encodes equal)."""
    items = tlv.decode(raw)
    if len(items) != 1:
        raise MessageError("a condition is exactly one node")
    node = _decode_node(items[0], depth)
    if encode_condition(node, depth) != raw:
        raise MessageError("a condition is not in its canonical encoding")
    return node


def _decode_node(item: tlv.Tlv, depth: int) -> Condition:
    if depth > MAX_DEPTH:
        raise MessageError(f"conditions nest at most {MAX_DEPTH} deep")
    v = item.value
    try:
        match item.tag:
            case Leaf.TYPE:
                return TypeIs(tuple(ValueType(t) for t in v))
            case Leaf.NAME_CONTAINS:
                return NameContains(v.decode("utf-8"))
            case Leaf.MIN_SIZE | Leaf.UNUSABLE_WITHIN | Leaf.HELD_OVER if len(v) == 2:
                n = int.from_bytes(v, "big")
                return MinSize(n) if item.tag == Leaf.MIN_SIZE else (
                    UnusableWithin(n) if item.tag == Leaf.UNUSABLE_WITHIN else HeldOver(n))
            case Leaf.SHARE_OF_FREE if len(v) == 1:
                return ShareOfFree(v[0])
            case Combinator.NOT:
                children = tlv.decode(v)
                if len(children) != 1:
                    raise MessageError("not takes exactly one condition")
                return Not(_decode_node(children[0], depth + 1))
            case Combinator.ALL | Combinator.ANY:
                kids = tuple(_decode_node(x, depth + 1) for x in tlv.decode(v))
                return AllOf(kids) if item.tag == Combinator.ALL else AnyOf(kids)
    except (ValueError, UnicodeDecodeError) as exc:
        if isinstance(exc, MessageError):
            raise
        raise MessageError(f"bad condition node {item.tag:02X}: {exc}") from exc
    raise MessageError(f"unknown or malformed condition node {item.tag:02X}")


# --- the text form -----------------------------------------------------------------------------

_TOKEN = re.compile(r'\s*(\(|\)|"[^"]*"|[A-Za-z][A-Za-z-]*(?:>=|=|~)|[^\s()]+)')
_LEAVES: dict[str, type[MinSize | ShareOfFree | UnusableWithin | HeldOver]] = {"size>=": MinSize, "share-of-free>=": ShareOfFree, "unusable-within=": UnusableWithin,
           "held-over=": HeldOver}


def parse_condition(text: str) -> Condition:
    """``a and b or not (c)``: ``not`` binds tightest, then ``and``, then ``or``."""
    tokens = _tokenize(text)
    pos = 0

    def peek() -> str | None:
        return tokens[pos] if pos < len(tokens) else None

    def take() -> str:
        nonlocal pos
        if pos >= len(tokens):
            raise MessageError("the condition ends too early")
        pos += 1
        return tokens[pos - 1]

    def expr() -> Condition:
        terms = [term()]
        while peek() == "or":
            take()
            terms.append(term())
        return terms[0] if len(terms) == 1 else AnyOf(tuple(terms))

    def term() -> Condition:
        factors = [factor()]
        while peek() == "and":
            take()
            factors.append(factor())
        return factors[0] if len(factors) == 1 else AllOf(tuple(factors))

    def factor() -> Condition:
        token = take()
        if token == "not":
            return Not(factor())
        if token == "(":
            inner = expr()
            if peek() != ")":
                raise MessageError("a ')' is missing")
            take()
            return inner
        return leaf(token)

    def leaf(token: str) -> Condition:
        key = re.match(r"[A-Za-z][A-Za-z-]*(>=|=|~)", token)
        if key is None:
            raise MessageError(f"expected a condition, not {token!r}")
        op, arg = key.group(0), token[key.end():] or (take() if peek() not in (None, "(", ")") else "")
        arg = arg[1:-1] if len(arg) >= 2 and arg[0] == arg[-1] == '"' else arg
        if not arg:
            raise MessageError(f"{op} needs a value")
        if op == "type=":
            try:
                return TypeIs(tuple(ValueType[t.strip().upper()] for t in arg.split(",")))
            except KeyError as exc:
                kinds = ", ".join(t.name.lower() for t in ValueType)
                raise MessageError(f"unknown value type {exc.args[0].lower()} ({kinds})") from exc
        if op == "name~":
            return NameContains(arg)
        if op in _LEAVES:
            if not arg.isdigit():
                raise MessageError(f"{op} needs a whole number, not {arg!r}")
            return _LEAVES[op](int(arg))
        raise MessageError(f"unknown condition {op!r} (type=, name~, size>=, share-of-free>=, "
                           "unusable-within=, held-over=)")

    result = expr()
    if pos != len(tokens):
        raise MessageError(f"unexpected {tokens[pos]!r} in the condition")
    encode_condition(result)  # the card's limits, with a clear message now
    return result


def _tokenize(text: str) -> list[str]:
    tokens, pos = [], 0
    text = text.strip()
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            raise MessageError(f"cannot read the condition at {text[pos:]!r}")
        tokens.append(m.group(1))
        pos = m.end()
        while pos < len(text) and text[pos].isspace():
            pos += 1
    if not tokens:
        raise MessageError("the condition is empty")
    return tokens


def format_condition(c: Condition, top: bool = True) -> str:
    match c:
        case TypeIs(types):
            return "type=" + ",".join(t.name.lower() for t in types)
        case NameContains(text):
            return f"name~{text}" if re.fullmatch(r"[A-Za-z0-9]+", text) else f'name~"{text}"'
        case MinSize(size):
            return f"size>={size}"
        case ShareOfFree(percent):
            return f"share-of-free>={percent}"
        case UnusableWithin(days):
            return f"unusable-within={days}"
        case HeldOver(days):
            return f"held-over={days}"
        case Not(child):
            return "not " + format_condition(child, top=False)
        case AllOf(children):
            text = " and ".join(format_condition(x, top=False) for x in children)
        case AnyOf(children):
            text = " or ".join(format_condition(x, top=False) for x in children)
    return text if top else f"({text})"


# --- settings and commands ---------------------------------------------------------------------


@dataclass(frozen=True)
class TriggerSettings:
    condition: Condition | None = None
    period_days: int = 0
    policy: ShortagePolicy = ShortagePolicy.ASK
    last_run: date | None = None
    both_below: int = 0  # "both": run periodically only when less than this percent is free; 0: "either"

    def __post_init__(self) -> None:
        if not 0 <= self.period_days <= 0xFFFF:
            raise MessageError("the period is 0..65535 days")
        if not 0 <= self.both_below <= 99:
            raise MessageError("the shortage threshold is 1..99 percent of the data area (0: either)")

    def due(self, today: date, free_percent: int | None = None) -> bool:
        """Whether a periodic run is due: on, and never run or run at least a period ago; when
        the triggers combine as "both", also short of memory (``free_percent`` below the mark)."""
        if not self.period_days:
            return False
        if self.both_below and (free_percent is None or free_percent >= self.both_below):
            return False
        return self.last_run is None or (today - self.last_run).days >= self.period_days

    def with_last_run(self, day: date | None) -> TriggerSettings:
        return TriggerSettings(self.condition, self.period_days, self.policy, day, self.both_below)

    def __bytes__(self) -> bytes:
        items: list[tuple[int, bytes]] = [(Setting.VERSION, bytes((VERSION,)))]
        if self.condition is not None:
            items.append((Setting.CONDITION, encode_condition(self.condition)))
        items += [(Setting.PERIOD, self.period_days.to_bytes(2, "big")), (Setting.POLICY, bytes((self.policy,)))]
        if self.last_run is not None:
            items.append((Setting.LAST_RUN, encode_bcd_date(self.last_run)))
        if self.both_below:
            items.append((Setting.BOTH_BELOW, bytes((self.both_below,))))
        raw = tlv.encode(items)
        if len(raw) > MAX_SETTINGS:
            raise MessageError(f"the settings take {len(raw)} bytes; the card keeps {MAX_SETTINGS}")
        return raw

    @classmethod
    def from_bytes(cls, raw: bytes) -> TriggerSettings:
        if len(raw) > MAX_SETTINGS:
            raise MessageError("trigger settings too long")
        fields = tlv.decode_map(raw)
        if set(fields) - {int(s) for s in Setting} or fields.get(Setting.VERSION) != bytes((VERSION,)):
            raise MessageError("not version 1 trigger settings")
        period, policy = fields.get(Setting.PERIOD, b""), fields.get(Setting.POLICY, b"")
        if len(period) != 2 or len(policy) != 1 or policy[0] not in {int(p) for p in ShortagePolicy}:
            raise MessageError("trigger settings need a 2-byte period and a known policy")
        both = fields.get(Setting.BOTH_BELOW, b"\x00")
        if len(both) != 1 or (Setting.BOTH_BELOW in fields and not 1 <= both[0] <= 99):
            raise MessageError("the shortage threshold is one byte, 1..99 percent")
        try:
            last = fields.get(Setting.LAST_RUN)
            settings = cls(
                decode_condition(fields[Setting.CONDITION]) if Setting.CONDITION in fields else None,
                int.from_bytes(period, "big"),
                ShortagePolicy(policy[0]),
                decode_bcd_date(last) if last is not None else None,
                both[0],
            )
        except RecordError as exc:
            raise MessageError(str(exc)) from exc
        if bytes(settings) != raw:
            raise MessageError("trigger settings not in their canonical encoding")
        return settings


FACTORY_SETTINGS = TriggerSettings(UnusableWithin(30), period_days=30, policy=ShortagePolicy.ASK)


@dataclass(frozen=True)
class Candidate:
    """SELECT FOR BACKUP answers these, 4 bytes each, in index order."""

    value_id: int
    size: int

    @classmethod
    def parse_list(cls, raw: bytes) -> list[Candidate]:
        if len(raw) % 4:
            raise MessageError("a candidate list is 4 bytes per value")
        return [cls(int.from_bytes(raw[i:i + 2], "big"), int.from_bytes(raw[i + 2:i + 4], "big"))
                for i in range(0, len(raw), 4)]


def get_triggers() -> CommandApdu:
    return CommandApdu(CLA_PROPRIETARY, INS_GET_TRIGGERS, 0, 0, ne=256)


def put_triggers(settings: TriggerSettings) -> CommandApdu:
    if settings.last_run is not None:
        raise MessageError("the card records the last run itself")
    return CommandApdu(CLA_PROPRIETARY, INS_PUT_TRIGGERS, 0, 0, bytes(settings))


def select_for_backup(today: date) -> CommandApdu:
    return CommandApdu(CLA_PROPRIETARY, INS_SELECT_FOR_BACKUP, 0, 0, encode_bcd_date(today), ne=256)


def record_run(today: date) -> CommandApdu:
    return CommandApdu(CLA_PROPRIETARY, INS_RECORD_RUN, 0, 0, encode_bcd_date(today))
