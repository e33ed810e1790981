"""The index (seed E1, fig. 851): entries of (id, type, flags, pointer, size) over a data area.

The index is the only map of the data area: listing and filtering read it (plus each record's
title), allocation finds a gap between the extents it names, and compaction slides records down
to close gaps. Compaction moves one record per transaction, so a torn compaction leaves a card
that is laid out differently but holds exactly the same values.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from itertools import compress

from apdu.wallet import INDEX_ENTRY_LEN

from .eeprom import Eeprom

# id u16, type u8, flags u8, offset u16, size u16. The index is read on every command, so it is
# unpacked with struct (one C call for the whole table) rather than construct.
ENTRY = struct.Struct(">HBBHH")
ENTRY_SIZE = ENTRY.size
assert ENTRY_SIZE == INDEX_ENTRY_LEN  # GET MEMORY MAP tells the capacity by the index area's length
FREE_ID = 0


class NoMemory(Exception):
    """Not enough free data area or no free index slot."""


class IndexCorrupt(Exception):
    pass


@dataclass(frozen=True, slots=True)
class IndexEntry:
    slot: int
    id: int
    type: int
    flags: int
    offset: int  # from the start of the data area
    size: int


class Index:
    def __init__(self, eeprom: Eeprom, base: int, capacity: int) -> None:
        self.eeprom = eeprom
        self.base = base
        self.capacity = capacity
        self.data_start = base + capacity * ENTRY_SIZE
        self.data_size = min(eeprom.size - self.data_start, 0xFFFF)
        if self.data_size <= 0:
            raise IndexCorrupt("no room for a data area")
        # every slot's id alone, in one C call: free slots are skipped and ids found without a
        # Python loop over the table (the index is read on nearly every command)
        self._ids = struct.Struct(">" + f"H{ENTRY_SIZE - 2}x" * capacity)

    # --- reading -----------------------------------------------------------------------------

    def entries(self) -> list[IndexEntry]:
        """Occupied entries in id order (ids are assigned increasingly, so this is age order)."""
        raw = self._table()
        found = [IndexEntry(slot, *ENTRY.unpack_from(raw, slot * ENTRY_SIZE))
                 for slot in compress(range(self.capacity), self._ids.unpack(raw))]
        return sorted(found, key=lambda e: e.id)

    def _table(self) -> bytes:
        return self.eeprom.read(self.base, self.capacity * ENTRY_SIZE)

    def _slot_of(self, value_id: int, raw: bytes) -> int | None:
        try:
            return self._ids.unpack(raw).index(value_id)
        except ValueError:
            return None

    def _free_slot(self) -> int | None:
        return self._slot_of(FREE_ID, self._table())

    def find(self, value_id: int) -> IndexEntry | None:
        """Nearly every command finds one entry: no list of every entry, so a card of 200 values
        answers as fast as one of 10."""
        if value_id == FREE_ID:
            return None
        raw = self._table()
        slot = self._slot_of(value_id, raw)
        return None if slot is None else IndexEntry(slot, *ENTRY.unpack_from(raw, slot * ENTRY_SIZE))

    def read(self, entry: IndexEntry) -> bytes:
        return self.eeprom.read(self.data_start + entry.offset, entry.size)

    def flagged(self, mask: int) -> Iterator[tuple[int, bytes]]:
        """(flags, record) of each occupied entry with any flag of ``mask``, in slot order: the
        table and the data area read once, no entry built, for a scan that runs once per command
        (SIGN RECEIPT: a rotation asks one receipt per value, so a card of N values scans N times)."""
        data = self.eeprom.read(self.data_start, self.data_size)
        for value_id, _, flags, offset, size in ENTRY.iter_unpack(self._table()):
            if value_id != FREE_ID and flags & mask:
                yield flags, data[offset:offset + size]

    def used_bytes(self) -> int:
        return sum(int(e.size) for e in self.entries())

    def free_bytes(self) -> int:
        return int(self.data_size - self.used_bytes())

    # --- allocation --------------------------------------------------------------------------

    def _find_gap(self, size: int, entries: list[IndexEntry]) -> int | None:
        cursor = 0
        for e in sorted(entries, key=lambda e: e.offset):
            if e.offset - cursor >= size:
                return cursor
            cursor = e.offset + e.size
        return cursor if self.data_size - cursor >= size else None

    def reserve(self, size: int) -> int:
        """A data-area offset with ``size`` free bytes, compacting first if fragmentation needs it.

        Runs outside the caller's transaction: compaction commits its own moves, none of which
        changes what the card holds.
        """
        entries = self.entries()
        if len(entries) >= self.capacity or self.data_size - sum(e.size for e in entries) < size:
            raise NoMemory
        gap = self._find_gap(size, entries)
        if gap is None:
            self.compact()
            gap = self._find_gap(size, self.entries())
            if gap is None:  # cannot happen after a full compaction; refuse rather than guess
                raise NoMemory
        return gap

    def compact(self) -> None:
        cursor = 0
        for e in sorted(self.entries(), key=lambda e: e.offset):
            if e.offset > cursor:
                with self.eeprom.transaction():
                    data = self.read(e)
                    self.eeprom.write(self.data_start + cursor, data)
                    self._write_entry(IndexEntry(e.slot, e.id, e.type, e.flags, cursor, e.size))
            cursor += e.size

    # --- writing (inside the caller's transaction) -------------------------------------------

    def _write_entry(self, e: IndexEntry) -> None:
        raw = ENTRY.pack(e.id, e.type, e.flags, e.offset, e.size)
        self.eeprom.write(self.base + e.slot * ENTRY_SIZE, raw)

    def add(self, value_id: int, type_: int, flags: int, offset: int, data: bytes) -> IndexEntry:
        slot = self._free_slot()
        if slot is None:
            raise NoMemory
        self.eeprom.write(self.data_start + offset, data)
        entry = IndexEntry(slot, value_id, type_, flags, offset, len(data))
        self._write_entry(entry)
        return entry

    def remove(self, entry: IndexEntry) -> None:
        """Erase the record's bytes (seed: the area is erased) and free its index entry."""
        self.eeprom.write(self.data_start + entry.offset, bytes(entry.size))
        self.eeprom.write(self.base + entry.slot * ENTRY_SIZE, bytes(ENTRY_SIZE))

    def rewrite(self, entry: IndexEntry, offset: int, data: bytes, type_: int, flags: int) -> IndexEntry:
        """Put new bytes in place of the record under the same id and slot (a swap of value and
        certificate): the old extent is erased, ``offset`` comes from :meth:`reserve` or is the
        record's own when the new bytes fit there."""
        self.eeprom.write(self.data_start + entry.offset, bytes(entry.size))
        self.eeprom.write(self.data_start + offset, data)
        new = IndexEntry(entry.slot, entry.id, type_, flags, offset, len(data))
        self._write_entry(new)
        return new

    def set_flags(self, entry: IndexEntry, flags: int) -> None:
        self._write_entry(IndexEntry(entry.slot, entry.id, entry.type, flags, entry.offset, entry.size))

    def write_at(self, entry: IndexEntry, pos: int, data: bytes) -> None:
        if pos < 0 or pos + len(data) > entry.size:
            raise IndexCorrupt("write outside the record")
        self.eeprom.write(self.data_start + entry.offset + pos, data)

    # --- checking ----------------------------------------------------------------------------

    def check(self) -> None:
        """Raise IndexCorrupt unless ids are unique and extents are in bounds and disjoint."""
        entries = self.entries()
        ids = [e.id for e in entries]
        if len(set(ids)) != len(ids):
            raise IndexCorrupt("duplicate ids")
        end = 0
        for e in sorted(entries, key=lambda e: e.offset):
            if e.size == 0 or e.offset < end or e.offset + e.size > self.data_size:
                raise IndexCorrupt(f"entry {e.id} overlaps or runs out of the data area")
            end = e.offset + e.size
