"""One small database layer for the servers, two backends chosen by URL.

* SQLite (the embedded default): ``sqlite:///abs/path.db`` or a plain path. WAL journal,
  ``synchronous=FULL`` so a committed registration survives a killed process or a power cut,
  ``BEGIN IMMEDIATE`` so concurrent writers queue instead of failing halfway. A new file is made
  0600 in a 0700 folder (SQLite gives its -wal and -shm files the database file's mode).
* PostgreSQL: ``postgresql://user:pw@host:port/db`` through psycopg 3 and a connection pool.

SQL is written once, with ``?`` placeholders and SQLite's type names; :func:`_to_postgres`
makes the three changes PostgreSQL needs. Schema changes are numbered :class:`Migration` s,
applied once each, in order, under a lock.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit

from keyfile import private_dir


class StorageError(Exception):
    """The database cannot be opened or reached; the message names it without its password."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str  # statements separated by ';'


class Tx(Protocol):
    def execute(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]: ...


def _to_postgres(sql: str) -> str:
    sql = sql.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY")
    sql = re.sub(r"\bBLOB\b", "BYTEA", sql)
    sql = re.sub(r"\bINTEGER\b", "BIGINT", sql)
    return sql.replace("?", "%s")


def redact(url: str) -> str:
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url


class Database:
    dialect: str

    @classmethod
    def open(cls, url: str, migrations: Sequence[Migration]) -> Database:
        db: Database
        if url.startswith(("postgresql://", "postgres://")):
            db = _Postgres(url)
        else:
            db = _Sqlite(Path(url.removeprefix("sqlite:///")))  # sqlite:////abs/path or a plain path
        db._migrate(migrations)
        return db

    def transaction(self) -> Any:  # a context manager yielding a Tx
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError

    def describe(self) -> str:
        raise NotImplementedError

    def _migrate(self, migrations: Sequence[Migration]) -> None:
        with self.transaction() as tx:
            tx.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, name TEXT NOT NULL)")
            self._lock_migrations(tx)
            done = {row[0] for row in tx.execute("SELECT version FROM schema_migrations")}
            for m in sorted(migrations, key=lambda m: m.version):
                if m.version in done:
                    continue
                for statement in filter(str.strip, m.sql.split(";")):
                    tx.execute(statement)
                tx.execute("INSERT INTO schema_migrations (version, name) VALUES (?, ?)", (m.version, m.name))

    def _lock_migrations(self, tx: Tx) -> None:
        pass


class _SqliteTx:
    def __init__(self, conn: sqlite3.Connection) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, tuple(params)).fetchall()


class _Sqlite(Database):
    dialect = "sqlite"

    def __init__(self, path: Path) -> None:
        self.path = path
        self._local = threading.local()
        self._all: list[sqlite3.Connection] = []
        self._guard = threading.Lock()
        try:
            private_dir(path.parent)
            os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))  # owner-only before SQLite makes it
            self._conn()
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot open SQLite database {path}: {exc}") from exc

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=30, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("PRAGMA foreign_keys=ON")
            self._local.conn = conn
            with self._guard:
                self._all.append(conn)
        return conn

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield _SqliteTx(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def close(self) -> None:
        with self._guard:
            for conn in self._all:
                conn.close()
            self._all.clear()
        self._local = threading.local()

    def describe(self) -> str:
        return f"SQLite {self.path}"


class _PgTx:
    def __init__(self, conn: Any) -> None:
        self.conn = conn

    def execute(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        cur = self.conn.execute(_to_postgres(sql), tuple(params))
        if cur.description is None:
            return []
        return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in cur.fetchall()]


class _Postgres(Database):
    dialect = "postgresql"

    def __init__(self, url: str) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool

        self.url = url
        try:
            psycopg.connect(url, connect_timeout=5).close()  # fail fast with the server's reason
            self.pool = ConnectionPool(url, min_size=1, max_size=8, open=True, timeout=10)
            self.pool.wait(timeout=10)
        except Exception as exc:
            raise StorageError(f"cannot connect to PostgreSQL at {redact(url)}: {exc}") from exc

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        with self.pool.connection() as conn, conn.transaction():
            yield _PgTx(conn)

    def _lock_migrations(self, tx: Tx) -> None:
        tx.execute("LOCK TABLE schema_migrations IN EXCLUSIVE MODE")

    def close(self) -> None:
        self.pool.close()

    def describe(self) -> str:
        return f"PostgreSQL {redact(self.url)}"
