"""The vault's tables and queries (seed file 802 and the registration index 852)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from ..storage import Database, Migration

MIGRATIONS = [
    Migration(1, "cards, challenges, sessions, registrations", """
        CREATE TABLE cards (card_id BLOB PRIMARY KEY, public_key BLOB NOT NULL, created_at INTEGER NOT NULL);
        CREATE TABLE challenges (card_id BLOB NOT NULL, challenge BLOB NOT NULL, expires_at INTEGER NOT NULL,
                                 PRIMARY KEY (card_id, challenge));
        CREATE TABLE sessions (token_hash BLOB PRIMARY KEY, card_id BLOB NOT NULL, expires_at INTEGER NOT NULL);
        CREATE TABLE counter (id INTEGER PRIMARY KEY, next INTEGER NOT NULL);
        INSERT INTO counter (id, next) VALUES (1, 0);
        CREATE TABLE registrations (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            counter INTEGER NOT NULL,
            card_id BLOB NOT NULL,
            value_hash BLOB NOT NULL,
            value BLOB NOT NULL,
            certificate BLOB NOT NULL,
            created_at INTEGER NOT NULL
        );
        CREATE INDEX registrations_counter ON registrations (counter);
        CREATE INDEX registrations_card_hash ON registrations (card_id, value_hash)
    """),
    Migration(2, "shares of split card keys (E4)", """
        CREATE TABLE key_shares (card_id BLOB NOT NULL, key_id BLOB NOT NULL, sealed_share BLOB NOT NULL,
                                 created_at INTEGER NOT NULL, PRIMARY KEY (card_id, key_id))
    """),
]


@dataclass(frozen=True)
class Registration:
    counter: int
    card_id: bytes
    value_hash: bytes
    value: bytes
    certificate: bytes
    created_at: int


class ConflictError(Exception):
    pass


COLUMNS = "counter, card_id, value_hash, value, certificate, created_at"


def _reg(row: tuple[Any, ...]) -> Registration:
    return Registration(int(row[0]), bytes(row[1]), bytes(row[2]), bytes(row[3]), bytes(row[4]), int(row[5]))


class VaultRepository:
    def __init__(self, db: Database, counter_modulus: int = 2**32) -> None:
        self.db = db
        self.modulus = counter_modulus

    # --- cards, challenges, sessions ---------------------------------------------------------

    def card_key(self, card_id: bytes) -> bytes | None:
        with self.db.transaction() as tx:
            rows = tx.execute("SELECT public_key FROM cards WHERE card_id = ?", (card_id,))
        return bytes(rows[0][0]) if rows else None

    def register_card(self, card_id: bytes, public_key: bytes, now: int) -> None:
        """Trust on first use: a card id keeps the key it first authenticated with."""
        with self.db.transaction() as tx:
            rows = tx.execute("SELECT public_key FROM cards WHERE card_id = ?", (card_id,))
            if rows and bytes(rows[0][0]) != public_key:
                raise ConflictError("card id registered with another key")
            if not rows:
                tx.execute("INSERT INTO cards (card_id, public_key, created_at) VALUES (?, ?, ?)",
                           (card_id, public_key, now))

    def add_challenge(self, card_id: bytes, challenge: bytes, expires_at: int) -> None:
        with self.db.transaction() as tx:
            tx.execute("DELETE FROM challenges WHERE expires_at < ?", (expires_at - 3600,))
            tx.execute("INSERT INTO challenges (card_id, challenge, expires_at) VALUES (?, ?, ?)",
                       (card_id, challenge, expires_at))

    def take_challenge(self, card_id: bytes, challenge: bytes, now: int) -> bool:
        """True once for a challenge we issued to this card that has not expired."""
        with self.db.transaction() as tx:
            rows = tx.execute("SELECT expires_at FROM challenges WHERE card_id = ? AND challenge = ?",
                              (card_id, challenge))
            tx.execute("DELETE FROM challenges WHERE card_id = ? AND challenge = ?", (card_id, challenge))
        return bool(rows) and int(rows[0][0]) >= now

    def add_session(self, token_hash: bytes, card_id: bytes, expires_at: int) -> None:
        with self.db.transaction() as tx:
            tx.execute("INSERT INTO sessions (token_hash, card_id, expires_at) VALUES (?, ?, ?)",
                       (token_hash, card_id, expires_at))

    def session_card(self, token_hash: bytes, now: int) -> bytes | None:
        with self.db.transaction() as tx:
            rows = tx.execute("SELECT card_id, expires_at FROM sessions WHERE token_hash = ?", (token_hash,))
        if not rows or int(rows[0][1]) < now:
            return None
        return bytes(rows[0][0])

    # --- registrations -----------------------------------------------------------------------

    def find_by_hash(self, card_id: bytes, value_hash: bytes) -> Registration | None:
        with self.db.transaction() as tx:
            rows = tx.execute(f"SELECT {COLUMNS} FROM registrations WHERE card_id = ? AND value_hash = ? "
                              "ORDER BY id LIMIT 1", (card_id, value_hash))
        return _reg(rows[0]) if rows else None

    def register(self, card_id: bytes, value_hash: bytes, value: bytes, now: int,
                 make_certificate: Callable[[int], bytes]) -> Registration:
        """Take the next counter Y (wrapping at the modulus) and store the value under it, in
        one transaction: concurrent registrations get distinct, consecutive counters."""
        with self.db.transaction() as tx:
            tx.execute("UPDATE counter SET next = next + 1 WHERE id = 1")
            counter = (int(tx.execute("SELECT next FROM counter WHERE id = 1")[0][0]) - 1) % self.modulus
            certificate = make_certificate(counter)
            tx.execute(f"INSERT INTO registrations ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?)",
                       (counter, card_id, value_hash, value, certificate, now))
        return Registration(counter, card_id, value_hash, value, certificate, now)

    def lookup(self, counter: int, value_hash: bytes, certificate: bytes) -> Registration | None:
        """The seed's order: candidates by counter, then by hash, then a full comparison."""
        with self.db.transaction() as tx:
            rows = tx.execute(f"SELECT {COLUMNS} FROM registrations WHERE counter = ? ORDER BY id", (counter,))
        for reg in map(_reg, rows):
            if reg.value_hash == value_hash and reg.certificate == certificate:
                return reg
        return None

    def list(self, card_id: bytes) -> list[Registration]:
        with self.db.transaction() as tx:
            rows = tx.execute(f"SELECT {COLUMNS} FROM registrations WHERE card_id = ? ORDER BY id", (card_id,))
        return [_reg(r) for r in rows]

    def delete(self, card_id: bytes, counter: int, value_hash: bytes) -> bool:
        with self.db.transaction() as tx:
            rows = tx.execute("SELECT id FROM registrations WHERE card_id = ? AND counter = ? AND value_hash = ?",
                              (card_id, counter, value_hash))
            for (row_id,) in rows:
                tx.execute("DELETE FROM registrations WHERE id = ?", (row_id,))
        return bool(rows)

    def count(self) -> int:
        with self.db.transaction() as tx:
            return int(tx.execute("SELECT COUNT(*) FROM registrations")[0][0])

    def put_key_share(self, card_id: bytes, key_id: bytes, sealed_share: bytes, now: int) -> None:
        with self.db.transaction() as tx:
            tx.execute("DELETE FROM key_shares WHERE card_id = ? AND key_id = ?", (card_id, key_id))
            tx.execute("INSERT INTO key_shares (card_id, key_id, sealed_share, created_at) VALUES (?, ?, ?, ?)",
                       (card_id, key_id, sealed_share, now))

    def key_share(self, card_id: bytes, key_id: bytes) -> bytes | None:
        with self.db.transaction() as tx:
            rows = tx.execute("SELECT sealed_share FROM key_shares WHERE card_id = ? AND key_id = ?",
                              (card_id, key_id))
        return bytes(rows[0][0]) if rows else None
