"""Shell completion (click's ``_EVB_COMPLETE``, see the README) for what only the card or pcscd
knows: value ids on the card, reader names. Types complete from their click.Choice on their own.

A completion runs on every Tab: it opens the card the command line names (or the default one),
and any failure completes nothing rather than printing into the user's prompt."""

from __future__ import annotations

from pathlib import Path

import click
from click.shell_completion import CompletionItem

from apdu import wallet as w


def value_ids(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """The ids on the card (certificates included), each with its name as the help."""
    from ..session import WalletSession
    from ..transport.open import open_card

    image, reader = ctx.params.get("card_image"), ctx.params.get("reader")
    try:
        with open_card(Path(image) if image else None, reader) as transport:
            entries = WalletSession(transport).list(w.ListFilter())
    except Exception:  # noqa: BLE001 - no card, no pcscd, a bad image: nothing to offer
        return []
    return [CompletionItem(str(e.id), help=e.name) for e in entries if str(e.id).startswith(incomplete)]


def reader_names(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[CompletionItem]:
    """The PC/SC readers pcscd knows, from its reader state (no card is connected to)."""
    from ..transport.pcsc import list_readers

    try:
        names = list_readers()
    except Exception:  # noqa: BLE001 - pcscd not running or pyscard missing
        return []
    return [CompletionItem(n) for n in names if n.lower().startswith(incomplete.lower())]
