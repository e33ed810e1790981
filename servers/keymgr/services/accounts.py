"""Accounts and their factors (seed E5): sign-up, login, step-up, sessions, enrolment of the
ID card, the fingerprint and the password, and the policy that combines them.

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

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date

import numpy as np
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from apdu.context import audience
from apdu.idcard import IdDocument
from apdu.idcard import auth_message as id_auth_message
from apdu.signature import verify

from ...attestation import check_document
from ...auth import Sessions, new_challenge, token_hash
from ...serverkey import MasterKey, ServerKey
from .. import fingerprint
from ..config import KeyManagerConfig
from ..errors import Busy, KeyManagerError
from ..policy import DEFAULT, Factor, Policy, PolicyError, factors, parse, satisfied, text
from ..repository import Account, Escrow, KeyManagerRepository

MAX_FAILURES = 10  # guesses of a factor per lock period
LOCK_SECONDS = 60  # the first lock; each further one doubles ...
LONGEST_LOCK = 86400  # ... up to a day
FORGET_AFTER = 7 * 86400  # a counter untouched this long (and not locked) is forgotten
RETRY_AFTER = 1  # seconds, when the verifications are saturated


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


@dataclass(frozen=True)
class AccountStatus:
    """What an owner sees of the account: its cards with their escrowed keys, policy and factors."""

    cards: list[tuple[bytes, list[Escrow]]]
    policy: str
    factors: list[tuple[str, str]]


class Accounts:
    """Accounts, sessions and factors: the one place that verifies an owner (:meth:`_prove`)."""

    def __init__(self, repo: KeyManagerRepository, key: ServerKey, master: MasterKey,
                 config: KeyManagerConfig) -> None:
        self.repo, self.key, self.master, self.config = repo, key, master, config
        self.hasher = PasswordHasher(config.argon2_time_cost, config.argon2_memory_kib, config.argon2_parallelism)
        self._dummy = self.hasher.hash(os.urandom(16).hex())  # verified against for unknown names
        self._dummy_print = fingerprint.dummy_template()  # matched against when no finger is enrolled
        self._verifications = threading.BoundedSemaphore(config.max_verifications)
        self.sessions = Sessions[Account](
            lambda hashed, account, expires_at, now: self.repo.add_session(hashed, account.id, expires_at, now),
            self._session_account, config.session_ttl, "not logged in: the session is unknown or expired")

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
        challenge, now, expires = new_challenge(self.config.challenge_ttl)
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
        token, expires = self.sessions.open(account)
        self.repo.log(name, f"logged in with {' and '.join(sorted(f.value for f in given))}", now)
        return token, expires

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
                      id_auth_message(audience(self.key.public_key), document.number, proof.challenge)):
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
        if not verify(doc.public_key, signature, id_auth_message(audience(self.key.public_key), doc.number, challenge)):
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

    # --- sessions ----------------------------------------------------------------------------

    def _session_account(self, hashed: bytes, now: int) -> Account | None:
        account_id = self.repo.session_account(hashed, now)
        return self.repo.account_by_id(account_id) if account_id is not None else None

    def logout(self, account: Account, token: str) -> None:
        """End this session: its token opens nothing from now on."""
        self.repo.end_session(token_hash(token))
        self.repo.log(account.name, "logged out", int(time.time()))

    def status(self, account: Account) -> AccountStatus:
        return AccountStatus([(c, self.repo.escrows(c)) for c in self.repo.cards(account.id)],
                             text(self.policy_of(account)),
                             [("password", "")] + [(kind, ref) for kind, ref, _ in self.repo.factors(account.id)])
