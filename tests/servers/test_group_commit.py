"""Group commit (:meth:`servers.storage.Database.grouped`): works that arrive while a group
commits share the next transaction, each in its own savepoint; nobody hears back before the
commit that holds its write."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest

from servers.storage import Database, Migration, Tx

ITEMS = Migration(1, "items", "CREATE TABLE items (name TEXT NOT NULL)")


class Refused(Exception):
    """A work's own refusal, as a service raises one (a VaultError)."""


def insert(name: str, refuse: bool = False) -> Any:
    def work(tx: Tx) -> str:
        tx.execute("INSERT INTO items (name) VALUES (?)", (name,))
        if refuse:
            raise Refused(name)
        return name

    return work


def names(db: Database) -> list[str]:
    with db.transaction() as tx:
        return sorted(row[0] for row in tx.execute("SELECT name FROM items"))


def committed_names(db_url: str) -> list[str]:
    """What another connection sees, without waiting for the writer (our SQLite transactions
    take the write lock at BEGIN, so a second one would wait for the commit)."""
    if db_url.startswith("sqlite:///"):
        with contextlib.closing(sqlite3.connect(db_url.removeprefix("sqlite:///"))) as conn:
            return sorted(row[0] for row in conn.execute("SELECT name FROM items"))
    import psycopg

    with psycopg.connect(db_url) as conn:
        return sorted(row[0] for row in conn.execute("SELECT name FROM items"))


@contextmanager
def slow_commits(db: Database, commits: list[int]) -> Iterator[None]:
    """Each transaction counted, and held a moment between its last statement and its commit: an
    answer sent before the commit would be heard while the row is still invisible to others."""
    real = db.transaction

    @contextmanager
    def transaction() -> Iterator[Tx]:
        with real() as tx:
            yield tx
            threading.Event().wait(0.2)
        commits.append(1)

    db.transaction = transaction  # type: ignore[method-assign]
    try:
        yield
    finally:
        db.transaction = real  # type: ignore[method-assign]


def one_committer(db: Database) -> Database:
    """What arrives while the only committer is held makes one group (with several committers an
    idle one would take some of it)."""
    db.committers = 1
    return db


def test_works_arriving_together_share_one_commit_and_a_refusal_is_its_own(db_url: str) -> None:
    db = one_committer(Database.open(db_url, [ITEMS]))
    started, gate = threading.Event(), threading.Event()

    def first(tx: Tx) -> str:
        started.set()
        gate.wait(10)  # the others queue meanwhile
        return str(insert("first")(tx))

    async def submit() -> list[object]:
        async def heard(work: Any) -> object:
            try:
                name = await db.grouped(work)
            except Refused as exc:
                return exc
            assert name in await asyncio.to_thread(committed_names, db_url), f"{name} was answered before its commit"
            return name

        leading = asyncio.ensure_future(heard(first))
        await asyncio.to_thread(started.wait, 10)
        rest = [asyncio.ensure_future(heard(insert(f"v{i}", refuse=i == 2))) for i in range(5)]
        await asyncio.sleep(0)  # every one of them queued
        gate.set()
        return list(await asyncio.gather(leading, *rest))

    commits: list[int] = []
    try:
        with slow_commits(db, commits):
            answers = asyncio.run(submit())
        assert answers[:3] + answers[4:] == ["first", "v0", "v1", "v3", "v4"]
        assert isinstance(answers[3], Refused)
        assert len(commits) == 2, "the five that arrived together did not share one commit"
        assert names(db) == ["first", "v0", "v1", "v3", "v4"], "the refused work's insert stayed"
    finally:
        db.close()


def test_a_failed_commit_answers_every_work_of_the_group(db_url: str) -> None:
    """The database's own error (here a statement it refuses) fails the whole transaction:
    every work of the group hears it, none is left waiting, and nothing is written."""
    db = one_committer(Database.open(db_url, [ITEMS]))
    started, gate = threading.Event(), threading.Event()

    def first(tx: Tx) -> None:
        started.set()
        gate.wait(10)

    def broken(tx: Tx) -> None:
        tx.execute("INSERT INTO no_such_table (name) VALUES (?)", ("x",))

    async def submit() -> list[object]:
        leading = asyncio.ensure_future(db.grouped(first))
        await asyncio.to_thread(started.wait, 10)
        rest = [asyncio.ensure_future(db.grouped(w)) for w in (insert("a"), broken, insert("b"))]
        await asyncio.sleep(0)
        gate.set()
        return list(await asyncio.gather(leading, *rest, return_exceptions=True))

    try:
        answers = asyncio.run(submit())
        assert answers[0] is None
        assert all(isinstance(a, db.errors) for a in answers[1:]), answers
        assert names(db) == []
    finally:
        db.close()


@pytest.mark.parametrize("groups", [1, 3])
def test_closing_the_database_stops_its_committer(db_url: str, groups: int) -> None:
    db = Database.open(db_url, [ITEMS])

    async def some() -> None:
        for i in range(groups):
            await db.grouped(insert(str(i)))

    asyncio.run(some())
    committer = db._group
    assert committer is not None
    db.close()
    assert not any(thread.is_alive() for thread in committer._threads)


def test_groups_of_two_replicas_locking_rows_in_opposite_orders_both_commit() -> None:
    """Replica A's group locks row x then y, replica B's y then x: a deadlock, which PostgreSQL
    breaks by undoing one of the transactions. That group runs again once the other has
    committed; without the retry its works would hear a 503 that nobody's refusal caused.
    PostgreSQL only: SQLite has one writer at a time."""
    from .conftest import fresh_postgres

    url = fresh_postgres()
    rows = Migration(1, "locked", "CREATE TABLE locked (name TEXT PRIMARY KEY); "
                                  "INSERT INTO locked (name) VALUES ('x'); INSERT INTO locked (name) VALUES ('y')")
    replicas = [one_committer(Database.open(url, [rows])), one_committer(Database.open(url, [rows]))]
    both_hold_one = threading.Barrier(2, timeout=10)

    def lock(name: str, first: bool) -> Any:
        attempts = [0]

        def work(tx: Tx) -> str:
            tx.execute("SELECT name FROM locked WHERE name = ? FOR UPDATE", (name,))
            attempts[0] += 1
            if first and attempts[0] == 1:
                both_hold_one.wait()
            return name

        return work

    async def one_group(db: Database, works: list[Any]) -> list[object]:
        """``works`` queued behind a held one, so that they make one group."""
        started, gate = threading.Event(), threading.Event()

        def hold(tx: Tx) -> None:
            started.set()
            gate.wait(10)

        leading = asyncio.ensure_future(db.grouped(hold))
        await asyncio.to_thread(started.wait, 10)
        rest = [asyncio.ensure_future(db.grouped(w)) for w in works]
        await asyncio.sleep(0)
        gate.set()
        await leading
        return list(await asyncio.gather(*rest, return_exceptions=True))

    answers: dict[int, list[object]] = {}

    def run(i: int, works: list[Any]) -> None:
        answers[i] = asyncio.run(one_group(replicas[i], works))

    threads = [threading.Thread(target=run, args=(0, [lock("x", True), lock("y", False)])),
               threading.Thread(target=run, args=(1, [lock("y", True), lock("x", False)]))]
    try:
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert answers == {0: ["x", "y"], 1: ["y", "x"]}
    finally:
        for db in replicas:
            db.close()
