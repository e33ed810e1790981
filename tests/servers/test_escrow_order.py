"""Issue 17's note: the key manager takes a card's newest escrow (or share) as the last of the
card's rows. Kept in the order they came (migration 9's seq), not by ``created_at``, which is
kept to the second: two escrows in one second used to leave the choice to the database."""

from __future__ import annotations

from servers.keymgr.repository import MIGRATIONS, SHAMIR, Escrow, KeyManagerRepository
from servers.storage import Database

CARD = bytes(8)
OLDER, NEWER = b"\xff" * 8, b"\x00" * 8  # key ids that sort the other way round
SAME_SECOND = 1_800_000_000


def test_the_later_of_two_escrows_in_one_second_is_the_newest(db_url: str) -> None:
    db = Database.open(db_url, MIGRATIONS)
    try:
        repo = KeyManagerRepository(db)
        repo.put_escrow(Escrow(CARD, OLDER, 1, b"older", SAME_SECOND), "hanako")
        repo.put_escrow(Escrow(CARD, NEWER, 1, b"newer", SAME_SECOND), "hanako")
        assert [e.key_id for e in repo.escrows(CARD)] == [OLDER, NEWER]
        repo.put_escrow(Escrow(CARD, OLDER, 1, b"older again", SAME_SECOND), "hanako")  # escrowed anew: newest
        assert [e.sealed_seed for e in repo.escrows(CARD)] == [b"newer", b"older again"]
        repo.put_share(Escrow(CARD, OLDER, 1, b"share of older", SAME_SECOND), "hanako", SHAMIR)
        repo.put_share(Escrow(CARD, NEWER, 1, b"share of newer", SAME_SECOND), "hanako", SHAMIR)
        assert [e.key_id for e in repo.shares(CARD, SHAMIR)] == [OLDER, NEWER]
    finally:
        db.close()


def test_escrows_kept_before_the_order_column_keep_their_order(db_url: str) -> None:
    """Migration 9 numbers the rows it finds oldest first; new ones come after them."""
    before = Database.open(db_url, MIGRATIONS[:8])
    with before.transaction() as tx:
        for key_id, at in ((NEWER, 2), (OLDER, 1)):
            tx.execute("INSERT INTO escrows (card_id, key_id, mode, sealed_seed, created_at) VALUES (?, ?, ?, ?, ?)",
                       (CARD, key_id, 1, b"legacy", at))
    before.close()
    db = Database.open(db_url, MIGRATIONS)
    try:
        repo = KeyManagerRepository(db)
        assert [e.key_id for e in repo.escrows(CARD)] == [OLDER, NEWER]
        repo.put_escrow(Escrow(CARD, bytes(range(8)), 1, b"new", 1), "hanako")  # a clock set back: still newest
        assert repo.escrows(CARD)[-1].sealed_seed == b"new"
    finally:
        db.close()
