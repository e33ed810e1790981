"""Authentication factors at the key manager (seed E5) on SQLite and PostgreSQL: password, an
ID card signing a fresh challenge, a fingerprint from the simulated sensor, each alone and in
combination under the account's policy; each refusal, and the lockout per factor."""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from datetime import date, timedelta
from pathlib import Path

import pytest

from card import SimulatedCard
from host import factors
from host.idcard import IdCardSession
from host.keymgr_client import IdCardAnswer, KeyManagerClient
from host.transport.inprocess import connect_card
from servers.keymgr.server import running
from servers.keymgr.services.accounts import MAX_FAILURES

from ..conftest import ISSUER
from .test_keymgr import refused
from .test_split_key import FAST

NAME, PASSWORD, FINGER = "hanako", "correct horse battery", "hanako/right-index"


@pytest.fixture
def keymgr(db_url: str, tmp_path: Path) -> Iterator[KeyManagerClient]:
    with running(db_url, tmp_path / "km.pem", tmp_path / "master.key", FAST) as url, KeyManagerClient(url) as client:
        client.create_account(NAME, PASSWORD)
        factors.login(client, NAME, PASSWORD)
        yield client


def id_card(holder: str = "Hanako Yamada", number: str = "DL-1", days: int = 365,
            issuer: Callable[[bytes], bytes] = ISSUER.sign) -> IdCardSession:
    return IdCardSession(connect_card(SimulatedCard.issue_idcard(holder, number, date.today() + timedelta(days),
                                                                 issuer)))


def test_password_and_id_card(keymgr: KeyManagerClient) -> None:
    mine = id_card()
    assert factors.enrol_id_card(keymgr, mine) == "DL-1"
    assert keymgr.set_policy("password  and id-card") == "password and id-card"
    refused(lambda: keymgr.login(NAME, PASSWORD), 401, "logs in with: password and id-card")
    refused(lambda: factors.login(keymgr, NAME, id_card=mine), 401, "logs in with")
    factors.login(keymgr, NAME, PASSWORD, id_card=mine)
    assert keymgr.factors() == ("password and id-card", [("password", ""), ("id-card", "DL-1")])
    other = id_card("Mallory", "DL-1")  # another person's card, same number: another key
    refused(lambda: factors.login(keymgr, NAME, PASSWORD, id_card=other), 401, "signature is not valid")
    unknown = id_card("Mallory", "DL-9")
    refused(lambda: factors.login(keymgr, NAME, PASSWORD, id_card=unknown), 401, "does not know")
    refused(lambda: factors.login(keymgr, NAME, "wrong password", id_card=mine), 401, "wrong name or password")


def test_a_replayed_challenge_signature_is_refused(keymgr: KeyManagerClient) -> None:
    mine = id_card()
    factors.enrol_id_card(keymgr, mine)
    answer = factors.id_card_answer(keymgr, NAME, mine)
    keymgr.login(NAME, PASSWORD, answer)
    refused(lambda: keymgr.login(NAME, PASSWORD, answer), 401, "used challenge")
    challenge = keymgr.auth_challenge("someone else")  # issued for another name
    refused(lambda: keymgr.login(NAME, PASSWORD, IdCardAnswer("DL-1", challenge,
                                                              mine.authenticate(keymgr.public_key(), challenge))),
            401, "challenge")


def test_an_expired_id_card_is_refused(keymgr: KeyManagerClient, monkeypatch: pytest.MonkeyPatch) -> None:
    mine = id_card(days=30)
    factors.enrol_id_card(keymgr, mine)
    refused(lambda: factors.enrol_id_card(keymgr, id_card(number="DL-2", days=-1)), 400, "expired")
    later = time.time() + 60 * 86400
    monkeypatch.setattr(time, "time", lambda: later)
    refused(lambda: factors.login(keymgr, NAME, PASSWORD, id_card=mine), 401, "expired on")


def test_fingerprint_or_password(keymgr: KeyManagerClient) -> None:
    factors.enrol_fingerprint(keymgr, FINGER)
    keymgr.set_policy("fingerprint or password")
    factors.login(keymgr, NAME, finger=FINGER)
    keymgr.login(NAME, PASSWORD)
    refused(lambda: factors.login(keymgr, NAME, finger="someone/else"), 401, "does not match")
    refused(lambda: keymgr.login(NAME, fingerprint=b"\x00"), 400, "not a fingerprint")


def test_each_factor_locks_on_its_own(keymgr: KeyManagerClient) -> None:
    factors.enrol_fingerprint(keymgr, FINGER)
    keymgr.set_policy("fingerprint or password")
    for i in range(MAX_FAILURES - 1):
        refused(lambda i=i: factors.login(keymgr, NAME, finger=f"other/{i}"), 401,  # type: ignore[misc]
                f"({MAX_FAILURES - 1 - i} tries left)")
    refused(lambda: factors.login(keymgr, NAME, finger="other/last"), 423, "unmatched fingerprints")
    refused(lambda: factors.login(keymgr, NAME, finger=FINGER), 423, "locked")  # even the right finger
    keymgr.login(NAME, PASSWORD)  # the password is another factor: not locked


def test_a_policy_needs_enrolled_factors(keymgr: KeyManagerClient) -> None:
    refused(lambda: keymgr.set_policy("password and id-card"), 409, "enrol id-card")
    refused(lambda: keymgr.set_policy("password and"), 400, "ends too early")
    refused(lambda: keymgr.set_policy("password and retina"), 400, "unknown factor")
    refused(lambda: keymgr.login(NAME), 400, "give a password")


def test_unknown_names_look_like_wrong_factors(keymgr: KeyManagerClient) -> None:
    mine = id_card()
    factors.enrol_id_card(keymgr, mine)
    refused(lambda: factors.login(keymgr, "nobody", PASSWORD, id_card=mine), 401, "wrong name or password")
    refused(lambda: factors.login(keymgr, "nobody", finger=FINGER), 401, "does not match")


def test_fingerprint_samples_vary_but_match() -> None:
    from host.sensor import finger, touch
    from servers.keymgr.fingerprint import decode, encode, matches

    rng = random.Random(7)
    true = finger(FINGER)
    a, b = touch(true, rng), touch(true, rng)
    assert len(a) != len(b) or (a != b).any()  # noisy
    assert matches(decode(encode(a)), decode(encode(b)))
    assert not matches(a, touch(finger("someone/else"), rng))


def test_refused_id_cards_lock_the_id_card_factor(keymgr: KeyManagerClient) -> None:
    factors.enrol_id_card(keymgr, id_card())
    strangers = [id_card("Mallory", f"X-{i}") for i in range(MAX_FAILURES)]
    for card in strangers[:-1]:
        refused(lambda card=card: factors.login(keymgr, NAME, PASSWORD, id_card=card), 401,  # type: ignore[misc]
                "does not know")
    refused(lambda: factors.login(keymgr, NAME, PASSWORD, id_card=strangers[-1]), 423, "refused ID cards")
    keymgr.login(NAME, PASSWORD)  # the default policy: the password alone, not locked
