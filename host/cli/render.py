"""Terminal and JSON output for the CLI: rich tables for people, ``--json`` for scripts."""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import unicodedata
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime
from enum import Enum
from typing import TYPE_CHECKING, Any

from apdu import wallet as w
from apdu.records import ValueFlags, ValueRecord

from .lazy import lazy, made

if TYPE_CHECKING:  # rich is imported when a terminal is printed to: not for --help, --json, a pipe or a failure
    from rich.console import Console, Group
    from rich.table import Table

    from ..memory_map import Layout


def make_console() -> Console:
    """Rich output for people. Not on a terminal (``evb demo > file``) nothing is wrapped or cut at
    80 columns: a line of text (a recovery code) stays one line, and tables take the width they need."""
    from rich.console import Console

    out = Console(highlight=False)
    if not out.is_terminal and "COLUMNS" not in os.environ:
        out = Console(highlight=False, soft_wrap=True, width=UNWRAPPED_WIDTH)
    return out


UNWRAPPED_WIDTH = 1000  # wide enough for any table of ours; plain text is not wrapped at all (soft_wrap)
console = lazy(make_console)

# --- JSON: one shape per record (docs/JSON.md), made here and nowhere else -----------------------

RENAMED = {"value_id": "id", "tries_remaining": "pin_tries_remaining"}  # one name per thing everywhere


def json_field(name: str, value: Any) -> tuple[str, Any]:
    """A record's field as JSON: the shared name, card ids upper-case hex as the tables print them,
    versions as "major.minor", and null rather than an empty string or byte string."""
    name = RENAMED.get(name, name)
    if isinstance(value, (bytes, str)) and not value:
        return name, None
    if name.endswith("card_id") and isinstance(value, bytes):
        return name, value.hex().upper()
    if name == "version" and isinstance(value, tuple):
        return name, ".".join(str(v) for v in value)
    return name, to_jsonable(value)


def to_jsonable(obj: Any) -> Any:
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return dict(json_field(f.name, getattr(obj, f.name)) for f in dataclasses.fields(obj))
    if isinstance(obj, dict):
        return dict(json_field(str(k), v) for k, v in obj.items())
    if isinstance(obj, ValueFlags):
        return [str(f.name).lower() for f in ValueFlags if f and f in obj]
    if isinstance(obj, Enum):
        return obj.name.lower()
    if isinstance(obj, (date, datetime)):
        return obj.isoformat()
    if isinstance(obj, bytes):
        return obj.hex()
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(x) for x in obj]
    return obj


def print_json(obj: Any) -> None:
    print(json.dumps(to_jsonable(obj), ensure_ascii=False, indent=2))


def flags_text(flags: ValueFlags) -> str:
    return ", ".join(str(f.name).lower().replace("_", "-") for f in ValueFlags if f and f in flags)


# --- tables: rich on a terminal, drawn here for a pipe ------------------------------------------


@dataclasses.dataclass(frozen=True)
class Sheet:
    """A table as data. On a terminal rich draws it; in a pipe or a file :meth:`text` draws the box
    rich would draw there (no colour, nothing wrapped), because importing rich costs a card command
    more than its work (``evb bench startup``). tests/host/test_render.py holds the two to the same
    text. Cells are text as given: no markup, no emoji codes (a value's name is the user's)."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    right: frozenset[int] = frozenset()  # the columns justified right
    header: bool = True  # False: a two-column sheet of fields, their names in bold
    caption: str = ""

    def rich(self) -> Table:
        from rich.table import Table
        from rich.text import Text

        table = Table(show_header=self.header, title=self.title, title_justify="left", caption=self.caption or None)
        for i, name in enumerate(self.columns):
            table.add_column(name, justify="right" if i in self.right else "left",
                             style="bold" if i == 0 and not self.header else None)
        for row in self.rows:
            table.add_row(*(Text(cell) for cell in row))
        return table

    def text(self) -> str:
        """rich's default box (heavy head; square without a header), one space of padding."""
        lines = [*self.rows, self.columns] if self.header else list(self.rows)
        widths = [max((cell_width(row[i]) for row in lines), default=0) for i in range(len(self.columns))]

        def rule(left: str, fill: str, cross: str, right: str) -> str:
            return left + cross.join(fill * (w + 2) for w in widths) + right

        def row(cells: tuple[str, ...], bar: str) -> str:
            padded = (" " * (w - cell_width(c)) + c if i in self.right else c + " " * (w - cell_width(c))
                      for i, (c, w) in enumerate(zip(cells, widths, strict=True)))
            return bar + bar.join(f" {c} " for c in padded) + bar

        out = [self.title] if self.title else []
        if self.header:
            out += [rule("┏", "━", "┳", "┓"), row(self.columns, "┃"), rule("┡", "━", "╇", "┩")]
        else:
            out.append(rule("┌", "─", "┬", "┐"))
        out += [row(r, "│") for r in self.rows]
        out.append(rule("└", "─", "┴", "┘"))
        return "\n".join([*out, self.caption] if self.caption else out)


def cell_width(text: str) -> int:
    """Terminal cells ``text`` takes: two for a wide (East Asian) character, none for a combining one."""
    return sum(0 if unicodedata.combining(ch) else 2 if unicodedata.east_asian_width(ch) in "WF" else 1
               for ch in text)


def is_terminal() -> bool:
    """rich's test (``Console.is_terminal``), without importing rich: TTY_COMPATIBLE, then
    FORCE_COLOR, then whether stdout is a terminal."""
    tty = os.environ.get("TTY_COMPATIBLE", "")
    if tty in ("0", "1"):
        return tty == "1"
    if "FORCE_COLOR" in os.environ:
        return os.environ["FORCE_COLOR"] != ""
    try:
        return sys.stdout.isatty()
    except ValueError:  # closed (the end of a test run)
        return False


def plain_stream() -> bool:
    """Whether rich would print to stdout unwrapped and without colour: a pipe or a file, no
    COLUMNS, UTF-8 (elsewhere rich draws an ASCII box). Then we print without rich."""
    return not (is_terminal() or "COLUMNS" in os.environ or not (sys.stdout.encoding or "").lower().startswith("utf"))


def print_sheet(sheet: Sheet) -> None:
    print(sheet.text()) if plain_stream() else console.print(sheet.rich())


def say(line: str) -> None:
    """A line for people, as it is (no markup: a value's name is the user's), printed by rich only
    on a terminal (see :func:`plain_stream`)."""
    if plain_stream():
        print(line)
    else:
        from rich.text import Text

        console.print(Text(line))


def listing_table(entries: list[w.ListEntry], title: str = "Values on the card") -> Sheet:
    rows = tuple(
        (str(e.id), e.type.name.lower(), e.name, e.valid_to.isoformat() if e.valid_to else "unlimited", f"{e.size} B",
         flags_text(e.flags))
        for e in entries)
    return Sheet(title, ("ID", "Type", "Name", "Valid to", "Size", "Flags"), rows, right=frozenset({0, 4}),
                 caption="" if entries else "(none)")


def record_table(r: ValueRecord) -> Sheet:
    validity = (
        f"{r.valid_from.isoformat() if r.valid_from else '…'} .. {r.valid_to.isoformat() if r.valid_to else '…'}"
        if r.valid_from or r.valid_to
        else "unlimited"
    )
    rows = (
        ("Type", r.type.name.lower()),
        ("Issuer", r.issuer or "-"),
        ("Quantity", str(r.quantity)),
        ("Face value", f"{r.face_value} {r.currency}"),
        ("Balance", f"{r.balance} {r.currency}"),
        ("Total", f"{r.total} {r.currency}" if r.total else "-"),
        ("Validity", validity),
        ("Place", r.place or "-"),
        ("Acquired", r.acquired_at.isoformat(sep=" ") if r.acquired_at else "-"),
        ("Remarks", r.remarks or "-"),
        ("Payload", f"{len(r.payload)} bytes" if r.payload else "-"),
        ("Flags", flags_text(r.flags) or "-"),
    )
    return Sheet(f"Value {r.id}: {r.name}", ("", ""), rows, header=False)


def info_table(info: w.CardInfo) -> Sheet:
    rows = (
        ("Card ID", info.card_id.hex().upper()),
        ("Version", f"{info.version[0]}.{info.version[1]}"),
        ("State", info.life_cycle.name.lower()),
        ("Memory", f"{info.free_memory} of {info.total_memory} bytes free"),
        ("Index", f"{info.index_used} of {info.index_capacity} entries used"),
        ("Values", str(info.value_count)),
        ("Certificates", str(info.certificate_count)),
        ("PIN", f"{info.pin_tries_remaining} of {info.pin_max_tries} tries left"),
    )
    return Sheet("Card", ("", ""), rows, header=False)


class ConsoleReporter:
    """The demo's reporter: numbered steps and tables on the terminal."""

    def __init__(self) -> None:
        self._n = 0

    def step(self, title: str) -> None:
        self._n += 1
        console.print(f"\n[bold cyan]{self._n}. {title}[/]")

    def listing(self, entries: list[w.ListEntry]) -> None:
        print_sheet(listing_table(entries, title=""))

    def record(self, record: ValueRecord) -> None:
        print_sheet(record_table(record))

    def info(self, info: w.CardInfo) -> None:
        print_sheet(info_table(info))

    def note(self, text: str) -> None:
        console.print(f"   {text}")


@contextmanager
def progress_bar(what: str, as_json: bool = False) -> Iterator[Callable[[int, int], None]]:
    """A transient bar on a terminal (nothing in pipes or with --json); yields ``(done, total)``."""
    from rich.progress import Progress

    with Progress(console=made(console), transient=True, disable=as_json or not console.is_terminal) as bar:
        task = bar.add_task(what, total=None)
        yield lambda done, total: bar.update(task, completed=done, total=total)


# --- the memory map (evb card map) ---------------------------------------------------------------

TYPE_STYLES = {"ticket": "blue", "prepaid": "dark_orange", "coupon": "green", "voucher": "magenta", "other": "yellow"}
MAP_COLUMNS = 64


def memory_map_view(lay: Layout, names: dict[int, str]) -> Group:
    """The areas, the data area as a strip of cells (a letter per value type, upper case for a value,
    lower case for a certificate, ``·`` free), the index's slots, and every extent in address order.
    A cell shows what holds most of its bytes, free space included, so a gap of half a cell or more
    shows; the table lists every gap whatever its size. Free rows after the last record are counted,
    not drawn."""
    from rich.console import Group
    from rich.table import Table
    from rich.text import Text

    from ..memory_map import AREA_NAMES, Gap

    areas = Table(title=f"Card memory: {lay.memory_size} bytes", title_justify="left")
    for name, justify in [("Area", "left"), ("Start", "right"), ("End", "right"), ("Bytes", "right")]:
        areas.add_column(name, justify=justify)  # type: ignore[arg-type]
    for a in lay.areas:
        areas.add_row(AREA_NAMES[a.kind], str(a.start), str(a.end - 1), str(a.length))

    data = lay.data
    cell = max(1, -(-data.length // (MAP_COLUMNS * 8)))  # at most 8 rows of 64 cells
    by_cell: dict[int, dict[w.MapEntry | Gap, int]] = {}
    for x in lay.extents():
        for c in range(x.offset // cell, (x.offset + x.size - 1) // cell + 1):
            by_cell.setdefault(c, {})[x] = min(x.offset + x.size, (c + 1) * cell) - max(x.offset, c * cell)
    cells = -(-data.length // cell)
    last_used = max((c for c, owners in by_cell.items() if any(not isinstance(x, Gap) for x in owners)), default=-1)
    shown = min(cells, (last_used // MAP_COLUMNS + 2) * MAP_COLUMNS)  # one free row after the last record
    strip = Text()
    for c in range(shown):
        if c and c % MAP_COLUMNS == 0:
            strip.append("\n")
        owners = by_cell.get(c, {})
        free = sum(n for x, n in owners.items() if isinstance(x, Gap))
        records = [x for x in owners if not isinstance(x, Gap)]
        if not records or free > max(owners[x] for x in records):
            strip.append("·", style="dim")
            continue
        e = max(records, key=lambda k: owners[k])
        letter = e.type.name[0]
        strip.append(letter.lower() if e.flags & ValueFlags.CERTIFICATE else letter,
                     style=TYPE_STYLES[e.type.name.lower()])
    if shown < cells:
        strip.append(f"\n… {(cells - shown) // MAP_COLUMNS} more rows free ({data.length - shown * cell} bytes)",
                     style="dim")
    used_slots = {e.slot for e in lay.entries}
    slots = Text("\n".join(
        "".join("■" if s in used_slots else "·" for s in range(row, min(row + MAP_COLUMNS, lay.index_capacity)))
        for row in range(0, lay.index_capacity, MAP_COLUMNS)))

    extents = Table(title="Data area, in address order", title_justify="left")
    for name, justify in [("Offset", "right"), ("Address", "right"), ("Bytes", "right"), ("What", "left"),
                          ("Name", "left"), ("Slot", "right"), ("Flags", "left")]:
        extents.add_column(name, justify=justify)  # type: ignore[arg-type]
    for x in lay.extents():
        if isinstance(x, Gap):
            extents.add_row(str(x.offset), str(data.start + x.offset), str(x.size), Text("free", style="dim"), "", "", "")
        else:
            extents.add_row(str(x.offset), str(data.start + x.offset), str(x.size),
                            Text(f"value {x.id} {x.type.name.lower()}", style=TYPE_STYLES[x.type.name.lower()]),
                            names.get(x.id, ""), str(x.slot), flags_text(x.flags))
    legend = Text("  ".join(f"{t[0].upper()} {t}" for t in TYPE_STYLES) + "  (lower case: certificate)  · free")
    summary = (f"Data area: {data.length} bytes, {lay.used} used, {lay.free} free in {len(lay.gaps)} gap(s)\n"
               f"Largest gap {lay.largest_gap} bytes, fragmentation {lay.fragmentation:.1%}\n"
               f"Index: {len(lay.entries)} of {lay.index_capacity} slots used")
    return Group(areas, Text(summary), Text(f"Data area, {cell} bytes a cell:", style="bold"), strip, legend,
                 Text("Index slots:", style="bold"), slots, extents)
