"""Key rotation as a resumable job (seed E7; E8 with ``restore_all``).

The job's state is where it matters: the card keeps the next key and marks each certificate it
has moved (ROTATED), the key manager records the rotation under way and holds both keys'
escrows until the end, the vault holds old registrations until the card's receipts say they
are no longer needed. So a run cut anywhere — a server killed, the card's power cut, the network
dropped — is finished by running it again, and ends with every value decryptable under exactly
one current key; the old key is destroyed (on the card, then at the key manager) only after the
last value moved.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from apdu.backup import RegisteredValue
from apdu.certificate import Certificate, Mode
from apdu.keys import KeyInfo, KeyMode
from apdu.records import ValueFlags

from .backup import MakeRoom, release_unneeded, restore
from .keymgr_client import KeyManagerClient
from .keys import KeyFlowError, enrol_card
from .session import WalletSession
from .vault_client import VaultClient

Progress = Callable[[int, int], None]  # (values moved, values to move)


@dataclass(frozen=True)
class Rotation:
    key: KeyInfo  # the card's key now
    moved: int  # certificates re-encrypted in this run
    restored: int  # values restored to the card (E8)
    destroyed: int  # old escrowed keys destroyed at the key manager


BATCH = 16
"""Values moved a round: one restoration and one registration request for all of them."""


def encrypted_certificates(session: WalletSession, rotated: bool | None = None) -> list[int]:
    """The card's certificates of encrypted backups (moved or not yet, or both)."""
    return [value_id for value_id, (flags, cert) in _certificates(session).items()
            if cert.mode == Mode.ENCRYPTED and (rotated is None or bool(flags & ValueFlags.ROTATED) == rotated)]


def _certificates(session: WalletSession) -> dict[int, tuple[int, Certificate]]:
    """Every certificate on the card by value id, with its entry's flags: one LIST, one READ each."""
    return {e.id: (e.flags, Certificate.from_bytes(session.read(e.id).certificate))
            for e in session.list() if e.flags & ValueFlags.CERTIFICATE}


def rotate(session: WalletSession, vault: VaultClient, keymgr: KeyManagerClient, progress: Progress | None = None,
           restore_all: bool = False, make_room: MakeRoom | None = None) -> Rotation:
    """Move the card to a new key: the next key escrowed first, then every encrypted backup
    re-encrypted on the card and registered anew, then the commit, then the clean-up. E8
    (``restore_all``) brings every value back first, making room by ``make_room`` when the card
    is full; a shortage it cannot solve stops before the key moves, with no certificate pending.

    Values move :data:`BATCH` at a time: one request fetches a round's registered values, the
    card re-encrypts each, one request registers them all, then the card swaps each certificate.
    A cut anywhere in a round leaves each value unmoved or moved (the swap is the card's one
    write), and a re-run moves what is left; registrations made for swaps that never happened
    name certificates the card does not hold, so the clean-up releases them like the old ones."""
    current = session.key_info()
    if current.mode == KeyMode.NONE:
        raise KeyFlowError("the card has no key to rotate: 'evb key init' generates one")
    card_id = session.identity().card_id
    enrol_card(session, keymgr)
    under_way = keymgr.rotation(card_id)
    nxt = session.key_info(next_key=True)
    if nxt.mode == KeyMode.NONE and under_way is not None and under_way[1] == current.key_id:
        return _finish(session, vault, keymgr, current, 0, 0)  # committed before a cut: clean up
    if nxt.mode == KeyMode.NONE and under_way is not None:  # the key manager's own, begun without the card
        raise KeyFlowError("a re-keying by the key manager is under way: finish it with 'evb key rotate --by-keymgr'")
    restored = 0
    if restore_all and nxt.mode == KeyMode.NONE:  # E8: everything back on the card first
        for value_id in encrypted_certificates(session):
            restore(session, vault, value_id, make_room)
            restored += 1
    nxt = session.begin_rotation()  # the same next key again after a cut
    keymgr.escrow(card_id, nxt.key_id, nxt.mode, session.export_key(next_key=True))
    keymgr.begin_rotation(card_id, current.key_id, nxt.key_id)
    held = _certificates(session)
    todo = [(value_id, cert) for value_id, (flags, cert) in held.items()
            if cert.mode == Mode.ENCRYPTED and not flags & ValueFlags.ROTATED]
    for start in range(0, len(todo), BATCH):
        round_ = todo[start:start + BATCH]
        olds = vault.restore_many([cert.to_bytes() for _, cert in round_])  # the vault only reads here
        news = [RegisteredValue.from_bytes(session.reencrypt(value_id, old))
                for (value_id, _), old in zip(round_, olds, strict=True)]
        registrations = vault.register_many(news)  # the same answers again after a cut
        for (value_id, _), new, registration in zip(round_, news, registrations, strict=True):
            session.swap_certificate(value_id, registration.certificate, bytes(new))
            held[value_id] = (ValueFlags.ROTATED, Certificate.from_bytes(registration.certificate))
        if progress:
            progress(start + len(round_), len(todo))
    key = session.commit_rotation()
    on_card = {(c.counter, c.value_hash) for _, c in held.values()}
    return _finish(session, vault, keymgr, key, len(todo), restored, on_card)


def _finish(session: WalletSession, vault: VaultClient, keymgr: KeyManagerClient, key: KeyInfo, moved: int,
            restored: int, held: set[tuple[int, bytes]] | None = None) -> Rotation:
    release_unneeded(session, vault, held)  # the old registrations, against the card's receipts
    destroyed = keymgr.finish_rotation(session.identity().card_id, key.key_id)
    return Rotation(key, moved, restored, destroyed)
