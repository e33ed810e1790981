"""COMMIT ASSISTED RESTORE on both cards (docs/APDU.md 5.2, seed E6), differential: the value the
key manager sealed to the card under ECDH(transport key, key manager key), for the card and the
certificate, restored in place of a plain, an encrypted and a handed-over certificate; every
refusal (no transport key, another sealer, another context, a tampered or malformed blob, a value
that is not the certified one, lengths); random sequences.

Each card makes its own transport key, so each gets its own blob of the same value
(test_keys.run_keys learns the key from NEW TRANSPORT KEY's answer).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apdu import keys as k
from apdu import seal
from apdu.certificate import Mode, make_digest, value_hash

from ..conftest import FULL
from .applet import NO_KIT, AppletTransport
from .test_backup import begin_backup, begin_restore, cancel, cert, commit_backup, receipt, value_id
from .test_differential import CARD_INFO, POWER_CYCLE, SELECT
from .test_handover import HANDOVERS, handover
from .test_identity import VERIFY, Card
from .test_keys import (
    KEYMGR_D,
    MATERIAL,
    NEW_TRANSPORT,
    OPEN,
    PUBLIC,
    VAULT_D,
    Step,
    begin_encrypted,
    commit_encrypted,
    import_key,
    learned,
    run_keys,
)
from .test_values import BIG, COUPON, LIST_ALL, MOVIE, PREPAID, body, command, read, store

if not os.environ.get("JC_HOME"):
    pytest.skip(NO_KIT, allow_module_level=True)

LOG_OUT = "0020FF81"


def assisted(n: int, value: str | bytes, certificate: Callable[[Card], bytes], *, sealer: bytes = KEYMGR_D,
             context: Callable[[Card, bytes], bytes] | None = None,
             blob: Callable[[bytes], bytes] | None = None) -> Callable[[Card], str]:
    """COMMIT ASSISTED RESTORE of ``value`` sealed by the key manager (or ``sealer``) to the card's
    transport key, for the card and its certificate (or ``context``); ``blob`` rewrites the blob."""
    def made(card: Card) -> str:
        raw = bytes.fromhex(value) if isinstance(value, str) else value
        cert_bytes = certificate(card)
        ctx = context(card, cert_bytes) if context else k.assisted_context(card.card_id, cert_bytes)
        sealed = seal.seal_symmetric(seal.ecdh(sealer, learned(card).transport), raw, ctx)
        return command(f"8038{value_id(n)}", (blob(sealed) if blob else sealed).hex(), "")
    return made


def plain(value: str) -> Callable[[Card], bytes]:
    """The vault's certificate of ``value`` for this card (test_backup's, counter 7)."""
    return lambda card: cert(card, value)


def encrypted(value: str) -> Callable[[Card], bytes]:
    """The vault's certificate of the E2 ciphertext of ``value`` (test_keys.commit_encrypted's)."""
    raw = bytes.fromhex(value)
    return lambda card: cert(card, value, 7, x=value_hash(k.seal_value(MATERIAL[PUBLIC], PUBLIC, raw, card.card_id)),
                             digest=make_digest(raw), mode=Mode.ENCRYPTED)


def other_card(card: Card, cert_bytes: bytes) -> bytes:
    return k.ASSISTED_CONTEXT + bytes(8) + hashlib.sha256(cert_bytes).digest()


def flip(blob: bytes) -> bytes:
    return blob[:-1] + bytes((blob[-1] ^ 1,))


LONG = body(name="Long", payload=bytes(512), remarks="r" * 64, issuer="i" * 64, place="p" * 64)
BACKED_UP: list[Step] = [store(MOVIE), store(PREPAID), begin_backup(1), commit_backup(1, MOVIE)]
VECTORS: dict[str, list[Step]] = {
    "a plain certificate": OPEN + BACKED_UP + [
        assisted(1, MOVIE, plain(MOVIE)), NEW_TRANSPORT, "80380001", "8038000001AA", "8038000101AA",
        assisted(9, MOVIE, plain(MOVIE)), assisted(1, MOVIE, plain(MOVIE), sealer=VAULT_D),
        assisted(1, MOVIE, plain(MOVIE), context=other_card), assisted(1, MOVIE, plain(PREPAID)),
        assisted(1, MOVIE, plain(MOVIE), blob=flip), assisted(1, MOVIE, plain(MOVIE), blob=lambda b_: b_[:-16]),
        assisted(1, MOVIE, plain(MOVIE), blob=lambda b_: b_[:63]), assisted(1, MOVIE, plain(MOVIE), blob=lambda b_: b_[:16]),
        assisted(1, PREPAID, plain(MOVIE)), assisted(1, MOVIE + "8F0400000000", plain(MOVIE)),
        assisted(1, "8D0100" + MOVIE, plain(MOVIE)), assisted(1, MOVIE[:-2], plain(MOVIE)),
        assisted(1, b"\x00" * 1030, plain(MOVIE)), assisted(1, b"\x00" * 1041, plain(MOVIE)),
        assisted(1, MOVIE, plain(MOVIE), blob=lambda b_: b_ + bytes(2000)), LIST_ALL, LOG_OUT,
        assisted(1, MOVIE, plain(MOVIE)), VERIFY, assisted(1, MOVIE, plain(MOVIE)), read(1),
        assisted(1, MOVIE, plain(MOVIE)), assisted(1, PREPAID, plain(MOVIE)), assisted(2, PREPAID, plain(PREPAID)),
        receipt(7, MOVIE), LIST_ALL, CARD_INFO,
    ],
    "pending, kept and moved": OPEN + [
        store(COUPON), store(BIG), begin_backup(1), commit_backup(1, COUPON, 1), NEW_TRANSPORT,
        assisted(1, COUPON, plain(COUPON)), begin_backup(2), assisted(2, BIG, plain(BIG)), commit_backup(2, BIG),
        begin_restore(2), assisted(2, BIG, plain(BIG)), read(2), store(LONG), begin_backup(3),
        commit_backup(3, LONG), store(BIG), assisted(3, LONG, plain(LONG)), LIST_ALL, CARD_INFO,
        POWER_CYCLE, SELECT, VERIFY, assisted(3, LONG, plain(LONG)), cancel(3), read(3),
    ],
    "without a key manager pinned": [
        *OPEN[:3], *BACKED_UP, NEW_TRANSPORT, assisted(1, MOVIE, plain(MOVIE)), OPEN[3],
        assisted(1, MOVIE, plain(MOVIE)), read(1),
    ],
    "an encrypted certificate": OPEN + [
        store(MOVIE), NEW_TRANSPORT, import_key(1), begin_encrypted(1), commit_encrypted(1, MOVIE),
        assisted(1, MOVIE, encrypted(MOVIE)), NEW_TRANSPORT, assisted(1, PREPAID, encrypted(MOVIE)),
        assisted(1, MOVIE, plain(MOVIE)), assisted(1, MOVIE, encrypted(MOVIE)),
        read(1), LIST_ALL,
    ],
    "a handed-over certificate": OPEN + [
        handover(0), NEW_TRANSPORT, assisted(1, MOVIE, lambda card: HANDOVERS[1]),
        assisted(1, MOVIE, lambda card: HANDOVERS[0]), read(1), handover(1, HANDOVERS[1]),
        assisted(2, MOVIE, lambda card: HANDOVERS[1]), read(2), LIST_ALL,
    ],
}


@pytest.mark.parametrize("name", VECTORS)
def test_vectors(applet: AppletTransport, name: str) -> None:
    run_keys(applet, VECTORS[name])


def backed_up(n: int, value: str) -> list[Step]:
    return [begin_backup(n), commit_backup(n, value)]


VALUES = (MOVIE, PREPAID, COUPON)
ids = st.integers(1, 4)
values = st.sampled_from(VALUES)
steps: st.SearchStrategy[list[Step]] = st.one_of(
    st.builds(lambda v: [store(v)], values),
    st.builds(lambda i, v: backed_up(i, v), ids, values),
    st.builds(lambda i, v, c: [assisted(i, v, plain(c))], ids, values, values),
    st.builds(lambda i, v: [assisted(i, v, plain(v), blob=flip)], ids, values),
    st.builds(lambda i: [begin_restore(i)], ids),
    st.builds(lambda i: [cancel(i)], ids),
    st.sampled_from([[NEW_TRANSPORT], [LIST_ALL], [LOG_OUT], [VERIFY], [POWER_CYCLE, SELECT, VERIFY], [CARD_INFO]]),
)


@settings(max_examples=300 if FULL else 30, deadline=None)
@given(st.lists(steps, min_size=1, max_size=20))
def test_random_assisted_sequences(applet_jvm: AppletTransport, sequence: list[list[Step]]) -> None:
    applet_jvm.new_card()
    run_keys(applet_jvm, [*OPEN, *(s for step in sequence for s in step), LIST_ALL])
