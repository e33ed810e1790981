"""``evb shell``: a terminal session on one card, with the CLI's commands, completion and history.

Each line runs the same click command as ``evb …`` would, on the card the shell holds open
(with the PIN given once), so the shell adds no second implementation of any command. The
periodic automatic backup runs when the session starts if it is due and the user agrees
(``--auto``, or yes at the question).
"""

from __future__ import annotations

import cmd
import os
import shlex
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import click

from ..backup import BackupError
from ..paths import data_dir
from ..session import WalletSession
from ..triggers import free_percent, run_auto
from ..vault_client import VaultClientError
from .lazy import LazyGroup
from .net import CA_ENV, trust, vault_link
from .options import (
    HeldCard,
    card_image_option,
    need_pin,
    pin_option,
    reader_option,
    today_option,
    vault_option,
    wallet,
)
from .render import console
from .shortage import day

try:
    import readline
except ImportError:  # pragma: no cover - not on Debian
    readline = None  # type: ignore[assignment]

OUTSIDE_ONLY = {"shell", "demo", "readers", "bench", "vault"}  # they open cards or servers of their own


def history_file() -> Path:
    return data_dir() / "shell_history"


class Shell(cmd.Cmd):
    intro = "evb shell: the CLI's commands on this card ('help', Tab to complete, 'exit' to leave)."
    prompt = "evb> "

    def __init__(self, root: click.Group, held: HeldCard) -> None:
        super().__init__()
        self.root, self.held = root, held
        if isinstance(root, LazyGroup):  # the shell walks ``commands``: every one imported
            root.load_all()
        card_group = root.commands["card"]
        assert isinstance(card_group, LazyGroup)
        card_group.load_all()
        self.card_group = card_group

    # --- running a line ----------------------------------------------------------------------

    def args_for(self, words: list[str]) -> list[str]:
        """``list`` is ``card list``: the card's commands need no prefix in the shell."""
        if words and words[0] not in self.root.commands and words[0] in self.card_group.commands:
            return ["card", *words]
        return words

    def default(self, line: str) -> None:
        try:
            words = self.args_for(shlex.split(line))
        except ValueError as exc:
            console.print(f"Error: {exc}")
            return
        if words and words[0] in OUTSIDE_ONLY:
            console.print(f"Error: '{words[0]}' runs outside the shell")
            return
        try:
            self.root.main(words, prog_name="evb", obj=self.held, standalone_mode=False)
        except click.ClickException as exc:
            console.print(f"Error: {exc.format_message()}", markup=False)
        except click.exceptions.Exit:
            pass
        except click.Abort:
            console.print("Aborted.")

    def cmdloop(self, intro: str | None = None) -> None:
        """Ctrl-C cancels the line being typed (or the command running), as in a shell; Ctrl-D or
        'exit' leaves."""
        while True:
            try:
                super().cmdloop(intro)
                return
            except KeyboardInterrupt:
                console.print("^C")
                intro = ""

    def emptyline(self) -> bool:
        return False

    def do_exit(self, _: str) -> bool:
        """Leave the shell (also: quit, Ctrl-D)."""
        return True

    do_quit = do_exit

    def do_EOF(self, _: str) -> bool:  # noqa: N802 - cmd's name for Ctrl-D
        console.print()
        return True

    def do_help(self, arg: str) -> None:
        """help [COMMAND]: the commands, or one command's options."""
        words = self.args_for(shlex.split(arg)) if arg else []
        self.default(" ".join([*words, "--help"]) if words else "--help")
        if not words:
            console.print("In the shell the card's commands need no 'card' prefix: list, show, store, …")

    # --- completion --------------------------------------------------------------------------

    def completenames(self, text: str, *ignored: object) -> list[str]:
        names = {*self.root.commands, *self.card_group.commands, "exit", "quit", "help"} - OUTSIDE_ONLY
        return sorted(n for n in names if n.startswith(text))

    def completedefault(self, text: str, line: str, begidx: int, endidx: int) -> list[str]:
        words = self.args_for(shlex.split(line[:begidx]))
        command: click.Command = self.root
        for w in words:
            if isinstance(command, click.Group) and w in command.commands:
                command = command.commands[w]
        if isinstance(command, click.Group):
            return sorted(n for n in command.commands if n.startswith(text))
        options = [o for p in command.params if isinstance(p, click.Option) for o in p.opts]
        return sorted(o for o in options if o.startswith(text) and o not in ("--card-image", "--reader"))


def wants_auto(due: bool, auto: bool | None, ask: Callable[[], bool]) -> bool:
    """Whether the due automatic backup runs at session start: --auto or --no-auto decide; without
    either, a person is asked and a script (no terminal) gets none, as nothing goes to the vault unasked."""
    if not due or auto is False:
        return False
    return auto is True or (sys.stdin.isatty() and ask())


def start(session: WalletSession, vault_url: str, today: datetime | None, auto: bool | None = None) -> None:
    """Session start: the periodic trigger (seed E9), when wanted; a vault that is away does not stop
    the shell."""
    due = session.triggers().due(day(today), free_percent(session))
    if not wants_auto(due, auto, lambda: click.confirm("Automatic backup is due: back the selected values "
                                                       "up to the vault now?", default=False)):
        if due:
            console.print("Automatic backup is due and did not run ('auto' runs it).")
        return
    try:
        with vault_link(vault_url) as link:
            run = run_auto(session, link, day(today))
    except (VaultClientError, BackupError) as exc:
        console.print(f"[yellow]Automatic backup is due but did not run: {exc}[/yellow]")
        return
    went = ", ".join(f"{o.value_id} {o.name}" for o in run.done) or "nothing selected"
    console.print(f"Automatic backup ran: {went}" + (f"; {len(run.failed)} failed" if run.failed else ""))


@click.command("shell")
@card_image_option
@reader_option
@vault_option
@today_option
@click.option("--auto/--no-auto", default=None,
              help="Run the automatic backup at start if it is due, or not [default: ask on a terminal; "
                   "without one, not].")
@pin_option
def shell(card_image: Path | None, reader: str | None, vault_url: str, today: datetime | None,
          auto: bool | None, pin: str | None) -> None:
    """An interactive session on one card: list, store, backup, restore, triggers, …"""
    with wallet(card_image, reader) as session:
        pin = need_pin(pin)
        session.verify_pin(pin)
        held = HeldCard(session, pin)
        root = click.get_current_context().find_root().command
        assert isinstance(root, click.Group)
        history = history_file()
        if readline is not None:
            readline.set_completer_delims(" \t")
            history.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            if history.exists():
                readline.read_history_file(history)
        if today is not None:  # the commands of this session evaluate conditions on that day too
            os.environ["EVB_TODAY"] = today.date().isoformat()
        os.environ["EVB_VAULT"] = vault_url
        if (ca := trust()) is not None:  # and trust the same CA
            os.environ[CA_ENV] = str(ca)
        start(session, vault_url, today, auto)
        try:
            Shell(root, held).cmdloop()
        finally:
            if readline is not None:
                readline.write_history_file(history)
