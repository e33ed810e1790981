"""Server-assisted restore (seed E6): the key manager fetches the registered value from the
vault, checks and opens it with the escrowed key, and seals the value to this card, for a card
that does not hold the key. The terminal relays a blob it cannot open; the vault never sees
the value."""

from __future__ import annotations

from apdu.certificate import Certificate
from apdu.records import ValueFlags

from .backup import BackupError, MakeRoom, Outcome, _entry, commit_with_room, release
from .keymgr_client import KeyManagerClient, KeyManagerClientError
from .keys import enrol_card
from .session import WalletSession
from .vault_client import VaultClient


def assisted_restore(session: WalletSession, keymgr: KeyManagerClient, value_id: int,
                     vault: VaultClient | None = None, make_room: MakeRoom | None = None) -> Outcome:
    """Restore one certificate through the key manager; with ``vault``, release the
    registration afterwards (the card signs that it needs it no more). A card too full for the
    value makes room by ``make_room`` (the shortage policy), as a plain restore does."""
    entry = _entry(session, value_id)
    if not entry.flags & ValueFlags.CERTIFICATE:
        return Outcome(value_id, entry.name, "already done")
    try:
        enrol_card(session, keymgr)
    except KeyManagerClientError as exc:
        if 400 <= exc.status < 500:
            raise BackupError(f"value {value_id}: {exc.message}") from exc
        raise
    certificate = session.begin_restore(value_id)
    transport = session.new_transport_key()
    try:
        sealed = keymgr.assisted_restore(session.identity().card_id, certificate, transport)
    except KeyManagerClientError as exc:
        if 400 <= exc.status < 500:  # a definite refusal: the certificate stays
            session.cancel_pending(value_id)
            raise BackupError(f"value {value_id}: {exc.message}") from exc
        raise
    # the sealed value is a little longer than the value (IV, padding, tag): room for it is room enough
    commit_with_room(session, value_id, entry.name, len(sealed), lambda: session.commit_assisted_restore(value_id, sealed),
                     make_room)
    if vault is not None:
        cert = Certificate.from_bytes(certificate)
        release(session, vault, cert.counter, cert.value_hash)
    return Outcome(value_id, entry.name, "restored via the key manager")
