"""The ``evb`` command. Failures become one line on stderr and a non-zero exit, never a traceback."""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from .. import __version__
from .errors import CliFail
from .lazy import LazyGroup

log = logging.getLogger("evb")
COMMANDS = {
    "card": "host.cli.card:card",
    "demo": "host.cli.demo:demo",
    "readers": "host.cli.pcsc:readers",
    "apdu": "host.cli.raw:apdu_cmd",
    "bench": "host.cli.benchmarks:bench",
    "recover": "host.cli.keymgr:recover_cmd",
    "vault": "host.cli.serve:vault",
    "backup": "host.cli.vault:backup_cmd",
    "restore": "host.cli.vault:restore_cmd",
    "certs": "host.cli.vault:certs",
    "triggers": "host.cli.triggers:triggers",
    "auto": "host.cli.triggers:auto",
    "shell": "host.cli.shell:shell",
    "key": "host.cli.keys:key",
    "keymgr": "host.cli.serve:keymgr",
    "account": "host.cli.keymgr:account",
    "issuer": "host.cli.issuer:issuer",
    "tls": "host.cli.serve:tls",
}


def expected_failures() -> tuple[type[Exception], ...]:
    """The library's typed errors, each one line for the user. Imported when a command fails: the
    HTTP client behind ServiceError is not worth loading for a command that never fails."""
    from apdu import ApduError
    from apdu.records import RecordError
    from apdu.wallet import MessageError

    from ..api_client import ServiceError
    from ..backup import BackupError
    from ..transport import TransportError

    return (ApduError, TransportError, MessageError, RecordError, BackupError, ServiceError)


class EvbGroup(LazyGroup):
    """Turns the library's typed errors into click's one-line failures, for every subcommand."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:  # one line, with where to look, instead of the usage block
            where = exc.ctx.command_path if exc.ctx else ctx.command_path
            raise CliFail(f"{exc.format_message()} (see '{where} --help')", status=2) from exc
        except (click.ClickException, click.exceptions.Exit, click.Abort, KeyboardInterrupt):
            raise
        except OSError as exc:
            where = f": {exc.filename}" if exc.filename else ""
            raise CliFail(f"{exc.strerror or exc}{where}") from exc
        except Exception as exc:
            if isinstance(exc, expected_failures()):
                raise CliFail(str(exc)) from exc
            # the last resort: one line and a status, the trace only when asked
            log.debug("unexpected failure", exc_info=True)
            to_file = [h.baseFilename for h in logging.getLogger().handlers if isinstance(h, LogFile)]
            hint = (f" (the trace is in {to_file[0]})" if to_file else
                    "" if log.isEnabledFor(logging.DEBUG) else " (run with -v -v for the trace)")
            raise CliFail(f"unexpected {type(exc).__name__}: {exc}{hint}", status=3) from exc


TRACE = 5  # below DEBUG: the APDU trace (PINs, keys, shares and codes redacted)
FORMAT = "%(levelname)s %(name)s: %(message)s"


class LogFile(logging.FileHandler):
    """The --log-file handler, told apart from any other file handler (a test runner's)."""


def setup_logging(verbose: int, log_file: Path | None) -> Callable[[], None]:
    """-v on stderr; a log file gets everything, the APDU trace and a last-resort failure's
    traceback included, whatever -v says (to look at after the fact). Answers how to undo it
    (the file closed, the levels as they were), for when the command ends."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, TRACE)
    logging.basicConfig(level=level, format=FORMAT)
    if log_file is None:
        return lambda: None
    root = logging.getLogger()
    before = root.level, [(h, h.level) for h in root.handlers]
    to_file = LogFile(log_file, encoding="utf-8")
    to_file.setFormatter(logging.Formatter("%(asctime)s " + FORMAT))
    for handler in root.handlers:  # stderr keeps the level -v asked for
        handler.setLevel(max(handler.level, level))
    root.addHandler(to_file)
    root.setLevel(TRACE)

    def undo() -> None:
        root.removeHandler(to_file)
        to_file.close()
        root.setLevel(before[0])
        for handler, was in before[1]:
            handler.setLevel(was)

    return undo


@click.group(cls=EvbGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More logging; -vv traces APDUs (PINs redacted).")
@click.option("--log-file", type=click.Path(dir_okay=False, path_type=Path),
              help="Append everything to FILE: the APDU trace (redacted) and any failure's traceback.")
@click.version_option(__version__, prog_name="evb")  # not package_name: importlib.metadata costs more than click
def cli(verbose: int, log_file: Path | None) -> None:
    """Back up electronic value from an IC card to a vault, and restore it."""
    click.get_current_context().call_on_close(setup_logging(verbose, log_file))



UNUSED = ("trio", "httpx._main")
"""Modules our libraries import whenever they are installed and evb never runs: httpcore imports
trio in case it runs under trio, httpx its own command-line client (pygments, rich's progress bar
and syntax colouring). Together 0.6 s of a command's start-up."""


def run() -> None:
    """The ``evb`` process: it tells the import system it has none of :data:`UNUSED`."""
    for name in UNUSED:
        sys.modules.setdefault(name, None)  # type: ignore[arg-type]
    cli(prog_name="evb")
