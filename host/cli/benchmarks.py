"""The whole ``evb bench`` group (its first commands are in :mod:`.pcsc`): ``evb bench vault`` and
``evb bench all`` (issue 18), figures beside their baselines from the same run, with the goal
each must meet."""

from __future__ import annotations

import os
import platform
import time
from typing import TYPE_CHECKING

import click
from rich.table import Table

from .options import json_option
from .pcsc import bench

__all__ = ["bench"]
from .render import console, print_json

if TYPE_CHECKING:
    from ..bench_suite import Figure

postgres_option = click.option(
    "--postgres", "postgres_url", envvar="EVB_BENCH_POSTGRES", metavar="URL",
    help="Also measure on this PostgreSQL database (in a schema of its own, dropped after) "
         "[or EVB_BENCH_POSTGRES].")


def _say(what: str) -> None:
    """Progress on stderr: stdout carries only the table, the Markdown or the JSON."""
    click.echo(f"… {what}", err=True)


def _print_figures(figures: list[Figure], title: str, as_json: bool) -> None:
    from ..bench_suite import table_rows


    if as_json:
        print_json([{"figure": f.name, "ours": f.ours, "baseline": f.baseline, "unit": f.unit, "ratio": f.ratio,
                     "goal": f.goal, "met": f.met} for f in figures])
        return
    table = Table(title=title, title_justify="left")
    for column in ("figure", "ours", "baseline", "ratio", "goal", "met"):
        table.add_column(column, justify="left" if column in ("figure", "goal") else "right")
    for row in table_rows(figures):
        table.add_row(*row, style="red" if row[-1] == "NO" else None)
    console.print(table)


@bench.command("vault")
@postgres_option
@click.option("--clients", default="1,2,4", show_default=True, help="Client process counts, comma separated.")
@click.option("--seconds", type=click.FloatRange(0.2, 600), default=2.0, show_default=True,
              help="Length of each measurement.")
@click.option("--rounds", type=click.IntRange(1, 100), default=1, show_default=True,
              help="Interleaved rounds (medians).")
@json_option
def bench_vault(postgres_url: str | None, clients: str, seconds: float, rounds: int, as_json: bool) -> None:
    """Vault registrations/s beside the raw durable insert rate of the same database, the same
    client processes, and the vault's CPU per registration (SQLite, and PostgreSQL with --postgres)."""
    from ..bench_suite import run_vault_bench, vault_figures

    try:
        counts = tuple(int(c) for c in clients.split(","))
    except ValueError as exc:
        raise click.BadParameter("client counts are whole numbers, comma separated", param_hint="--clients") from exc
    rates = run_vault_bench(postgres_url, counts, seconds, rounds, _say)
    _print_figures(vault_figures(rates), "The vault against its database", as_json)


@bench.command("all")
@postgres_option
@click.option("--pcsc", is_flag=True, help="Also the round trips through pcscd (needs vpcd; hold the reader).")
@click.option("--markdown", is_flag=True, help="Print docs/BENCHMARKS.md: the table in Markdown with the machine.")
@json_option
def bench_all(postgres_url: str | None, pcsc: bool, markdown: bool, as_json: bool) -> None:
    """Every benchmark at a size that fits a few minutes, as one table: figure, ours, baseline,
    ratio (of the same run) and goal."""
    from ..bench_suite import markdown as to_markdown
    from ..bench_suite import run_all

    start = time.monotonic()
    figures = run_all(postgres_url, pcsc, _say)
    took = time.monotonic() - start
    if markdown:
        header = (f"# Benchmarks\n\nThe last full run of `evb bench all --markdown{' --pcsc' if pcsc else ''}"
                  f"{' --postgres URL' if postgres_url else ''} > docs/BENCHMARKS.md` "
                  f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}, {took:.0f} s) on "
                  f"{platform.machine()} with {os.cpu_count()} cores, Python {platform.python_version()}. "
                  "The machine is shared: only ratios of the same run compare. A ratio is ours over the "
                  "baseline, or over the goal's own number where there is no baseline. An image card is "
                  "durable at every answer, one fdatasync per command: its rate is bounded by the disk's "
                  "sync latency, measured between the same batches and shown beside it.")
        click.echo(to_markdown(figures, header), nl=False)
        return
    _print_figures(figures, f"evb bench all ({took:.0f} s)", as_json)
