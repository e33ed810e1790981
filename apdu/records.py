"""The value record: one piece of electronic value as the wallet stores it (seed E1, fig. 15).

Encoded as a flat BER-TLV list of context-specific primitive tags. Numbers are fixed-width
(4 bytes) so that spending or using a ticket rewrites a record in place without changing its
size; absent optional fields are omitted. The card assigns ``id`` and owns ``flags``: neither is
part of what the host stores, both come back on read.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime
from enum import IntEnum, IntFlag

from . import tlv

MAX_PAYLOAD = 512
MAX_TEXT = 64
MAX_RECORD = 1024


class ValueType(IntEnum):
    TICKET = 1
    PREPAID = 2
    COUPON = 3
    VOUCHER = 4
    OTHER = 0x7F


class ValueFlags(IntFlag):
    """Card-managed state of an index entry (seed fig. 851: the entry's kind of information)."""

    NONE = 0
    CERTIFICATE = 0x01  # the entry holds a vault certificate in place of the value
    BACKED_UP = 0x02  # a copy was registered at the vault and kept on the card (claims 9/33)
    PENDING = 0x04  # a two-phase backup or restore is under way
    ROTATED = 0x08  # a certificate already re-encrypted under the next key (apdu.rotation)


class Tag(IntEnum):
    ID = 0x80
    TYPE = 0x81
    ISSUER = 0x82
    NAME = 0x83
    QUANTITY = 0x84
    FACE_VALUE = 0x85
    BALANCE = 0x86
    VALID_FROM = 0x87
    VALID_TO = 0x88
    PLACE = 0x89
    ACQUIRED_AT = 0x8A
    CURRENCY = 0x8B
    PAYLOAD = 0x8C
    FLAGS = 0x8D
    CERTIFICATE = 0x8E  # the vault's certificate, on a record that stands for a backed-up value
    TOTAL = 0x8F  # seed fig. 2(a): the total amount (e.g. paid for the whole quantity)
    REMARKS = 0x90  # seed fig. 2(a): remarks


class RecordError(ValueError):
    pass


def encode_bcd_date(d: date) -> bytes:
    # not strftime: it writes years below 1000 without their leading zeros on glibc
    return bytes.fromhex(f"{d.year:04d}{d.month:02d}{d.day:02d}")


def decode_bcd_date(raw: bytes) -> date:
    digits = raw.hex()
    try:
        if len(raw) != 4 or not digits.isdigit():
            raise ValueError(digits)
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:]))
    except ValueError as exc:
        raise RecordError(f"bad BCD date {raw.hex()}") from exc


def encode_bcd_datetime(t: datetime) -> bytes:
    return bytes.fromhex(f"{t.year:04d}{t.month:02d}{t.day:02d}{t.hour:02d}{t.minute:02d}{t.second:02d}")


def decode_bcd_datetime(raw: bytes) -> datetime:
    """Exactly 7 BCD bytes, a calendar date and a time of day: strptime would also take 5 or 6
    bytes with one-digit fields, which a card parsing fixed positions does not (docs/APDU.md 3.4)."""
    digits = raw.hex()
    try:
        if len(raw) != 7 or not digits.isdigit():
            raise ValueError(digits)
        return datetime(int(digits[:4]), int(digits[4:6]), int(digits[6:8]),
                        int(digits[8:10]), int(digits[10:12]), int(digits[12:]))
    except ValueError as exc:
        raise RecordError(f"bad BCD date-time {raw.hex()}") from exc


def _u32(n: int) -> bytes:
    if not 0 <= n <= 0xFFFFFFFF:
        raise RecordError("number out of range 0..4294967295")
    return n.to_bytes(4, "big")


def _text(s: str, what: str) -> bytes:
    raw = s.encode("utf-8")
    if len(raw) > MAX_TEXT:
        raise RecordError(f"{what} longer than {MAX_TEXT} bytes")
    return raw


@dataclass(frozen=True, slots=True)
class ValueRecord:
    type: ValueType
    name: str
    issuer: str = ""
    quantity: int = 1
    face_value: int = 0
    balance: int = 0
    currency: str = "JPY"
    valid_from: date | None = None
    valid_to: date | None = None
    place: str = ""
    acquired_at: datetime | None = None
    payload: bytes = b""
    certificate: bytes = b""
    total: int = 0
    remarks: str = ""
    id: int | None = field(default=None, compare=True)
    flags: ValueFlags = ValueFlags.NONE

    def __post_init__(self) -> None:
        if not self.name:
            raise RecordError("a value needs a name")
        if self.valid_from and self.valid_to and self.valid_from > self.valid_to:
            raise RecordError("valid-from is after valid-to")
        if len(self.payload) > MAX_PAYLOAD:
            raise RecordError(f"payload longer than {MAX_PAYLOAD} bytes")
        if len(self.currency.encode()) != 3 or not self.currency.isascii():
            raise RecordError("currency is a 3-letter ISO 4217 code")

    def body(self) -> bytes:
        """The stored bytes: everything but the card-owned id and flags."""
        items: list[tuple[int, bytes]] = [
            (Tag.TYPE, bytes((int(self.type),))),
            (Tag.NAME, _text(self.name, "name")),
        ]
        if self.issuer:
            items.append((Tag.ISSUER, _text(self.issuer, "issuer")))
        items += [
            (Tag.QUANTITY, _u32(self.quantity)),
            (Tag.FACE_VALUE, _u32(self.face_value)),
            (Tag.BALANCE, _u32(self.balance)),
            (Tag.CURRENCY, self.currency.encode()),
        ]
        if self.valid_from:
            items.append((Tag.VALID_FROM, encode_bcd_date(self.valid_from)))
        if self.valid_to:
            items.append((Tag.VALID_TO, encode_bcd_date(self.valid_to)))
        if self.place:
            items.append((Tag.PLACE, _text(self.place, "place")))
        if self.acquired_at:
            items.append((Tag.ACQUIRED_AT, encode_bcd_datetime(self.acquired_at)))
        if self.total:
            items.append((Tag.TOTAL, _u32(self.total)))
        if self.remarks:
            items.append((Tag.REMARKS, _text(self.remarks, "remarks")))
        if self.payload:
            items.append((Tag.PAYLOAD, self.payload))
        if self.certificate:
            items.append((Tag.CERTIFICATE, self.certificate))
        return tlv.encode(items)

    def to_bytes(self) -> bytes:
        """Body plus the card-owned fields, as READ VALUE answers."""
        head = b""
        if self.id is not None:
            head += bytes(tlv.Tlv(Tag.ID, self.id.to_bytes(2, "big")))
        head += bytes(tlv.Tlv(Tag.FLAGS, bytes((int(self.flags),))))
        return head + self.body()

    def __bytes__(self) -> bytes:
        return self.to_bytes()

    @classmethod
    def from_bytes(cls, raw: bytes) -> ValueRecord:
        try:
            fields = tlv.decode_map(raw)
        except tlv.TlvError as exc:
            raise RecordError(str(exc)) from exc
        unknown = set(fields) - {int(t) for t in Tag}
        if unknown:
            raise RecordError(f"unknown tag {min(unknown):X}")

        def num(tag: Tag, default: int = 0) -> int:
            v = fields.get(tag)
            if v is None:
                return default
            if len(v) != 4:
                raise RecordError(f"tag {tag:X} is not a 4-byte number")
            return int.from_bytes(v, "big")

        def text(tag: Tag) -> str:
            try:
                return fields.get(tag, b"").decode("utf-8")
            except UnicodeDecodeError as exc:
                raise RecordError(f"tag {tag:X} is not UTF-8") from exc

        try:
            raw_type = fields[Tag.TYPE]
            if len(raw_type) != 1:
                raise RecordError("type is one byte")
            vtype = ValueType(raw_type[0])
        except KeyError as exc:
            raise RecordError("a value needs a type") from exc
        except ValueError as exc:
            raise RecordError("unknown value type") from exc
        rid = fields.get(Tag.ID)
        if rid is not None and len(rid) != 2:
            raise RecordError("id is two bytes")
        flags = fields.get(Tag.FLAGS, b"\x00")
        if len(flags) != 1:
            raise RecordError("flags is one byte")
        currency = fields.get(Tag.CURRENCY, b"JPY")
        return cls(
            type=vtype,
            name=text(Tag.NAME),
            issuer=text(Tag.ISSUER),
            quantity=num(Tag.QUANTITY, 1),
            face_value=num(Tag.FACE_VALUE),
            balance=num(Tag.BALANCE),
            currency=currency.decode("ascii", errors="replace"),
            valid_from=decode_bcd_date(fields[Tag.VALID_FROM]) if Tag.VALID_FROM in fields else None,
            valid_to=decode_bcd_date(fields[Tag.VALID_TO]) if Tag.VALID_TO in fields else None,
            place=text(Tag.PLACE),
            acquired_at=(decode_bcd_datetime(fields[Tag.ACQUIRED_AT]) if Tag.ACQUIRED_AT in fields else None),
            payload=fields.get(Tag.PAYLOAD, b""),
            certificate=fields.get(Tag.CERTIFICATE, b""),
            total=num(Tag.TOTAL),
            remarks=text(Tag.REMARKS),
            id=int.from_bytes(rid, "big") if rid is not None else None,
            flags=ValueFlags(flags[0]),
        )

    def stored(self, id: int, flags: ValueFlags = ValueFlags.NONE) -> ValueRecord:
        return replace(self, id=id, flags=flags)
