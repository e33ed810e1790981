"""``evb backup``, ``evb restore``, ``evb certs``: thin over host.backup."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime

import click

from apdu import wallet as w
from apdu.records import ValueFlags

from ..backup import (
    BackupError,
    Outcome,
    backup_many,
    connect,
    encryption,
    release_unneeded,
    restore,
    run_all,
)
from ..session import WalletSession
from ..vault_client import VaultClient, VaultClientError
from .card import TypeChoice
from .complete import value_ids
from .errors import CliFail
from .net import vault_client, vault_link
from .options import json_option, keymgr_option, pin_option, unlock, vault_option, with_wallet
from .proof import ProofOptions, proof_options
from .render import console, is_terminal, listing_table, print_json, print_sheet, say
from .shortage import room_maker, shortage_options


@contextmanager
def vault_session(session: WalletSession, vault_url: str, pin: str | None) -> Iterator[tuple[VaultClient, bytes]]:
    unlock(session, pin)
    with vault_client(vault_url) as client:
        try:
            key = connect(session, client)
        except (VaultClientError, BackupError) as exc:
            raise CliFail(str(exc)) from exc
        yield client, key


def pick(session: WalletSession, ids: tuple[int, ...], all_: bool, flt: w.ListFilter, want_certs: bool) -> list[int]:
    if ids and all_:
        raise CliFail("give value ids or --all, not both")
    if ids:
        return list(ids)
    if not all_ and flt == w.ListFilter():
        raise CliFail("name the values: ids, --all or --type")
    entries = session.list(flt)
    return [e.id for e in entries if bool(e.flags & ValueFlags.CERTIFICATE) == want_certs]


Steps = Callable[[Callable[[int], None] | None], tuple[list[Outcome], list[tuple[int, str]]]]


def each(ids: list[int], step: Callable[[int], Outcome]) -> Steps:
    """One step per value, one value's refusal not stopping the others."""
    return lambda advance: run_all(ids, step, advance)


def run_with_progress(ids: list[int], run: Steps, what: str, as_json: bool,
                      then: Callable[[], int] | None = None) -> None:
    """Run the steps for ``ids`` (told how to advance the bar), then ``then`` (the vault's
    clean-up, answering how many registrations it released), and print both: a release is said,
    never silent."""
    if len(ids) > 3 and not as_json and is_terminal():  # a bar is for a terminal: in a pipe, no import
        from rich.progress import Progress

        with Progress(console=console, transient=True) as progress:
            task = progress.add_task(what, total=len(ids))
            done, failed = run(lambda n: progress.advance(task, n))
    else:
        done, failed = run(None)
    released: int | None = None
    cleanup_error: BackupError | None = None
    if then is not None:
        try:
            released = then()
        except BackupError as exc:  # said after what was done, which stands
            cleanup_error = exc
    if as_json:
        out: dict[str, object] = {"done": done, "failed": [{"id": i, "error": e} for i, e in failed]}
        if released is not None:
            out["released"] = released
        print_json(out)
    else:
        for o in done:
            say(f"{o.value_id:>5}  {o.name}: {o.action}")
        if len(ids) > 1:  # one value asked: the error line below says it
            for i, e in failed:
                console.print(f"{i:>5}  [red]failed[/red]: {e}")
        if released:
            console.print(released_note(released))
    if cleanup_error is not None:
        raise cleanup_error
    if failed:
        if len(ids) == 1:
            raise CliFail(failed[0][1])
        raise CliFail(f"{len(failed)} of {len(ids)} values failed" + (f": {failed[0][1]}" if len(failed) == 1 else ""))


@click.command("backup")
@with_wallet
@click.argument("ids", nargs=-1, type=click.IntRange(1, 65535), shell_complete=value_ids)
@click.option("--all", "all_", is_flag=True, help="Every value on the card.")
@click.option("--type", "vtype", type=TypeChoice(), help="Every value of this type.")
@click.option("--keep", is_flag=True, help="Keep the value on the card too (marked backed up).")
@click.option("--encrypt/--plain", default=None,
              help="Encrypted (E2: the vault sees only ciphertext) or plain (E1) [default: encrypted when the "
                   "card has a key].")
@vault_option
@pin_option
@json_option
def backup_cmd(session: WalletSession, ids: tuple[int, ...], all_: bool, vtype: object, keep: bool,
               encrypt: bool | None, vault_url: str, pin: str | None, as_json: bool) -> None:
    """Back values up to the vault; the card keeps a certificate in their place."""
    flt = w.ListFilter(type=vtype) if vtype is not None else w.ListFilter()  # type: ignore[arg-type]
    targets = pick(session, ids, all_, flt, want_certs=False)
    encrypt = encryption(session, encrypt)  # refused once, not per value
    with vault_session(session, vault_url, pin) as (client, key):
        run_with_progress(targets, lambda advance: backup_many(session, client, key, targets, keep, encrypt, advance),
                          "backing up", as_json)


@click.command("restore")
@with_wallet
@click.argument("ids", nargs=-1, type=click.IntRange(1, 65535), shell_complete=value_ids)
@click.option("--all", "all_", is_flag=True, help="Every certificate on the card.")
@click.option("--via-keymgr", is_flag=True,
              help="Seed E6: the key manager fetches, checks and opens each encrypted value and seals it to "
                   "the card (for a card without the key); needs 'evb account login'.")
@keymgr_option
@shortage_options
@pin_option
@json_option
@proof_options()
def restore_cmd(session: WalletSession, ids: tuple[int, ...], all_: bool, via_keymgr: bool, keymgr_url: str,
                on_shortage: str, vault_url: str, today: datetime | None, pin: str | None, as_json: bool,
                proof: ProofOptions) -> None:
    """Restore values from the vault in place of their certificates; when the card is full, the
    shortage policy decides (claim 26)."""
    targets = pick(session, ids, all_, w.ListFilter(certificates_only=True) if all_ else w.ListFilter(), True)
    with vault_session(session, vault_url, pin) as (client, _), vault_link(vault_url) as link:
        room = room_maker(session, link, on_shortage, today)
        if via_keymgr:
            from ..assisted import assisted_restore  # only here: the key manager's client and enrolment
            from .keymgr import logged_in

            with logged_in(keymgr_url, proof) as keymgr:
                step = each(targets, lambda i: _wrap(lambda: assisted_restore(session, keymgr, i, client, room)))
                run_with_progress(targets, step,
                                  "restoring via the key manager", as_json)
            return
        run_with_progress(targets, each(targets, lambda i: _wrap(lambda: restore(session, client, i, room))), "restoring",
                          as_json,
                          then=lambda: _count(lambda: release_unneeded(session, client)))


@click.command("certs")
@with_wallet
@json_option
def certs(session: WalletSession, as_json: bool) -> None:
    """List the vault certificates on the card."""
    entries = session.list(w.ListFilter(certificates_only=True))
    if as_json:
        print_json(entries)
    else:
        print_sheet(listing_table(entries, title="Certificates"))


def released_note(count: int) -> str:
    """The vault forgot values no certificate on this card names any more: a deleted certificate's
    value is gone from here on, so the user hears of it."""
    what = "1 value" if count == 1 else f"{count} values"
    return (f"The vault released {what} no certificate on this card names any more "
            "(a deleted certificate or an unfinished backup): the vault no longer keeps them.")


def _count(fn: Callable[[], int]) -> int:
    try:
        return fn()
    except VaultClientError as exc:
        raise BackupError(str(exc)) from exc


def _wrap(fn: Callable[[], object]) -> Outcome:
    """A vault that cannot be reached or refuses becomes this value's failure, in one line."""
    try:
        return fn()  # type: ignore[return-value]
    except VaultClientError as exc:
        raise BackupError(str(exc)) from exc
