"""Recover from a lost card (issue 7; the value half of seed E3's key restore).

The owner tells the key manager, which signs a statement; the vault, pinning the key manager's
statement key, revokes the old card and makes the new card the holder of everything the old one
had backed up. The certificates themselves were on the lost card, so the vault hands them over
one at a time, each signed for the new card with the next number of the card's import counter:
a handover is taken once, so a value comes back exactly once however often the terminal retries.
Values that were only on the lost card were never at the vault: nothing can bring them back.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from apdu.certificate import Certificate
from apdu.keys import KeyMode
from apdu.records import ValueFlags

from .backup import BackupError, MakeRoom, Outcome, release_unneeded, restore, run_all
from .keymgr_client import KeyManagerClient
from .keys import KeyFlowError, enrol_card, restore_key, restore_key_parts, restore_split_key
from .session import WalletSession
from .vault_client import VaultClient, VaultClientError

Progress = Callable[[int, int], None]  # (taken so far, waiting after it)


@dataclass(frozen=True)
class Recovery:
    key: str  # what happened to the card's key
    imported: int  # certificates taken from the vault
    restored: list[Outcome]
    failed: list[tuple[int, str]]


def report_lost(keymgr: KeyManagerClient, vault: VaultClient, card_id: bytes, new_card_id: bytes | None) -> int:
    """Revoke ``card_id`` at the vault on the key manager's word; answers how many of its
    certificates wait for ``new_card_id``."""
    return vault.replace_card(keymgr.report_lost(card_id, new_card_id, vault.public_key()))


def take_handovers(session: WalletSession, vault: VaultClient, progress: Progress | None = None) -> int:
    """Import every certificate the vault hands over; answers how many this run took."""
    taken = 0
    while True:
        expected = session.import_counter()
        handover, waiting = vault.handover(expected)
        if handover is None:
            return taken
        if handover.sequence != expected:
            raise BackupError("the vault handed over a certificate out of order")
        session.import_certificate(handover)
        taken += 1
        if progress:
            progress(taken, waiting)


def inherited(session: WalletSession) -> list[int]:
    """The card's certificates that another card backed up (handed over after a loss)."""
    own = session.identity().card_id
    return [e.id for e in session.list() if e.flags & ValueFlags.CERTIFICATE
            and Certificate.from_bytes(session.read(e.id).certificate).card_id != own]


def recover_key(session: WalletSession, keymgr: KeyManagerClient, vault: VaultClient, old_card_id: bytes) -> str:
    """The old card's key onto this one, if the owner escrowed it: whole from the key manager,
    or rebuilt from the key manager's share and the vault's (seed E4, no recovery code needed):
    the vault's 2-of-3 share, or (a per-value split) the part riding with a handed-over
    certificate's registered value."""
    if session.key_info().mode != KeyMode.NONE:
        return "kept the card's own key"
    _, cards = keymgr.status()
    if cards.get(old_card_id):
        return f"restored key {restore_key(session, keymgr, old_card_id).key_id.hex().upper()}"
    try:
        try:
            info = restore_split_key(session, keymgr, old_card_id, (), vault=vault)
        except (VaultClientError, KeyFlowError) as exc:  # no 2-of-3 share at one of them: per value
            if isinstance(exc, VaultClientError) and exc.status != 404:
                raise
            info = restore_key_parts(session, keymgr, vault, old_card_id)
    except BackupError as exc:
        return f"no key restored ({exc})"
    return f"rebuilt key {info.key_id.hex().upper()} from the key manager's and the vault's shares"


def recover(session: WalletSession, vault: VaultClient, keymgr: KeyManagerClient, old_card_id: bytes,
            progress: Progress | None = None, make_room: MakeRoom | None = None) -> Recovery:
    """The whole story on the new card in the reader, resumable at every step: report the loss
    (again is harmless), bring the key, take the certificates, restore their values."""
    enrol_card(session, keymgr)
    report_lost(keymgr, vault, old_card_id, session.identity().card_id)
    imported = take_handovers(session, vault, progress)  # first: a per-value split needs a certificate
    key = recover_key(session, keymgr, vault, old_card_id)
    restored, failed = run_all(inherited(session), lambda i: restore(session, vault, i, make_room))
    release_unneeded(session, vault)  # what a cut run restored but did not release
    return Recovery(key, imported, restored, failed)
