"""A table in a pipe is drawn without rich (issue 16: importing rich cost ``evb card info`` more
than its work) and must read exactly as rich drew it there: the same box, widths and justification,
wide characters included. Each case is rendered both ways and compared."""

from __future__ import annotations

import io
from datetime import date

import pytest
from rich.console import Console

from apdu import wallet as w
from apdu.records import ValueFlags, ValueType
from host.cli.render import UNWRAPPED_WIDTH, Sheet, cell_width, info_table, listing_table, record_table
from host.demo import FIG15


def by_rich(sheet: Sheet) -> str:
    """What ``make_console`` prints to a pipe: no colour, soft wrap, the unwrapped width."""
    out = io.StringIO()
    Console(file=out, highlight=False, soft_wrap=True, width=UNWRAPPED_WIDTH).print(sheet.rich())
    return out.getvalue()


NO_FLAGS = ValueFlags(0)


def entry(id_: int, name: str, valid_to: date | None = None, flags: ValueFlags = NO_FLAGS) -> w.ListEntry:
    return w.ListEntry(id_, ValueType.TICKET, flags, 76 * id_, valid_to, name)


INFO = w.CardInfo((1, 0), w.LifeCycle.OPERATIONAL, bytes.fromhex("e8578c553b074baf"), 28656, 28366, 128, 4, 4, 0, 3, 3)
SHEETS = {
    "card info": info_table(INFO),
    "a listing": listing_table([entry(1, "Movie ticket A", date(2000, 5, 31)), entry(12, "x", None),
                                entry(300, "Concert [bold]C[/] :smile:", flags=ValueFlags.CERTIFICATE)]),
    "wide characters": listing_table([entry(1, "映画の前売券"), entry(2, "プリペイドカード e\u0301")]),
    "no values": listing_table([]),
    "no title": listing_table([entry(1, "a")], title=""),
    "a record": record_table(FIG15[0]),
    "a header wider than its cells": Sheet("T", ("Size", "Name with a long heading"), (("1", ""),),
                                           right=frozenset({0})),
}


@pytest.mark.parametrize("name", SHEETS)
def test_a_sheet_in_a_pipe_reads_as_rich_draws_it(name: str) -> None:
    sheet = SHEETS[name]
    assert sheet.text() + "\n" == by_rich(sheet)


def test_wide_characters_take_two_cells() -> None:
    assert cell_width("券") == 2 and cell_width("e\u0301") == 1 and cell_width("ab") == 2
