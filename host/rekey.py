"""Re-keying driven by the key manager (seed E7, and E8 with ``restore_all``; claims 16, 17, 46):
the second rotation mode, beside the card-side one of :mod:`host.rotation`.

Which to use: the card-side mode keeps every value's plaintext on the card (the key manager
only ever escrows keys) but needs the card's key; this mode lets the key manager open and
re-seal every backup with the escrowed key, so it re-keys a card that lost its key (a damaged or
reset key store), as the seed's embodiment 7 has it. Both end the same way: one current key on
the card and at the key manager, every backup under it, the old key destroyed.

The steps, each idempotent, so a run cut anywhere finishes by running it again:

1. the key manager begins the job (step-up proof): the new key is made and escrowed with it;
2. per encrypted certificate on the card, the key manager re-seals the value and the vault
   registers the successor; the card swaps in the successor certificate (SUCCEED CERTIFICATE),
   the old registration staying until then;
3. the new key is sealed to the card's transport key and installed (REPLACE KEY), only once
   every certificate moved;
4. E8: every value comes back to the card under the new key, by the shortage policy when the
   card is full (a value that does not fit keeps its valid certificate; the batch goes on);
5. the vault releases the old registrations against the card's receipts, the key manager
   destroys the old key.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from apdu.keys import KeyInfo, KeyMode
from apdu.records import ValueFlags

from .backup import MakeRoom, release_unneeded, restore, run_all
from .keymgr_client import KeyManagerClient, KeyManagerClientError
from .keys import KeyFlowError, enrol_card
from .rotation import encrypted_certificates
from .session import WalletSession
from .vault_client import VaultClient

Progress = Callable[[int, int], None]  # (certificates done, certificates to do)


@dataclass(frozen=True)
class Rekeying:
    key: KeyInfo  # the card's key now
    moved: int  # certificates swapped for their successors in this run
    restored: int  # values restored to the card (E8)
    failed: tuple[tuple[int, str], ...]  # E8: values left as certificates (a shortage), and why
    destroyed: int  # old escrowed keys destroyed at the key manager


def rekey_by_keymgr(session: WalletSession, vault: VaultClient, keymgr: KeyManagerClient,
                    progress: Progress | None = None, restore_all: bool = False,
                    make_room: MakeRoom | None = None) -> Rekeying:
    """Move the card, with or without its key, to a key the key manager makes (see the module)."""
    if session.key_info(next_key=True).mode != KeyMode.NONE:
        raise KeyFlowError("a card-side rotation is under way: finish it with 'evb key rotate' first")
    enrol_card(session, keymgr)
    card_id = session.identity().card_id
    try:
        job = keymgr.begin_rekey(card_id)
    except KeyManagerClientError as exc:
        if exc.status == 404:
            raise KeyFlowError(exc.message) from exc
        raise
    for entry in session.list():  # half a backup or restore: the safe side, the value or certificate stays
        if entry.flags & ValueFlags.PENDING:
            session.cancel_pending(entry.id)
    moved, refused = 0, []
    todo = encrypted_certificates(session)
    for done, value_id in enumerate(todo, 1):
        try:
            answer = keymgr.rekey_value(card_id, session.read(value_id).certificate)
        except KeyManagerClientError as exc:
            if not 400 <= exc.status < 500:
                raise
            refused.append(f"value {value_id}: {exc.message}")
            continue
        if answer.signature:
            session.succeed_certificate(value_id, answer.certificate, answer.signature)
            moved += 1
        if progress:
            progress(done, len(todo))
    if refused:
        raise KeyFlowError(f"the key did not move: {'; '.join(refused)}")
    key = session.key_info()
    if key.key_id != job.new_key_id:
        delivery = keymgr.rekey_key(card_id, session.new_transport_key())
        key = session.replace_key(delivery.mode, delivery.sealed)
        if key.key_id != job.new_key_id:
            raise KeyFlowError("the installed key is not the one the key manager made")
    restored, failed = 0, list[tuple[int, str]]()
    if restore_all:
        outcomes, failed = run_all(encrypted_certificates(session), lambda v: restore(session, vault, v, make_room))
        restored = sum(o.action == "restored" for o in outcomes)
    release_unneeded(session, vault)  # the old registrations, against the card's receipts
    destroyed = keymgr.finish_rotation(card_id, key.key_id)
    return Rekeying(key, moved, restored, tuple(failed), destroyed)
