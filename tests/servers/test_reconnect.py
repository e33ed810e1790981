"""The servers over PostgreSQL when their connections die or their primary turns read-only (what a
failover looks like from a server): a clean 503 with Retry-After, never a 500, and the next
request served on a fresh connection. Connections are killed with pg_terminate_backend on the
test database only."""

from __future__ import annotations

from pathlib import Path

import httpx
import psycopg
import pytest

from servers.storage import Database, StorageUnavailable, redact
from servers.vault.server import running

from .conftest import POSTGRES, fresh_postgres

MIGRATIONS: list = []  # type: ignore[type-arg]


def terminate_others() -> int:
    """Kill every other backend on the test database (the servers' pooled connections)."""
    with psycopg.connect(POSTGRES, autocommit=True) as conn:
        rows = conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                            "WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchall()
    return len(rows)


def count_rows(db: Database) -> int:
    with db.transaction() as tx:
        return int(tx.execute("SELECT COUNT(*) FROM t")[0][0])


@pytest.fixture
def db() -> Database:
    fresh_postgres()
    database = Database.open(POSTGRES, MIGRATIONS)
    with database.transaction() as tx:
        tx.execute("CREATE TABLE t (id INTEGER PRIMARY KEY)")
    yield database  # type: ignore[misc]
    database.close()


def test_a_killed_connection_is_unavailable_then_reconnects(db: Database) -> None:
    with db.transaction() as tx:
        tx.execute("INSERT INTO t (id) VALUES (1)")
    assert terminate_others() >= 1
    with pytest.raises(StorageUnavailable) as caught, db.transaction() as tx:
        tx.execute("INSERT INTO t (id) VALUES (2)")
    assert caught.value.status == 503 and caught.value.retry_after >= 1
    assert count_rows(db) == 1  # the next transaction runs on a new connection; 2 never committed


def test_every_pooled_connection_killed_costs_one_refusal(db: Database) -> None:
    """After the first dead connection the pool tests the idle ones: one 503, not one per
    connection the pool held."""
    held = [db.pool.getconn() for _ in range(4)]  # grow the pool to four connections
    for conn in held:
        db.pool.putconn(conn)
    terminate_others()
    with pytest.raises(StorageUnavailable), db.transaction() as tx:
        tx.execute("SELECT 1")
    for _ in range(4):
        assert count_rows(db) == 0


def test_a_demoted_primary_answers_unavailable_and_its_connection_goes(db: Database) -> None:
    """A host turned standby refuses writes with SQLSTATE 25006: that connection is closed (the
    pool drops it) and the request is a 503, not a 500."""
    with pytest.raises(StorageUnavailable), db.transaction() as tx:
        tx.execute("SET TRANSACTION READ ONLY")  # what every transaction on a standby is
        tx.execute("INSERT INTO t (id) VALUES (1)")
    assert count_rows(db) == 0


def test_other_database_errors_are_not_unavailable(db: Database) -> None:
    """Only a lost or demoted primary is a 503: a broken query stays the error it is."""
    with pytest.raises(psycopg.errors.UndefinedTable), db.transaction() as tx:
        tx.execute("SELECT * FROM no_such_table")


def test_multi_host_conninfo_skips_a_dead_host() -> None:
    """libpq's keyword form with two hosts, the first one down: the servers take it as PostgreSQL
    and connect to the live read-write host; the password never shows in messages."""
    fresh_postgres()
    info = psycopg.conninfo.conninfo_to_dict(POSTGRES)
    conninfo = (f"host=127.0.0.1,{info['host']} port=1,{info.get('port', 5432)} dbname={info['dbname']} "
                f"user={info['user']} password={info['password']} target_session_attrs=read-write connect_timeout=3")
    db = Database.open(conninfo, MIGRATIONS)
    try:
        assert db.dialect == "postgresql"
        assert f"password={info['password']} " not in db.describe() and "password=***" in db.describe()
    finally:
        db.close()
    assert "password=***" in redact(conninfo)


def test_the_vault_answers_503_with_retry_after_then_serves(tmp_path: Path) -> None:
    url = fresh_postgres()
    with running(url, tmp_path / "key.pem") as vault:
        assert httpx.post(f"{vault}/v1/challenges", json={"card_id": "00" * 8}).status_code == 200
        terminate_others()
        refused = httpx.post(f"{vault}/v1/challenges", json={"card_id": "00" * 8})
        assert refused.status_code == 503, refused.text
        assert int(refused.headers["Retry-After"]) >= 1
        assert "unavailable" in refused.json()["detail"]
        assert httpx.post(f"{vault}/v1/challenges", json={"card_id": "00" * 8}).status_code == 200
