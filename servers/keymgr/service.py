"""The key manager (seed E3): accounts bind an owner to cards; a card's key seed is escrowed
opened from the card's sealed export and kept encrypted under a master key held outside the
database; after the owner logs in, the seed is sealed to a transport key a (new) card generated,
so only that card can open it and the terminal never sees it.

Passwords: Argon2id hashes; wrong guesses are counted per *name* and factor, known or not, so
neither the answers nor their timing tell whether an account exists. A guess is spent before it
is checked (an atomic reservation, like the card's PIN counter), so concurrent guesses cannot
outrun the count. Ten lock the factor, but not for good: a lock a stranger can set must not be a
permanent denial of service, so it lasts LOCK_SECONDS, doubling at each further lock up to
LONGEST_LOCK (a stranger keeps it up only by spending ten guesses a lock, a few a day once the
locks are long), and the owner lifts every lock of the name by proving the account's policy
with the other factors; ``evb keymgr unlock`` stays the audited manual way. Per-address
counters were left out: behind proxies and NAT an address is neither the attacker's nor
stable, and the name's back-off already bounds the guesses. Sign-up must say a name is taken,
but it hashes the password first, so asking costs an Argon2 hash under the same verification
limit as a login guess. Every refusal is a :class:`KeyManagerError` with its HTTP status and a
message for the user.

Step-up: what could take the owner's values or lock the owner out (enrolling a card, reporting
one lost, changing the password, the policy or a factor) needs the account's factors again in
the same request, verified as a login verifies them (:meth:`KeyManagerService.step_up`); a
session token alone, sniffed or stolen, does none of it.
"""

from __future__ import annotations

import base64
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import httpx
import numpy as np
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from apdu import backup as b
from apdu import keys as k
from apdu import seal
from apdu.backup import auth_message
from apdu.certificate import Certificate, CertificateError, Mode, value_hash
from apdu.context import audience
from apdu.idcard import IdDocument
from apdu.idcard import auth_message as id_auth_message
from apdu.signature import valid_public_key, verify
from apdu.wallet import MessageError

from ..attestation import check_attestation, check_document
from ..keyfile import check_private, private_dir, public_bytes, sign
from ..statements import Fetch, Replacement
from ..tls import TlsError, untrusted_reason, verify_context
from ..tokens import new_token, token_hash
from ..wire import ApiError
from . import fingerprint
from .policy import DEFAULT, Factor, Policy, PolicyError, factors, parse, satisfied, text
from .repository import Account, Escrow, KeyManagerRepository
from .signatures import signed_by_card_or_us

MAX_FAILURES = 10  # guesses of a factor per lock period
LOCK_SECONDS = 60  # the first lock; each further one doubles ...
LONGEST_LOCK = 86400  # ... up to a day
FORGET_AFTER = 7 * 86400  # a counter untouched this long (and not locked) is forgotten
RETRY_AFTER = 1  # seconds, when the verifications are saturated
MASTER_KEY_ENV = "EVB_KEYMGR_MASTER_KEY_FILE"


@dataclass(frozen=True)
class IdProof:
    """An ID card's answer at login: its document number and its signature over our challenge."""

    number: str
    challenge: bytes
    signature: bytes


@dataclass(frozen=True)
class Factors:
    """What an owner shows to prove the account is theirs: at login, and again (step-up) on each
    sensitive action. Any subset may be given; all given must be right, and together they must
    satisfy the account's policy."""

    password: str | None = None
    id_card: IdProof | None = None
    fingerprint: bytes | None = None


@dataclass(frozen=True)
class SteppedUp(Account):
    """An account whose owner proved its factors in this very request (:meth:`KeyManagerService.step_up`):
    what the sensitive actions take, so none can be reached with a session token alone."""


def _locked(factor: Factor, seconds: int) -> str:
    what = {Factor.PASSWORD: "wrong passwords", Factor.ID_CARD: "refused ID cards",
            Factor.FINGERPRINT: "unmatched fingerprints"}[factor]
    return (f"locked after {MAX_FAILURES} {what} for {max(seconds, 1)} s: log in with another enrolled factor, "
            "wait, or ask the administrator to unlock it ('evb keymgr unlock')")


def _template_aad(account_id: int) -> bytes:
    return b"EVB-FINGERPRINT-1" + account_id.to_bytes(8, "big")


class KeyManagerError(ApiError):
    """A refusal of this service: HTTP status and message."""


class Busy(KeyManagerError):
    """Too many expensive verifications at once: the client retries after ``retry_after`` s."""

    def __init__(self, status: int, message: str, retry_after: int) -> None:
        super().__init__(status, message)
        self.retry_after = retry_after


@dataclass(frozen=True)
class KeyManagerConfig:
    session_ttl: int = 900
    challenge_ttl: int = 120
    argon2_time_cost: int = 3
    argon2_memory_kib: int = 65536  # 64 MiB per guess: memory-hard
    argon2_parallelism: int = 4
    vault_url: str | None = None  # for server-assisted restore (E6)
    vault_key: bytes | None = None  # that vault's public key; asked of vault_url when not given
    issuers: tuple[bytes, ...] = ()  # card issuers: an enrolled card's identity must be attested
    id_issuers: tuple[bytes, ...] = ()  # ID-card (document) issuers
    vault_ca: Path | None = None  # the CA the vault's certificate must chain to [default: the system store]
    max_verifications: int = 4  # expensive checks (Argon2, fingerprints) at once; more answer 503


class MasterKey:
    """AES-256-GCM over escrowed seeds; the key lives in a file (0600), never in the database."""

    def __init__(self, key: bytes) -> None:
        self._aead = AESGCM(key)

    @classmethod
    def load_or_create(cls, path: Path) -> MasterKey:
        if path.exists():
            check_private(path)
            raw = path.read_bytes()
            if len(raw) != 32:
                raise ValueError(f"{path} does not hold a 32-byte master key")
            return cls(raw)
        private_dir(path.parent)
        raw = os.urandom(32)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(raw)
        return cls(raw)

    def seal(self, plaintext: bytes, aad: bytes) -> bytes:
        nonce = os.urandom(12)
        return nonce + self._aead.encrypt(nonce, plaintext, aad)

    def open(self, blob: bytes, aad: bytes) -> bytes:
        try:
            return self._aead.decrypt(blob[:12], blob[12:], aad)
        except InvalidTag as exc:
            raise KeyManagerError(500, "an escrowed key fails its integrity check") from exc


def _escrow_aad(card_id: bytes, key_id: bytes, mode: int) -> bytes:
    return b"EVB-ESCROW-1" + card_id + key_id + bytes((mode,))


@dataclass
class KeyManagerService:
    """``key`` opens what cards seal to the key manager; ``signer`` signs statements for the
    vault and nothing else (one key, one use)."""

    repo: KeyManagerRepository
    key: ec.EllipticCurvePrivateKey
    master: MasterKey
    signer: ec.EllipticCurvePrivateKey
    config: KeyManagerConfig = field(default_factory=KeyManagerConfig)

    def __post_init__(self) -> None:
        self._asked_vault_key: bytes | None = None
        self.hasher = PasswordHasher(self.config.argon2_time_cost, self.config.argon2_memory_kib,
                                     self.config.argon2_parallelism)
        self._dummy = self.hasher.hash(os.urandom(16).hex())  # verified against for unknown names
        self._dummy_print = fingerprint.dummy_template()  # matched against when no finger is enrolled
        self._verifications = threading.BoundedSemaphore(self.config.max_verifications)

    @property
    def public_key(self) -> bytes:
        return public_bytes(self.key.public_key())

    @property
    def statement_key(self) -> bytes:
        return public_bytes(self.signer.public_key())

    def _scalar(self) -> bytes:
        return self.key.private_numbers().private_value.to_bytes(32, "big")

    # --- accounts ----------------------------------------------------------------------------

    def create_account(self, name: str, password: str) -> None:
        if not 1 <= len(name) <= 64 or not name.isprintable() or name != name.strip():
            raise KeyManagerError(400, "a name is 1-64 printable characters without surrounding spaces")
        if len(password) < 8:
            raise KeyManagerError(400, "a password has at least 8 characters")
        with self._expensive():  # the hash comes first: a taken name answers no faster than a free one
            password_hash = self.hasher.hash(password)
        if not self.repo.create_account(name, password_hash, int(time.time())):
            raise KeyManagerError(409, "this name is taken: choose another")

    def auth_challenge(self, name: str) -> tuple[bytes, int]:
        """A fresh challenge for an ID card to sign at login; issued for any name, known or not."""
        challenge = secrets.token_bytes(32)
        now = int(time.time())
        expires = now + self.config.challenge_ttl
        self.repo.add_auth_challenge(challenge, name, expires, now)
        return challenge, expires

    def login(self, name: str, password: str | None = None, id_card: IdProof | None = None,
              fingerprint: bytes | None = None) -> tuple[str, int]:
        """A session once the factors given are all right and satisfy the account's policy.
        Each factor's failures are counted per name, known or not; ten lock that factor."""
        now = int(time.time())
        account, given = self._prove(name, Factors(password, id_card, fingerprint), now)
        if password is not None and self.hasher.check_needs_rehash(account.password_hash):
            self.repo.set_password_hash(account.id, self.hasher.hash(password))
        token = new_token()
        self.repo.add_session(token_hash(token), account.id, now + self.config.session_ttl, now)
        self.repo.log(name, f"logged in with {' and '.join(sorted(f.value for f in given))}", now)
        return token, now + self.config.session_ttl

    def step_up(self, account: Account, proof: Factors | None) -> SteppedUp:
        """The owner proves the account's factors again, in the request that does the sensitive
        action (step-up), on top of the session token.

        Why a proof in each request rather than a session marked as stepped-up for a while: a
        token sniffed or stolen during that window would carry the step-up with it; here the
        token alone never suffices, whenever it was taken. The proof is verified by the very
        path a login takes (:meth:`_prove`): the same policy, the same failure counts and locks,
        so a thief holding a token guesses no faster than at the login. An ID card's answer is
        over a one-use challenge from /v1/auth-challenges, so it cannot be replayed either."""
        if proof is None:
            raise KeyManagerError(403, "this action needs a fresh proof of the account's factors ('proof': "
                                       "the factors of a login), not only the session")
        proven, _ = self._prove(account.name, proof, int(time.time()))
        return SteppedUp(proven.id, proven.name, proven.password_hash)

    def _prove(self, name: str, proof: Factors, now: int) -> tuple[Account, set[Factor]]:
        """The account once the factors given are all right and satisfy its policy. Answers the
        account and the factors given. The one verification of factors: login and step-up.

        Each factor's guess is spent before it is checked, like the card's PIN counter: one
        atomic reservation per factor (:meth:`KeyManagerRepository.reserve_guess`), refused once
        ``MAX_FAILURES`` are spent, so concurrent guesses cannot all be verified before any is
        counted; a right factor gives its guess back. Counted per name, known or not, so the
        answers do not tell whether the name exists. The verifications run under the service's
        limit of concurrent expensive work (a busy server answers 503 before spending a guess)."""
        password, id_card, fingerprint = proof.password, proof.id_card, proof.fingerprint
        given = {f for f, shown in ((Factor.PASSWORD, password), (Factor.ID_CARD, id_card),
                                    (Factor.FINGERPRINT, fingerprint)) if shown is not None}
        if not given:
            raise KeyManagerError(400, "give a password, an ID card or a fingerprint")
        touched = self._sample(fingerprint) if fingerprint is not None else None  # malformed: no guess spent
        with self._expensive():
            reserved: dict[Factor, int] = {}
            for factor in sorted(given):
                number = self.repo.reserve_guess(name, factor.value, now, MAX_FAILURES, now - FORGET_AFTER)
                if number is None:
                    for spent in reserved:  # never checked: not a failure
                        self.repo.give_back_guess(name, spent.value)
                    raise KeyManagerError(423, _locked(factor, self.repo.locked_until(name, factor.value) - now))
                reserved[factor] = number
            account = self.repo.account(name)
            refusals: dict[Factor, str] = {}
            if password is not None:
                # one Argon2id verification either way: the answer and its timing do not tell
                # whether the name exists
                if not self._verify(account.password_hash if account else self._dummy, password) or account is None:
                    refusals[Factor.PASSWORD] = "wrong name or password"
            if id_card is not None:
                refusal = self._id_card_refusal(account, name, id_card, now)
                if refusal:
                    refusals[Factor.ID_CARD] = refusal
            if touched is not None:
                refusal = self._fingerprint_refusal(account, touched)
                if refusal:
                    refusals[Factor.FINGERPRINT] = refusal
        for factor in reserved.keys() - refusals.keys():
            self.repo.give_back_guess(name, factor.value)
        if refusals:
            left, locked = MAX_FAILURES, None
            for factor in refusals:
                if account is not None:  # no audit trail for names nobody owns: it would grow unbounded
                    self.repo.log(name, f"wrong {factor.value} ({reserved[factor]})", now)
                if reserved[factor] >= MAX_FAILURES:
                    until = self.repo.lock(name, factor.value, now, LOCK_SECONDS, LONGEST_LOCK)
                    locked = locked or _locked(factor, until - now)
                left = min(left, MAX_FAILURES - reserved[factor])
            if locked:
                raise KeyManagerError(423, locked)
            raise KeyManagerError(401, f"{'; '.join(refusals.values())} ({left} tries left)")
        assert account is not None  # every factor given was right, so the name is known
        policy = self.policy_of(account)
        if not satisfied(policy, given):
            raise KeyManagerError(401, f"this account logs in with: {text(policy)}")
        # the owner proved the whole policy: every factor's count and lock goes, so a stranger's
        # lock on one factor is lifted by the owner's others
        self.repo.clear_failures(name, now)
        return account, given

    @contextmanager
    def _expensive(self) -> Iterator[None]:
        """One of at most ``max_verifications`` expensive checks (Argon2, fingerprints) at once in
        this process; beyond that a 503 with Retry-After at once, rather than a queue of memory-
        hard work that starves the server."""
        if not self._verifications.acquire(blocking=False):
            raise Busy(503, "the key manager is busy verifying: try again in a moment", RETRY_AFTER)
        try:
            yield
        finally:
            self._verifications.release()

    def _id_card_refusal(self, account: Account | None, name: str, proof: IdProof, now: int) -> str | None:
        if not self.repo.take_auth_challenge(proof.challenge, name, now):
            return "the ID card answered an unknown, expired or used challenge"
        enrolled = self.repo.factors(account.id, Factor.ID_CARD.value) if account else []
        document = next((IdDocument.from_bytes(d) for _, ref, d in enrolled if ref == proof.number), None)
        if document is None:
            return "an ID card this account does not know"
        if document.expired(date.fromtimestamp(now)):
            return f"the ID card expired on {document.expiry}"
        if not verify(document.public_key, proof.signature,
                      id_auth_message(audience(self.public_key), document.number, proof.challenge)):
            return "the ID card's signature is not valid for this key manager"
        return None

    @staticmethod
    def _sample(sample: bytes) -> np.ndarray:
        try:
            return fingerprint.decode(sample)
        except fingerprint.PrintError as exc:
            raise KeyManagerError(400, f"not a fingerprint sample: {exc}") from exc

    def _fingerprint_refusal(self, account: Account | None, touched: np.ndarray) -> str | None:
        enrolled = self.repo.factors(account.id, Factor.FINGERPRINT.value) if account else []
        templates = [fingerprint.decode(self.master.open(sealed, _template_aad(account.id)))  # type: ignore[union-attr]
                     for _, _, sealed in enrolled]
        # no finger enrolled (or no such name): one match against a worst-case dummy, so the
        # time taken does not tell a name with a finger from one without
        if any([fingerprint.matches(t, touched) for t in templates or [self._dummy_print]]) and templates:
            return None
        return "the fingerprint does not match"

    def policy_of(self, account: Account) -> Policy:
        return parse(self.repo.policy(account.id) or DEFAULT)

    # --- enrolment of factors (E5) -------------------------------------------------------------

    def enrol_id_card(self, account: SteppedUp, document: bytes, challenge: bytes, signature: bytes) -> IdDocument:
        """The ID card proves it holds the document's key by signing our fresh challenge."""
        try:
            doc = IdDocument.from_bytes(document)
        except ValueError as exc:
            raise KeyManagerError(400, f"not an ID document: {exc}") from exc
        check_document(self.config.id_issuers, doc, KeyManagerError)
        if not self.repo.take_challenge(challenge, int(time.time())):
            raise KeyManagerError(401, "unknown or expired challenge: ask for a new one")
        if not verify(doc.public_key, signature, id_auth_message(audience(self.public_key), doc.number, challenge)):
            raise KeyManagerError(401, "the ID card's signature over the challenge is not valid for this key manager")
        if doc.expired(date.today()):
            raise KeyManagerError(400, f"the ID card expired on {doc.expiry}")
        self.repo.put_factor(account.id, Factor.ID_CARD.value, doc.number, doc.to_bytes(), account.name,
                             int(time.time()))
        return doc

    def set_password(self, account: SteppedUp, password: str, token: str) -> None:
        """A new password ends every other session of the account: whoever else held a token
        (a thief's copy) is out; the session that changed it (``token``'s) goes on."""
        if len(password) < 8:
            raise KeyManagerError(400, "a password has at least 8 characters")
        ended = self.repo.change_password(account.id, self.hasher.hash(password), token_hash(token))
        self.repo.log(account.name, f"password changed; {ended} other session(s) ended", int(time.time()))

    def enrol_fingerprint(self, account: SteppedUp, samples: list[bytes]) -> None:
        """Three touches that agree: the first is kept as the template, encrypted at rest."""
        try:
            prints = [fingerprint.decode(s) for s in samples]
        except fingerprint.PrintError as exc:
            raise KeyManagerError(400, f"not a fingerprint sample: {exc}") from exc
        if len(prints) < 3:
            raise KeyManagerError(400, "enrolment takes three touches of the finger")
        try:
            fingerprint.check_template(prints[0])
        except fingerprint.PrintError as exc:
            raise KeyManagerError(400, f"not a template: {exc}") from exc
        with self._expensive():
            agree = all(fingerprint.matches(prints[0], p) for p in prints[1:])
        if not agree:
            raise KeyManagerError(400, "the touches do not agree: enrol the finger again")
        sealed = self.master.seal(samples[0], _template_aad(account.id))
        self.repo.put_factor(account.id, Factor.FINGERPRINT.value, "finger", sealed, account.name, int(time.time()))

    def set_policy(self, account: SteppedUp, policy_text: str) -> str:
        try:
            policy = parse(policy_text)
        except PolicyError as exc:
            raise KeyManagerError(400, str(exc)) from exc
        enrolled = {Factor.PASSWORD} | {Factor(kind) for kind, _, _ in self.repo.factors(account.id)}
        missing = factors(policy) - enrolled
        if missing:
            raise KeyManagerError(409, f"enrol {', '.join(sorted(f.value for f in missing))} before the policy "
                                       "needs it")
        canonical = text(policy)
        self.repo.set_policy(account.id, canonical, account.name, int(time.time()))
        return canonical

    def _verify(self, password_hash: str, password: str) -> bool:
        try:
            return self.hasher.verify(password_hash, password)
        except (VerificationError, InvalidHashError):
            return False

    def unlock(self, name: str) -> None:
        """The audited administrator path out of a lock."""
        self.repo.clear_failures(name, int(time.time()), event="unlocked by the administrator")

    def account_for(self, token: str) -> Account:
        account_id = self.repo.session_account(token_hash(token), int(time.time()))
        account = self.repo.account_by_id(account_id) if account_id is not None else None
        if account is None:
            raise KeyManagerError(401, "not logged in: the session is unknown or expired")
        return account

    def logout(self, account: Account, token: str) -> None:
        """End this session: its token opens nothing from now on."""
        self.repo.end_session(token_hash(token))
        self.repo.log(account.name, "logged out", int(time.time()))

    # --- keys --------------------------------------------------------------------------------

    def escrow(self, account: Account, card_id: bytes, key_id: bytes, mode: int, sealed: bytes) -> None:
        """Seed E3 steps 1-4..1-6: keep the card's exported key material (d || Q, or K) for this
        owner, once its d is Q's private key and Q is the key id's."""
        material = self._open_from_card(card_id, key_id, mode, sealed, k.export_context(card_id, key_id))
        try:
            fits = k.check_material(material, k.KeyMode(mode)).key_id == key_id
        except MessageError:
            fits = False
        if not fits:
            raise KeyManagerError(400, "the sealed key is not the key it claims to be")
        self._keep(account, Escrow(card_id, key_id, mode, material, int(time.time())), self.repo.put_escrow, b"")

    def escrow_share(self, account: Account, card_id: bytes, key_id: bytes, mode: int, sealed: bytes) -> None:
        """Seed E4 steps 1-6/1-7: keep share 1 of the card's split key for this owner (with Q in
        public mode: the public half a new card checks the rebuilt d against)."""
        plain = self._open_from_card(card_id, key_id, mode, sealed, k.share_context(card_id, key_id, 1))
        try:
            k.parse_server_share(plain, k.KeyMode(mode), key_id, 1)
        except MessageError as exc:
            raise KeyManagerError(400, f"not the key manager's share of a split key: {exc}") from exc
        self._keep(account, Escrow(card_id, key_id, mode, plain, int(time.time())), self.repo.put_share, b"share")

    def restore(self, account: Account, card_id: bytes, target_card_id: bytes,
                transport_key: bytes) -> tuple[int, bytes, bytes]:
        """Seed E3 steps 2-1..2-3, sealed for the target card: answers (mode, key id, blob)."""
        e = self._latest(account, card_id, self.repo.escrows, "key")
        mode, key_id, blob, _ = self._seal_for(account, e, target_card_id, transport_key, b"",
                                               k.import_context(target_card_id, k.KeyMode(e.mode)))
        return mode, key_id, blob

    def generate(self, account: Account, card_id: bytes, mode: int, transport_key: bytes) -> tuple[int, bytes, bytes]:
        """Claim 6: the key manager makes the card's key, escrows it, and delivers it sealed to a
        transport key the card generated (for cards that cannot make good keys themselves)."""
        if mode not in (k.KeyMode.PUBLIC, k.KeyMode.SYMMETRIC):
            raise KeyManagerError(400, "the mode is public or symmetric")
        self._enrolled(account, card_id)
        material = k.generate_material(k.KeyMode(mode))
        key_id = k.key_info_of(material, k.KeyMode(mode)).key_id
        try:  # sealed for the card before anything is kept: a refused request stores no escrow
            blob = seal.seal(transport_key, material, k.import_context(card_id, k.KeyMode(mode)))
        except seal.SealError as exc:
            raise KeyManagerError(400, "the transport key is not a P-256 public key") from exc
        self._keep(account, Escrow(card_id, key_id, mode, material, int(time.time())), self.repo.put_escrow, b"")
        self.repo.log(account.name, f"key {key_id.hex()} of card {card_id.hex()} sealed for card {card_id.hex()}",
                      int(time.time()))
        return mode, key_id, blob

    def restore_share(self, account: Account, card_id: bytes, target_card_id: bytes,
                      transport_key: bytes) -> tuple[int, bytes, bytes, bytes]:
        """The key manager's share, sealed for the target card: one of the k it needs. Answers
        (mode, key id, blob, Q): Q (empty in symmetric mode) goes beside, for IMPORT SHARE."""
        e = self._latest(account, card_id, self.repo.shares, "share of the key")
        return self._seal_for(account, e, target_card_id, transport_key, b"share",
                              k.share_import_context(target_card_id, e.key_id))

    # the steps both kinds of escrow share

    def _open_from_card(self, card_id: bytes, key_id: bytes, mode: int, sealed: bytes, context: bytes) -> bytes:
        if len(card_id) != 8 or len(key_id) != 8 or mode not in (k.KeyMode.PUBLIC, k.KeyMode.SYMMETRIC):
            raise KeyManagerError(400, "a card id and a key id are 8 bytes, the mode public or symmetric")
        try:
            return seal.open_sealed(self._scalar(), sealed, context)
        except seal.SealError as exc:
            raise KeyManagerError(400, f"the sealed key does not open: {exc}") from exc

    def _keep(self, account: Account, e: Escrow, put: Callable[[Escrow, str], None], kind: bytes) -> None:
        self._enrolled(account, e.card_id)
        blob = self.master.seal(e.sealed_seed, _escrow_aad(e.card_id, e.key_id, e.mode) + kind)
        put(Escrow(e.card_id, e.key_id, e.mode, blob, e.created_at), account.name)

    def _latest(self, account: Account, card_id: bytes, kept: Callable[[bytes], list[Escrow]], what: str) -> Escrow:
        found = kept(card_id) if card_id in self.repo.cards(account.id) else []
        if not found:
            raise KeyManagerError(404, f"no {what} of that card is escrowed in this account")
        return found[-1]

    def _seal_for(self, account: Account, e: Escrow, target_card_id: bytes, transport_key: bytes, kind: bytes,
                  context: bytes) -> tuple[int, bytes, bytes, bytes]:
        """Seal the escrowed key material, or a share (and answer the Q kept beside it)."""
        if len(target_card_id) != 8:
            raise KeyManagerError(400, "a card id is 8 bytes")
        self._enrolled(account, target_card_id)
        secret = self.master.open(e.sealed_seed, _escrow_aad(e.card_id, e.key_id, e.mode) + kind)
        public = b""
        if kind:
            secret, public = secret[:k.SHARE_LEN], secret[k.SHARE_LEN:]
        try:
            blob = seal.seal(transport_key, secret, context)
        except seal.SealError as exc:
            raise KeyManagerError(400, "the transport key is not a P-256 public key") from exc
        self.repo.log(account.name, f"{'share' if kind else 'key'} {e.key_id.hex()} of card {e.card_id.hex()} "
                                    f"sealed for card {target_card_id.hex()}", int(time.time()))
        return e.mode, e.key_id, blob, public

    # --- server-assisted restore (E6) -----------------------------------------------------------

    def assisted_restore(self, account: Account, card_id: bytes, certificate: bytes, transport_key: bytes,
                         fetch: Callable[[Fetch, bytes], bytes] | None = None) -> bytes:
        """Seed E6 steps: fetch the registered value from the vault by certificate, check the
        backing card's signature and the certificate's X, open it with the escrowed key, and
        seal the value to ``card_id``'s transport key under ECDH with our own key, so neither
        the terminal nor the vault sees it and only we could have sent it."""
        self._enrolled(account, card_id)
        cert, registered, _ = self.fetch_registered(account, certificate, fetch)
        escrow = next((e for e in self.repo.escrows(cert.card_id) if e.key_id == registered.key_id), None)
        if escrow is None:
            raise KeyManagerError(404, "the key that encrypted this value is not escrowed here")
        material = self.master.open(escrow.sealed_seed, _escrow_aad(escrow.card_id, escrow.key_id, escrow.mode))
        try:
            value = k.open_value(material, k.KeyMode(escrow.mode), registered.ciphertext, cert.card_id)
            secret = seal.ecdh(self._scalar(), transport_key)
        except (seal.SealError, ValueError) as exc:
            raise KeyManagerError(400, f"cannot open the value or reach the card's key: {exc}") from exc
        self.repo.log(account.name, f"value {cert.counter} of card {cert.card_id.hex()} restored via the key "
                                    f"manager for card {card_id.hex()}", int(time.time()))
        return seal.seal_symmetric(secret, value, k.assisted_context(card_id, certificate))

    def fetch_registered(self, account: Account, certificate: bytes,
                         fetch: Callable[[Fetch, bytes], bytes] | None = None) -> tuple[Certificate, b.RegisteredValue,
                                                                                        bytes]:
        """The registered value an encrypted backup's certificate names, fetched from the vault
        with our signed request and checked: signed by the backing card (or by us, for a value
        we re-sealed), X and digest the certificate's. The backing card must be this owner's."""
        try:
            cert = Certificate.from_bytes(certificate)
        except CertificateError as exc:
            raise KeyManagerError(400, f"malformed certificate: {exc}") from exc
        if cert.mode != Mode.ENCRYPTED:
            raise KeyManagerError(400, "a plain backup is under no key: the vault restores it directly")
        source_key = self._enrolled(account, cert.card_id)
        vault_key = self._vault_key()
        request = Fetch(certificate, int(time.time()))
        raw = (fetch or self._fetch)(request, sign(self.signer, request.message(vault_key)))
        try:
            registered = b.RegisteredValue.from_bytes(raw)
        except ValueError as exc:
            raise KeyManagerError(409, "the vault answered no registered value") from exc
        if not signed_by_card_or_us(self.statement_key, registered, cert.card_id, source_key, vault_key):
            raise KeyManagerError(409, "the registered value's card signature is not valid: refused")
        if value_hash(registered.ciphertext) != cert.value_hash or registered.digest != cert.digest:
            raise KeyManagerError(409, "the registered value does not match the certificate: refused")
        return cert, registered, raw

    def _vault_key(self) -> bytes:
        """The public key of our vault: the audience of what we sign for it and of what cards
        signed for it. Given, or asked of the vault once (over TLS) and kept."""
        if self.config.vault_key is not None:
            return self.config.vault_key
        if self._asked_vault_key is None:
            if not self.config.vault_url:
                raise KeyManagerError(503, "this key manager knows no vault (start it with --vault URL)")
            try:
                response = httpx.get(f"{self.config.vault_url.rstrip('/')}/v1/vault", timeout=10.0,
                                     verify=verify_context(self.config.vault_ca))
                response.raise_for_status()
                key = base64.b64decode(response.json()["public_key"])
            except (httpx.HTTPError, TlsError, ValueError, KeyError) as exc:
                raise KeyManagerError(503, f"cannot reach the vault for its key: {untrusted_reason(exc) or exc}") from exc
            if not valid_public_key(key):
                raise KeyManagerError(503, "the vault's key is not a P-256 public key")
            self._asked_vault_key = key
        return self._asked_vault_key

    def _fetch(self, request: Fetch, signature: bytes) -> bytes:
        body = {"certificate": base64.b64encode(request.certificate).decode(), "issued_at": request.issued_at,
                "signature": base64.b64encode(signature).decode()}
        return base64.b64decode(self.post_to_vault("/v1/keymgr/registered-values", body)["registered_value"])

    def post_to_vault(self, path: str, body: dict[str, object]) -> dict[str, str]:
        """A signed service-to-service request to our vault; its refusal becomes ours (a 5xx a 502)."""
        if not self.config.vault_url:
            raise KeyManagerError(503, "this key manager knows no vault (start it with --vault URL)")
        try:
            response = httpx.post(f"{self.config.vault_url.rstrip('/')}{path}", json=body,
                                  timeout=10.0, verify=verify_context(self.config.vault_ca))
        except (httpx.HTTPError, TlsError) as exc:
            raise KeyManagerError(503, f"cannot reach the vault: {untrusted_reason(exc) or exc}") from exc
        if response.status_code >= 400:
            detail = response.json().get("detail", response.text) if response.headers.get(
                "content-type", "").startswith("application/json") else response.text
            status = response.status_code if response.status_code < 500 else 502
            raise KeyManagerError(status, f"the vault refused: {detail}")
        answer: dict[str, str] = response.json()
        return answer

    # --- key rotation (E7) ----------------------------------------------------------------------

    def rotation(self, account: Account, card_id: bytes) -> tuple[bytes, bytes] | None:
        self._enrolled(account, card_id)
        return self.repo.rotation(card_id)

    def begin_rotation(self, account: Account, card_id: bytes, old_key_id: bytes, new_key_id: bytes) -> None:
        """The job's record: the new key must be escrowed before any value moves to it."""
        self._enrolled(account, card_id)
        if not any(e.key_id == new_key_id for e in self.repo.escrows(card_id)):
            raise KeyManagerError(409, "escrow the new key before the rotation begins")
        if not self.repo.begin_rotation(card_id, old_key_id, new_key_id, int(time.time())):
            raise KeyManagerError(409, "another rotation of this card is under way")

    def finish_rotation(self, account: Account, card_id: bytes, key_id: bytes) -> int:
        """The card committed ``key_id``: destroy the old keys. Answers how many went."""
        self._enrolled(account, card_id)
        under_way = self.repo.rotation(card_id)
        if under_way is not None and under_way[1] != key_id:
            raise KeyManagerError(409, "the rotation under way moves to another key")
        if not any(e.key_id == key_id for e in self.repo.escrows(card_id)):
            raise KeyManagerError(409, "that key is not escrowed: nothing would be left to restore")
        retired = under_way[0] if under_way is not None else None
        return self.repo.finish_rotation(card_id, key_id, retired, self.repo.cards(account.id), account.name,
                                         int(time.time()))

    # --- lost cards --------------------------------------------------------------------------

    def report_lost(self, account: SteppedUp, old: bytes, new: bytes | None,
                    vault_key: bytes) -> tuple[Replacement, bytes]:
        """The owner says ``old`` is lost (and ``new`` replaces it): a statement the vault whose
        key is ``vault_key`` acts on (and no other), signed for whoever carries it there. Both cards must have proved their
        identity keys here, and the statement names them, so the vault acts on those cards only."""
        if len(old) != 8 or (new is not None and len(new) != 8):
            raise KeyManagerError(400, "a card id is 8 bytes")
        if old == new:
            raise KeyManagerError(400, "a card cannot replace itself")
        old_key = self._enrolled(account, old)
        new_key = self._enrolled(account, new) if new is not None else None
        if not valid_public_key(vault_key):
            raise KeyManagerError(400, "the vault key is an uncompressed P-256 public key")
        statement = Replacement(old, old_key, new, new_key, int(time.time()))
        signature = sign(self.signer, statement.message(vault_key))
        event = f"card {old.hex()} reported lost" + (f", replaced by card {new.hex()}" if new else "")
        self.repo.log(account.name, event, statement.issued_at)
        return statement, signature

    # --- cards -------------------------------------------------------------------------------

    def card_challenge(self) -> tuple[bytes, int]:
        challenge = secrets.token_bytes(32)
        now = int(time.time())
        expires = now + self.config.challenge_ttl
        self.repo.add_challenge(challenge, expires, now)
        return challenge, expires

    def enrol_card(self, account: SteppedUp, card_id: bytes, public_key: bytes, attestation: bytes,
                   challenge: bytes, signature: bytes) -> None:
        """Bind a card to the account on its identity key's signature over our fresh challenge,
        made for us: nobody can enrol, and later report lost, a card they do not hold, nor a
        key no issuer attested for that card id."""
        if len(card_id) != 8:
            raise KeyManagerError(400, "a card id is 8 bytes")
        check_attestation(self.config.issuers, b.Identity(card_id, public_key), attestation, KeyManagerError)
        if not self.repo.take_challenge(challenge, int(time.time())):
            raise KeyManagerError(401, "unknown or expired challenge: ask for a new one")
        if not verify(public_key, signature, auth_message(b.Audience.KEY_MANAGER, self.public_key, card_id, challenge)):
            raise KeyManagerError(401, "the card's signature over the challenge is not valid for this key manager")
        if not self.repo.enrol_card(card_id, public_key, account.id):
            raise KeyManagerError(403, "this card is enrolled in another account, or with another key")
        self.repo.log(account.name, f"card {card_id.hex()} enrolled", int(time.time()))

    def _enrolled(self, account: Account, card_id: bytes) -> bytes:
        key = self.repo.card_key(card_id, account.id)
        if key is None:
            raise KeyManagerError(403, "that card is not enrolled in this account: enrol it with the card in "
                                       "the reader ('evb account enrol-card')")
        return key

    def status(self, account: Account) -> list[tuple[bytes, list[Escrow]]]:
        return [(c, self.repo.escrows(c)) for c in self.repo.cards(account.id)]

