"""Power cut at every write of the key store's commands and of the encrypted backup's commits
(GENERATE KEY, IMPORT KEY, IMPORT SHARE, COMMIT BACKUP and COMMIT RESTORE of an encrypted value),
on the applet and on the Python card, through the same APDUs (tearing.py): after the power-on each
card is exactly before or exactly after the command, both sides are reached, and both cards
answer the probes alike. ``-s`` prints the tear-point counts.

A generated key is random, so GENERATE KEY is probed by what does not show its bytes: GET KEY
INFO with Le 3 (the key info itself when there is none, 6Cxx with its length when there is one).
Imported key material is the same on both cards, so those probes compare byte for byte.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from apdu import backup as b
from apdu import keys as k
from apdu import rotation as r
from apdu import seal, shamir
from apdu import wallet as w
from apdu.certificate import Certificate, Mode, make_digest, value_hash
from apdu.records import ValueRecord, ValueType
from apdu.signature import canonical
from card.javacard import AppletBuild, AppletCard

from .applet import NO_KIT
from .tearing import AppletOnHarness, Case, PythonCard, Step, Tearable, sweep
from .test_identity import KEYMGR, KEYMGR_PUB, VAULT, VAULT_PUB

if not os.environ.get("JC_HOME"):
    pytest.skip(NO_KIT, allow_module_level=True)

PIN = "1234"
SELECT = bytes(w.select())
VERIFY = bytes(w.verify(PIN))
PERSONALIZED = [SELECT, bytes(w.personalize(PIN, "87654321")), VERIFY, bytes(b.put_vault_key(VAULT_PUB)),
                bytes(k.put_keymgr_key(KEYMGR_PUB))]
KEYMGR_D = KEYMGR.private_numbers().private_value.to_bytes(32, "big")
SETUP = [SELECT, VERIFY]
PUBLIC, SYMMETRIC = k.KeyMode.PUBLIC, k.KeyMode.SYMMETRIC
MATERIAL = {PUBLIC: k.generate_material(PUBLIC), SYMMETRIC: k.generate_material(SYMMETRIC)}
SHARES = {mode: shamir.split(k.secret_of(m), 2, 3) for mode, m in MATERIAL.items()}
VALUE = ValueRecord(ValueType.COUPON, "Coupon", quantity=5).body()
KEY_INFO = bytes(k.get_key_info())
KEY_INFO_LE3 = bytes.fromhex("8062000003")  # the key info, or 6Cxx: its length, none of its bytes
NEXT_KEY_INFO_LE3 = bytes.fromhex("8062010003")
CARD_INFO = bytes(w.get_card_info())


def _ask(card: Tearable, apdu: bytes) -> bytes:
    data, sw = card.send(apdu)
    assert sw in ("9000", "6100") or sw.startswith("61"), sw
    return bytes.fromhex(data)


def card_id(card: Tearable) -> bytes:
    return _ask(card, bytes(b.get_identity()))[:8]


def transport(card: Tearable) -> bytes:
    """A new transport key of the card (sent while the step is made: part of the prepared state)."""
    return _ask(card, bytes(k.new_transport_key()))


def import_key(mode: k.KeyMode) -> Step:
    def made(card: Tearable) -> bytes:
        blob = seal.seal(transport(card), MATERIAL[mode], k.import_context(card_id(card), mode))
        return bytes(k.import_key(mode, blob))
    return made


def share(mode: k.KeyMode, x: int, sealed: bool) -> Step:
    """IMPORT SHARE of share x: sealed to a transport key the card makes now, or as a code."""
    def made(card: Tearable) -> bytes:
        info = k.key_info_of(MATERIAL[mode], mode)
        s = SHARES[mode][x - 1]
        if sealed:
            s = seal.seal(transport(card), s, k.share_import_context(card_id(card), info.key_id))
        return bytes(k.import_share(mode, info.key_id, s, sealed, info.public_key))
    return made


def certificate(card: Tearable, mode: k.KeyMode) -> bytes:
    """The vault's certificate of VALUE backed up encrypted by this card under MATERIAL."""
    cid = card_id(card)
    return signed(Certificate(cid, 7, value_hash(k.seal_value(MATERIAL[mode], mode, VALUE, cid)), make_digest(VALUE),
                              Mode.ENCRYPTED))


def signed(unsigned: Certificate) -> bytes:
    """The certificate signed by the vault, with a 70-byte signature: one length on both cards, so
    their records have one size."""
    signature = b""
    while len(signature) != 70:
        signature = canonical(VAULT.sign(unsigned.message(), ec.ECDSA(hashes.SHA256())))
    return bytes(Certificate(unsigned.card_id, unsigned.counter, unsigned.value_hash, unsigned.digest, unsigned.mode,
                             signature))


def commit_backup(mode: k.KeyMode) -> Step:
    def made(card: Tearable) -> bytes:
        return bytes(b.commit_backup(1, certificate(card, mode)))
    return made


def commit_restore(mode: k.KeyMode) -> Step:
    def made(card: Tearable) -> bytes:
        cid = card_id(card)
        info = k.key_info_of(MATERIAL[mode], mode)
        registered = b.RegisteredValue(make_digest(VALUE), info.key_id, k.seal_value(MATERIAL[mode], mode, VALUE, cid),
                                       b"\x30\x00")
        return bytes(b.commit_restore(1, registered.to_bytes()))
    return made


def swap_certificate(mode: k.KeyMode) -> Step:
    """SWAP CERTIFICATE of value 1 with the vault's certificate of it under the next key, which
    the card exports to the key manager (EXPORT KEY P1 01) while the step is made."""
    def made(card: Tearable) -> bytes:
        cid = card_id(card)
        plain = seal.open_sealed(KEYMGR_D, _ask(card, bytes(k.export_key(next_key=True))),
                                 k.export_context(cid, k.KeyInfo.from_bytes(_ask(card, bytes(k.get_key_info(True)))).key_id))
        registered = b.RegisteredValue(make_digest(VALUE), k.key_info_of(plain, mode).key_id,
                                       k.seal_value(plain, mode, VALUE, cid), b"\x30\x00")
        new = signed(Certificate(cid, 8, value_hash(registered.ciphertext), make_digest(VALUE), Mode.ENCRYPTED))
        return bytes(r.swap_certificate(1, new, registered.to_bytes()))
    return made


def with_key(mode: k.KeyMode) -> list[Step]:
    return [*PERSONALIZED, import_key(mode)]


# the listing and card info compare across cards; the record read back holds each card's own
# certificate (its id, X, the vault's signature), so it is compared within a card only
VALUE_PROBES = [[*SETUP, bytes(w.list_values())], [*SETUP, CARD_INFO], [*SETUP, bytes(w.read_value(1))]]
ROTATION_PROBES = [[*SETUP, bytes(w.list_values())], [*SETUP, NEXT_KEY_INFO_LE3, KEY_INFO_LE3],
                   [*SETUP, bytes(w.read_value(1))]]


def backed_up(mode: k.KeyMode) -> list[Step]:
    return [*with_key(mode), bytes(w.store_value(VALUE)), bytes(b.begin_encrypted_backup(1, b"")), commit_backup(mode)]
CASES = [
    Case("generate key, public", PERSONALIZED, SETUP, [bytes(k.generate_key(PUBLIC))],
         [[*SETUP, KEY_INFO_LE3], [*SETUP, bytes(k.get_key_info(True))]]),
    Case("generate key, symmetric", PERSONALIZED, SETUP, [bytes(k.generate_key(SYMMETRIC))], [[*SETUP, KEY_INFO_LE3]]),
    Case("import key, public", PERSONALIZED, SETUP, [import_key(PUBLIC)], [[*SETUP, KEY_INFO]]),
    Case("import key, symmetric", PERSONALIZED, SETUP, [import_key(SYMMETRIC)], [[*SETUP, KEY_INFO]]),
    Case("import share, the first", PERSONALIZED, SETUP, [share(PUBLIC, 1, True)],
         [[*SETUP, KEY_INFO], [*SETUP, bytes(k.import_share(PUBLIC, k.key_info_of(MATERIAL[PUBLIC], PUBLIC).key_id,
                                                              SHARES[PUBLIC][1], False,
                                                              MATERIAL[PUBLIC][32:]))]]),
    Case("import share, the one that installs the key", [*PERSONALIZED, share(PUBLIC, 1, True)], SETUP,
         [share(PUBLIC, 3, False)], [[*SETUP, KEY_INFO]]),
    Case("import share, symmetric, the one that installs the key", [*PERSONALIZED, share(SYMMETRIC, 2, True)],
         SETUP, [share(SYMMETRIC, 1, False)], [[*SETUP, KEY_INFO]]),
    Case("commit backup, encrypted", [*with_key(PUBLIC), bytes(w.store_value(VALUE)),
                                      bytes(b.begin_encrypted_backup(1, b""))],
         SETUP, [commit_backup(PUBLIC)], VALUE_PROBES),
    Case("commit restore, encrypted", [*with_key(SYMMETRIC), bytes(w.store_value(VALUE)),
                                       bytes(b.begin_encrypted_backup(1, b"")), commit_backup(SYMMETRIC),
                                       bytes(b.begin_restore(1))],
         SETUP, [commit_restore(SYMMETRIC)], VALUE_PROBES),
    Case("begin rotation", backed_up(PUBLIC), SETUP, [bytes(r.begin_rotation())], ROTATION_PROBES),
    Case("swap certificate", [*backed_up(PUBLIC), bytes(r.begin_rotation())], SETUP, [swap_certificate(PUBLIC)],
         ROTATION_PROBES),
    Case("swap certificate, symmetric", [*backed_up(SYMMETRIC), bytes(r.begin_rotation())], SETUP,
         [swap_certificate(SYMMETRIC)], ROTATION_PROBES),
    Case("commit rotation", [*backed_up(PUBLIC), bytes(r.begin_rotation()), swap_certificate(PUBLIC)], SETUP,
         [bytes(r.commit_rotation())], ROTATION_PROBES),
]


@pytest.fixture(scope="module")
def applet_card(applet_build: AppletBuild) -> Iterator[AppletCard]:
    with AppletCard(applet_build) as card:
        yield card


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_tearing_at_every_write_of_the_key_store(case: Case, applet_card: AppletCard, tmp_path: Path) -> None:
    python = sweep(PythonCard(), case)
    applet = sweep(AppletOnHarness(applet_card, tmp_path), case)
    for result in (python, applet):
        assert result.writes > 0
        assert not result.unexpected(), f"{result.card}, {case.name}: torn after {result.unexpected()} writes"
        assert result.reached() == {"before", "after"}, f"{result.card}, {case.name}: both sides of the commit"
    if not case.name.startswith(("generate", "begin rotation", "commit rotation")):  # keys made on each card
        assert applet.answers == python.answers
    shared = slice(0, 2) if case.probes in (VALUE_PROBES, ROTATION_PROBES) else slice(None)
    assert (applet.before[shared], applet.after[shared]) == (python.before[shared], python.after[shared])
    print(f"\n{case.name}: python card {python.writes} page writes; applet {applet.writes} persistent writes")
