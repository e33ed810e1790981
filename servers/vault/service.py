"""The vault (electronic safe 113, seed E1): registers values against certificates, returns
them for certificates, and forgets them only against the card's signed receipt.

Transport-free: :mod:`servers.vault.app` maps this onto HTTP. Every refusal is a
:class:`VaultError` with the HTTP status it deserves and a message for the user.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from apdu import backup as b
from apdu import keys as k
from apdu import rekey as rk
from apdu import seal, tlv
from apdu.certificate import Certificate, CertificateError, Mode, make_digest, value_hash
from apdu.records import MAX_RECORD, RecordError, ValueRecord
from apdu.signature import verify
from apdu.wallet import MessageError

from ..attestation import check_attestation
from ..auth import Sessions, new_challenge, token_hash
from ..serverkey import ServerKey
from ..statements import FETCH_WINDOW, Fetch, Rekey, Replacement
from ..wire import ApiError
from .config import VaultConfig
from .repository import ConflictError, NewValue, Prepare, Registration, VaultRepository


class VaultError(ApiError):
    """A refusal of this service: HTTP status and message."""


@dataclass(frozen=True)
class Submission:
    """A value sent for registration, checked but not yet tied to a card: the bytes kept, X, the
    digest to certify, and for E2 the registered value whose card signature is still to check."""

    value: bytes
    value_hash: bytes
    digest: bytes
    mode: Mode
    registered: b.RegisteredValue | None = None


@dataclass
class VaultService:
    repo: VaultRepository
    key: ServerKey
    config: VaultConfig = field(default_factory=VaultConfig)

    def __post_init__(self) -> None:
        self.sessions = Sessions[bytes](
            lambda hashed, card_id, expires_at, now: self.repo.add_session(hashed, card_id, expires_at),
            self.repo.session_card, self.config.session_ttl,
            "not authenticated: the session is unknown or expired")

    @property
    def public_key(self) -> bytes:
        return self.key.public_key

    # --- card authentication -----------------------------------------------------------------

    def challenge(self, card_id: bytes) -> tuple[bytes, int]:
        _card_id(card_id)
        challenge, _, expires = new_challenge(self.config.challenge_ttl)
        self.repo.add_challenge(card_id, challenge, expires)
        return challenge, expires

    def open_session(self, card_id: bytes, public_key: bytes, attestation: bytes, challenge: bytes,
                     signature: bytes) -> tuple[str, int]:
        """A bearer token for a card that signed our fresh challenge, for us, with its identity
        key; the first time, the key must be one a trusted issuer attested for that card id."""
        _card_id(card_id)
        now = int(time.time())
        if not self.repo.take_challenge(card_id, challenge, now):
            raise VaultError(401, "unknown or expired challenge: ask for a new one")
        state = self.repo.card_state(card_id)
        if state is not None and state.revoked:
            raise VaultError(403, "this card was reported lost and is revoked: its certificates are refused")
        known = self.repo.card_key(card_id)
        key = known or public_key
        if not verify(key, signature, b.auth_message(b.Audience.VAULT, self.public_key, card_id, challenge)):
            raise VaultError(401, "the card's signature over the challenge is not valid for this vault")
        if known is None:
            check_attestation(self.config.issuers, b.Identity(card_id, public_key), attestation, VaultError)
            try:
                self.repo.register_card(card_id, public_key, now)
            except ConflictError as exc:
                raise VaultError(409, "this card id is registered with another key") from exc
        return self.sessions.open(card_id)

    # --- registrations -----------------------------------------------------------------------

    def register(self, card_id: bytes, value: bytes) -> Registration:
        """Seed steps 1-2/1-3. Registering the same bytes again answers the same certificate,
        so a retry after a lost response creates nothing new."""
        return self.register_all(card_id, [self.plain(value)])[0]

    def register_encrypted(self, card_id: bytes, raw: bytes) -> Registration:
        """Seed E2: a registered value (digest, ciphertext, the card's signature); the vault never
        sees the value. X is SHA-256 of the ciphertext; a retry answers the same certificate."""
        return self.register_all(card_id, [self.encrypted(raw)])[0]

    def register_all(self, card_id: bytes, submitted: Sequence[Submission]) -> list[Registration]:
        return self.repo.register_values(card_id, int(time.time()), self._preparer(submitted))

    async def register_for_session(self, token: str, submitted: Sequence[Submission]) -> list[Registration]:
        """What the HTTP API does: the session's card and its registrations in one transaction
        (shared with other requests' registrations, in a savepoint of its own). A batch is all or
        nothing: one refused value registers none of them."""
        found = await self.repo.register_for_session(token_hash(token), int(time.time()),
                                                     self._preparer(submitted))
        if found is None:
            raise VaultError(401, self.sessions.refusal)
        return found

    def plain(self, value: bytes) -> Submission:
        """A value to register plainly (E1), checked as far as it can be without the card."""
        if not value or len(value) > MAX_RECORD:
            raise VaultError(400, f"a value is 1..{MAX_RECORD} bytes")
        try:
            record = ValueRecord.from_bytes(value)
        except RecordError as exc:
            raise VaultError(400, f"not a value record: {exc}") from exc
        if record.body() != value or record.certificate:
            raise VaultError(400, "not a value in the card's stored encoding")
        return Submission(value, value_hash(value), make_digest(value, self.config.digest_fields), Mode.PLAIN)

    def encrypted(self, raw: bytes) -> Submission:
        """A registered value (E2), checked but for the card's signature, which needs its key."""
        try:
            registered = b.RegisteredValue.from_bytes(raw)
        except ValueError as exc:
            raise VaultError(400, f"malformed registered value: {exc}") from exc
        if len(raw) > 4 * MAX_RECORD:
            raise VaultError(400, "a registered value is at most 4096 bytes")
        allowed = {f.value for f in self.config.digest_fields}
        try:
            tags = [t.tag for t in tlv.decode(registered.digest)]
        except ValueError as exc:
            raise VaultError(400, f"the digest is not TLV: {exc}") from exc
        if not set(tags) <= allowed:
            raise VaultError(400, "the digest holds fields this vault does not certify")
        return Submission(raw, value_hash(registered.ciphertext), registered.digest, Mode.ENCRYPTED, registered)

    def _preparer(self, submitted: Sequence[Submission]) -> Prepare:
        def prepare(card_id: bytes, key: bytes | None) -> list[NewValue]:
            return [self._new_value(card_id, key, s) for s in submitted]

        return prepare

    def _new_value(self, card_id: bytes, key: bytes | None, s: Submission) -> NewValue:
        """The card's signature over an encrypted value is checked against the key it registered;
        the certificate is signed once the counter is taken."""
        if s.registered is not None and (key is None or not verify(
                key, s.registered.signature, s.registered.signed_part(card_id, self.public_key))):
            raise VaultError(400, "the card's signature over the registered value is not valid")
        if s.registered is not None and s.registered.key_part:
            self._open_key_part(s.registered, card_id)  # claim 41: a part we can hand back later

        def certify(counter: int) -> bytes:
            cert = Certificate(card_id, counter, s.value_hash, s.digest, s.mode)
            return replace(cert, signature=self.key.sign(cert.message())).to_bytes()

        return NewValue(s.value_hash, s.value, certify)

    def restore(self, card_id: bytes, certificate: bytes) -> bytes:
        """Seed steps 2-2/2-3: find by counter, hash, full comparison; check consistency."""
        try:
            cert = Certificate.from_bytes(certificate)
        except CertificateError as exc:
            raise VaultError(400, f"malformed certificate: {exc}") from exc
        found = self.repo.lookup(cert)
        if found is not None and found.holder == card_id and not found.redeemable:
            raise VaultError(403, "this certificate has not been handed over to this card")
        if cert.card_id != card_id and (found is None or found.holder != card_id):
            raise VaultError(403, "this certificate belongs to another card")
        if found is None or found.holder != card_id:
            raise VaultError(404, "unknown certificate: no value is registered for it")
        if not _consistent(found.value, cert):
            raise VaultError(409, "inconsistent vault entry: the stored value does not match its certificate")
        return found.value

    def restore_many(self, card_id: bytes, certificates: Sequence[bytes]) -> list[bytes]:
        """:meth:`restore` of each, all or nothing (it only reads): a refusal names the certificate."""
        out = []
        for i, certificate in enumerate(certificates):
            try:
                out.append(self.restore(card_id, certificate))
            except VaultError as exc:
                raise VaultError(exc.status, f"certificate {i + 1} of {len(certificates)}: {exc.message}") from exc
        return out

    def key_part_for(self, card_id: bytes, certificate: bytes, transport_key: bytes) -> tuple[int, bytes, bytes, bytes]:
        """Seed E4 steps 3-7/3-8 (claims 41, 49): for a certificate we issued, the part 406 of the
        backing card's key that rode with its registered value, sealed to the transport key of
        ``card_id`` (the card whose session asks: the part opens there and nowhere else).
        Answers (mode, key id, sealed part, Q). Any card may ask: the part alone rebuilds
        nothing, and the key manager gives the other part only to its owner's cards."""
        try:
            cert = Certificate.from_bytes(certificate)
        except CertificateError as exc:
            raise VaultError(400, f"malformed certificate: {exc}") from exc
        if not verify(self.public_key, cert.signature, cert.message()):
            raise VaultError(403, "not a certificate this vault issued")
        if cert.mode != Mode.ENCRYPTED:
            raise VaultError(400, "a plain backup carries no key part")
        found = self.repo.lookup(cert)
        if found is None:
            raise VaultError(404, "unknown certificate: no value is registered for it")
        registered = b.RegisteredValue.from_bytes(found.value)
        if not registered.key_part:
            raise VaultError(404, "this registered value carries no key part (made before E4 parts)")
        mode, share, public = self._open_key_part(registered, cert.card_id)
        try:
            sealed = seal.seal(transport_key, share, k.share_import_context(card_id, registered.key_id))
        except seal.SealError as exc:
            raise VaultError(400, "the transport key is not a P-256 public key") from exc
        return mode, registered.key_id, sealed, public

    def _open_key_part(self, registered: b.RegisteredValue, card_id: bytes) -> tuple[int, bytes, bytes]:
        """(mode, part 406, Q) of a registered value's key part, bound to ``card_id`` and the
        key id; the length says the mode (Q follows the part only for a public key)."""
        try:
            plain = self.key.open_sealed(registered.key_part, k.part_context(card_id, registered.key_id, k.VAULT_PART))
            mode = k.KeyMode.PUBLIC if len(plain) > k.SHARE_LEN else k.KeyMode.SYMMETRIC
            share, public = k.parse_server_share(plain, mode, registered.key_id, k.VAULT_PART)
        except seal.SealError as exc:
            raise VaultError(400, f"the key part does not open for this vault, card and key: {exc}") from exc
        except MessageError as exc:
            raise VaultError(400, f"not the vault's part of the card's key: {exc}") from exc
        return int(mode), share, public

    def list(self, card_id: bytes) -> list[Registration]:
        """What the card may redeem: its own, and what was handed over to it."""
        return [r for r in self.repo.list(card_id) if r.redeemable]

    def fetch_for_keymgr(self, fetch: Fetch, signature: bytes) -> bytes:
        """Seed E6: the registered value for the key manager, which opens it with the escrowed
        key and seals the value to the card; refused for a revoked card's registration."""
        self.check_keymgr_request(fetch.message(self.public_key), fetch.issued_at, signature)
        try:
            cert = Certificate.from_bytes(fetch.certificate)
        except CertificateError as exc:
            raise VaultError(400, f"malformed certificate: {exc}") from exc
        found = self.repo.lookup(cert)
        if found is None or not found.redeemable:
            raise VaultError(404, "unknown certificate: no value is registered for it")
        holder = self.repo.card_state(found.holder)
        if holder is not None and holder.revoked:
            raise VaultError(403, "the card holding this certificate was reported lost and is revoked")
        if cert.mode != Mode.ENCRYPTED:
            raise VaultError(400, "a plain backup is restored by the card directly")
        return found.value

    def check_keymgr_request(self, signed: bytes, issued_at: int, signature: bytes) -> None:
        """A request the key manager signed for this vault, lately: service to service, no session."""
        if self.config.keymgr_key is None:
            raise VaultError(403, "this vault trusts no key manager (start it with --keymgr-key)")
        if not verify(self.config.keymgr_key, signature, signed):
            raise VaultError(403, "the key manager's signature over the request is not valid")
        if abs(int(time.time()) - issued_at) > FETCH_WINDOW:
            raise VaultError(403, "a stale request: the key manager's clock or a replay")

    # --- re-keying by the key manager (E7) -----------------------------------------------------

    def replace_registration(self, request: Rekey, signature: bytes) -> tuple[bytes, bytes]:
        """Seed E7 steps 1-10/1-11 (claim 46): on the key manager's signed request, register the
        re-sealed value as the successor of the old one and sign the succession for the card
        that holds the certificate; answers (successor certificate, succession). The old
        registration stays until that card's receipt (:meth:`release`), so the card holds a
        valid certificate at every moment; a retried request finds the successor by its hash (the
        key manager's sealing is deterministic per value and key) and answers the same one."""
        self.check_keymgr_request(request.message(self.public_key), request.issued_at, signature)
        try:
            cert = Certificate.from_bytes(request.certificate)
            registered = b.RegisteredValue.from_bytes(request.registered)
        except (CertificateError, ValueError) as exc:
            raise VaultError(400, f"malformed certificate or registered value: {exc}") from exc
        if cert.mode != Mode.ENCRYPTED:
            raise VaultError(400, "a plain backup holds no key to replace")
        if len(request.registered) > 4 * MAX_RECORD:
            raise VaultError(400, "a registered value is at most 4096 bytes")
        found = self.repo.lookup(cert)
        if found is None or not found.redeemable or found.holder != request.card_id:
            raise VaultError(404, "unknown certificate: this card holds no registration for it")
        holder, key = self.repo.card_state(found.holder), self.repo.card_key(found.holder)
        if holder is None or holder.revoked or key is None:
            raise VaultError(403, "the card holding this certificate was reported lost and is revoked")
        if registered.digest != cert.digest:
            raise VaultError(409, "the re-sealed value's digest is not the certificate's: not the same value")
        assert self.config.keymgr_key is not None  # checked with the request
        if not verify(self.config.keymgr_key, registered.signature,
                      rk.rekeyed_message(registered, found.holder, self.public_key)):
            raise VaultError(403, "the key manager's signature over the re-sealed value is not valid")
        if registered.key_part:
            self._open_key_part(registered, found.holder)  # claim 41: a part we can hand back later
        x = value_hash(registered.ciphertext)

        def certify(counter: int) -> bytes:
            new = Certificate(found.holder, counter, x, registered.digest, Mode.ENCRYPTED)
            return replace(new, signature=self.key.sign(new.message())).to_bytes()

        # found or registered in one transaction: a retry on another replica finds this one
        [successor] = self.repo.register_values(found.holder, int(time.time()),
                                                lambda card, key: [NewValue(x, request.registered, certify)])
        new = Certificate.from_bytes(successor.certificate)
        named = rk.succession_message(found.holder, key, cert.signed_part(), new.signed_part())
        return successor.certificate, self.key.sign(named)

    # --- replaced cards ----------------------------------------------------------------------

    def replace_card(self, statement: Replacement, signature: bytes) -> int:
        """Carry out the key manager's signed statement that the owner lost ``old``; answers how
        many registrations now wait to be handed over to ``new``."""
        if self.config.keymgr_key is None:
            raise VaultError(403, "this vault trusts no key manager (start it with --keymgr-key)")
        if len(statement.old) != 8 or (statement.new is not None and len(statement.new) != 8):
            raise VaultError(400, "a card id is 8 bytes (16 hex digits)")
        if not verify(self.config.keymgr_key, signature, statement.message(self.public_key)):
            raise VaultError(403, "the key manager's signature over the statement is not valid")
        if statement.new == statement.old or (statement.new is None) != (statement.new_key is None):
            raise VaultError(400, "a card cannot replace itself, and a new card comes with its key")
        old = self.repo.card_state(statement.old)
        if old is not None and old.public_key and old.public_key != statement.old_key:
            raise VaultError(409, "the key manager and this vault know different cards by that id")
        if old is not None and old.replaced_by is not None and old.replaced_by != statement.new:
            raise VaultError(409, "this card was already replaced by another card")
        now = int(time.time())
        if statement.new is not None and statement.new_key is not None:
            new = self.repo.card_state(statement.new)
            if new is not None and new.revoked:
                raise VaultError(409, "the new card is itself revoked")
            try:  # the key the new card proved to the key manager is the one it must use here
                self.repo.register_card(statement.new, statement.new_key, now)
            except ConflictError as exc:
                raise VaultError(409, "the key manager and this vault know different cards by that id") from exc
        self.repo.replace_card(statement.old, statement.new, now)
        return sum(1 for r in self.repo.list(statement.new) if not r.redeemable) if statement.new else 0

    def hand_over(self, card_id: bytes, imported: int) -> tuple[b.Handover | None, int]:
        """The next certificate for a card that replaced another, signed for it with the
        sequence number its import counter expects (the same one again after a lost answer)."""
        try:
            found, waiting = self.repo.hand_over(card_id, imported)
        except ConflictError as exc:
            raise VaultError(409, str(exc)) from exc
        if found is None:
            return None, waiting
        handover = b.Handover(imported, found.certificate)
        key = self.repo.card_key(card_id)
        assert key is not None  # a card with a session is registered
        return replace(handover, signature=self.key.sign(handover.signed_part(b.Identity(card_id, key)))), waiting

    def key_share_for(self, card_id: bytes, old_card_id: bytes, key_id: bytes,
                      transport_key: bytes) -> tuple[bytes, bytes]:
        """Seed E4 after a loss: the vault's share of the replaced card's key, sealed to the
        transport key of the card that replaced it (the owner's key manager said so), and Q
        (empty for a symmetric key), which IMPORT SHARE carries beside it."""
        old = self.repo.card_state(old_card_id)
        if old is None or old.replaced_by != card_id:
            raise VaultError(403, "that card was not replaced by this one")
        sealed = self.repo.key_share(old_card_id, key_id)
        if sealed is None:
            raise VaultError(404, "the vault holds no share of that key")
        plain = self.key.open_sealed(sealed, k.share_context(old_card_id, key_id, 2))
        share, public = plain[:k.SHARE_LEN], plain[k.SHARE_LEN:]
        try:
            return seal.seal(transport_key, share, k.share_import_context(card_id, key_id)), public
        except seal.SealError as exc:
            raise VaultError(400, "the transport key is not a P-256 public key") from exc

    def keep_key_share(self, card_id: bytes, key_id: bytes, sealed: bytes) -> None:
        """Seed E4: the vault's share of the card's split key, kept sealed to the vault's own key
        (one share: it cannot rebuild the key alone), with Q in public mode. The card sealed
        it, so the share's length says the mode: Q follows the share or nothing does."""
        if len(key_id) != 8:
            raise VaultError(400, "a key id is 8 bytes")
        try:
            plain = self.key.open_sealed(sealed, k.share_context(card_id, key_id, 2))
            mode = k.KeyMode.PUBLIC if len(plain) > k.SHARE_LEN else k.KeyMode.SYMMETRIC
            k.parse_server_share(plain, mode, key_id, 2)
        except seal.SealError as exc:
            raise VaultError(400, f"the sealed share does not open: {exc}") from exc
        except MessageError as exc:
            raise VaultError(400, f"not the vault's share of a split key: {exc}") from exc
        self.repo.put_key_share(card_id, key_id, sealed, int(time.time()))

    def release(self, card_id: bytes, counter: int, x: bytes, receipt: bytes) -> bool:
        """Forget a registration the card signed it no longer needs; answers whether one went.
        A handed-over one goes only once the card's import counter shows it took it."""
        [gone] = self.release_many(card_id, [(counter, x, receipt)])
        return gone

    def release_many(self, card_id: bytes, receipts: Sequence[tuple[int, bytes, bytes]]) -> Sequence[bool]:
        """:meth:`release` of each (counter, X, receipt), in one transaction: every receipt is
        checked before any registration goes, so a refused batch changes nothing."""
        key = self.repo.card_key(card_id)
        doomed = []
        for i, (counter, x, receipt) in enumerate(receipts):
            try:
                doomed.append((counter, x, self._receipt_check(key, card_id, counter, x, receipt)))
            except VaultError as exc:
                where = f"release {i + 1} of {len(receipts)}: " if len(receipts) > 1 else ""
                raise VaultError(exc.status, where + exc.message) from exc
        return self.repo.delete_many(card_id, doomed)

    def _receipt_check(self, key: bytes | None, card_id: bytes, counter: int, x: bytes,
                       receipt: bytes) -> Callable[[Registration], bool]:
        """The card's receipt checked against its key: which registrations of (counter, X) it lets go."""
        try:
            signed = b.Receipt.from_bytes(receipt)
        except ValueError as exc:
            raise VaultError(400, f"malformed receipt: {exc}") from exc
        if key is None or not verify(key, signed.signature,
                                        b.receipt_message(self.public_key, card_id, counter, x, signed.imported)):
            raise VaultError(403, "the card's receipt is not valid")

        def may_go(r: Registration) -> bool:
            return r.card_id == card_id or (r.handover_seq is not None and r.handover_seq < signed.imported)

        return may_go


def _consistent(stored: bytes, cert: Certificate) -> bool:
    """Seed step 2-3: the entry found is the one certified (of the value, or of its ciphertext)."""
    if cert.mode == Mode.PLAIN:
        return cert.matches(stored)
    try:
        registered = b.RegisteredValue.from_bytes(stored)
    except ValueError:
        return False
    return value_hash(registered.ciphertext) == cert.value_hash and registered.digest == cert.digest


def _card_id(card_id: bytes) -> None:
    if len(card_id) != 8:
        raise VaultError(400, "a card id is 8 bytes (16 hex digits)")
