"""GET MEMORY MAP's answer (docs/APDU.md 3.10): a fixed vector, the lengths a Java Card applet
sizes its answer by, and the malformed maps a host refuses."""

from __future__ import annotations

import pytest

from apdu import wallet as w
from apdu.records import ValueFlags, ValueType

AREAS = (
    w.MapArea(w.AreaKind.MEMORY_HEADER, 0, 16),
    w.MapArea(w.AreaKind.JOURNAL, 16, 2048),
    w.MapArea(w.AreaKind.APPLET_HEADER, 2064, 1024),
    w.MapArea(w.AreaKind.INDEX, 3088, 128),
    w.MapArea(w.AreaKind.DATA, 3216, 29552),
)
ENTRIES = (
    w.MapEntry(0, 1, ValueType.TICKET, ValueFlags.NONE, 0, 76),
    w.MapEntry(2, 3, ValueType.PREPAID, ValueFlags.CERTIFICATE | ValueFlags.BACKED_UP, 152, 62),
)
VECTOR = (
    "00008000"  # memory size 32768
    "05"  # five areas: kind, start u32, length u32
    "01" "00000000" "00000010"
    "02" "00000010" "00000800"
    "03" "00000810" "00000400"
    "04" "00000C10" "00000080"
    "05" "00000C90" "00007370"
    "0002"  # two entries: slot, id, type, flags, offset, size
    "0000" "0001" "01" "00" "0000" "004C"
    "0002" "0003" "02" "03" "0098" "003E"
)


def test_the_vector_both_ways() -> None:
    m = w.MemoryMap(32768, AREAS, ENTRIES)
    assert bytes(m).hex().upper() == VECTOR
    assert w.MemoryMap.from_bytes(bytes.fromhex(VECTOR)) == m
    assert len(bytes(m)) == w.MAP_FIXED_LEN + 5 * w.MAP_AREA_LEN + 2 * w.MAP_ENTRY_LEN


def test_the_command() -> None:
    assert w.get_memory_map().to_bytes().hex().upper() == "801C000000"


def test_a_java_card_map_without_a_journal_decodes() -> None:
    areas = (w.MapArea(w.AreaKind.APPLET_HEADER, 0, 1024), w.MapArea(w.AreaKind.INDEX, 1024, 1024),
             w.MapArea(w.AreaKind.DATA, 2048, 28656))
    m = w.MemoryMap(30704, areas, ())
    assert w.MemoryMap.from_bytes(bytes(m)) == m


@pytest.mark.parametrize("hex_map, why", [
    (VECTOR[:-2], "truncated"),
    (VECTOR + "00", "trailing byte"),
    (VECTOR.replace("05" "00000C90", "06" "00000C90"), "unknown area kind"),
    (VECTOR.replace("0002" "0003" "02", "0002" "0003" "09"), "unknown value type"),
    (VECTOR.replace("04" "00000C10" "00000080", "04" "00000C00" "00000080"), "areas overlap"),
    (VECTOR.replace("00007370", "00007371"), "data area past the memory's end"),
    (VECTOR.replace("0098" "003E", "7340" "003E"), "an entry past the data area"),
    (VECTOR.replace("0098" "003E", "0098" "0000"), "an empty entry"),
    (VECTOR.replace("05" "00000C90", "04" "00000C90"), "two indexes, no data area"),
])
def test_malformed_maps_are_refused(hex_map: str, why: str) -> None:
    with pytest.raises(w.MessageError):
        w.MemoryMap.from_bytes(bytes.fromhex(hex_map))
