"""Backup and restore flows (seed E1), idempotent and resumable.

The card is the source of truth. A backup ends when the card swaps the value for the
certificate, a restore when it swaps the certificate back; a re-run after any crash finds the
value or certificate marked PENDING and finishes the swap (the vault answers a retried
registration with the same certificate). The vault forgets a registration only against the
card's receipt, which the card signs only once it needs the registration no more.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

from apdu import SW, ApduError, seal, tlv
from apdu import backup as b
from apdu import wallet as w
from apdu.backup import RegisteredValue
from apdu.certificate import Certificate, CertificateError, Mode, digest_matches, value_hash
from apdu.keys import KeyMode
from apdu.records import Tag, ValueFlags, ValueRecord
from apdu.signature import verify

from .session import WalletSession
from .vault_client import RegistrationInfo, VaultClient, VaultClientError

Progress = Callable[[int], None]


class BackupError(Exception):
    """A backup or restore of one value failed; nothing changed on the card for that value."""


@dataclass(frozen=True)
class Outcome:
    value_id: int
    name: str
    action: str  # "backed up", "kept and backed up", "restored", "already done"


def connect(session: WalletSession, vault: VaultClient) -> bytes:
    """Make sure the card trusts this vault's key, then authenticate the card to it.

    Answers the vault's public key. The card takes a vault key once (the PIN is verified);
    a card that holds certificates of another vault refuses a new one. The card signs the
    vault's challenge for the key it pinned, so the key comes first."""
    key = vault.public_key()
    try:
        session.put_vault_key(key)
    except ApduError as exc:
        if exc.sw == SW.CONDITIONS_NOT_SATISFIED:
            raise BackupError("the card trusts another vault and holds its certificates") from exc
        raise
    identity = session.identity()
    challenge = vault.challenge(identity.card_id)
    vault.open_session(identity.card_id, identity.public_key, attestation_of(session), challenge,
                       session.authenticate(b.Audience.VAULT, challenge))
    return key


def attestation_of(session: WalletSession) -> b.Attestation:
    """The card's issuer attestation, which servers need to believe its identity key."""
    try:
        return session.attestation()
    except ApduError as exc:
        if exc.sw == SW.REFERENCE_DATA_NOT_FOUND:
            raise BackupError("this card was never attested by an issuer: servers refuse it "
                              "('evb card init' attests new cards with the issuer key)") from exc
        raise


def check_certificate(raw: bytes, value: bytes, vault_key: bytes, card_id: bytes,
                      ciphertext: bytes | None = None) -> Certificate:
    """The card's own checks (seed step 1-4), made first on the host for a precise message.
    X hashes the value (E1) or, for an encrypted backup, its ciphertext (E2); the digest must fit
    ``value``, the value itself or the card's digest of it (both hold the certified fields)."""
    try:
        cert = Certificate.from_bytes(raw)
    except CertificateError as exc:
        raise BackupError(f"the vault sent a malformed certificate: {exc}") from exc
    if cert.card_id != card_id:
        raise BackupError("the certificate names another card")
    if cert.mode != (Mode.PLAIN if ciphertext is None else Mode.ENCRYPTED):
        raise BackupError("the certificate is for another kind of backup")
    if not digest_matches(cert.digest, value):
        raise BackupError("the certificate's digest does not match the value")
    if cert.value_hash != value_hash(value if ciphertext is None else ciphertext):
        raise BackupError("the certificate's hash does not match the value")
    if not verify(vault_key, cert.signature, cert.message()):
        raise BackupError("the certificate's vault signature is not valid")
    return cert


def encryption(session: WalletSession, wanted: bool | None) -> bool:
    """Whether a backup is encrypted: as asked, by default when the card has a key (a plain one
    asked for asks the card nothing: a card without a key store need not know GET KEY INFO)."""
    if wanted is False:
        return False
    has_key = session.key_info().mode != KeyMode.NONE
    if wanted and not has_key:
        raise BackupError("the card has no key to encrypt with: 'evb key init' generates one (or back up plain)")
    return has_key if wanted is None else wanted


def backup(session: WalletSession, vault: VaultClient, vault_key: bytes, value_id: int, keep: bool = False,
           encrypt: bool | None = None) -> Outcome:
    """Seed E1 (or E2 when ``encrypt``, by default when the card has a key): register, check the
    certificate, and let the card swap. Idempotent: a re-run finishes a half-done backup.

    No LIST of the whole card and no READ VALUE: BEGIN BACKUP answers a plain value, BEGIN
    ENCRYPTED BACKUP the card's digest of one (and its name, which the digest holds unless the
    vault does not certify names), then COMMIT BACKUP: 2 APDUs per plain value, 3 per encrypted
    one with its GET RESPONSE (the session asks GET IDENTITY once); a kept value is read first.
    One HTTP request per value (:func:`backup_many` batches them): the vault's key and fields are asked
    once per client, and a caller that resolves ``encrypt`` once per run saves a GET KEY INFO."""
    if encrypt is None:
        encrypt = encryption(session, None)
    begun = _begin(session, vault, value_id, keep, encrypt)
    if isinstance(begun, Outcome):
        return begun
    # a VaultClientError leaves the value PENDING: a re-run finishes or the user cancels
    registration = vault.register_encrypted(bytes(begun.registered)) if begun.registered else vault.register(begun.value)
    return _finish(session, vault_key, begun, registration, keep)


BATCH = 16
"""Values registered per request by :func:`backup_many`; also the most left PENDING by a run cut
short between its BEGIN and COMMIT BACKUPs (a re-run finishes them)."""


def backup_many(session: WalletSession, vault: VaultClient, vault_key: bytes, ids: Sequence[int], keep: bool,
                encrypt: bool, progress: Progress | None = None) -> tuple[list[Outcome], list[tuple[int, str]]]:
    """:func:`backup` of many values with one vault request per :data:`BATCH`: BEGIN BACKUP for a
    batch, one registration of all, then the certificate checks and COMMIT BACKUPs. A batch the
    vault refuses (all or nothing) is registered value by value, so one value's refusal stays its
    own; when the vault cannot be reached, the batch's values fail and stay PENDING for a re-run."""
    done: list[Outcome] = []
    failed: list[tuple[int, str]] = []
    for start in range(0, len(ids), BATCH):
        begun: list[_Begun] = []
        for value_id in ids[start:start + BATCH]:
            try:
                step = _begin(session, vault, value_id, keep, encrypt)
            except BackupError as exc:
                failed.append((value_id, str(exc)))
                continue
            if isinstance(step, Outcome):
                done.append(step)
            else:
                begun.append(step)
        try:
            registrations: Sequence[RegistrationInfo | VaultClientError] = vault.register_many(
                [b.registered or b.value for b in begun]) if begun else []
        except VaultClientError as exc:  # refused (4xx, or no batches at an older vault): value by value
            registrations = [_register_one(vault, b) for b in begun] if 400 <= exc.status < 500 else [exc] * len(begun)
        for one, registration in zip(begun, registrations, strict=True):
            try:
                if isinstance(registration, VaultClientError):
                    raise BackupError(str(registration))
                done.append(_finish(session, vault_key, one, registration, keep))
            except BackupError as exc:
                failed.append((one.value_id, str(exc)))
        if progress:
            progress(min(BATCH, len(ids) - start))
    return done, failed


@dataclass(frozen=True)
class _Begun:
    """A value the card marked PENDING for a backup, and for E2 the registered value the vault
    gets instead."""

    value_id: int
    name: str
    value: bytes  # E1: the value; E2: the card's digest of it, which the certificate must fit
    registered: RegisteredValue | None


def _begin(session: WalletSession, vault: VaultClient, value_id: int, keep: bool, encrypt: bool) -> _Begun | Outcome:
    """BEGIN BACKUP or BEGIN ENCRYPTED BACKUP (a kept value is read first, for its state); an
    Outcome when the value is backed up already."""
    if keep:
        entry = _entry(session, value_id)
        if entry.flags & ValueFlags.CERTIFICATE or (
                entry.flags & ValueFlags.BACKED_UP and not entry.flags & ValueFlags.PENDING):
            return Outcome(value_id, entry.name, "already done")
        if encrypt:
            registered = RegisteredValue.from_bytes(session.begin_encrypted_backup(value_id, vault.digest_fields()))
            return _Begun(value_id, entry.name, registered.digest, registered)
        return _Begun(value_id, entry.name, session.begin_backup(value_id), None)
    try:  # PENDING from here: the value cannot be spent meanwhile
        if encrypt:
            registered = RegisteredValue.from_bytes(session.begin_encrypted_backup(value_id, vault.digest_fields()))
            name = tlv.decode_map(registered.digest).get(Tag.NAME)
            # the certificate must fit the digest the card made of the value, which is what
            # the host would check against the value itself: no READ VALUE for it
            return _Begun(value_id, name.decode() if name is not None else _entry(session, value_id).name,
                          registered.digest, registered)
        value = session.begin_backup(value_id)
    except ApduError as exc:
        if exc.sw == SW.RECORD_NOT_FOUND:
            raise BackupError(f"no value {value_id} on the card") from exc
        if exc.sw != SW.CONDITIONS_NOT_SATISFIED:
            raise
        entry = _entry(session, value_id)  # refused: a certificate already, i.e. done
        if entry.flags & ValueFlags.CERTIFICATE:
            return Outcome(value_id, entry.name, "already done")
        raise
    return _Begun(value_id, ValueRecord.from_bytes(value).name, value, None)


def _register_one(vault: VaultClient, begun: _Begun) -> RegistrationInfo | VaultClientError:
    try:
        return vault.register_encrypted(bytes(begun.registered)) if begun.registered else vault.register(begun.value)
    except VaultClientError as exc:
        return exc


def _finish(session: WalletSession, vault_key: bytes, begun: _Begun, registration: RegistrationInfo,
            keep: bool) -> Outcome:
    """Check the certificate as the card will, then COMMIT BACKUP; a bad one cancels the swap."""
    ciphertext = begun.registered.ciphertext if begun.registered else None
    try:
        check_certificate(registration.certificate, begun.value, vault_key, session.identity().card_id, ciphertext)
    except BackupError:
        session.cancel_pending(begun.value_id)  # the value stays live; the vault's entry is released later
        raise
    session.commit_backup(begun.value_id, registration.certificate, keep=keep)
    action = "kept and backed up" if keep else "backed up"
    return Outcome(begun.value_id, begun.name, f"{action}, encrypted" if begun.registered else action)


MakeRoom = Callable[[int, str], object]  # (bytes needed, what for): frees them or raises BackupError


def restore(session: WalletSession, vault: VaultClient, value_id: int, make_room: MakeRoom | None = None) -> Outcome:
    entry = _entry(session, value_id)
    if not entry.flags & ValueFlags.CERTIFICATE:
        return Outcome(value_id, entry.name, "already done")
    raw = session.begin_restore(value_id)
    cert = Certificate.from_bytes(raw)
    try:
        value = vault.restore(raw)
    except VaultClientError as exc:
        if exc.status in (403, 404, 409):  # a definite refusal: the certificate stays
            session.cancel_pending(value_id)
            raise BackupError(f"value {value_id}: {exc.message}") from exc
        raise
    if not _answers(cert, value):
        session.cancel_pending(value_id)
        raise BackupError(f"value {value_id}: the vault's value does not match the certificate")
    try:
        commit_with_room(session, value_id, entry.name, _record_bound(cert, value),
                         lambda: session.commit_restore(value_id, value), make_room)
    except ApduError as exc:
        if cert.mode != Mode.ENCRYPTED or exc.sw != SW.REFERENCE_DATA_NOT_USABLE:
            raise
        session.cancel_pending(value_id)  # the certificate stays, for the key manager to restore
        raise BackupError(f"value {value_id}: the card holds no key that opens it (a lost card's, or "
                          "one not restored yet); restore it with --via-keymgr") from exc
    release(session, vault, cert.counter, cert.value_hash)
    return Outcome(value_id, entry.name, "restored")


def _record_bound(cert: Certificate, value: bytes) -> int:
    """At most the bytes the restored record takes on the card: the value, or for an encrypted
    one its ciphertext less the smallest seal overhead (salt, IV, tag, a byte of padding); the
    registered value around it (digest, the vault's key part, the signature) never lands there."""
    if cert.mode != Mode.ENCRYPTED:
        return len(value)
    return len(RegisteredValue.from_bytes(value).ciphertext) - seal.SALT_LEN - seal.IV_LEN - seal.TAG_LEN - 1


def commit_with_room(session: WalletSession, value_id: int, name: str, needed: int, commit: Callable[[], None],
                     make_room: MakeRoom | None) -> None:
    """Commit a restore of a pending certificate; when the card is full (6A84), make room by the
    shortage policy and commit again (claims 25-27, 35-37). Every path that writes a value back to
    the card (plain, assisted, lost-card recovery, E8) goes through here, so a refusal anywhere
    cancels the pending mark: the certificate stays, nothing is left half-done, and a batch goes on."""
    try:
        commit()
    except ApduError as exc:
        if exc.sw != SW.NOT_ENOUGH_MEMORY:
            raise
        try:
            if make_room is None:
                raise BackupError(f"not enough card memory to restore '{name}' ({needed} bytes)") from exc
            make_room(needed, f"restoring '{name}'")
        except BackupError:
            session.cancel_pending(value_id)  # the certificate stays; nothing was lost
            raise
        commit()


def release(session: WalletSession, vault: VaultClient, counter: int, x: bytes) -> bool:
    """Let the vault forget a registration if the card signs that it needs it no more."""
    receipt = _receipt(session, counter, x)
    return receipt is not None and vault.release(counter, x, receipt)


def _receipt(session: WalletSession, counter: int, x: bytes) -> bytes | None:
    """The card's receipt for a registration, or None while it still needs it."""
    try:
        return session.sign_receipt(counter, x)
    except ApduError as exc:
        if exc.sw == SW.CONDITIONS_NOT_SATISFIED:
            return None  # the card still holds its certificate or a pending or kept value
        raise


def release_unneeded(session: WalletSession, vault: VaultClient, held: set[tuple[int, bytes]] | None = None) -> int:
    """Garbage-collect this card's registrations at the vault; answers how many went. The card is
    asked for a receipt only for registrations whose certificate it does not hold (it would refuse
    those anyway): after a rotation, half of them. ``held`` is the (counter, X) of every
    certificate on the card when the caller knows them (a rotation read them all), else they are
    read; the receipts go to the vault in batches."""
    if held is None:
        held = {(c.counter, c.value_hash) for c in certificates_on(session)}
    receipts = []
    for r in vault.registrations():
        if (r.counter, r.value_hash) not in held:
            receipt = _receipt(session, r.counter, r.value_hash)
            if receipt is not None:
                receipts.append((r.counter, r.value_hash, receipt))
    return sum(vault.release_many(receipts)) if receipts else 0


def certificates_on(session: WalletSession) -> list[Certificate]:
    return [Certificate.from_bytes(session.read(e.id).certificate)
            for e in session.list(w.ListFilter(certificates_only=True))]


def run_all(
    ids: Iterable[int], step: Callable[[int], Outcome], progress: Progress | None = None
) -> tuple[list[Outcome], list[tuple[int, str]]]:
    """Run a step per value; one value's refusal does not stop the others."""
    done: list[Outcome] = []
    failed: list[tuple[int, str]] = []
    for value_id in ids:
        try:
            done.append(step(value_id))
        except BackupError as exc:
            failed.append((value_id, str(exc)))
        if progress:
            progress(1)
    return done, failed


def _answers(cert: Certificate, stored: bytes) -> bool:
    """What the vault returned is what the certificate names (the card checks again)."""
    if cert.mode == Mode.PLAIN:
        return cert.matches(stored)
    try:
        registered = RegisteredValue.from_bytes(stored)
    except ValueError:
        return False
    return value_hash(registered.ciphertext) == cert.value_hash and registered.digest == cert.digest


def _entry(session: WalletSession, value_id: int) -> ValueRecord:
    """The value or certificate record with its flags: one READ VALUE, not a listing of the card."""
    try:
        return session.read(value_id)
    except ApduError as exc:
        if exc.sw == SW.RECORD_NOT_FOUND:
            raise BackupError(f"no value {value_id} on the card") from exc
        raise
