"""``evb card map``: the terminal picture, the JSON and the SVG of the card's memory, and the
layout figures behind them (gaps, fragmentation)."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from apdu import wallet as w
from apdu.records import ValueFlags, ValueType
from host.memory_map import Gap, layout, svg

from .test_cli import PIN, evb
from .test_cli import image as image  # noqa: F401 (fixture)
from .test_cli import stocked as stocked  # noqa: F401 (fixture)

SVG = "{http://www.w3.org/2000/svg}"


def test_layout_gaps_and_fragmentation() -> None:
    areas = (w.MapArea(w.AreaKind.INDEX, 0, 32), w.MapArea(w.AreaKind.DATA, 32, 100))
    entries = (w.MapEntry(1, 2, ValueType.COUPON, ValueFlags.NONE, 40, 20),
               w.MapEntry(0, 1, ValueType.TICKET, ValueFlags.CERTIFICATE, 10, 20))
    lay = layout(w.MemoryMap(132, areas, entries))
    assert [e.id for e in lay.entries] == [1, 2]  # address order, not slot order
    assert lay.gaps == (Gap(0, 10), Gap(30, 10), Gap(60, 40))
    assert (lay.used, lay.free, lay.largest_gap, lay.index_capacity) == (40, 60, 40, 4)
    assert lay.fragmentation == round(1 - 40 / 60, 4)
    full = layout(w.MemoryMap(132, areas, (w.MapEntry(0, 1, ValueType.TICKET, ValueFlags.NONE, 0, 100),)))
    assert (full.gaps, full.free, full.fragmentation) == ((), 0, 0.0)
    empty = layout(w.MemoryMap(132, areas, ()))
    assert (empty.gaps, empty.fragmentation) == ((Gap(0, 100),), 0.0)


def fragmented(image: Path) -> Path:
    img = ["--card-image", str(image), "--pin", PIN]
    for name, vtype in [("Ticket Alpha", "ticket"), ("B", "prepaid"), ("C", "coupon"), ("D", "voucher")]:
        assert evb("card", "store", *img, "--type", vtype, "--name", name).exit_code == 0
    assert evb("card", "delete", *img, "2", "--force").exit_code == 0
    return image


def test_map_in_the_terminal_json_and_svg(image: Path, tmp_path: Path) -> None:  # noqa: F811
    img = ["--card-image", str(fragmented(image))]
    r = evb("card", "map", *img, "--svg", str(tmp_path / "map.svg"))
    assert r.exit_code == 0, r.output
    for part in ["memory header", "journal", "wallet header", "index", "data area", "value 1 ticket",
                 "value 3 coupon", "value 4 voucher", "Ticket Alpha", "free", "2 gap(s)", "fragmentation", "3 of 128 slots"]:
        assert part in r.stdout, part
    assert "value 2" not in r.stdout
    strip = r.stdout.split("a cell:\n")[1].splitlines()[0]
    assert strip.startswith("T") and "V" in strip and strip.endswith("·")  # a cell: what holds most of it
    assert "… 6 more rows free" in r.stdout  # 8 rows of 64 cells; after the last record, one row drawn

    lay = json.loads(evb("card", "map", *img, "--json").stdout)
    assert [e["id"] for e in lay["entries"]] == [1, 3, 4]
    assert [e["type"] for e in lay["entries"]] == ["ticket", "coupon", "voucher"]
    assert [a["kind"] for a in lay["areas"]] == ["memory_header", "journal", "applet_header", "index", "data"]
    assert len(lay["gaps"]) == 2 and lay["gaps"][0]["offset"] == lay["entries"][0]["size"]
    assert lay["used"] + lay["free"] == lay["areas"][-1]["length"]
    assert 0 < lay["fragmentation"] < 0.01 and lay["index_capacity"] == 128

    root = ET.parse(tmp_path / "map.svg").getroot()  # well-formed XML, an SVG document
    assert root.tag == f"{SVG}svg"
    rects = root.findall(f"{SVG}rect")
    by_class = {c: [r for r in rects if r.get("class") == c] for c in ("area", "record", "gap")}
    assert len(by_class["area"]) == 5
    assert len(by_class["record"]) == 3 and len(by_class["gap"]) == 2  # one rect per extent
    tips = [r.find(f"{SVG}title") for r in by_class["record"]]
    assert [t.text.split(":")[0] for t in tips if t is not None] == ["value 1 ticket", "value 3 coupon",
                                                                       "value 4 voucher"]
    assert tips[0] is not None and "Ticket Alpha" in str(tips[0].text)  # the name, from LIST VALUES


def test_map_needs_no_pin_and_shows_a_certificate(image: Path) -> None:  # noqa: F811
    r = evb("card", "map", "--card-image", str(image), env={"EVB_PIN": ""})
    assert r.exit_code == 0 and "0 of 128 slots" in r.stdout
    cert = w.MapEntry(0, 7, ValueType.PREPAID, ValueFlags.CERTIFICATE, 0, 10)
    areas = (w.MapArea(w.AreaKind.INDEX, 0, 8), w.MapArea(w.AreaKind.DATA, 8, 100))
    doc = ET.fromstring(svg(layout(w.MemoryMap(108, areas, (cert,)))))
    (rect,) = [r for r in doc.findall(f"{SVG}rect") if "record" in (r.get("class") or "")]
    assert rect.get("class") == "record certificate"
