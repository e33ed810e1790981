"""Key escrow flows (seed E3): back the card's key up to the key manager, and restore it onto
the same or a new card. The terminal relays sealed blobs it cannot open."""

from __future__ import annotations

from apdu import SW, ApduError
from apdu.keys import KeyInfo, KeyMode

from .backup import BackupError
from .keymgr_client import KeyManagerClient
from .session import WalletSession


class KeyFlowError(BackupError):  # a BackupError: the CLI prints it as one line
    """A key flow that cannot go on."""


def backup_key(session: WalletSession, keymgr: KeyManagerClient) -> KeyInfo:
    """Steps 1-1..1-6: pin the key manager's key on the card, export the seed sealed to it, and
    hand it over with the logged-in owner's session."""
    info = session.key_info()
    if info.mode == KeyMode.NONE:
        raise KeyFlowError("the card has no key: 'evb key init' generates one")
    try:
        session.put_keymgr_key(keymgr.public_key())
    except ApduError as exc:
        if exc.sw == SW.CONDITIONS_NOT_SATISFIED:
            raise KeyFlowError("the card trusts another key manager") from exc
        raise
    keymgr.escrow(session.identity().card_id, info.key_id, info.mode, session.export_key())
    return info


def restore_key(session: WalletSession, keymgr: KeyManagerClient, source_card_id: bytes) -> KeyInfo:
    """Steps 2-1..2-5, for the card in the reader: it makes a one-time transport key, the key
    manager seals the escrowed seed to it, the card opens and installs it."""
    if session.key_info().mode != KeyMode.NONE:
        raise KeyFlowError("the card already has a key")
    transport = session.new_transport_key()
    restoration = keymgr.restore_key(source_card_id, session.identity().card_id, transport)
    info = session.import_key(restoration.mode, restoration.sealed)
    if info.key_id != restoration.key_id:
        raise KeyFlowError("the restored key is not the escrowed one")
    return info
