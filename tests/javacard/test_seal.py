"""The card's sealing (javacard/src/evb/wallet/Seal.java) against apdu/seal.py, byte for byte,
through a test-only probe applet: what the host seals the card opens and the reverse, in both
modes, and every tampered, mis-addressed or malformed blob is refused with 6A80."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apdu import seal
from apdu.command import CommandApdu
from card import crypto

from ..conftest import FULL
from .applet import NO_KIT, AppletTransport, Build

if not os.environ.get("JC_HOME"):
    pytest.skip(NO_KIT, allow_module_level=True)

PROBE = "evb.wallet.SealProbe"
AID = bytes.fromhex("F0455642574C09")
OPEN, SEAL, OPEN_SYMMETRIC, SEAL_SYMMETRIC = 1, 2, 3, 4


@pytest.fixture(scope="module")
def probe(applet_build: Build) -> Iterator[AppletTransport]:
    transport = AppletTransport(applet_build, PROBE, AID)
    assert transport.send_and_receive(bytes(CommandApdu(0x00, 0xA4, 0x04, 0x00, AID)))[1] == 0x9000
    yield transport
    transport.close()


def ask(probe: AppletTransport, ins: int, key: bytes, context: bytes, data: bytes) -> tuple[bytes, int]:
    return probe.send_and_receive(bytes(CommandApdu(0x80, ins, 0, 0, key + bytes((len(context),)) + context + data,
                                                    ne=256)))


contexts = st.binary(max_size=40)
plaintexts = st.binary(max_size=90)


@settings(max_examples=200 if FULL else 20, deadline=None)
@given(plaintext=plaintexts, context=contexts)
def test_the_card_opens_what_the_host_seals(probe: AppletTransport, plaintext: bytes, context: bytes) -> None:
    scalar, public = crypto.generate()
    answer, sw = ask(probe, OPEN, scalar, context, seal.seal(public, plaintext, context))
    assert (answer, sw) == (plaintext, 0x9000)


@settings(max_examples=200 if FULL else 20, deadline=None)
@given(plaintext=plaintexts, context=contexts)
def test_the_host_opens_what_the_card_seals(probe: AppletTransport, plaintext: bytes, context: bytes) -> None:
    scalar, public = crypto.generate()
    blob, sw = ask(probe, SEAL, public, context, plaintext)
    assert sw == 0x9000
    assert seal.open_sealed(scalar, blob, context) == plaintext


@settings(max_examples=200 if FULL else 20, deadline=None)
@given(plaintext=plaintexts, context=contexts, key=st.binary(min_size=32, max_size=32))
def test_symmetric_both_ways(probe: AppletTransport, plaintext: bytes, context: bytes, key: bytes) -> None:
    assert ask(probe, OPEN_SYMMETRIC, key, context, seal.seal_symmetric(key, plaintext, context)) == (plaintext, 0x9000)
    blob, sw = ask(probe, SEAL_SYMMETRIC, key, context, plaintext)
    assert sw == 0x9000 and seal.open_symmetric(key, blob, context) == plaintext


def test_a_known_answer() -> None:
    """The host's deterministic seal (fixed ephemeral key and IV) is what the card must open:
    pinned here so a change to either side's scheme shows up as a changed vector."""
    scalar = bytes.fromhex("C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721")
    blob = seal.seal(seal.public_key(scalar), b"evb", b"ctx", ephemeral=bytes(31) + b"\x07", iv=bytes(16))
    assert blob.hex() == (
        "048e533b6fa0bf7b4625bb30667c01fb607ef9f8b8a80fef5b300628703187b2a373eb1dbde03318366d069f83a6f5900053c73633"
        "cb041b21c55e1a86c1f400b4"  # E = 7G
        "00000000000000000000000000000000"  # IV
        "1fceaaf0e78b7e41c02b619ff7e0f70e"  # C: "evb" padded to one block
        "0e06807966b358c4ebb0a24375ae1925")  # T


def test_known_answer_on_the_card(probe: AppletTransport) -> None:
    scalar = bytes.fromhex("C9AFA9D845BA75166B5C215767B1D6934E50C3DB36E89B127B8A622B120F6721")
    blob = seal.seal(seal.public_key(scalar), b"evb", b"ctx", ephemeral=bytes(31) + b"\x07", iv=bytes(16))
    assert ask(probe, OPEN, scalar, b"ctx", blob) == (b"evb", 0x9000)


def refused(probe: AppletTransport, ins: int, key: bytes, context: bytes, blob: bytes) -> None:
    assert ask(probe, ins, key, context, blob) == (b"", 0x6A80)


@pytest.mark.parametrize("where", ["E", "IV", "C", "T"])
def test_a_tampered_blob_is_refused(probe: AppletTransport, where: str) -> None:
    scalar, public = crypto.generate()
    blob = bytearray(seal.seal(public, b"a value worth money", b"ctx"))
    at = {"E": 40, "IV": 70, "C": 90, "T": len(blob) - 1}[where]
    blob[at] ^= 0x01
    refused(probe, OPEN, scalar, b"ctx", bytes(blob))


def test_another_context_key_or_shape_is_refused(probe: AppletTransport) -> None:
    scalar, public = crypto.generate()
    blob = seal.seal(public, b"a value", b"for card A")
    refused(probe, OPEN, scalar, b"for card B", blob)
    refused(probe, OPEN, crypto.generate()[0], b"for card A", blob)
    refused(probe, OPEN, scalar, b"for card A", blob[:-16])  # no tag
    refused(probe, OPEN, scalar, b"for card A", blob[:-1])  # not whole blocks
    refused(probe, OPEN, scalar, b"for card A", b"\x04" + bytes(64) + blob[65:])  # not a point
    refused(probe, OPEN, scalar, b"for card A", b"\x02" + blob[1:])  # only uncompressed points
    key = os.urandom(32)
    refused(probe, OPEN_SYMMETRIC, key, b"ctx", seal.seal_symmetric(os.urandom(32), b"x", b"ctx"))
    refused(probe, OPEN_SYMMETRIC, key, b"other", seal.seal_symmetric(key, b"x", b"ctx"))


def test_bad_padding_under_a_good_tag_is_refused(probe: AppletTransport) -> None:
    """A blob whose tag is right (made with the right keys) but whose plaintext has no 80 marker:
    the card checks the padding after the tag, as apdu/seal.py does."""
    key, context, salt, iv = os.urandom(32), b"ctx", os.urandom(16), os.urandom(16)
    keys = seal.hkdf(key, salt, seal.INFO + context, 64)
    body = seal.aes_cbc(keys[:32], iv, bytes(16), encrypt=True)  # all zeros: no 80
    import hmac
    from hashlib import sha256

    tag = hmac.new(keys[32:], salt + iv + body, sha256).digest()[:16]
    refused(probe, OPEN_SYMMETRIC, key, context, salt + iv + body + tag)
