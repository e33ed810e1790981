"""``evb triggers show|set|check|run`` and ``evb auto``: thin over host.triggers."""

from __future__ import annotations

import time
from datetime import datetime

import click
from rich.progress import Progress
from rich.table import Table

from apdu.triggers import FACTORY_SETTINGS, TriggerSettings, format_condition, parse_condition

from ..backup import BackupError
from ..session import WalletSession
from ..triggers import AutoRun, free_percent, run_auto, run_if_due
from ..vault_client import VaultClientError
from .errors import CliFail
from .lazy import made
from .net import vault_link
from .options import json_option, pin_option, today_option, unlock, vault_option, with_wallet
from .render import console, listing_table, print_json, print_sheet
from .shortage import ON_SHORTAGE, day, policy_named

POLICIES = {name: policy_named(name) for name in ON_SHORTAGE}
POLICY_NAMES = {v: k for k, v in POLICIES.items()}


def settings_json(s: TriggerSettings, today: datetime | None, free: int | None = None) -> dict[str, object]:
    return {
        "condition": format_condition(s.condition) if s.condition else None,
        "period_days": s.period_days,
        "combine": "both" if s.both_below else "either",
        "both_below_percent": s.both_below or None,
        "on_shortage": POLICY_NAMES[s.policy],
        "last_run": s.last_run.isoformat() if s.last_run else None,
        "due": s.due(day(today), free),
    }


@click.group()
def triggers() -> None:
    """The card's automatic-backup conditions, period and shortage policy."""


@triggers.command("show")
@with_wallet
@today_option
@json_option
def show(session: WalletSession, today: datetime | None, as_json: bool) -> None:
    """Show the conditions the card keeps (fig. 39 step 1-1)."""
    data = settings_json(session.triggers(), today, free_percent(session))
    if as_json:
        print_json(data)
        return
    table = Table(show_header=False, title="Backup triggers")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("Condition", str(data["condition"] or "(none: automatic backup selects nothing)"))
    table.add_row("Period", f"every {data['period_days']} days" if data["period_days"] else "off")
    table.add_row("Combined", f"both: only when under {data['both_below_percent']}% is free"
                  if data["combine"] == "both" else "either: whenever due")
    table.add_row("On shortage", str(data["on_shortage"]))
    table.add_row("Last run", str(data["last_run"] or "never"))
    table.add_row("Due", "yes" if data["due"] else "no")
    console.print(table)


@triggers.command("set")
@with_wallet
@click.option("--condition", help="e.g. 'type=ticket and name~Movie', 'unusable-within=30'; 'none' clears it.")
@click.option("--period", type=click.IntRange(0, 65535), help="Run automatically every N days (0: off).")
@click.option("--on-shortage", type=click.Choice(list(POLICIES)), help="The card's shortage policy.")
@click.option("--both-below", type=click.IntRange(1, 99), metavar="PERCENT",
              help="Combine the triggers as 'both' (seed para. 0133): the periodic run only when under PERCENT "
                   "of the card is free.")
@click.option("--either", is_flag=True, help="Combine the triggers as 'either': the periodic run whenever due.")
@click.option("--factory", is_flag=True, help="Back to the factory defaults first.")
@pin_option
@json_option
def set_(session: WalletSession, condition: str | None, period: int | None, on_shortage: str | None,
         both_below: int | None, either: bool, factory: bool, pin: str | None, as_json: bool) -> None:
    """Replace the conditions, period, combination or policy (fig. 39 steps 1-2, 1-3)."""
    if either and both_below is not None:
        raise CliFail("--either or --both-below, not both", status=2)
    current = FACTORY_SETTINGS if factory else session.triggers()
    new = TriggerSettings(
        current.condition if condition is None else (None if condition.strip() == "none" else parse_condition(condition)),
        current.period_days if period is None else period,
        current.policy if on_shortage is None else POLICIES[on_shortage],
        None,
        0 if either else current.both_below if both_below is None else both_below,
    )
    unlock(session, pin)
    session.put_triggers(new)
    data = settings_json(session.triggers(), None)
    print_json(data) if as_json else console.print(f"Triggers set: {data['condition'] or 'no condition'}, "
                                                   f"period {data['period_days']} days ({data['combine']}), "
                                                   f"on shortage {data['on_shortage']}")


@triggers.command("check")
@with_wallet
@today_option
@json_option
def check(session: WalletSession, today: datetime | None, as_json: bool) -> None:
    """List the values the card's conditions select today, without backing them up (fig. 40)."""
    selected = {c.value_id for c in session.select_for_backup(day(today))}
    entries = [e for e in session.list() if e.id in selected]
    if as_json:
        print_json(entries)
        return
    print_sheet(listing_table(entries, title=f"Selected for backup on {day(today).isoformat()}"))


def report(run: AutoRun, as_json: bool) -> None:
    if as_json:
        print_json({"selected": [c.value_id for c in run.selected], "done": run.done,
                    "failed": [{"id": i, "error": e} for i, e in run.failed]})
    else:
        if not run.selected:
            console.print("No value meets the backup conditions.")
        for o in run.done:
            console.print(f"{o.value_id:>5}  {o.name}: {o.action}")
        for i, e in run.failed:
            console.print(f"{i:>5}  [red]failed[/red]: {e}")
    if run.failed:
        raise CliFail(f"{len(run.failed)} of {len(run.selected)} values failed")


def _auto(session: WalletSession, vault_url: str, today: datetime | None, as_json: bool, only_if_due: bool) -> bool:
    with vault_link(vault_url) as link, Progress(console=made(console), transient=True, disable=as_json or not console.is_terminal) as bar:
        task = bar.add_task("automatic backup", total=None)
        try:
            run = (run_if_due if only_if_due else run_auto)(session, link, day(today), lambda n: bar.advance(task, n))
        except (VaultClientError, BackupError) as exc:
            raise CliFail(str(exc)) from exc
    if run is None:
        return False
    report(run, as_json)
    return True


@triggers.command("run")
@with_wallet
@today_option
@vault_option
@pin_option
@json_option
def run_cmd(session: WalletSession, today: datetime | None, vault_url: str, pin: str | None, as_json: bool) -> None:
    """Back up now what the conditions select (the user-request trigger)."""
    unlock(session, pin)
    _auto(session, vault_url, today, as_json, only_if_due=False)


@click.command("auto")
@with_wallet
@today_option
@vault_option
@click.option("--watch", type=click.FloatRange(0.1), metavar="SECONDS",
              help="Keep checking every SECONDS until Ctrl-C.")
@pin_option
@json_option
def auto(session: WalletSession, today: datetime | None, vault_url: str, watch: float | None, pin: str | None,
         as_json: bool) -> None:
    """Run the periodic automatic backup if it is due."""
    unlock(session, pin)
    while True:
        if not _auto(session, vault_url, today, as_json, only_if_due=True) and not as_json:
            settings = session.triggers()
            console.print("Automatic backup is off." if not settings.period_days else
                          f"Not due: last run {settings.last_run}, every {settings.period_days} days.")
        if watch is None:
            return
        try:
            time.sleep(watch)
        except KeyboardInterrupt:
            return
