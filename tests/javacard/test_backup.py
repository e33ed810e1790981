"""Plain backup and restore on both cards (docs/APDU.md 5): BEGIN / COMMIT BACKUP, CANCEL PENDING,
BEGIN / COMMIT RESTORE, SIGN RECEIPT, and the vault-certificate checks, differential.

The vault's certificate names the card, so each card gets its own (made by the step from that
card's id); the vault's signatures in answers are named by the card they were made for, and the
card's receipts count as equal when canonical and verifying under its identity key.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from apdu import backup as b
from apdu.certificate import Certificate, Mode, make_digest, value_hash
from apdu.signature import ORDER, canonical, verify

from ..conftest import FULL
from .applet import NO_KIT, AppletTransport
from .test_differential import CARD_INFO, PERSONALIZE, POWER_CYCLE, SELECT
from .test_identity import OTHER_PUB, VAULT, VAULT_PUB, VERIFY, Card, Step, apdu, keypair, run_pair
from .test_values import BIG, COUPON, LIST_ALL, MOVIE, PREPAID, body, command, delete, modify, read, store

if not os.environ.get("JC_HOME"):
    pytest.skip(NO_KIT, allow_module_level=True)

OTHER_VAULT, _ = keypair()
PIN_VAULT = apdu("80320000", VAULT_PUB)
OPEN: list[Step] = [PERSONALIZE, VERIFY, PIN_VAULT]
SMALL = body(name="nnnn")  # canonical, as the card stores it: what the vault certifies


def cert(card: Card, value: str, counter: int = 7, *, card_id: bytes | None = None, x: bytes | None = None,
         digest: bytes | None = None, mode: Mode = Mode.PLAIN, signer: ec.EllipticCurvePrivateKey = VAULT,
         high_s: bool = False) -> bytes:
    """The vault's certificate of ``value`` for ``card`` (or with one field made wrong).

    Made once per card and recipe (a retry sends the same bytes), with a 70-byte signature, so
    that both cards' records have the same length whatever their signatures."""
    recipe = repr((value, counter, card_id, x, digest, mode, signer.public_key().public_numbers(), high_s))
    if recipe in card.made:
        return card.made[recipe]
    raw = bytes.fromhex(value)
    unsigned = Certificate(card_id or card.card_id, counter, x or value_hash(raw),
                           make_digest(raw) if digest is None else digest, mode)
    signature = b""
    while len(signature) != 70:  # r and s of 32 bytes each, neither with a leading 00
        r, s = decode_dss_signature(canonical(signer.sign(unsigned.message(), ec.ECDSA(hashes.SHA256()))))
        signature = encode_dss_signature(r, ORDER - s if high_s else s)
    signed = bytes(Certificate(unsigned.card_id, counter, unsigned.value_hash, unsigned.digest, mode, signature))
    card.seen.append(signature)
    card.made[recipe] = signed
    return signed


def value_id(n: int) -> str:
    return f"{n:04X}"


def begin_backup(n: int, le: str = "00") -> str:
    return f"8040{value_id(n)}{le}"


def begin_restore(n: int, le: str = "00") -> str:
    return f"8046{value_id(n)}{le}"


def cancel(n: int) -> str:
    return f"8044{value_id(n)}"


def commit_backup(n: int, value: str, option: int = 0, **kwargs: object) -> Callable[[Card], str]:
    return lambda card: command(f"8042{value_id(n)}", f"{option:02X}" + cert(card, value, **kwargs).hex(), "")  # type: ignore[arg-type]


def commit_raw(n: int, data: bytes) -> str:
    return command(f"8042{value_id(n)}", data.hex(), "")


def commit_restore(n: int, value: str) -> str:
    return command(f"8048{value_id(n)}", value, "")


def receipt(counter: int, value: str) -> str:
    return apdu("804A0000", counter.to_bytes(4, "big") + value_hash(bytes.fromhex(value)), "00")


def receipt_of(card: Card, command_: bytes, data: bytes) -> bytes:
    """A receipt answer: 4-byte import counter, then a canonical signature that verifies."""
    counter, x = command_[5:9], command_[9:41]
    for name, vault in ((b"the vault", VAULT_PUB), (b"the other vault", OTHER_PUB)):  # whichever is pinned
        message = b.receipt_message(vault, card.card_id, int.from_bytes(counter, "big"), x,
                                    int.from_bytes(data[:4], "big"))
        if verify(card.public_key, data[4:], message):
            return data[:4] + b"<a receipt that verifies for " + name + b">"
    return data


VECTORS: dict[str, list[Step]] = {
    "backup, receipts and restore": OPEN + [
        store(MOVIE), store(PREPAID), store(SMALL), store(BIG),
        begin_backup(1), begin_backup(1), begin_backup(1, "05"), LIST_ALL, commit_backup(1, MOVIE),
        commit_backup(1, MOVIE), commit_backup(1, MOVIE, counter=8), read(1), LIST_ALL, CARD_INFO,
        receipt(7, MOVIE), receipt(8, MOVIE), receipt(7, PREPAID),
        begin_restore(1), begin_restore(1), begin_restore(1, "10"), "80C0000000", read(1, "0000"),
        commit_restore(1, MOVIE), commit_restore(1, MOVIE), read(1), receipt(7, MOVIE), CARD_INFO,
        # a certificate record longer than the value: it moves; a value longer than its certificate record
        begin_backup(3), commit_backup(3, SMALL), begin_backup(4), commit_backup(4, BIG), CARD_INFO,
        begin_restore(4), commit_restore(4, BIG), begin_restore(3), commit_restore(3, SMALL), read(3), read(4),
        LIST_ALL, CARD_INFO,
    ],
    "keeping the value": OPEN + [
        store(PREPAID), begin_backup(1), commit_backup(1, PREPAID, 1), LIST_ALL, commit_backup(1, PREPAID, 1),
        commit_backup(1, PREPAID, 0), receipt(7, PREPAID), modify(1, 1, 100), LIST_ALL, receipt(7, PREPAID),
        begin_backup(1), "8018000105010000000100", delete(1), receipt(7, PREPAID), cancel(1), cancel(1), delete(1),
        CARD_INFO,
    ],
    "certificate refusals": OPEN + [
        store(MOVIE), commit_backup(1, MOVIE), begin_backup(1),
        commit_backup(1, MOVIE, card_id=bytes(8)), commit_backup(1, MOVIE, x=bytes(32)),
        commit_backup(1, MOVIE, digest=bytes.fromhex("830141")), commit_backup(1, MOVIE, digest=bytes.fromhex("8208")),
        commit_backup(1, MOVIE, digest=bytes.fromhex("810101810101")), commit_backup(1, MOVIE, digest=b"\x81"),
        cancel(1), begin_backup(1), commit_backup(1, MOVIE, mode=Mode.ENCRYPTED), commit_backup(1, MOVIE, high_s=True),
        commit_backup(1, MOVIE, signer=OTHER_VAULT), commit_backup(1, MOVIE, 2), commit_raw(1, b"\x00"),
        commit_raw(1, b"\x00" + bytes.fromhex("800101")), "80420001",
        lambda card: commit_raw(1, b"\x00" + cert(card, MOVIE)[:-1]),
        lambda card: commit_raw(1, b"\x00" + cert(card, MOVIE) + b"\x00"),
        lambda card: commit_raw(1, b"\x00" + cert(card, MOVIE).replace(b"\x80\x01\x01", b"\x80\x01\x02", 1)),
        lambda card: commit_raw(1, b"\x00" + cert(card, MOVIE).replace(b"\x84\x01\x00", b"\x84\x01\x02", 1)),
        commit_backup(9, MOVIE), commit_backup(1, MOVIE, counter=0xFFFFFFFF, digest=b""), read(1), LIST_ALL,
    ],
    "pending values": OPEN + [
        store(MOVIE), store(COUPON), begin_backup(2), modify(2, 2, 1), delete(2), begin_restore(2),
        commit_restore(2, COUPON), "80400002", "8040000201", begin_backup(9), "80400000", "0040000100",
        commit_backup(2, COUPON), begin_backup(2), apdu("80320000", OTHER_PUB), apdu("80320000", VAULT_PUB),
        begin_restore(2), commit_restore(2, MOVIE), commit_restore(2, COUPON[:-2]),
        commit_restore(2, "00" * 1025), commit_restore(2, ""), commit_restore(9, COUPON),
        commit_restore(2, COUPON + "8F0400000000"), commit_restore(2, COUPON + "8C00"),
        commit_restore(2, "8D0100" + COUPON), commit_restore(2, COUPON), commit_restore(1, MOVIE), cancel(2), begin_backup(2), commit_restore(2, COUPON), read(2), LIST_ALL,
        POWER_CYCLE, SELECT, VERIFY, LIST_ALL, begin_restore(2), commit_restore(2, COUPON), LIST_ALL,
    ],
    "without a vault key, PIN or personalization": [
        begin_backup(1), receipt(7, MOVIE), PERSONALIZE, store(MOVIE), begin_backup(1), VERIFY, store(MOVIE),
        begin_backup(1), commit_backup(1, MOVIE), receipt(7, MOVIE), "804A00002300" + "00" * 34,
        "804A00012400" + "00" * 36, PIN_VAULT, receipt(7, MOVIE), "0020FF81", cancel(1), begin_restore(1),
        commit_restore(1, MOVIE), receipt(1, MOVIE),
    ],
}


@pytest.mark.parametrize("name", VECTORS)
def test_vectors(applet: AppletTransport, name: str) -> None:
    run_pair(applet, VECTORS[name], receipts=receipt_of)



# --- random sequences over the value and backup commands --------------------------------------

VALUES = (MOVIE, PREPAID, COUPON, SMALL, BIG)
values = st.sampled_from(VALUES)
ids = st.integers(1, 5)
backup_steps: st.SearchStrategy[list[Step]] = st.one_of(
    st.builds(lambda v: [store(v)], values),
    st.builds(lambda i, le: [begin_backup(i, le)], ids, st.sampled_from(["00", "", "05"])),
    st.builds(lambda i, v, option, counter: [commit_backup(i, v, option, counter=counter)], ids, values,
              st.sampled_from([0, 0, 1]), st.sampled_from([1, 2])),
    st.builds(lambda i: [cancel(i)], ids),
    st.builds(lambda i, le: [begin_restore(i, le)], ids, st.sampled_from(["00", "", "10"])),
    st.builds(lambda i, v: [commit_restore(i, v)], ids, values),
    st.builds(lambda counter, v: [receipt(counter, v)], st.sampled_from([1, 2]), values),
    st.builds(lambda i: [modify(i, 1, 1), modify(i, 2, 1)], ids),
    st.builds(lambda i: [delete(i)], ids),
    st.builds(lambda i: [read(i)], ids),
    st.sampled_from([[LIST_ALL], ["80C0000000"], [VERIFY], ["0020FF81"], [PIN_VAULT],
                     [apdu("80320000", OTHER_PUB)], [POWER_CYCLE, SELECT], [CARD_INFO]]),
)


@settings(max_examples=500 if FULL else 60, deadline=None)
@given(st.lists(backup_steps, min_size=1, max_size=30))
def test_random_backup_sequences(applet_jvm: AppletTransport, sequence: list[list[Step]]) -> None:
    applet_jvm.new_card()
    run_pair(applet_jvm, [*OPEN, *(s for step in sequence for s in step), "80120000000000", CARD_INFO],
             receipts=receipt_of)
