"""Handovers from a lost card on both cards (docs/APDU.md 5.3): GET IMPORT COUNTER, IMPORT
CERTIFICATE and the import counter in SIGN RECEIPT, differential: every refusal in the Python
card's order, titles made from the digest (type OTHER, "certificate Y" at the counter's edges),
the imported values restored, random sequences; and the host's lost-card recovery onto a
replacement applet card, through a real key manager and vault on loopback.

The vault's handover signature names its target card, so each card gets its own handover of the
same certificate (the certificate, of the lost card, is one for both, so their records agree).
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from hypothesis import given, settings
from hypothesis import strategies as st

from apdu import backup as b
from apdu import tlv
from apdu.certificate import Certificate, make_digest, value_hash
from apdu.command import CommandApdu
from apdu.signature import canonical
from host import factors
from host.backup import connect, release_unneeded, restore
from host.keymgr_client import KeyManagerClient
from host.keys import enrol_card
from host.recovery import inherited, report_lost, take_handovers
from host.session import WalletSession
from host.vault_client import VaultClient
from servers.keymgr.server import running as keymgr_running
from servers.vault.server import running as vault_running

from ..conftest import FULL, ISSUER, PIN, PUK
from ..servers.test_recovery import PASSWORD, World, lose_a_card
from ..servers.test_split_key import FAST
from .applet import NO_KIT, AppletTransport
from .test_backup import (
    OPEN,
    OTHER_VAULT,
    PIN_VAULT,
    begin_restore,
    cancel,
    commit_restore,
    receipt,
    receipt_of,
)
from .test_differential import CARD_INFO, PERSONALIZE, POWER_CYCLE, SELECT
from .test_identity import OTHER_PUB, VAULT, VERIFY, Card, Step, run_pair
from .test_values import COUPON, LIST_ALL, MOVIE, PREPAID, bare, delete, read, store

if not os.environ.get("JC_HOME"):
    pytest.skip(NO_KIT, allow_module_level=True)

OLD_CARD = bytes.fromhex("0102030405060708")
GET_COUNTER = "8034000004"
_made: dict[str, bytes] = {}


def sign(key: ec.EllipticCurvePrivateKey, message: bytes) -> bytes:
    """A canonical signature of 70 bytes (r and s of 32 each), so that records have one length."""
    signature = b""
    while len(signature) != 70:
        r, s = decode_dss_signature(canonical(key.sign(message, ec.ECDSA(hashes.SHA256()))))
        signature = encode_dss_signature(r, s)
    return signature


def old_cert(counter: int = 7, value: str = MOVIE, *, digest: bytes | None = None, card_id: bytes = OLD_CARD,
             signer: ec.EllipticCurvePrivateKey = VAULT, signature: bytes | None = None) -> bytes:
    """The vault's certificate of ``value`` for the lost card, made once per recipe (one for both cards)."""
    recipe = repr((counter, value, digest, card_id, signer.public_key().public_numbers(), signature))
    if recipe not in _made:
        raw = bytes.fromhex(value)
        unsigned = Certificate(card_id, counter, value_hash(raw), make_digest(raw) if digest is None else digest)
        made = Certificate(card_id, counter, unsigned.value_hash, unsigned.digest,
                           signature=sign(signer, unsigned.message()) if signature is None else signature)
        _made[recipe] = made.to_bytes()
    return _made[recipe]


def handover(sequence: int, cert: bytes | Callable[[Card], bytes] | None = None, *,
             target: b.Identity | None = None, signer: ec.EllipticCurvePrivateKey = VAULT,
             raw: Callable[[bytes], bytes] | None = None) -> Callable[[Card], str]:
    """IMPORT CERTIFICATE of the vault's handover, signed for this card (or ``target``); ``raw``
    rewrites the encoded handover."""
    def make(card: Card) -> str:
        c = cert(card) if callable(cert) else (cert or old_cert())
        recipe = repr(("handover", sequence, c, target, signer.public_key().public_numbers()))
        if recipe not in card.made:
            h = b.Handover(sequence, c)
            card.made[recipe] = b.Handover(sequence, c, sign(signer, h.signed_part(target or card.identity))).to_bytes()
        data = raw(card.made[recipe]) if raw else card.made[recipe]
        # as the host encodes it (apdu.backup.import_certificate): short up to 255 bytes (the
        # refusals send 254, 255 and 256), Le 2
        apdu = CommandApdu(b.CLA_PROPRIETARY, b.INS_IMPORT_CERTIFICATE, 0, 0, data, ne=2)
        return bytes(apdu).hex().upper()
    return make


def flip_last(data: bytes) -> bytes:
    return data[:-1] + bytes((data[-1] ^ 1,))


SEQ_0 = bytes.fromhex("810400000000")


def inner(handover_: bytes) -> bytes:
    return tlv.decode(handover_)[0].value


def wrap(fields: bytes) -> bytes:
    return b"\xa1" + tlv.encode_length(len(fields)) + fields


HANDOVERS = [  # certificates handed over, each with the digest it lists by
    old_cert(7), old_cert(8, digest=b""), old_cert(0xFFFFFFFF, digest=bytes.fromhex("830548616E6469")),
    old_cert(0, COUPON, digest=bytes.fromhex("810103")), old_cert(1000000, PREPAID, digest=b""),
]
VECTORS: dict[str, list[Step]] = {
    "the counter, imports and restores": OPEN + [
        GET_COUNTER, "80340000", "8034000002", "803400000100", "80340001", "0034000004",
        handover(0), GET_COUNTER, handover(0), handover(2, HANDOVERS[1]),
        *(handover(n, HANDOVERS[n]) for n in range(1, 5)), GET_COUNTER, LIST_ALL, CARD_INFO,
        *(read(n) for n in range(1, 6)), "8014000500",
        begin_restore(1), commit_restore(1, MOVIE), read(1), receipt(7, MOVIE),
        begin_restore(2), commit_restore(2, PREPAID), commit_restore(2, MOVIE), read(2), receipt(8, MOVIE),
        begin_restore(4), commit_restore(4, COUPON), begin_restore(5), cancel(5), receipt(1000000, PREPAID),
        receipt(0xFFFFFFFF, MOVIE), delete(3), receipt(0xFFFFFFFF, MOVIE), LIST_ALL, GET_COUNTER,
    ],
    "refusals": OPEN + [
        handover(1), handover(0, target=b.Identity(OLD_CARD, OTHER_PUB)),
        handover(0, old_cert(signer=OTHER_VAULT), signer=OTHER_VAULT), handover(0, signer=OTHER_VAULT),
        handover(0, old_cert(signer=OTHER_VAULT)), handover(0, raw=flip_last),
        handover(0, old_cert(signature=bytes.fromhex("3000"))), handover(0, old_cert(signature=b"")),
        handover(0, lambda card: old_cert(card_id=card.card_id)),
        handover(0, old_cert(digest=bytes.fromhex("810101820149"))),  # a field no vault certifies
        handover(0, old_cert(digest=bytes.fromhex("810109"))), handover(0, old_cert(digest=bytes.fromhex("8300"))),
        handover(0, old_cert(digest=bytes.fromhex("8341") + b"n" * 65)),
        handover(0, old_cert(digest=bytes.fromhex("81010181010383024142"))),
        handover(0, old_cert(digest=bytes.fromhex("87042000040188042000033183014e"))),
        handover(0, old_cert(digest=bytes.fromhex("87042000023083014e"))),
        handover(0, old_cert(digest=bytes.fromhex("8404000000"))), handover(0, old_cert(digest=b"\x9f\x1f\x00")),
        handover(0, old_cert(digest=bytes.fromhex("8102"))),
        handover(0, raw=lambda d: b"\xa0" + d[1:]),
        handover(0, raw=lambda d: d + b"\x00"),
        handover(0, raw=lambda d: d[:-1]), handover(0, raw=lambda d: wrap(inner(d).replace(SEQ_0, b"\x81\x03" + bytes(3)))),
        handover(0, raw=lambda d: wrap(inner(d)[6:])), handover(0, raw=lambda d: wrap(inner(d) + b"\x83\x00")),
        handover(0, raw=lambda d: wrap(inner(d)[6:] + SEQ_0)),
        handover(0, raw=lambda d: wrap(inner(d).replace(SEQ_0, b"\x81\x81\x04" + bytes(4)))),
        handover(0, raw=lambda d: d.replace(b"\x80\x01\x01", b"\x80\x01\x02", 1)),
        handover(1, old_cert(digest=bytes(tlv.Tlv(0x8C, bytes(4100))))),  # over 4096 bytes: by its length
        "804E0001", "804E0000", "804E000001A100", "004E000000", GET_COUNTER, LIST_ALL, CARD_INFO,
    ],
    "before personalization, without the PIN or a vault key": [
        GET_COUNTER, handover(0), PERSONALIZE, GET_COUNTER, handover(0), VERIFY, handover(0), handover(5),
        PIN_VAULT, handover(0), "0020FF81", handover(1, HANDOVERS[1]), GET_COUNTER, POWER_CYCLE, SELECT,
        GET_COUNTER, LIST_ALL,
    ],
    "the index full": OPEN + [*(store(bare()) for _ in range(127)), handover(0), handover(1, HANDOVERS[1]),
                             GET_COUNTER, CARD_INFO],
}


@pytest.mark.parametrize("name", VECTORS)
def test_vectors(applet: AppletTransport, name: str) -> None:
    run_pair(applet, VECTORS[name], receipts=receipt_of)


VALUES = (MOVIE, PREPAID, COUPON)
ids = st.integers(1, 5)
steps: st.SearchStrategy[list[Step]] = st.one_of(
    st.builds(lambda n, h: [handover(n, h)], st.integers(0, 3), st.sampled_from(HANDOVERS)),
    st.builds(lambda v: [store(v)], st.sampled_from(VALUES)),
    st.builds(lambda i: [begin_restore(i)], ids),
    st.builds(lambda i, v: [commit_restore(i, v)], ids, st.sampled_from(VALUES)),
    st.builds(lambda i: [cancel(i)], ids),
    st.builds(lambda i: [delete(i)], ids),
    st.builds(lambda c, v: [receipt(c, v)], st.sampled_from([7, 8, 0, 1000000, 0xFFFFFFFF]), st.sampled_from(VALUES)),
    st.sampled_from([[GET_COUNTER], [LIST_ALL], [VERIFY], ["0020FF81"], [POWER_CYCLE, SELECT], [CARD_INFO]]),
)


@settings(max_examples=400 if FULL else 40, deadline=None)
@given(st.lists(steps, min_size=1, max_size=25))
def test_random_handover_sequences(applet_jvm: AppletTransport, sequence: list[list[Step]]) -> None:
    applet_jvm.new_card()
    run_pair(applet_jvm, [*OPEN, *(s for step in sequence for s in step), LIST_ALL, GET_COUNTER],
             receipts=receipt_of)


# --- the host's recovery of a lost card onto a replacement applet card ----------------------


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    with keymgr_running(f"sqlite:///{tmp_path / 'km.db'}", tmp_path / "km.pem", tmp_path / "master.key",
                        FAST) as km_url:
        with KeyManagerClient(km_url) as km:
            trusted = km.statement_key()
        with vault_running(f"sqlite:///{tmp_path / 'vault.db'}", tmp_path / "vault.pem", keymgr_key=trusted) as url:
            yield World(km_url, url)


def test_a_lost_cards_values_come_back_once_on_a_replacement_applet(applet: AppletTransport, world: World) -> None:
    """Card A (the Python card) backs three values up and is lost; the owner reports it and the
    applet card takes the handovers and restores each value once; a re-run takes nothing more;
    every registration is released against the applet's receipts, which carry its import counter.
    (host.recovery.recover's steps but its key step, GET KEY INFO, which waits for the applet's
    key store: a plain backup needs no key.)"""
    lost = lose_a_card(world, encrypted=False)
    session = WalletSession(applet)
    ISSUER.personalize(session, PIN, PUK)
    session.verify_pin(PIN)
    with KeyManagerClient(world.keymgr_url) as km, VaultClient(world.vault_url) as vault:
        factors.login(km, lost.name, PASSWORD)
        connect(session, vault)
        for run in range(2):  # again: the report is harmless, nothing more is handed over
            enrol_card(session, km)
            report_lost(km, vault, lost.card_id, session.identity().card_id)
            assert take_handovers(session, vault) == (3 if run == 0 else 0) and session.import_counter() == 3
            for value_id in inherited(session):
                assert restore(session, vault, value_id).action == "restored"
            release_unneeded(session, vault)
        assert Counter(session.read(e.id).body() for e in session.list()) == Counter(lost.backed_up)
        assert {e.flags for e in session.list()} == {0}
        assert vault.registrations() == []
