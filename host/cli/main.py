"""The ``evb`` command. Failures become one line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import logging
import sys

import click

from apdu import ApduError
from apdu.records import RecordError
from apdu.wallet import MessageError

from ..transport import TransportError
from .card import card
from .demo import demo
from .errors import CliFail


@click.group()
@click.option("-v", "--verbose", count=True, help="More logging; -vv traces APDUs (PINs redacted).")
@click.version_option(package_name="evb", prog_name="evb")
def cli(verbose: int) -> None:
    """Back up electronic value from an IC card to a vault, and restore it."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, 5)
    logging.basicConfig(level=level, format="%(levelname)s %(name)s: %(message)s")


cli.add_command(card)
cli.add_command(demo)


def main(argv: list[str] | None = None) -> int:
    try:
        cli.main(args=argv, prog_name="evb", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except CliFail as exc:
        click.echo(f"Error: {exc.message}", err=True)
        return exc.status
    except (ApduError, TransportError, MessageError, RecordError) as exc:
        click.echo(f"Error: {exc}", err=True)
        return 1
    except OSError as exc:
        click.echo(f"Error: {exc.strerror or exc}: {exc.filename or ''}".rstrip(": "), err=True)
        return 1
    return 0


def run() -> None:
    sys.exit(main())
