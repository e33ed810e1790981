"""One small database layer for the servers, two backends chosen by URL.

* SQLite (the embedded default): ``sqlite:///abs/path.db`` or a plain path. WAL journal,
  ``synchronous=FULL`` so a committed registration survives a killed process or a power cut,
  ``BEGIN IMMEDIATE`` so concurrent writers queue instead of failing halfway. A new file is made
  0600 in a 0700 folder (SQLite gives its -wal and -shm files the database file's mode).
* PostgreSQL: ``postgresql://user:pw@host:port/db`` (or libpq's ``host=a,b port=x,y …``) through
  psycopg 3 and a connection pool. With several hosts and ``target_session_attrs=read-write`` the
  servers follow a failover: a request that meets a dead or demoted primary fails as
  :class:`StorageUnavailable` (a 503 with Retry-After, nothing acknowledged), its connection is
  dropped, and the next request connects to whichever host is primary now.

SQL is written once, with ``?`` placeholders and SQLite's type names; :func:`_to_postgres`
makes the three changes PostgreSQL needs. Schema changes are numbered :class:`Migration` s,
applied once each, in order, under a lock.

:meth:`Database.grouped` runs a transaction's work together with the others that arrive while
the previous group commits (group commit, :class:`GroupCommit`): one commit, one fsync, for all.
"""

from __future__ import annotations

import asyncio
import functools
import os
import queue
import re
import sqlite3
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Generic, Protocol, TypeVar
from urllib.parse import urlsplit

from keyfile import private_dir


class StorageError(Exception):
    """The database cannot be opened or reached; the message names it without its password."""


RETRY_AFTER_SECONDS = 1
"""What a 503 from a lost database asks clients to wait: an automatic failover takes seconds."""
CHECKOUT_SECONDS = 5.0
"""How long a request waits for a connection to a primary before answering 503: below the
clients' 10 s timeout, so a client hears a clean refusal rather than a timeout."""


class StorageUnavailable(StorageError):
    """The primary went away or turned read-only mid-request (a failover). The transaction did
    not commit, or its commit is unknown and a retry finds it (every write the servers make is
    idempotent on retry): answered as 503 with Retry-After, never as a 500."""

    status = 503
    retry_after = RETRY_AFTER_SECONDS

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str  # statements separated by ';'
    postgres_sql: str | None = None  # instead of ``sql`` on PostgreSQL, where it needs other statements

    def statements(self, dialect: str) -> list[str]:
        sql = self.postgres_sql if dialect == "postgresql" and self.postgres_sql is not None else self.sql
        return [s for s in sql.split(";") if s.strip()]


class Tx(Protocol):
    def execute(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]: ...


@functools.lru_cache(maxsize=1024)
def _to_postgres(sql: str) -> str:
    """Cached: every statement is a constant of ours, translated on each execute (two regexes)."""
    sql = sql.replace("INTEGER PRIMARY KEY AUTOINCREMENT", "BIGSERIAL PRIMARY KEY")
    sql = re.sub(r"\bBLOB\b", "BYTEA", sql)
    sql = re.sub(r"\bINTEGER\b", "BIGINT", sql)
    return sql.replace("?", "%s")


def _is_conninfo(url: str) -> bool:
    """libpq's keyword form (``host=a,b port=x,y dbname=…``), which multi-host set-ups use."""
    return re.match(r"\s*\w+\s*=", url) is not None


def redact(url: str) -> str:
    if _is_conninfo(url):
        return re.sub(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|\S+)", r"\1***", url)
    parts = urlsplit(url)
    if parts.password:
        return url.replace(f":{parts.password}@", ":***@", 1)
    return url


T = TypeVar("T")
_STARTING = threading.Lock()
"""Held while a database makes its committer: two event loops' first calls make one."""


class Database:
    dialect: str
    errors: tuple[type[Exception], ...] = ()  # the driver's own errors: the database failed, not the work
    committers = 1  # threads committing groups (GroupCommit)
    _group: GroupCommit | None = None

    @classmethod
    def open(cls, url: str, migrations: Sequence[Migration]) -> Database:
        db: Database
        if url.startswith(("postgresql://", "postgres://")) or _is_conninfo(url):
            db = _Postgres(url)
        else:
            db = _Sqlite(Path(url.removeprefix("sqlite:///")))  # sqlite:////abs/path or a plain path
        try:
            db._migrate(migrations)
        except BaseException:
            db.close()  # a pool left open is collected later, from one of its own threads
            raise
        return db

    def transaction(self) -> Any:  # a context manager yielding a Tx
        raise NotImplementedError

    async def grouped(self, work: Callable[[Tx], T]) -> T:
        """``work`` in a transaction shared with the works that arrive with it, each in its own
        savepoint (its exception is its own), answered once the shared commit is durable."""
        with _STARTING:
            if self._group is None:
                self._group = GroupCommit(self)  # a thread only for a server that uses it
        return await self._group.run(work)

    def conflicted(self, exc: BaseException) -> bool:
        """Whether ``exc`` is the database undoing the transaction to break a deadlock (or a
        serialization failure): the same work run again succeeds."""
        return False

    def _stop_group(self) -> None:
        if self._group is not None:
            self._group.close()
            self._group = None

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
                for statement in m.statements(self.dialect):
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
    errors = (sqlite3.Error,)

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
        self._stop_group()
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
    committers = 4
    """PostgreSQL runs several transactions at once on as many connections: one committer would
    queue every statement's round trip behind the last (SQLite has one writer anyway)."""

    def __init__(self, url: str) -> None:
        import psycopg
        from psycopg_pool import ConnectionPool

        self.url = url
        self.errors = (psycopg.Error,)
        try:
            psycopg.connect(url, connect_timeout=5).close()  # fail fast with the server's reason
            self.pool = ConnectionPool(url, min_size=1, max_size=8, open=True, timeout=CHECKOUT_SECONDS)
            self.pool.wait(timeout=10)
        except Exception as exc:
            raise StorageError(f"cannot connect to PostgreSQL at {redact(url)}: {exc}") from exc
        self._checking = threading.Lock()

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """A dropped connection (the primary died), no primary to connect to yet, or a
        read-only answer (this host was demoted) all become :class:`StorageUnavailable`."""
        from psycopg import OperationalError
        from psycopg.errors import ReadOnlySqlTransaction

        try:
            with self.pool.connection() as conn:
                try:
                    with conn.transaction():
                        yield _PgTx(conn)
                except ReadOnlySqlTransaction:
                    conn.close()  # a standby now: the pool throws a closed connection away
                    raise
        except (OperationalError, ReadOnlySqlTransaction) as exc:
            self._drop_dead_connections()
            raise StorageUnavailable(f"the database is unavailable, retry: {type(exc).__name__}") from exc

    def _drop_dead_connections(self) -> None:
        """After one dead connection the idle ones are likely dead too (the same primary went):
        test them now, once, so the next requests do not each meet one."""
        if self._checking.acquire(blocking=False):
            try:
                self.pool.check()
            finally:
                self._checking.release()

    def _lock_migrations(self, tx: Tx) -> None:
        tx.execute("LOCK TABLE schema_migrations IN EXCLUSIVE MODE")

    def conflicted(self, exc: BaseException) -> bool:
        from psycopg.errors import DeadlockDetected, SerializationFailure

        return isinstance(exc, StorageUnavailable) and isinstance(exc.__cause__, DeadlockDetected | SerializationFailure)

    def close(self) -> None:
        self._stop_group()
        self.pool.close()

    def describe(self) -> str:
        return f"PostgreSQL {redact(self.url)}"


@dataclass(frozen=True)
class _Work(Generic[T]):
    """One caller's work, and how to answer it on its own event loop."""

    work: Callable[[Tx], T]
    loop: asyncio.AbstractEventLoop
    future: asyncio.Future[T]

    def answer(self, result: T | None = None, error: BaseException | None = None) -> None:
        try:
            self.loop.call_soon_threadsafe(_settle, self.future, result, error)
        except RuntimeError:  # its loop has closed: nobody waits any more
            pass


def _settle(future: asyncio.Future[Any], result: object, error: BaseException | None) -> None:
    if future.cancelled():  # the client went away; the work stands, committed or not
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


class GroupCommit:
    """Group commit: a thread (``db.committers`` of them) runs the works queued while it committed
    its previous group, in one transaction, each in a savepoint, so N concurrent callers pay one
    commit (one fsync) between them, and the callers' only thread hop is this one. A work that raises is rolled back to its
    savepoint and answered with its exception; the others commit. Nobody is answered before the
    commit returns: a process killed before then acknowledged nothing, and what it acknowledged
    is durable. A failed commit answers every work of the group with its error (for a lost
    database :class:`StorageUnavailable`: a 503 with Retry-After, and a work run again after a
    commit whose outcome was lost finds what it wrote, as every write of the servers does)."""

    LIMIT = 48
    """Works in one transaction at most: a bound on how long the first of them waits, and below
    the 64 subtransactions PostgreSQL keeps per transaction before every snapshot slows down."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self._queue: queue.SimpleQueue[_Work[Any] | None] = queue.SimpleQueue()
        self._threads = [threading.Thread(target=self._serve, name="evb-group-commit", daemon=True)
                         for _ in range(db.committers)]
        for thread in self._threads:
            thread.start()

    async def run(self, work: Callable[[Tx], T]) -> T:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        self._queue.put(_Work(work, loop, future))
        return await future

    def close(self) -> None:
        for _ in self._threads:
            self._queue.put(None)  # one stop for each thread
        for thread in self._threads:
            thread.join(10)

    def _serve(self) -> None:
        while (first := self._queue.get()) is not None:
            group, stop = [first], False
            while len(group) < self.LIMIT and not self._queue.empty():
                item = self._queue.get()
                if item is None:
                    stop = True
                    break
                group.append(item)
            self._commit(group)
            if stop:
                return

    def _commit(self, group: list[_Work[Any]], retry: bool = True) -> None:
        """``retry``: once more after a deadlock, which groups make possible between replicas (a
        group locks its cards' rows in the order its works came, another replica's in another);
        PostgreSQL undoes one of the two transactions, and the other has gone on by then."""
        outcomes: list[tuple[object, BaseException | None]] = []
        try:
            with self.db.transaction() as tx:
                if len(group) == 1:  # alone: the transaction is its savepoint
                    outcomes.append((group[0].work(tx), None))
                else:
                    outcomes += [_in_savepoint(tx, w.work, self.db.errors) for w in group]
        except Exception as exc:  # nothing of the group committed (or, StorageUnavailable, maybe all)
            if retry and self.db.conflicted(exc):
                self._commit(group, retry=False)
                return
            for w in group:
                w.answer(error=exc)
            return
        for w, (result, error) in zip(group, outcomes, strict=True):
            w.answer(result, error)


def _in_savepoint(tx: Tx, work: Callable[[Tx], T],
                  fatal: tuple[type[Exception], ...]) -> tuple[T | None, BaseException | None]:
    """The work's refusal is its own; an error of the database (``fatal``: a lost connection, a
    deadlock) fails the group's transaction, as it would have failed the work's own. No RELEASE
    (a round trip on PostgreSQL): each work's savepoint of the same name nests in the last one,
    a rollback goes to the newest, and the commit keeps every one not rolled back."""
    tx.execute("SAVEPOINT grouped")
    try:
        return work(tx), None
    except Exception as exc:
        if isinstance(exc, fatal):
            raise
        tx.execute("ROLLBACK TO SAVEPOINT grouped")
        return None, exc
