"""Key escrow flows (seed E3): back the card's key up to the key manager, and restore it onto
the same or a new card. The terminal relays sealed blobs it cannot open."""

from __future__ import annotations

from apdu import SW, ApduError
from apdu.backup import Audience
from apdu.certificate import Certificate, Mode
from apdu.keys import KeyInfo, KeyMode, parse_recovery_code, recovery_code
from apdu.records import ValueFlags

from .backup import BackupError, attestation_of
from .keymgr_client import KeyManagerClient, KeyManagerClientError
from .session import WalletSession
from .vault_client import VaultClient, VaultClientError


class KeyFlowError(BackupError):  # a BackupError: the CLI prints it as one line
    """A key flow that cannot go on."""


def enrol_card(session: WalletSession, keymgr: KeyManagerClient) -> None:
    """Bind the card to the logged-in owner by its identity key's signature (once; again is a no-op).

    The card signs for the key manager key it pinned, so that key is pinned first."""
    pin_keymgr_key(session, keymgr)
    identity = session.identity()
    if identity.card_id in keymgr.status()[1]:
        return  # enrolled already: nothing to change, so no step-up to ask for
    challenge = keymgr.card_challenge()
    keymgr.enrol_card(identity.card_id, identity.public_key, attestation_of(session), challenge,
                      session.authenticate(Audience.KEY_MANAGER, challenge))


def pin_keymgr_key(session: WalletSession, keymgr: KeyManagerClient) -> None:
    """The card takes the key manager's key once: later ones are refused (the card's keys are
    only ever exported, and its signatures for a key manager only made, to the first)."""
    try:
        session.put_keymgr_key(keymgr.public_key())
    except ApduError as exc:
        if exc.sw == SW.CONDITIONS_NOT_SATISFIED:
            raise KeyFlowError("the card trusts another key manager") from exc
        raise


def backup_key(session: WalletSession, keymgr: KeyManagerClient) -> KeyInfo:
    """Steps 1-1..1-6: pin the key manager's key on the card, export the key material (claim 8's
    seed: d || Q, or K) sealed to it, and hand it over with the logged-in owner's session."""
    info = session.key_info()
    if info.mode == KeyMode.NONE:
        raise KeyFlowError("the card has no key: 'evb key init' generates one")
    enrol_card(session, keymgr)
    keymgr.escrow(session.identity().card_id, info.key_id, info.mode, session.export_key())
    return info


def restore_key(session: WalletSession, keymgr: KeyManagerClient, source_card_id: bytes) -> KeyInfo:
    """Steps 2-1..2-5, for the card in the reader: it makes a one-time transport key, the key
    manager seals the escrowed key material to it, the card checks and installs it."""
    if session.key_info().mode != KeyMode.NONE:
        raise KeyFlowError("the card already has a key")
    enrol_card(session, keymgr)
    transport = session.new_transport_key()
    restoration = keymgr.restore_key(source_card_id, session.identity().card_id, transport)
    info = session.import_key(restoration.mode, restoration.sealed)
    if info.key_id != restoration.key_id:
        raise KeyFlowError("the restored key is not the escrowed one")
    return info


def key_from_keymgr(session: WalletSession, keymgr: KeyManagerClient, mode: KeyMode = KeyMode.PUBLIC) -> KeyInfo:
    """Claim 6: the key manager generates the key (escrowed from the start) and seals it to a
    one-time transport key of this card; the terminal relays what it cannot open.

    Re-run after the card lost its power before IMPORT KEY landed, the key manager already
    escrows the key it made for this card: that one is delivered again (E3's restore onto the
    same card, in the mode first asked), not a second one. A second would stay escrowed beside the card's real key, and a
    later restore, which takes the newest escrow, could hand a new card the key it never had."""
    if session.key_info().mode != KeyMode.NONE:
        raise KeyFlowError("the card already has a key")
    enrol_card(session, keymgr)
    card_id = session.identity().card_id
    transport = session.new_transport_key()
    if keymgr.status()[1].get(card_id):
        delivery = keymgr.restore_key(card_id, card_id, transport)
    else:
        delivery = keymgr.generate_key(card_id, mode, transport)
    info = session.import_key(delivery.mode, delivery.sealed)
    if info.key_id != delivery.key_id:
        raise KeyFlowError("the installed key is not the one the key manager made")
    return info


def split_key(session: WalletSession, keymgr: KeyManagerClient, vault: VaultClient, k_of: int = 2,
              n: int = 3) -> tuple[KeyInfo, tuple[str, ...]]:
    """Seed E4: share 1 to the key manager, share 2 to the vault (each sealed on the card to
    that server), the rest as recovery codes for the owner. Answers the codes to show."""
    info = session.key_info()
    if info.mode == KeyMode.NONE:
        raise KeyFlowError("the card has no key: 'evb key init' generates one")
    enrol_card(session, keymgr)
    shares = session.split_key(k_of, n)
    card_id = session.identity().card_id
    keymgr.escrow_share(card_id, info.key_id, info.mode, shares.keymgr)
    vault.keep_key_share(info.key_id, shares.vault)
    return info, tuple(recovery_code(c) for c in shares.codes)


def restore_split_key(session: WalletSession, keymgr: KeyManagerClient, source_card_id: bytes,
                      codes: tuple[str, ...], vault: VaultClient | None = None) -> KeyInfo:
    """Rebuild a split key on this card from the key manager's share and the owner's codes, or
    the vault's share once the vault knows this card replaced the source card."""
    if session.key_info().mode != KeyMode.NONE:
        raise KeyFlowError("the card already has a key")
    enrol_card(session, keymgr)
    transport = session.new_transport_key()
    try:
        restoration = keymgr.restore_share(source_card_id, session.identity().card_id, transport)
    except KeyManagerClientError as exc:
        if exc.status == 404:
            raise KeyFlowError(exc.message) from exc
        raise
    public = restoration.public_key  # Q, which the card checks the rebuilt d against
    info = session.import_share(restoration.mode, restoration.key_id, restoration.sealed, True, public)
    if vault is not None and info.mode == KeyMode.NONE:
        sealed, _ = vault.restore_share(source_card_id, restoration.key_id, transport)
        info = session.import_share(restoration.mode, restoration.key_id, sealed, True, public)
    for code in codes:
        if info.mode != KeyMode.NONE:
            break
        info = session.import_share(restoration.mode, restoration.key_id, parse_recovery_code(code), False, public)
    if info.mode == KeyMode.NONE:
        raise KeyFlowError("the shares given do not rebuild the key yet: another recovery code is needed")
    if info.key_id != restoration.key_id:
        raise KeyFlowError("the restored key is not the escrowed one")
    return info


def backup_key_parts(session: WalletSession, keymgr: KeyManagerClient) -> KeyInfo:
    """Seed E4 steps 1-1..1-8 (claims 7, 31): the key manager keeps part 405 of the card's key;
    part 406 rides, sealed to the vault, with every encrypted backup the card makes. Neither
    server alone holds the key; no recovery code to keep."""
    info = session.key_info()
    if info.mode == KeyMode.NONE:
        raise KeyFlowError("the card has no key: 'evb key init' generates one")
    enrol_card(session, keymgr)
    keymgr.escrow_share(session.identity().card_id, info.key_id, info.mode, session.export_key(part=True),
                        per_value=True)
    return info


def certificate_of(session: WalletSession, card_id: bytes) -> bytes | None:
    """An encrypted backup's certificate of ``card_id`` on the card in the reader (its own, or
    one handed over): what the vault's part of that card's key is asked for with."""
    for entry in session.list():
        if entry.flags & ValueFlags.CERTIFICATE:
            raw = session.read(entry.id).certificate
            cert = Certificate.from_bytes(raw)
            if cert.card_id == card_id and cert.mode == Mode.ENCRYPTED:
                return raw
    return None


def restore_key_parts(session: WalletSession, keymgr: KeyManagerClient, vault: VaultClient, source_card_id: bytes,
                      certificate: bytes | None = None) -> KeyInfo:
    """Seed E4 steps 3-1..3-11 (claim 49), onto the card in the reader (logged in at the vault):
    part 405 from the key manager after the owner's login, part 406 from the vault for a
    certificate of the source card, both sealed to this card's one-time transport key; the card
    rebuilds d and installs it only if it fits Q. No recovery code, no lost-card statement."""
    if session.key_info().mode != KeyMode.NONE:
        raise KeyFlowError("the card already has a key")
    certificate = certificate or certificate_of(session, source_card_id)
    if certificate is None:
        raise KeyFlowError("no encrypted backup's certificate of that card is on this card: give one with "
                           "--certificate")
    enrol_card(session, keymgr)
    transport = session.new_transport_key()
    try:  # the vault's part first: it names the key, whose part the key manager is asked for
        theirs = vault.key_part(certificate, transport)
        ours = keymgr.restore_share(source_card_id, session.identity().card_id, transport, per_value=True,
                                    key_id=theirs.key_id)
    except (KeyManagerClientError, VaultClientError) as exc:
        if exc.status in (400, 403, 404):
            raise KeyFlowError(exc.message) from exc
        raise
    if theirs.key_id != ours.key_id:
        raise KeyFlowError("the key manager answered a part of another key than the certificate's value is under")
    session.import_share(ours.mode, ours.key_id, ours.sealed, True, ours.public_key)
    info = session.import_share(ours.mode, ours.key_id, theirs.sealed, True, ours.public_key)
    if info.mode == KeyMode.NONE:
        raise KeyFlowError("the two parts do not rebuild the key: the key manager's share was kept before it told "
                           "the two splits apart and is a 2-of-3 share ('evb key backup --per-value' again)")
    return info
