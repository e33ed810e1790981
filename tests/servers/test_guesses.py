"""The key manager's guesses under hostile load, on both storage backends: guesses spent before
they are checked (however many arrive at once), locks a stranger cannot make permanent, no
difference in work between names with a finger and names without, bounded matching, a busy
answer with Retry-After, and bounded counters and audit for names nobody owns."""

from __future__ import annotations

import threading
import time
import tracemalloc
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path

import httpx
import numpy as np
import pytest
from argon2 import PasswordHasher

from host import factors
from servers.keymgr import fingerprint
from servers.keymgr.app import create_app
from servers.keymgr.errors import KeyManagerError
from servers.keymgr.server import build_service
from servers.keymgr.services.accounts import (
    FORGET_AFTER,
    LOCK_SECONDS,
    MAX_FAILURES,
    Accounts,
    Factors,
    SteppedUp,
)
from servers.runner import BackgroundServer
from servers.storage import Database

from .test_keymgr import FAST, NAME, PASSWORD

FINGER = "hanako/right-index"


class Verifications(PasswordHasher):
    """Counts the Argon2 verifications begun; each waits at ``gate`` (when given) so that
    concurrent guesses are all in flight together."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        super().__init__(FAST.argon2_time_cost, FAST.argon2_memory_kib, FAST.argon2_parallelism)
        self.gate, self.count, self._lock = gate, 0, threading.Lock()

    def verify(self, hash: str | bytes, password: str | bytes) -> bool:
        with self._lock:
            self.count += 1
        if self.gate is not None:
            self.gate.wait(120)
        return super().verify(hash, password)


@pytest.fixture
def world(db_url: str, tmp_path: Path) -> Iterator[Accounts]:
    service, db = build_service(db_url, tmp_path / "k.pem", tmp_path / "m.key",
                                replace(FAST, max_verifications=64))
    service.accounts.create_account(NAME, PASSWORD)
    yield service.accounts
    db.close()


def race(calls: Sequence[Callable[[], object]], counted: Verifications, verified: int) -> list[int]:
    """Run ``calls`` at once while every verification waits at ``counted``'s gate, until all
    but ``verified`` calls have answered and ``verified`` verifications began, or more began
    (the race lost); then open the gate. Answers each call's HTTP status."""
    assert counted.gate is not None
    start = threading.Barrier(len(calls))

    def run(call: Callable[[], object]) -> int:
        start.wait()
        try:
            call()
        except KeyManagerError as exc:
            return exc.status
        return 200

    with ThreadPoolExecutor(len(calls)) as pool:
        futures = [pool.submit(run, call) for call in calls]
        deadline = time.monotonic() + 120  # a guard against a hang, not a measurement
        while (counted.count <= verified and time.monotonic() < deadline
               and not (sum(f.done() for f in futures) >= len(calls) - verified and counted.count == verified)):
            time.sleep(0.01)
        began = counted.count
        counted.gate.set()
        statuses = [f.result() for f in futures]
    assert began == verified, f"{began} verifications began at once"
    return statuses


def test_thirty_concurrent_wrong_guesses_verify_exactly_ten(world: Accounts) -> None:
    world.hasher = counted = Verifications(gate=threading.Event())
    statuses = race([lambda: world.login(NAME, "wrong password")] * 30, counted, MAX_FAILURES)
    assert counted.count == MAX_FAILURES
    assert statuses.count(423) == 30 - MAX_FAILURES + 1 and statuses.count(401) == MAX_FAILURES - 1
    with pytest.raises(KeyManagerError) as exc:
        world.login(NAME, PASSWORD)
    assert exc.value.status == 423 and counted.count == MAX_FAILURES  # refused unverified


def test_the_right_guess_racing_wrong_ones_past_the_limit_was_reserved_under_it(world: Accounts) -> None:
    """9 wrong, then 19 wrong and the right one at once: one guess is left, so exactly one of
    the twenty is verified; the counter is cleared only if that one was the right one."""
    for _ in range(MAX_FAILURES - 1):
        with pytest.raises(KeyManagerError):
            world.login(NAME, "wrong password")
    world.hasher = counted = Verifications(gate=threading.Event())
    statuses = race([lambda: world.login(NAME, "wrong password")] * 19 + [lambda: world.login(NAME, PASSWORD)],
                    counted, 1)
    assert counted.count == 1
    if statuses[-1] == 200:
        assert statuses[:-1] == [423] * 19 and world.repo.failures(NAME) == 0
    else:
        assert statuses == [423] * 20  # a wrong one took the last guess, and locked


def test_step_up_proofs_spend_their_guesses_first_too(world: Accounts) -> None:
    account = world.repo.account(NAME)
    assert account is not None
    world.hasher = counted = Verifications(gate=threading.Event())
    owner = SteppedUp(account.id, account.name, account.password_hash)
    race([lambda: world.step_up(owner, Factors(password="wrong password"))] * 20, counted, MAX_FAILURES)
    assert counted.count == MAX_FAILURES


def test_a_strangers_lock_expires_and_grows_with_each_lock(world: Accounts,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Ten wrong passwords lock the name for a while, not for good; each further lock lasts
    twice as long, so a stranger still gets only a handful of guesses a day."""
    now = [1_900_000_000.0]
    monkeypatch.setattr(time, "time", lambda: now[0])
    for lock in (LOCK_SECONDS, 2 * LOCK_SECONDS):
        for _ in range(MAX_FAILURES):
            with pytest.raises(KeyManagerError):
                world.login(NAME, "wrong password")
        with pytest.raises(KeyManagerError) as exc:
            world.login(NAME, PASSWORD)
        assert exc.value.status == 423 and f"for {lock} s" in exc.value.message
        now[0] += lock - 1
        with pytest.raises(KeyManagerError) as exc:
            world.login(NAME, PASSWORD)
        assert exc.value.status == 423
        now[0] += 1
    world.login(NAME, PASSWORD)  # the owner, once the lock is over
    assert world.repo.failures(NAME) == 0


def test_the_owner_lifts_a_strangers_lock_with_another_factor(world: Accounts) -> None:
    account = world.repo.account(NAME)
    assert account is not None
    owner = SteppedUp(account.id, account.name, account.password_hash)
    world.enrol_fingerprint(owner, [factors.touch(FINGER) for _ in range(3)])
    world.set_policy(owner, "fingerprint or password")
    for _ in range(MAX_FAILURES):
        with pytest.raises(KeyManagerError):
            world.login(NAME, "wrong password")
    world.login(NAME, fingerprint=factors.touch(FINGER))
    world.login(NAME, PASSWORD)  # the password's lock went with the owner's fingerprint


def test_a_name_without_a_finger_costs_a_worst_case_match(world: Accounts,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """The work, not its timing: a refusal for a name without a finger (unknown, or known with
    none enrolled) runs one match against a template as large as any, so it takes no less time
    than one for a name with a finger: 5 ms against 1.5-3 s told them apart."""
    sizes: list[int] = []
    real = fingerprint.matches

    def counting(template: np.ndarray, sample: np.ndarray, threshold: float = fingerprint.THRESHOLD) -> bool:
        sizes.append(len(template))
        return real(template, sample, threshold)

    monkeypatch.setattr(fingerprint, "matches", counting)
    for name in ("nobody-by-this-name", NAME):
        with pytest.raises(KeyManagerError):
            world.login(name, fingerprint=factors.touch("someone/else"))
    assert sizes == [fingerprint.MAX_MINUTIAE] * 2


def worst_case() -> np.ndarray:
    rng = np.random.default_rng(7)
    return fingerprint.decode(fingerprint.encode(np.column_stack([
        rng.uniform(0, 300, fingerprint.MAX_MINUTIAE), rng.uniform(0, 400, fingerprint.MAX_MINUTIAE),
        rng.uniform(0, 6.28, fingerprint.MAX_MINUTIAE)])))


def test_a_worst_case_match_takes_bounded_memory() -> None:
    """Three identical 80-minutia samples make an 80-minutia template; matching 80 against 80
    took 1.9 GB at once. Chunked, it stays within a generous 64 MB."""
    template = worst_case()
    tracemalloc.start()
    try:
        assert fingerprint.matches(template, template)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 64 * 2**20, f"{peak / 2**20:.0f} MB"


def test_a_template_of_repeated_minutiae_is_refused(world: Accounts) -> None:
    account = world.repo.account(NAME)
    assert account is not None
    repeated = fingerprint.encode(np.array([(150.0, 200.0, 1.0)] * fingerprint.MAX_MINUTIAE))
    with pytest.raises(KeyManagerError, match="repeats minutiae"):
        world.enrol_fingerprint(SteppedUp(account.id, account.name, account.password_hash), [repeated] * 3)
    assert world.repo.factors(account.id) == []


def test_saturated_verifications_answer_503_with_retry_after(db_url: str, tmp_path: Path) -> None:
    service, db = build_service(db_url, tmp_path / "k.pem", tmp_path / "m.key", replace(FAST, max_verifications=1))
    service.accounts.create_account(NAME, PASSWORD)
    release = threading.Event()
    service.accounts.hasher = counted = Verifications(gate=release)
    server = BackgroundServer(create_app(service))
    url = server.start()
    try:
        with httpx.Client(base_url=url, timeout=60) as client, ThreadPoolExecutor(1) as pool:
            first = pool.submit(client.post, "/v1/sessions", json={"name": NAME, "password": PASSWORD})
            while counted.count == 0:  # the first login holds the only verification
                time.sleep(0.01)
            busy = client.post("/v1/sessions", json={"name": NAME, "password": "wrong password"})
            release.set()
            assert first.result().status_code == 200
    finally:
        server.stop()
    assert busy.status_code == 503 and busy.headers["Retry-After"] == "1" and "busy" in busy.json()["detail"]
    assert counted.count == 1 and service.repo.failures(NAME) == 0  # the busy answer spent no guess
    db.close()


def rows(db: Database, table: str) -> int:
    with db.transaction() as tx:
        return int(tx.execute(f"SELECT COUNT(*) FROM {table}")[0][0])


def test_guesses_at_unknown_names_leave_no_audit_and_their_counters_are_forgotten(
        world: Accounts, monkeypatch: pytest.MonkeyPatch) -> None:
    now = [1_900_000_000.0]
    monkeypatch.setattr(time, "time", lambda: now[0])
    db = world.repo.db
    audit = rows(db, "audit")
    for i in range(20):
        with pytest.raises(KeyManagerError):
            world.login(f"nobody-{i}", "wrong password")
    assert rows(db, "audit") == audit and rows(db, "factor_guesses") == 20
    now[0] += FORGET_AFTER + 1
    with pytest.raises(KeyManagerError):
        world.login(NAME, "wrong password")  # a guess purges a batch of forgotten counters
    assert rows(db, "factor_guesses") < 20 and rows(db, "audit") == audit + 1
