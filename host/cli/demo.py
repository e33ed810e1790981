"""``evb demo``: the scripted story on a fresh simulated card."""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from card import SimulatedCard

from ..demo import run_wallet_story
from ..session import WalletSession
from ..transport.inprocess import open_image
from .render import ConsoleReporter, console


@click.command()
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path), help="Keep the card image here.")
def demo(workdir: Path | None) -> None:
    """Run the seed's fig. 15 story end to end on a new simulated card."""
    with tempfile.TemporaryDirectory(prefix="evb-demo-") as tmp:
        base = workdir or Path(tmp)
        image = base / "demo-card.img"
        SimulatedCard.manufacture(image=image)
        console.print(f"[bold]Electronic value backup demo[/] (card image {image})")
        with open_image(image) as transport:
            run_wallet_story(WalletSession(transport), ConsoleReporter())
        console.print("\n[bold green]Demo complete.[/]")
