"""The storage-shortage choice (claims 25-27) as CLI options and a terminal prompt, shared by
``evb card store``, ``evb restore`` and ``evb shell``."""

from __future__ import annotations

import sys
from collections.abc import Callable
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import click

from .options import today_option, vault_option

if TYPE_CHECKING:  # the shortage flow is imported when a card runs short, not with every command
    from rich.table import Table

    from apdu.triggers import ShortagePolicy

    from ..session import WalletSession
    from ..triggers import Choice, Decide, Shortage, VaultLink

ON_SHORTAGE = ("abort", "auto", "ask")  # the policies --on-shortage names (besides the card's own)


def policy_named(name: str) -> ShortagePolicy:
    """The policy ``name`` (one of :data:`ON_SHORTAGE`) stands for. The triggers' codecs are
    imported here, when a policy is used: every card command takes the option."""
    from apdu.triggers import ShortagePolicy

    return {"abort": ShortagePolicy.ABORT, "auto": ShortagePolicy.AUTOMATIC, "ask": ShortagePolicy.ASK}[name]


on_shortage_option = click.option(
    "--on-shortage", type=click.Choice(["card", *ON_SHORTAGE]), default="card", show_default=True,
    help="When the card is full: the card's policy, abort, back up automatically by the card's conditions, or ask.")


def shortage_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    return vault_option(today_option(on_shortage_option(fn)))


def room_maker(session: WalletSession, link: VaultLink, on_shortage: str,
               today: datetime | None) -> Callable[[int, str], object]:
    """The shortage policy as the flows take it: (bytes needed, what for) -> room or a refusal."""
    from ..triggers import make_room

    policy, decide = policy_for(session, on_shortage), decider()

    def room(needed: int, what: str) -> object:
        return make_room(session, link, needed, what, day(today), policy, decide)

    return room


def day(today: datetime | None) -> date:
    return today.date() if today else date.today()


def policy_for(session: WalletSession, on_shortage: str) -> ShortagePolicy:
    return session.triggers().policy if on_shortage == "card" else policy_named(on_shortage)


def gains_table(shortage: Shortage) -> Table:
    from rich.table import Table

    table = Table(title=f"Live values ({shortage.free} bytes free, {shortage.needed} needed)")
    for col in ("ID", "Name", "Size", "Frees", "Selected"):
        table.add_column(col, justify="right" if col in ("ID", "Size", "Frees") else "left")
    selected = {g.value_id for g in shortage.selected}
    for g in shortage.live:
        table.add_row(str(g.value_id), g.name, f"{g.size} B", f"{g.gain} B", "yes" if g.value_id in selected else "")
    return table


def ask_user(shortage: Shortage) -> tuple[Choice, tuple[int, ...]]:
    """Claim 27: show the shortage and let the user abort, back up automatically or pick."""
    from ..triggers import Choice
    from .render import console

    text = str(shortage)
    console.print(f"[yellow]{text[0].upper()}{text[1:]}.[/yellow]", markup=True)
    console.print(gains_table(shortage))
    auto = shortage.automatic
    console.print("automatic backup would take: " + (", ".join(map(str, auto)) if auto else "nothing that frees enough"))
    answer = click.prompt("[a]bort, a[u]tomatic, [m]anual", type=click.Choice(["a", "u", "m"]), default="a")
    if answer == "a":
        return Choice.ABORT, ()
    if answer == "u":
        return Choice.AUTOMATIC, ()
    raw = click.prompt("value ids to back up (space-separated)", default="")
    try:
        return Choice.MANUAL, tuple(int(x) for x in raw.replace(",", " ").split())
    except ValueError:
        return Choice.ABORT, ()


def decider() -> Decide | None:
    """Ask only where someone can answer; a script gets a clear error naming --on-shortage."""
    return ask_user if sys.stdin.isatty() else None
