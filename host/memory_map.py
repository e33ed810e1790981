"""The card's memory as a picture: what GET MEMORY MAP tells, laid out for people.

The card answers the areas and each index entry's extent; here they become the data area in
address order, records and the free gaps between them, and a fragmentation figure: how much of
the free memory lies outside the largest gap. A card compacts before a store that finds no gap
big enough (card/index.py), so fragmentation costs time at the next store, never a value.
The SVG is plain markup (no script, no external reference), one ``rect`` per extent, each with
a tooltip, so a browser shows it and a test can count it.
"""

from __future__ import annotations

from dataclasses import dataclass
from xml.sax.saxutils import escape

from apdu import wallet as w
from apdu.records import ValueFlags, ValueType

AREA_NAMES = {
    w.AreaKind.MEMORY_HEADER: "memory header",
    w.AreaKind.JOURNAL: "journal",
    w.AreaKind.APPLET_HEADER: "wallet header",
    w.AreaKind.INDEX: "index",
    w.AreaKind.DATA: "data area",
}
TYPE_COLOURS = {
    ValueType.TICKET: "#4e79a7",
    ValueType.PREPAID: "#f28e2b",
    ValueType.COUPON: "#59a14f",
    ValueType.VOUCHER: "#b07aa1",
    ValueType.OTHER: "#9c755f",
}
AREA_COLOURS = {
    w.AreaKind.MEMORY_HEADER: "#555555",
    w.AreaKind.JOURNAL: "#8c8c8c",
    w.AreaKind.APPLET_HEADER: "#a0a0a0",
    w.AreaKind.INDEX: "#c8b400",
    w.AreaKind.DATA: "#e8e8e8",
}
FREE_COLOUR = "#ffffff"


@dataclass(frozen=True, slots=True)
class Gap:
    offset: int  # from the start of the data area, as entries count
    size: int


@dataclass(frozen=True, slots=True)
class Layout:
    memory_size: int
    areas: tuple[w.MapArea, ...]
    entries: tuple[w.MapEntry, ...]  # in address order
    gaps: tuple[Gap, ...]  # the free stretches of the data area, in address order
    index_capacity: int
    used: int
    free: int
    largest_gap: int
    fragmentation: float  # 0: all free bytes in one gap; near 1: scattered in small ones

    @property
    def data(self) -> w.MapArea:
        return next(a for a in self.areas if a.kind == w.AreaKind.DATA)

    def extents(self) -> list[w.MapEntry | Gap]:
        """Records and gaps of the data area, in address order."""
        return sorted([*self.entries, *self.gaps], key=lambda x: x.offset)


def layout(m: w.MemoryMap) -> Layout:
    data = m.area(w.AreaKind.DATA)
    entries = tuple(sorted(m.entries, key=lambda e: e.offset))
    gaps: list[Gap] = []
    cursor = 0
    for e in entries:
        if e.offset > cursor:
            gaps.append(Gap(cursor, e.offset - cursor))
        cursor = max(cursor, e.offset + e.size)
    if data.length > cursor:
        gaps.append(Gap(cursor, data.length - cursor))
    free = sum(g.size for g in gaps)
    largest = max((g.size for g in gaps), default=0)
    return Layout(
        memory_size=m.memory_size,
        areas=m.areas,
        entries=entries,
        gaps=tuple(gaps),
        index_capacity=m.area(w.AreaKind.INDEX).length // w.INDEX_ENTRY_LEN,
        used=sum(e.size for e in entries),
        free=free,
        largest_gap=largest,
        fragmentation=round(1 - largest / free, 4) if free else 0.0,
    )


def entry_label(e: w.MapEntry) -> str:
    return f"{e.id} {e.type.name.lower()}" + (" certificate" if e.flags & ValueFlags.CERTIFICATE else "")


# --- SVG ---------------------------------------------------------------------------------------

WIDTH, MARGIN, BAR = 1000, 10, 36


def svg(lay: Layout, names: dict[int, str] | None = None) -> str:
    """Two bars: the whole memory by area, then the data area by extent (records by type, a
    certificate hatched, free gaps white); a legend and the figures below. ``names`` (from LIST
    VALUES) go into the tooltips."""
    names = names or {}
    inner = WIDTH - 2 * MARGIN
    out: list[str] = []

    def rect(x: float, y: int, width: float, fill: str, cls: str, tip: str, extra: str = "") -> None:
        out.append(f'<rect class="{cls}" x="{x:.2f}" y="{y}" width="{max(width, 0.5):.2f}" height="{BAR}" '
                   f'fill="{fill}" stroke="#333" stroke-width="0.3"{extra}><title>{escape(tip)}</title></rect>')

    def text(x: float, y: int, s: str, size: int = 12) -> None:
        out.append(f'<text x="{x:.2f}" y="{y}" font-size="{size}">{escape(s)}</text>')

    text(MARGIN, 18, f"Card memory: {lay.memory_size} bytes", 14)
    y = 28
    scale = inner / lay.memory_size
    for a in lay.areas:
        rect(MARGIN + a.start * scale, y, a.length * scale, AREA_COLOURS[a.kind], "area",
             f"{AREA_NAMES[a.kind]}: {a.start}..{a.end - 1} ({a.length} bytes)")
    y += BAR + 28
    data = lay.data
    text(MARGIN, y - 8, f"Data area: {data.length} bytes at {data.start}; {lay.used} used, {lay.free} free in "
         f"{len(lay.gaps)} gap(s), largest {lay.largest_gap}, fragmentation {lay.fragmentation:.1%}")
    scale = inner / data.length
    for x in lay.extents():
        if isinstance(x, Gap):
            rect(MARGIN + x.offset * scale, y, x.size * scale, FREE_COLOUR, "gap",
                 f"free: offset {x.offset}, {x.size} bytes")
            continue
        cert = x.flags & ValueFlags.CERTIFICATE
        rect(MARGIN + x.offset * scale, y, x.size * scale, TYPE_COLOURS[x.type],
             "record certificate" if cert else "record",
             f"value {entry_label(x)}: {names.get(x.id, '')}, offset {x.offset}, {x.size} bytes, slot {x.slot}"
             + (f", flags {', '.join(str(f.name).lower() for f in ValueFlags if f and f in x.flags)}"
                if x.flags else ""),
             ' fill-opacity="0.55" stroke-dasharray="2,1"' if cert else "")
    y += BAR + 24
    legend = [(t.name.lower(), c) for t, c in TYPE_COLOURS.items()] + [("free", FREE_COLOUR)]
    legend += [(AREA_NAMES[k], AREA_COLOURS[k]) for k in AREA_NAMES if k != w.AreaKind.DATA]
    x0 = float(MARGIN)
    for name, colour in legend:
        out.append(f'<rect class="legend" x="{x0:.2f}" y="{y - 10}" width="12" height="12" fill="{colour}" '
                   'stroke="#333" stroke-width="0.3"/>')
        text(x0 + 16, y, name)
        x0 += 24 + 7.5 * len(name)
    height = y + 14
    head = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
            f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif">')
    return "\n".join([head, f"<title>{escape('evb card memory map')}</title>", *out, "</svg>"]) + "\n"
