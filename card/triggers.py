"""The backup-trigger manager 109 (seed E9): backup conditions kept in EEPROM, evaluated on
the card against its own index (fig. 40, steps 2-1..2-5) with the date the host supplies.

The card evaluates the stored TLV directly, node by node, as a JavaCard applet would walk its
byte array; :mod:`apdu.triggers` defines the encoding and validates what PUT TRIGGERS writes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from apdu import SW, CommandApdu, ins, tlv
from apdu.deferred import deferred
from apdu.records import Tag, ValueFlags, decode_bcd_date

from .applet import CardError
from .eeprom import Eeprom
from .index import Index, IndexEntry

if TYPE_CHECKING:
    from apdu import triggers as t
else:  # run at the first trigger command: a card boots and reads its values without the codec
    t = deferred("apdu.triggers")

# the trigger area of the wallet header: u16 length, then the settings TLV
H_TRIGGERS = 256
TRIGGER_AREA_END = H_TRIGGERS + 2 + ins.MAX_SETTINGS


class Facts:
    """What the conditions look at, read from one live record's TLV on demand."""

    def __init__(self, entry: IndexEntry, body: bytes) -> None:
        self.entry, self.body = entry, body

    def field(self, tag: int) -> bytes | None:
        at = tlv.locate(self.body, tag)
        return self.body[at[0] : at[0] + at[1]] if at else None

    def day(self, tag: int) -> int | None:
        raw = self.field(tag)
        return decode_bcd_date(raw[:4]).toordinal() if raw and len(raw) >= 4 else None


class TriggerCommands:
    eeprom: Eeprom
    base: int
    index: Index

    if TYPE_CHECKING:  # provided by the wallet applet
        def _require_pin(self) -> None: ...
        def _no_data(self, command: CommandApdu) -> None: ...

    @staticmethod
    def format_triggers(header: bytearray) -> None:
        """Manufacture: the factory defaults (claim 19: the user may change them)."""
        raw = bytes(t.FACTORY_SETTINGS)
        header[H_TRIGGERS : H_TRIGGERS + 2] = len(raw).to_bytes(2, "big")
        header[H_TRIGGERS + 2 : H_TRIGGERS + 2 + len(raw)] = raw

    def trigger_handlers(self) -> dict[tuple[int, int], Callable[[CommandApdu], bytes]]:
        p = 0x80
        return {
            (p, ins.INS_GET_TRIGGERS): self._get_triggers,
            (p, ins.INS_PUT_TRIGGERS): self._put_triggers,
            (p, ins.INS_SELECT_FOR_BACKUP): self._select_for_backup,
            (p, ins.INS_RECORD_RUN): self._record_run,
        }

    def _settings_raw(self) -> bytes:
        length = self.eeprom.read_u16(self.base + H_TRIGGERS)
        return self.eeprom.read(self.base + H_TRIGGERS + 2, length)

    def _write_settings(self, raw: bytes) -> None:
        with self.eeprom.transaction():
            self.eeprom.write(self.base + H_TRIGGERS, len(raw).to_bytes(2, "big") + raw)

    # --- commands (figs. 39 and 40) ----------------------------------------------------------

    def _get_triggers(self, command: CommandApdu) -> bytes:
        self._no_data(command)
        return self._settings_raw()

    def _put_triggers(self, command: CommandApdu) -> bytes:
        """Fig. 39 step 1-3: replace conditions, period and policy; the last run stays."""
        self._require_pin()
        if command.p1 or command.p2:
            raise CardError(SW.INCORRECT_P1P2)
        new = t.TriggerSettings.from_bytes(command.data)  # MessageError: 6A80, nothing written
        if new.last_run is not None:
            raise CardError(SW.WRONG_DATA)
        last_run = t.TriggerSettings.from_bytes(self._settings_raw()).last_run
        self._write_settings(bytes(new.with_last_run(last_run)))
        return b""

    def _select_for_backup(self, command: CommandApdu) -> bytes:
        """Fig. 40 steps 2-1..2-5: the live values the stored condition selects today."""
        if command.p1 or command.p2:
            raise CardError(SW.INCORRECT_P1P2)
        today = decode_bcd_date(command.data).toordinal()
        fields = tlv.decode_map(self._settings_raw())
        node = fields.get(t.Setting.CONDITION)
        if node is None:
            return b""
        entries = self.index.entries()
        free = self.index.data_size - sum(e.size for e in entries)
        out = bytearray()
        for e in entries:
            if e.flags & (ValueFlags.CERTIFICATE | ValueFlags.PENDING):
                continue
            if _matches(tlv.decode(node)[0], Facts(e, self.index.read(e)), today, free):
                out += e.id.to_bytes(2, "big") + e.size.to_bytes(2, "big")
        return bytes(out)

    def _record_run(self, command: CommandApdu) -> bytes:
        """The host finished an automatic run on this day: the periodic trigger counts from it."""
        self._require_pin()
        if command.p1 or command.p2:
            raise CardError(SW.INCORRECT_P1P2)
        day = decode_bcd_date(command.data)
        settings = t.TriggerSettings.from_bytes(self._settings_raw())
        self._write_settings(bytes(settings.with_last_run(day)))
        return b""


def _matches(node: tlv.Tlv, facts: Facts, today: int, free: int) -> bool:
    v = node.value
    match node.tag:
        case t.Combinator.ALL:
            return all(_matches(x, facts, today, free) for x in tlv.decode(v))
        case t.Combinator.ANY:
            return any(_matches(x, facts, today, free) for x in tlv.decode(v))
        case t.Combinator.NOT:
            return not _matches(tlv.decode(v)[0], facts, today, free)
        case t.Leaf.TYPE:
            return facts.entry.type in v
        case t.Leaf.NAME_CONTAINS:
            return v in (facts.field(Tag.NAME) or b"")
        case t.Leaf.MIN_SIZE:
            return facts.entry.size >= int.from_bytes(v, "big")
        case t.Leaf.SHARE_OF_FREE:
            return facts.entry.size * 100 >= free * v[0]
        case t.Leaf.UNUSABLE_WITHIN:
            first, last = facts.day(Tag.VALID_FROM), facts.day(Tag.VALID_TO)
            return (last is not None and last < today) or (
                first is not None and first > today + int.from_bytes(v, "big"))
        case t.Leaf.HELD_OVER:
            acquired = facts.day(Tag.ACQUIRED_AT)
            return acquired is not None and today - acquired > int.from_bytes(v, "big")
    return False  # PUT TRIGGERS admits only the nodes above
