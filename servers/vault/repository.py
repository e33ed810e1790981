"""The vault's tables and queries (seed file 802 and the registration index 852)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from apdu.certificate import Certificate

from ..storage import Database, Migration, Tx

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
    Migration(3, "replaced cards: revocation, holders of registrations, handovers", """
        ALTER TABLE cards ADD COLUMN revoked_at INTEGER;
        ALTER TABLE cards ADD COLUMN replaced_by BLOB;
        ALTER TABLE cards ADD COLUMN next_handover INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE registrations ADD COLUMN holder BLOB;
        UPDATE registrations SET holder = card_id;
        ALTER TABLE registrations ADD COLUMN handover_seq INTEGER;
        CREATE INDEX registrations_holder ON registrations (holder)
    """),
    Migration(4, "registration counters from a sequence on PostgreSQL", "", """
        CREATE SEQUENCE registration_counter MINVALUE 0 START WITH 0;
        SELECT setval('registration_counter', (SELECT next FROM counter WHERE id = 1), false)
    """),
]


@dataclass(frozen=True)
class Registration:
    """``card_id`` backed the value up; ``holder`` may redeem it (the card that replaced it,
    once a handover numbered ``handover_seq`` has given it the certificate)."""

    counter: int
    card_id: bytes
    value_hash: bytes
    value: bytes
    certificate: bytes
    created_at: int
    holder: bytes = b""
    handover_seq: int | None = None

    @property
    def redeemable(self) -> bool:
        """The holder has the certificate: its own backup, or handed over."""
        return self.holder == self.card_id or self.handover_seq is not None


@dataclass(frozen=True)
class CardState:
    public_key: bytes
    revoked: bool
    replaced_by: bytes | None
    next_handover: int


class ConflictError(Exception):
    pass


@dataclass(frozen=True)
class NewValue:
    """A value to register: its hash X, the bytes kept, and its certificate for a counter."""

    value_hash: bytes
    value: bytes
    certify: Callable[[int], bytes]


Prepare = Callable[[bytes, bytes | None], Sequence[NewValue]]
"""(card id, the card's public key or None) -> the values to register, checked for that card."""


COLUMNS = "counter, card_id, value_hash, value, certificate, created_at, holder, handover_seq"


def _reg(row: tuple[Any, ...]) -> Registration:
    return Registration(int(row[0]), bytes(row[1]), bytes(row[2]), bytes(row[3]), bytes(row[4]), int(row[5]),
                        bytes(row[6]), None if row[7] is None else int(row[7]))


class VaultRepository:
    def __init__(self, db: Database, counter_modulus: int = 2**32) -> None:
        self.db = db
        self.modulus = counter_modulus
        # PostgreSQL locks a card's row for what follows a find; SQLite's BEGIN IMMEDIATE queues
        # every writer already (and has no FOR UPDATE)
        self._for_update = " FOR UPDATE" if db.dialect == "postgresql" else ""

    # --- cards, challenges, sessions ---------------------------------------------------------

    def card_key(self, card_id: bytes) -> bytes | None:
        with self.db.transaction() as tx:
            rows = tx.execute("SELECT public_key FROM cards WHERE card_id = ?", (card_id,))
        return bytes(rows[0][0]) if rows else None

    def card_state(self, card_id: bytes) -> CardState | None:
        with self.db.transaction() as tx:
            rows = tx.execute("SELECT public_key, revoked_at, replaced_by, next_handover FROM cards WHERE card_id = ?",
                              (card_id,))
        if not rows:
            return None
        key, revoked, replaced_by, next_handover = rows[0]
        return CardState(bytes(key), revoked is not None, None if replaced_by is None else bytes(replaced_by),
                         int(next_handover))

    def register_card(self, card_id: bytes, public_key: bytes, now: int) -> None:
        """Trust on first use: a card id keeps the key it first authenticated with. Two first
        sessions at once both insert; ON CONFLICT lets the loser read the winner's key instead of
        failing on the primary key (PostgreSQL's READ COMMITTED let both see no row)."""
        with self.db.transaction() as tx:
            tx.execute("INSERT INTO cards (card_id, public_key, created_at) VALUES (?, ?, ?) "
                       "ON CONFLICT (card_id) DO NOTHING", (card_id, public_key, now))
            rows = tx.execute("SELECT public_key FROM cards WHERE card_id = ?", (card_id,))
            if bytes(rows[0][0]) != public_key:
                raise ConflictError("card id registered with another key")

    def replace_card(self, old: bytes, new: bytes | None, now: int) -> None:
        """Revoke ``old`` and, with ``new``, make it the holder of everything ``old`` held (also
        what ``old`` had inherited): those certificates are handed over afresh."""
        with self.db.transaction() as tx:  # two replicas may carry out the same statement at once
            tx.execute("INSERT INTO cards (card_id, public_key, created_at) VALUES (?, ?, ?) "
                       "ON CONFLICT (card_id) DO NOTHING", (old, b"", now))
            tx.execute("UPDATE cards SET revoked_at = COALESCE(revoked_at, ?) WHERE card_id = ?", (now, old))
            tx.execute("DELETE FROM sessions WHERE card_id = ?", (old,))
            if new is not None:
                tx.execute("UPDATE cards SET replaced_by = ? WHERE card_id = ? OR replaced_by = ?", (new, old, old))
                tx.execute("UPDATE registrations SET holder = ?, handover_seq = NULL WHERE holder = ?", (new, old))

    def hand_over(self, holder: bytes, imported: int) -> tuple[Registration | None, int]:
        """The registration whose certificate goes to ``holder`` as handover number ``imported``
        (the one given before, for a retry), and how many wait after it; None when all went."""
        with self.db.transaction() as tx:
            rows = tx.execute(f"SELECT next_handover FROM cards WHERE card_id = ?{self._for_update}", (holder,))
            next_seq = int(rows[0][0]) if rows else 0
            if imported > next_seq:
                raise ConflictError("the card has imported more handovers than this vault gave it")
            if imported == next_seq:
                first = tx.execute("SELECT id FROM registrations WHERE holder = ? AND card_id <> ? "
                                   "AND handover_seq IS NULL ORDER BY id LIMIT 1", (holder, holder))
                if first:
                    tx.execute("UPDATE registrations SET handover_seq = ? WHERE id = ?", (next_seq, first[0][0]))
                    tx.execute("UPDATE cards SET next_handover = ? WHERE card_id = ?", (next_seq + 1, holder))
            found = tx.execute(f"SELECT {COLUMNS} FROM registrations WHERE holder = ? AND handover_seq = ?",
                               (holder, imported))
            waiting = tx.execute("SELECT COUNT(*) FROM registrations WHERE holder = ? AND card_id <> ? "
                                 "AND handover_seq IS NULL", (holder, holder))
        return (_reg(found[0]) if found else None), int(waiting[0][0])

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
        one transaction: concurrent registrations get distinct counters."""
        with self.db.transaction() as tx:
            return self._insert(tx, card_id, NewValue(value_hash, value, make_certificate), now)

    def register_values(self, card_id: bytes, now: int, prepare: Prepare) -> list[Registration]:
        """Register the values ``prepare`` checks for this card, each answered by its earlier
        registration if the card registered the same X before: a retry registers nothing twice,
        also when the retry reaches another replica while the first attempt is still running
        (the card's row stays locked from the find to the commit; a card the vault has never
        seen has no row to lock, and no session either, so no request of the API comes here)."""
        with self.db.transaction() as tx:
            rows = tx.execute(f"SELECT public_key FROM cards WHERE card_id = ?{self._for_update}", (card_id,))
            return self._find_or_insert(tx, card_id, bytes(rows[0][0]) if rows else None, now, prepare)

    async def register_for_session(self, token_hash: bytes, now: int,
                                   prepare: Prepare) -> list[Registration] | None:
        """As :meth:`register_values` for the card of a session (None when it is unknown or expired),
        in one transaction with the session's check, which it shares with the registrations that
        arrive at the same time (:meth:`Database.grouped`): N clients, one commit. The session
        and the card's locked row come in one statement (a round trip less on PostgreSQL)."""
        def work(tx: Tx) -> list[Registration] | None:
            rows = tx.execute("SELECT s.card_id, s.expires_at, (SELECT c.public_key FROM cards c WHERE c.card_id = "
                              f"s.card_id{self._for_update}) FROM sessions s WHERE s.token_hash = ?", (token_hash,))
            if not rows or int(rows[0][1]) < now:
                return None
            card_id, key = bytes(rows[0][0]), rows[0][2]
            return self._find_or_insert(tx, card_id, bytes(key) if key is not None else None, now, prepare)

        return await self.db.grouped(work)

    def _find_or_insert(self, tx: Tx, card_id: bytes, key: bytes | None, now: int,
                        prepare: Prepare) -> list[Registration]:
        """Only with the card's row locked (or SQLite's writer lock) in ``tx``: under PostgreSQL's
        READ COMMITTED two transactions would otherwise both find nothing and both insert, two
        certificates for one value."""
        out = []
        for new in prepare(card_id, key):
            rows = tx.execute(f"SELECT {COLUMNS} FROM registrations WHERE card_id = ? AND value_hash = ? "
                              "ORDER BY id LIMIT 1", (card_id, new.value_hash))
            out.append(_reg(rows[0]) if rows else self._insert(tx, card_id, new, now))
        return out

    def _insert(self, tx: Tx, card_id: bytes, new: NewValue, now: int) -> Registration:
        counter = self._next_counter(tx)
        certificate = new.certify(counter)
        tx.execute(f"INSERT INTO registrations ({COLUMNS}) VALUES (?, ?, ?, ?, ?, ?, ?, NULL)",
                   (counter, card_id, new.value_hash, new.value, certificate, now, card_id))
        return Registration(counter, card_id, new.value_hash, new.value, certificate, now, card_id)

    def _next_counter(self, tx: Tx) -> int:
        """PostgreSQL takes Y from a sequence, so concurrent registrations do not queue on one row
        until commit (a rolled-back one leaves a gap: a counter only tells registrations apart,
        with their hash); SQLite queues its writers anyway, and the row costs it nothing more."""
        if self.db.dialect == "postgresql":
            rows = tx.execute("SELECT nextval('registration_counter')")
        else:
            rows = tx.execute("UPDATE counter SET next = next + 1 WHERE id = 1 RETURNING next - 1")
        return int(rows[0][0]) % self.modulus

    def lookup(self, cert: Certificate) -> Registration | None:
        """The seed's order: candidates by counter, then by hash, then a full comparison of what
        the certificate says (every field the vault signed), never of its signature's bytes: an
        ECDSA signature has other valid encodings, and the certificate is what we issued."""
        with self.db.transaction() as tx:
            rows = tx.execute(f"SELECT {COLUMNS} FROM registrations WHERE counter = ? ORDER BY id", (cert.counter,))
        for reg in map(_reg, rows):
            if reg.value_hash == cert.value_hash and Certificate.from_bytes(reg.certificate).signed_part() == \
                    cert.signed_part():
                return reg
        return None

    def list(self, holder: bytes) -> list[Registration]:
        """Everything ``holder`` may redeem or will be handed, oldest first."""
        with self.db.transaction() as tx:
            rows = tx.execute(f"SELECT {COLUMNS} FROM registrations WHERE holder = ? ORDER BY id", (holder,))
        return [_reg(r) for r in rows]


    def delete(self, holder: bytes, counter: int, value_hash: bytes, may_go: Callable[[Registration], bool]) -> bool:
        """Delete the holder's registrations (counter, X) that ``may_go``; answers whether any went."""
        [gone] = self.delete_many(holder, [(counter, value_hash, may_go)])
        return gone

    def delete_many(self, holder: bytes,
                    doomed: Sequence[tuple[int, bytes, Callable[[Registration], bool]]]) -> Sequence[bool]:
        """:meth:`delete` of each (counter, X, may_go) in one transaction: one commit for a batch."""
        out = []
        with self.db.transaction() as tx:
            for counter, value_hash, may_go in doomed:
                rows = tx.execute(f"SELECT id, {COLUMNS} FROM registrations WHERE holder = ? AND counter = ? "
                                  "AND value_hash = ?", (holder, counter, value_hash))
                gone = [row[0] for row in rows if may_go(_reg(row[1:]))]
                for row_id in gone:
                    tx.execute("DELETE FROM registrations WHERE id = ?", (row_id,))
                out.append(bool(gone))
        return out

    def count(self) -> int:
        with self.db.transaction() as tx:
            return int(tx.execute("SELECT COUNT(*) FROM registrations")[0][0])

    def put_key_share(self, card_id: bytes, key_id: bytes, sealed_share: bytes, now: int) -> None:
        with self.db.transaction() as tx:  # one statement: two replicas may store the same share at once
            tx.execute("INSERT INTO key_shares (card_id, key_id, sealed_share, created_at) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT (card_id, key_id) DO UPDATE SET sealed_share = excluded.sealed_share, "
                       "created_at = excluded.created_at", (card_id, key_id, sealed_share, now))

    def key_share(self, card_id: bytes, key_id: bytes) -> bytes | None:
        with self.db.transaction() as tx:
            rows = tx.execute("SELECT sealed_share FROM key_shares WHERE card_id = ? AND key_id = ?",
                              (card_id, key_id))
        return bytes(rows[0][0]) if rows else None
