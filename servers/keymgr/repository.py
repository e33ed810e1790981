"""The key manager's tables: accounts and their cards, guesses per name, escrowed keys, audit."""

from __future__ import annotations

from dataclasses import dataclass

from ..storage import Database, Migration, Tx

MIGRATIONS = [
    Migration(1, "accounts, cards, guesses, sessions, escrows, audit", """
        CREATE TABLE accounts (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE,
                               password_hash TEXT NOT NULL, created_at INTEGER NOT NULL);
        CREATE TABLE account_cards (card_id BLOB PRIMARY KEY, account_id INTEGER NOT NULL);
        CREATE TABLE guesses (name TEXT PRIMARY KEY, failures INTEGER NOT NULL);
        CREATE TABLE sessions (token_hash BLOB PRIMARY KEY, account_id INTEGER NOT NULL,
                               expires_at INTEGER NOT NULL);
        CREATE TABLE escrows (card_id BLOB NOT NULL, key_id BLOB NOT NULL, mode INTEGER NOT NULL,
                              sealed_seed BLOB NOT NULL, created_at INTEGER NOT NULL,
                              PRIMARY KEY (card_id, key_id));
        CREATE TABLE audit (id INTEGER PRIMARY KEY AUTOINCREMENT, at INTEGER NOT NULL, name TEXT NOT NULL,
                            event TEXT NOT NULL)
    """),
    Migration(2, "shares of split keys (E4)", """
        CREATE TABLE share_escrows (card_id BLOB NOT NULL, key_id BLOB NOT NULL, mode INTEGER NOT NULL,
                                    sealed_share BLOB NOT NULL, created_at INTEGER NOT NULL,
                                    PRIMARY KEY (card_id, key_id))
    """),
    Migration(3, "cards enrol with a signature of their identity key", """
        ALTER TABLE account_cards ADD COLUMN public_key BLOB;
        CREATE TABLE card_challenges (challenge BLOB PRIMARY KEY, expires_at INTEGER NOT NULL)
    """),
    Migration(4, "key rotations under way (E7)", """
        CREATE TABLE rotations (card_id BLOB PRIMARY KEY, old_key_id BLOB NOT NULL, new_key_id BLOB NOT NULL,
                                started_at INTEGER NOT NULL)
    """),
    Migration(5, "authentication factors, policies, guesses per factor (E5)", """
        CREATE TABLE factor_guesses (name TEXT NOT NULL, kind TEXT NOT NULL, failures INTEGER NOT NULL,
                                     PRIMARY KEY (name, kind));
        INSERT INTO factor_guesses (name, kind, failures) SELECT name, 'password', failures FROM guesses;
        DROP TABLE guesses;
        CREATE TABLE factors (account_id INTEGER NOT NULL, kind TEXT NOT NULL, ref TEXT NOT NULL, data BLOB NOT NULL,
                              created_at INTEGER NOT NULL, PRIMARY KEY (account_id, kind, ref));
        CREATE TABLE policies (account_id INTEGER PRIMARY KEY, policy TEXT NOT NULL);
        CREATE TABLE auth_challenges (challenge BLOB PRIMARY KEY, name TEXT NOT NULL, expires_at INTEGER NOT NULL)
    """),
    Migration(6, "expiry indexes: purging expired sessions and challenges touches only those", """
        CREATE INDEX sessions_by_expiry ON sessions (expires_at);
        CREATE INDEX sessions_by_account ON sessions (account_id);
        CREATE INDEX card_challenges_by_expiry ON card_challenges (expires_at);
        CREATE INDEX auth_challenges_by_expiry ON auth_challenges (expires_at)
    """),
    Migration(7, "guesses reserved before they are checked; locks that expire, with back-off", """
        ALTER TABLE factor_guesses ADD COLUMN lockouts INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE factor_guesses ADD COLUMN locked_until INTEGER NOT NULL DEFAULT 0;
        ALTER TABLE factor_guesses ADD COLUMN updated_at INTEGER NOT NULL DEFAULT 0;
        CREATE INDEX factor_guesses_by_update ON factor_guesses (updated_at)
    """),
    Migration(8, "a key's 2-of-3 share and its per-value part kept side by side (kind); older rows: ''", """
        CREATE TABLE share_escrows_by_kind (card_id BLOB NOT NULL, key_id BLOB NOT NULL, kind TEXT NOT NULL,
                                            mode INTEGER NOT NULL, sealed_share BLOB NOT NULL,
                                            created_at INTEGER NOT NULL, PRIMARY KEY (card_id, key_id, kind));
        INSERT INTO share_escrows_by_kind (card_id, key_id, kind, mode, sealed_share, created_at)
            SELECT card_id, key_id, '', mode, sealed_share, created_at FROM share_escrows;
        DROP TABLE share_escrows;
        ALTER TABLE share_escrows_by_kind RENAME TO share_escrows
    """),
    Migration(9, "escrows and shares in the order kept (seq): created_at ties within a second", """
        CREATE TABLE escrows_in_order (seq INTEGER PRIMARY KEY AUTOINCREMENT, card_id BLOB NOT NULL,
                                       key_id BLOB NOT NULL, mode INTEGER NOT NULL, sealed_seed BLOB NOT NULL,
                                       created_at INTEGER NOT NULL, UNIQUE (card_id, key_id));
        INSERT INTO escrows_in_order (card_id, key_id, mode, sealed_seed, created_at)
            SELECT card_id, key_id, mode, sealed_seed, created_at FROM escrows ORDER BY created_at, key_id;
        DROP TABLE escrows;
        ALTER TABLE escrows_in_order RENAME TO escrows;
        CREATE TABLE share_escrows_in_order (seq INTEGER PRIMARY KEY AUTOINCREMENT, card_id BLOB NOT NULL,
                                             key_id BLOB NOT NULL, kind TEXT NOT NULL, mode INTEGER NOT NULL,
                                             sealed_share BLOB NOT NULL, created_at INTEGER NOT NULL,
                                             UNIQUE (card_id, key_id, kind));
        INSERT INTO share_escrows_in_order (card_id, key_id, kind, mode, sealed_share, created_at)
            SELECT card_id, key_id, kind, mode, sealed_share, created_at FROM share_escrows
            ORDER BY created_at, key_id, kind;
        DROP TABLE share_escrows;
        ALTER TABLE share_escrows_in_order RENAME TO share_escrows
    """),
]

# What a share escrow is: share 1 of a 2-of-3 split, or the key manager's part 405 of the
# per-value split (E4). One of each per key; a row from before kinds were kept ('') serves either.
SHAMIR, PER_VALUE = "shamir", "per-value"

# Expired rows each write purges at most, from the table it writes: bounded work per request,
# and still more than one write adds, so expired rows never pile up.
PURGE_BATCH = 16
_KEYS = {"sessions": "token_hash", "card_challenges": "challenge", "auth_challenges": "challenge"}


def _purge(tx: Tx, table: str, now: int) -> None:
    """Delete up to PURGE_BATCH rows of ``table`` that expired before ``now`` (by the expiry index)."""
    key = _KEYS[table]
    tx.execute(f"DELETE FROM {table} WHERE {key} IN "
               f"(SELECT {key} FROM {table} WHERE expires_at < ? LIMIT ?)", (now, PURGE_BATCH))


@dataclass(frozen=True)
class Account:
    id: int
    name: str
    password_hash: str


@dataclass(frozen=True)
class Escrow:
    card_id: bytes
    key_id: bytes
    mode: int
    sealed_seed: bytes  # under the master key, never the seed itself
    created_at: int


class KeyManagerRepository:
    def __init__(self, db: Database) -> None:
        self.db = db

    def create_account(self, name: str, password_hash: str, now: int) -> bool:
        with self.db.transaction() as tx:
            if tx.execute("SELECT 1 FROM accounts WHERE name = ?", (name,)):
                return False
            tx.execute("INSERT INTO accounts (name, password_hash, created_at) VALUES (?, ?, ?)",
                       (name, password_hash, now))
            tx.execute("INSERT INTO audit (at, name, event) VALUES (?, ?, ?)", (now, name, "account created"))
        return True

    def account(self, name: str) -> Account | None:
        with self.db.transaction() as tx:
            rows = tx.execute("SELECT id, name, password_hash FROM accounts WHERE name = ?", (name,))
        return Account(int(rows[0][0]), str(rows[0][1]), str(rows[0][2])) if rows else None

    def account_by_id(self, account_id: int) -> Account | None:
        with self.db.transaction() as tx:
            rows = tx.execute("SELECT id, name, password_hash FROM accounts WHERE id = ?", (account_id,))
        return Account(int(rows[0][0]), str(rows[0][1]), str(rows[0][2])) if rows else None

    def set_password_hash(self, account_id: int, password_hash: str) -> None:
        with self.db.transaction() as tx:
            tx.execute("UPDATE accounts SET password_hash = ? WHERE id = ?", (password_hash, account_id))

    # --- guesses: counted per name, known or not, so a lock says nothing about existence -----
    #
    # Like the card's PIN counter, a guess is spent before it is checked: reserve_guess takes it
    # in one statement (an upsert, atomic on SQLite and PostgreSQL alike), so however many
    # guesses arrive at once, at most ``limit`` of them are ever verified per lock period.

    def failures(self, name: str, kind: str = "password") -> int:
        with self.db.transaction() as tx:
            rows = tx.execute("SELECT failures FROM factor_guesses WHERE name = ? AND kind = ?", (name, kind))
        return int(rows[0][0]) if rows else 0

    def reserve_guess(self, name: str, kind: str, now: int, limit: int, forget_before: int) -> int | None:
        """Spend one guess of ``kind`` at ``name``: its number (1..limit) in this lock period, or
        None when the factor is locked (``limit`` spent, or a lock not yet expired). Counters
        untouched since ``forget_before`` (and not locked) are purged, a batch per call: the
        table of guesses at names nobody owns stays bounded by the guess rate."""
        with self.db.transaction() as tx:
            tx.execute("DELETE FROM factor_guesses WHERE (name, kind) IN (SELECT name, kind FROM factor_guesses "
                       "WHERE updated_at < ? AND locked_until <= ? LIMIT ?)", (forget_before, now, PURGE_BATCH))
            rows = tx.execute(
                "INSERT INTO factor_guesses (name, kind, failures, lockouts, locked_until, updated_at) "
                "VALUES (?, ?, 1, 0, 0, ?) ON CONFLICT (name, kind) DO UPDATE "
                "SET failures = factor_guesses.failures + 1, updated_at = excluded.updated_at "
                "WHERE factor_guesses.failures < ? AND factor_guesses.locked_until <= ? RETURNING failures",
                (name, kind, now, limit, now))
        return int(rows[0][0]) if rows else None

    def give_back_guess(self, name: str, kind: str) -> None:
        """A reserved guess that was right, or never checked, is not a failure."""
        with self.db.transaction() as tx:
            tx.execute("UPDATE factor_guesses SET failures = failures - 1 WHERE name = ? AND kind = ? AND failures > 0",
                       (name, kind))

    def lock(self, name: str, kind: str, now: int, base: int, longest: int) -> int:
        """The last guess of a period failed: lock ``kind`` for ``base`` seconds doubled per earlier
        lock (at most ``longest``), and open a new period of guesses after it. Answers the end."""
        with self.db.transaction() as tx:
            rows = tx.execute("UPDATE factor_guesses SET lockouts = lockouts + 1, failures = 0, updated_at = ? "
                              "WHERE name = ? AND kind = ? RETURNING lockouts", (now, name, kind))
            lockouts = int(rows[0][0]) if rows else 1
            until = now + min(longest, base << min(lockouts - 1, 32))
            tx.execute("UPDATE factor_guesses SET locked_until = ? WHERE name = ? AND kind = ?", (until, name, kind))
        return until

    def locked_until(self, name: str, kind: str) -> int:
        with self.db.transaction() as tx:
            rows = tx.execute("SELECT locked_until FROM factor_guesses WHERE name = ? AND kind = ?", (name, kind))
        return int(rows[0][0]) if rows else 0

    def clear_failures(self, name: str, now: int, event: str | None = None, kind: str | None = None) -> None:
        """Every factor's count (the administrator's unlock), or one factor's."""
        with self.db.transaction() as tx:
            if kind is None:
                tx.execute("DELETE FROM factor_guesses WHERE name = ?", (name,))
            else:
                tx.execute("DELETE FROM factor_guesses WHERE name = ? AND kind = ?", (name, kind))
            if event:
                tx.execute("INSERT INTO audit (at, name, event) VALUES (?, ?, ?)", (now, name, event))

    def audit(self, name: str) -> list[tuple[int, str]]:
        with self.db.transaction() as tx:
            rows = tx.execute("SELECT at, event FROM audit WHERE name = ? ORDER BY id", (name,))
        return [(int(r[0]), str(r[1])) for r in rows]

    # --- sessions ----------------------------------------------------------------------------

    def add_session(self, token_hash: bytes, account_id: int, expires_at: int, now: int) -> None:
        with self.db.transaction() as tx:
            _purge(tx, "sessions", now)
            tx.execute("INSERT INTO sessions (token_hash, account_id, expires_at) VALUES (?, ?, ?)",
                       (token_hash, account_id, expires_at))

    def session_account(self, token_hash: bytes, now: int) -> int | None:
        with self.db.transaction() as tx:
            rows = tx.execute("SELECT account_id, expires_at FROM sessions WHERE token_hash = ?", (token_hash,))
        return int(rows[0][0]) if rows and int(rows[0][1]) > now else None

    def end_session(self, token_hash: bytes) -> None:
        with self.db.transaction() as tx:
            tx.execute("DELETE FROM sessions WHERE token_hash = ?", (token_hash,))

    def change_password(self, account_id: int, password_hash: str, keep: bytes) -> int:
        """The new hash, and every session of the account but ``keep`` ended, at once; answers
        how many ended."""
        with self.db.transaction() as tx:
            tx.execute("UPDATE accounts SET password_hash = ? WHERE id = ?", (password_hash, account_id))
            where = "account_id = ? AND token_hash <> ?"
            ended = len(tx.execute(f"SELECT 1 FROM sessions WHERE {where}", (account_id, keep)))
            tx.execute(f"DELETE FROM sessions WHERE {where}", (account_id, keep))
        return ended

    # --- cards and escrows -------------------------------------------------------------------

    def enrol_card(self, card_id: bytes, public_key: bytes, account_id: int) -> bool:
        """First owner wins, with the identity key the card proved; answers whether the card is
        (now) this account's with this key."""
        with self.db.transaction() as tx:
            rows = tx.execute("SELECT account_id, public_key FROM account_cards WHERE card_id = ?", (card_id,))
            if not rows:
                tx.execute("INSERT INTO account_cards (card_id, account_id, public_key) VALUES (?, ?, ?)",
                           (card_id, account_id, public_key))
                return True
            owner, known = int(rows[0][0]), rows[0][1]
            if owner != account_id or (known is not None and bytes(known) != public_key):
                return False
            if known is None:  # bound before cards proved their key
                tx.execute("UPDATE account_cards SET public_key = ? WHERE card_id = ?", (public_key, card_id))
        return True

    def card_key(self, card_id: bytes, account_id: int) -> bytes | None:
        """The identity key the account's card proved, if it did."""
        with self.db.transaction() as tx:
            rows = tx.execute("SELECT public_key FROM account_cards WHERE card_id = ? AND account_id = ?",
                              (card_id, account_id))
        return bytes(rows[0][0]) if rows and rows[0][0] is not None else None

    def add_challenge(self, challenge: bytes, expires_at: int, now: int) -> None:
        with self.db.transaction() as tx:
            _purge(tx, "card_challenges", now)
            tx.execute("INSERT INTO card_challenges (challenge, expires_at) VALUES (?, ?)", (challenge, expires_at))

    def take_challenge(self, challenge: bytes, now: int) -> bool:
        with self.db.transaction() as tx:
            rows = tx.execute("SELECT expires_at FROM card_challenges WHERE challenge = ?", (challenge,))
            tx.execute("DELETE FROM card_challenges WHERE challenge = ?", (challenge,))
        return bool(rows) and int(rows[0][0]) >= now

    def cards(self, account_id: int) -> list[bytes]:
        with self.db.transaction() as tx:
            rows = tx.execute("SELECT card_id FROM account_cards WHERE account_id = ? ORDER BY card_id",
                              (account_id,))
        return [bytes(r[0]) for r in rows]

    def put_escrow(self, e: Escrow, name: str) -> None:
        with self.db.transaction() as tx:
            tx.execute("DELETE FROM escrows WHERE card_id = ? AND key_id = ?", (e.card_id, e.key_id))
            tx.execute("INSERT INTO escrows (card_id, key_id, mode, sealed_seed, created_at) VALUES (?, ?, ?, ?, ?)",
                       (e.card_id, e.key_id, e.mode, e.sealed_seed, e.created_at))
            tx.execute("INSERT INTO audit (at, name, event) VALUES (?, ?, ?)",
                       (e.created_at, name, f"key {e.key_id.hex()} of card {e.card_id.hex()} escrowed"))

    def escrows(self, card_id: bytes) -> list[Escrow]:
        """The card's escrowed keys in the order kept, oldest first: the last is the newest even
        when two came in one second (created_at is kept to the second; seq never ties)."""
        with self.db.transaction() as tx:
            rows = tx.execute("SELECT card_id, key_id, mode, sealed_seed, created_at FROM escrows "
                              "WHERE card_id = ? ORDER BY seq", (card_id,))
        return [Escrow(bytes(r[0]), bytes(r[1]), int(r[2]), bytes(r[3]), int(r[4])) for r in rows]

    def log(self, name: str, event: str, now: int) -> None:
        with self.db.transaction() as tx:
            tx.execute("INSERT INTO audit (at, name, event) VALUES (?, ?, ?)", (now, name, event))

    def put_share(self, e: Escrow, name: str, kind: str) -> None:
        """Share 1 of a split key (E4) of ``kind``: alone it says nothing about the key. It
        replaces the key's share of the same kind only (a row of unknown kind may be the other's)."""
        with self.db.transaction() as tx:
            tx.execute("DELETE FROM share_escrows WHERE card_id = ? AND key_id = ? AND kind = ?",
                       (e.card_id, e.key_id, kind))
            tx.execute("INSERT INTO share_escrows (card_id, key_id, kind, mode, sealed_share, created_at) "
                       "VALUES (?, ?, ?, ?, ?, ?)", (e.card_id, e.key_id, kind, e.mode, e.sealed_seed, e.created_at))
            tx.execute("INSERT INTO audit (at, name, event) VALUES (?, ?, ?)",
                       (e.created_at, name, f"{kind} share of key {e.key_id.hex()} of card {e.card_id.hex()} escrowed"))

    def shares(self, card_id: bytes, kind: str) -> list[Escrow]:
        """The card's shares of ``kind`` (and of unknown kind) in the order kept, oldest first."""
        with self.db.transaction() as tx:
            rows = tx.execute("SELECT card_id, key_id, mode, sealed_share, created_at FROM share_escrows "
                              "WHERE card_id = ? AND kind IN (?, '') ORDER BY seq", (card_id, kind))
        return [Escrow(bytes(r[0]), bytes(r[1]), int(r[2]), bytes(r[3]), int(r[4])) for r in rows]

    # --- rotations (E7) ------------------------------------------------------------------------

    def rotation(self, card_id: bytes) -> tuple[bytes, bytes] | None:
        """(old key id, new key id) of the card's rotation under way."""
        with self.db.transaction() as tx:
            rows = tx.execute("SELECT old_key_id, new_key_id FROM rotations WHERE card_id = ?", (card_id,))
        return (bytes(rows[0][0]), bytes(rows[0][1])) if rows else None

    def begin_rotation(self, card_id: bytes, old_key_id: bytes, new_key_id: bytes, now: int) -> bool:
        """Record it; answers False when another rotation of the card is under way."""
        with self.db.transaction() as tx:
            rows = tx.execute("SELECT new_key_id FROM rotations WHERE card_id = ?", (card_id,))
            if rows:
                return bytes(rows[0][0]) == new_key_id
            tx.execute("INSERT INTO rotations (card_id, old_key_id, new_key_id, started_at) VALUES (?, ?, ?, ?)",
                       (card_id, old_key_id, new_key_id, now))
        return True

    def begin_rekey(self, card_id: bytes, old_key_id: bytes, new: Escrow, name: str) -> tuple[bytes, bytes]:
        """A re-keying by the key manager: the new key escrowed and the job recorded in one
        transaction, so a crash leaves neither an orphan key nor a job without its key. Answers
        the job under way instead when there is one (the same again after a lost answer)."""
        with self.db.transaction() as tx:
            # two at once: ON CONFLICT lets the loser read the winner's job (PostgreSQL's READ
            # COMMITTED would let both see no row), and it escrows nothing
            tx.execute("INSERT INTO rotations (card_id, old_key_id, new_key_id, started_at) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT (card_id) DO NOTHING", (card_id, old_key_id, new.key_id, new.created_at))
            rows = tx.execute("SELECT old_key_id, new_key_id FROM rotations WHERE card_id = ?", (card_id,))
            if bytes(rows[0][1]) != new.key_id:
                return bytes(rows[0][0]), bytes(rows[0][1])
            tx.execute("INSERT INTO escrows (card_id, key_id, mode, sealed_seed, created_at) VALUES (?, ?, ?, ?, ?)",
                       (new.card_id, new.key_id, new.mode, new.sealed_seed, new.created_at))
            tx.execute("INSERT INTO audit (at, name, event) VALUES (?, ?, ?)",
                       (new.created_at, name, f"card {card_id.hex()} re-keyed by the key manager to key "
                                              f"{new.key_id.hex()}"))
        return old_key_id, new.key_id

    def finish_rotation(self, card_id: bytes, key_id: bytes, retired: bytes | None, cards: list[bytes], name: str,
                        now: int) -> int:
        """Destroy every escrowed key and share of the card but ``key_id``, and the ``retired``
        key wherever the owner's cards kept it (a lost card's escrow of the same key), and close
        the rotation, in one transaction; answers how many went."""
        with self.db.transaction() as tx:
            gone = 0
            for table in ("escrows", "share_escrows"):
                for other in cards:
                    if other == card_id:
                        where, args = "card_id = ? AND key_id <> ?", (card_id, key_id)
                    elif retired is not None:
                        where, args = "card_id = ? AND key_id = ?", (other, retired)
                    else:
                        continue
                    gone += len(tx.execute(f"SELECT key_id FROM {table} WHERE {where}", args))
                    tx.execute(f"DELETE FROM {table} WHERE {where}", args)
            tx.execute("DELETE FROM rotations WHERE card_id = ?", (card_id,))
            tx.execute("INSERT INTO audit (at, name, event) VALUES (?, ?, ?)",
                       (now, name, f"card {card_id.hex()} rotated to key {key_id.hex()}: {gone} old key(s) destroyed"))
        return gone

    # --- factors and policies (E5) -------------------------------------------------------------

    def put_factor(self, account_id: int, kind: str, ref: str, data: bytes, name: str, now: int) -> None:
        with self.db.transaction() as tx:
            tx.execute("DELETE FROM factors WHERE account_id = ? AND kind = ? AND ref = ?", (account_id, kind, ref))
            tx.execute("INSERT INTO factors (account_id, kind, ref, data, created_at) VALUES (?, ?, ?, ?, ?)",
                       (account_id, kind, ref, data, now))
            tx.execute("INSERT INTO audit (at, name, event) VALUES (?, ?, ?)", (now, name, f"{kind} {ref} enrolled"))

    def factors(self, account_id: int, kind: str | None = None) -> list[tuple[str, str, bytes]]:
        """(kind, ref, data) of the account's enrolled factors."""
        with self.db.transaction() as tx:
            rows = tx.execute("SELECT kind, ref, data FROM factors WHERE account_id = ? ORDER BY kind, ref",
                              (account_id,))
        return [(str(r[0]), str(r[1]), bytes(r[2])) for r in rows if kind is None or r[0] == kind]

    def policy(self, account_id: int) -> str | None:
        with self.db.transaction() as tx:
            rows = tx.execute("SELECT policy FROM policies WHERE account_id = ?", (account_id,))
        return str(rows[0][0]) if rows else None

    def set_policy(self, account_id: int, policy: str, name: str, now: int) -> None:
        with self.db.transaction() as tx:
            tx.execute("DELETE FROM policies WHERE account_id = ?", (account_id,))
            tx.execute("INSERT INTO policies (account_id, policy) VALUES (?, ?)", (account_id, policy))
            tx.execute("INSERT INTO audit (at, name, event) VALUES (?, ?, ?)", (now, name, f"policy set: {policy}"))

    def add_auth_challenge(self, challenge: bytes, name: str, expires_at: int, now: int) -> None:
        with self.db.transaction() as tx:
            _purge(tx, "auth_challenges", now)
            tx.execute("INSERT INTO auth_challenges (challenge, name, expires_at) VALUES (?, ?, ?)",
                       (challenge, name, expires_at))

    def take_auth_challenge(self, challenge: bytes, name: str, now: int) -> bool:
        """True once for a live challenge issued for this name."""
        with self.db.transaction() as tx:
            rows = tx.execute("SELECT name, expires_at FROM auth_challenges WHERE challenge = ?", (challenge,))
            tx.execute("DELETE FROM auth_challenges WHERE challenge = ?", (challenge,))
        return bool(rows) and str(rows[0][0]) == name and int(rows[0][1]) >= now
