"""The storage layer and the vault's repository, the same tests on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from dataclasses import replace

import pytest

from apdu.certificate import Certificate
from servers.storage import Database, Migration, StorageError
from servers.vault.repository import MIGRATIONS, ConflictError, NewValue, Registration, VaultRepository

CARD, OTHER = bytes(range(8)), bytes(range(1, 9))


def repo(url: str, modulus: int = 2**32) -> VaultRepository:
    return VaultRepository(Database.open(url, MIGRATIONS), modulus)


def cert_for(counter: int, x: bytes = bytes(32), digest: bytes = b"") -> bytes:
    return Certificate(CARD, counter, x, digest, signature=b"\x30\x00").to_bytes()


def test_migrations_apply_once(db_url: str) -> None:
    extra = [*MIGRATIONS, Migration(len(MIGRATIONS) + 1, "notes", "CREATE TABLE notes (id INTEGER PRIMARY KEY, body BLOB)")]
    Database.open(db_url, MIGRATIONS).close()
    db = Database.open(db_url, extra)  # opening again applies only the new one
    db.close()
    db = Database.open(db_url, extra)
    with db.transaction() as tx:
        assert [r[0] for r in tx.execute("SELECT version FROM schema_migrations ORDER BY version")] == list(range(1, len(extra) + 1))
        tx.execute("INSERT INTO notes (id, body) VALUES (?, ?)", (1, b"\x00\xff"))
        assert tx.execute("SELECT body FROM notes")[0][0] == b"\x00\xff"  # bytes on both backends
    db.close()


def test_rollback_on_exception(db_url: str) -> None:
    r = repo(db_url)
    with pytest.raises(RuntimeError), r.db.transaction() as tx:
        tx.execute("INSERT INTO cards (card_id, public_key, created_at) VALUES (?, ?, ?)", (CARD, b"k", 0))
        raise RuntimeError
    assert r.card_key(CARD) is None


def test_registration_counter_wraps_and_lookup_uses_the_hash(db_url: str) -> None:
    r = repo(db_url, modulus=4)
    regs = [r.register(CARD, bytes([i]) * 32, b"value%d" % i, 100, lambda c, x=bytes([i]) * 32: cert_for(c, x))
            for i in range(6)]
    assert [g.counter for g in regs] == [0, 1, 2, 3, 0, 1]
    for g in regs:  # counters collide after the wrap: the hash and the certificate decide
        assert r.lookup(Certificate.from_bytes(g.certificate)) == g
    first = Certificate.from_bytes(regs[0].certificate)
    assert r.lookup(replace(first, digest=bytes.fromhex("8301"))) is None  # another content
    assert r.lookup(replace(first, counter=2)) is None
    # what the vault signed decides, not the signature's bytes (ECDSA has other valid encodings)
    assert r.lookup(replace(first, signature=b"\x30\x01")) == regs[0]
    assert r.find_by_hash(CARD, regs[5].value_hash) == regs[5]
    assert r.count() == 6 and [g.counter for g in r.list(CARD)] == [0, 1, 2, 3, 0, 1]


def test_delete_is_scoped_to_the_card(db_url: str) -> None:
    r = repo(db_url)
    g = r.register(CARD, bytes(32), b"v", 1, cert_for)
    assert not r.delete(OTHER, g.counter, g.value_hash, lambda _: True)
    assert not r.delete(CARD, g.counter, g.value_hash, lambda _: False)
    assert r.delete(CARD, g.counter, g.value_hash, lambda _: True)
    assert not r.delete(CARD, g.counter, g.value_hash, lambda _: True)
    assert r.list(CARD) == []


def test_cards_challenges_sessions(db_url: str) -> None:
    r = repo(db_url)
    r.register_card(CARD, b"key1", 0)
    r.register_card(CARD, b"key1", 0)
    with pytest.raises(ConflictError):
        r.register_card(CARD, b"key2", 0)
    assert r.card_key(CARD) == b"key1"
    r.add_challenge(CARD, b"c1", expires_at=100)
    assert not r.take_challenge(OTHER, b"c1", now=50)
    assert r.take_challenge(CARD, b"c1", now=50)
    assert not r.take_challenge(CARD, b"c1", now=50)  # single use
    r.add_challenge(CARD, b"c2", expires_at=100)
    assert not r.take_challenge(CARD, b"c2", now=101)  # expired
    r.add_session(b"t" * 32, CARD, expires_at=100)
    assert r.session_card(b"t" * 32, now=99) == CARD
    assert r.session_card(b"t" * 32, now=101) is None


def test_concurrent_registrations_get_distinct_counters(db_url: str) -> None:
    r = repo(db_url)
    got: list[int] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        for i in range(10):
            g = r.register(CARD, bytes([n, i]) * 16, b"v", 1, cert_for)
            with lock:
                got.append(g.counter)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(80))



@pytest.mark.parametrize("entry", ["session", "card"])
def test_two_replicas_racing_one_registration_store_it_once(db_url: str, entry: str) -> None:
    """A retry that reaches the other replica while the first attempt still runs (a client's
    timeout, haproxy's redispatch), through a session or the key manager's re-keying (by card):
    both find-or-insert the same value. The barrier holds the first at its certificate, after
    its find, until the other could have found nothing too: without the card's lock both insert."""
    replicas = [repo(db_url), repo(db_url)]  # two pools, as two processes have
    replicas[0].register_card(CARD, b"key", 0)
    replicas[0].add_session(b"t" * 32, CARD, expires_at=100)
    both_certifying = threading.Barrier(2, timeout=3)
    got: list[Registration] = []

    def certify(counter: int) -> bytes:
        try:
            both_certifying.wait()
        except threading.BrokenBarrierError:
            pass  # the other replica waits for this transaction: it will find this registration
        return cert_for(counter)

    def attempt(r: VaultRepository) -> None:
        def prepare(card_id: bytes, key: bytes | None) -> list[NewValue]:
            return [NewValue(bytes(32), b"value", certify)]

        found = asyncio.run(r.register_for_session(b"t" * 32, 1, prepare)) if entry == "session" else \
            r.register_values(CARD, 1, prepare)
        assert found is not None
        got.extend(found)

    threads = [threading.Thread(target=attempt, args=(r,)) for r in replicas]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 2 and got[0] == got[1], "the two attempts answered different certificates"
    assert replicas[1].count() == 1
    for r in replicas:
        r.db.close()


@pytest.mark.parametrize("writes", ["lost card", "key share"])
def test_a_write_racing_the_same_row_on_another_replica_does_not_fail(writes: str) -> None:
    """The same statement of a lost card, or the same key share, carried out by two replicas at
    once (a retry that went elsewhere): the second's insert waits for the first's uncommitted row,
    and once that commits must take it as there, not fail on the key (a 500). PostgreSQL only:
    SQLite queues whole writers."""
    import psycopg

    from .conftest import fresh_postgres

    url = fresh_postgres()
    r = repo(url)
    first = {"lost card": ("INSERT INTO cards (card_id, public_key, created_at) VALUES (%s, '', 0)", (CARD,)),
             "key share": ("INSERT INTO key_shares (card_id, key_id, sealed_share, created_at) "
                           "VALUES (%s, %s, 'a', 0)", (CARD, OTHER))}[writes]
    failed: list[BaseException] = []

    def second() -> None:
        try:
            if writes == "lost card":
                r.replace_card(CARD, OTHER, 1)
            else:
                r.put_key_share(CARD, OTHER, b"b", 1)
        except BaseException as exc:  # noqa: BLE001 - reported by the test
            failed.append(exc)

    with psycopg.connect(url) as one:
        one.execute(*first)  # uncommitted
        other = threading.Thread(target=second)
        other.start()
        with psycopg.connect(url, autocommit=True) as watch:
            while not watch.execute("SELECT 1 FROM pg_stat_activity WHERE datname = current_database() "
                                    "AND wait_event_type = 'Lock'").fetchall():
                assert other.is_alive(), failed
                time.sleep(0.05)
        one.commit()
    other.join()
    assert not failed, failed
    if writes == "lost card":
        state = r.card_state(CARD)
        assert state is not None and state.revoked and state.replaced_by == OTHER
    else:
        assert r.key_share(CARD, OTHER) == b"b"
    r.db.close()

WRITER = """
import sys, itertools
from apdu.certificate import Certificate
from servers.storage import Database
from servers.vault.repository import MIGRATIONS, VaultRepository
r = VaultRepository(Database.open(sys.argv[1], MIGRATIONS))
for i in itertools.count():
    r.register(b"01234567", i.to_bytes(32, "big"), b"value" * 50, i, lambda c: b"cert" + c.to_bytes(4, "big"))
    if i == 20:
        print("running", flush=True)
"""


def test_a_killed_writer_leaves_only_complete_rows(db_url: str) -> None:
    repo(db_url).db.close()
    proc = subprocess.Popen([sys.executable, "-c", WRITER, db_url], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "running"
    time.sleep(0.2)
    proc.kill()
    proc.wait()
    proc.stdout.close()
    r = repo(db_url)
    rows = r.list(b"01234567")
    assert len(rows) > 20
    for g in rows:
        assert g.value == b"value" * 50 and g.certificate == b"cert" + g.counter.to_bytes(4, "big")
    assert sorted(g.counter for g in rows) == list(range(len(rows)))
    r.db.close()


def test_unreachable_postgres_is_one_clear_error() -> None:
    with pytest.raises(StorageError, match=r"cannot connect to PostgreSQL at postgresql://evb:\*\*\*@127.0.0.1:1/x"):
        Database.open("postgresql://evb:secret@127.0.0.1:1/x", MIGRATIONS)
