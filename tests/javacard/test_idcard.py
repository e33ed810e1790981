"""The ID-card applet and the Python ID card answer alike: blank and issued, every refusal, the
PIN's counter, and a login signature each verifies under its own card's key (the key pair is made
by each card, so keys, documents and signatures differ by design and are checked, not compared).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apdu import idcard as i
from apdu.command import CommandApdu
from apdu.context import audience
from apdu.signature import is_canonical
from card import SimulatedCard, crypto
from card.javacard import ID_APPLET_CLASS
from host.idcard import IdCardSession
from host.transport.inprocess import connect_card

from ..card.test_idcard import STRUCTURE, _raw
from ..conftest import FULL, ISSUER
from .applet import NO_KIT, AppletTransport, Build

if not os.environ.get("JC_HOME"):
    pytest.skip(NO_KIT, allow_module_level=True)

EXPIRY = date(2031, 3, 31)
KEYMGR = ISSUER.public_key
SELECT = bytes(CommandApdu(0x00, 0xA4, 0x04, 0x00, i.AID_IDCARD))


@pytest.fixture(scope="module")
def id_jvm(applet_build: Build) -> Iterator[AppletTransport]:
    transport = AppletTransport(applet_build, ID_APPLET_CLASS, i.AID_IDCARD)
    yield transport
    transport.close()


class PythonIdCard:
    """The Python ID card behind a transport that, like the applet's, can cut its power."""

    def __init__(self, protocol: str = "T=1") -> None:
        self.card = SimulatedCard.manufacture_idcard()
        self.link = connect_card(self.card, protocol)
        self.atr = self.link.atr

    def send_and_receive(self, apdu: bytes) -> tuple[bytes, int]:
        return self.link.send_and_receive(apdu)

    def power_cycle(self) -> None:
        self.card.power_off()
        self.card.power_on()

    def begin_exclusive(self) -> None:
        self.link.begin_exclusive()

    def close(self) -> None:
        self.link.close()


Pair = tuple[PythonIdCard, AppletTransport]


def blank_pair(id_jvm: AppletTransport) -> Pair:
    """A blank Python ID card and a blank ID-card applet, each selected."""
    id_jvm.new_card()
    pair = (PythonIdCard(id_jvm.protocol), id_jvm)
    for card in pair:
        assert card.send_and_receive(SELECT)[1] == 0x9000
    return pair


@pytest.fixture
def pair(id_jvm: AppletTransport) -> Pair:
    return blank_pair(id_jvm)


def both(pair: Pair, apdu: bytes | str) -> tuple[bytes, int]:
    raw = bytes.fromhex(apdu) if isinstance(apdu, str) else apdu
    python, applet = (card.send_and_receive(raw) for card in pair)
    assert python == applet, f"{raw.hex()}: Python card {python}, applet {applet}"
    return python


BLANK = ["00CA0000", "00CA000000", "00CA0101", "00CA8300", "0020008108" + "31323334FFFFFFFF", "00200081",
         "0088000030" + "00" * 48, "00B00000", "80CA0000", "00DA0001", "00DA000000"]


def test_a_blank_card(pair: Pair) -> None:
    for apdu in BLANK:
        both(pair, apdu)
    for card in pair:
        key, sw = card.send_and_receive(bytes(i.get_public_key()))
        assert sw == 0x9000 and len(i.parse_public_key(key)) == 65


@pytest.mark.parametrize("case", ["holder at 64 bytes", "number at 20", "29 February 2032", *STRUCTURE,
                                  "another key", "long length form", "trailing byte", "PIN flag, no block",
                                  "block, no flag", "bad block", "leap day 2100"])
def test_issue_refusals_and_edges(pair: Pair, case: str) -> None:
    """The same document structure, with each card's own key in it, gets the same answer; a
    refused one leaves both blank."""
    fields = {"holder at 64 bytes": {"holder": b"H" * 64}, "number at 20": {"number": b"N" * 20},
              "29 February 2032": {"expiry": bytes.fromhex("20320229")},
              "leap day 2100": {"expiry": bytes.fromhex("21000229")}, **STRUCTURE,
              "PIN flag, no block": {"flag": b"\x01"}}.get(case, {})
    answers = []
    for card in pair:
        key = i.parse_public_key(card.send_and_receive(bytes(i.get_public_key()))[0])
        raw = _raw(crypto.generate()[1] if case == "another key" else key, **fields)
        raw += {"trailing byte": b"\x00", "block, no flag": bytes.fromhex("C10831323334FFFFFFFF")}.get(case, b"")
        if case == "bad block":
            raw = _raw(key, flag=b"\x01") + bytes.fromhex("C1083132FFFF33FFFFFF")
        if case == "long length form":
            raw = raw.replace(b"\x80\x07", b"\x80\x81\x07", 1)
        answers.append(card.send_and_receive(bytes(CommandApdu(0x00, i.INS_PUT_DATA, 0, 0, raw)))[1])
        answers.append(card.send_and_receive(bytes(i.get_document()))[1])
    assert answers[:2] == answers[2:], case
    edge = case in ("holder at 64 bytes", "number at 20", "29 February 2032")
    assert answers[:2] == ([0x9000, 0x9000] if edge else [0x6A80, 0x6A88]), case


def issued(pair: Pair, pin: str | None) -> list[i.IdDocument]:
    return [IdCardSession(card).issue("Hanako Yamada", "DL-123456789", EXPIRY, ISSUER.sign, pin) for card in pair]


def test_issued_documents_and_signatures(pair: Pair) -> None:
    documents = issued(pair, pin=None)
    for card, doc in zip(pair, documents, strict=True):
        session = IdCardSession(card)
        assert session.document() == doc  # what the issuer wrote, byte for byte
        challenge = bytes(range(40))
        signature = session.authenticate(KEYMGR, challenge)
        assert is_canonical(signature)
        assert crypto.verify(doc.public_key, signature, i.auth_message(audience(KEYMGR), doc.number, challenge))
    for apdu in ["00DA000000", "00200081", "0020008108" + "39393939FFFFFFFF", "0088000010" + "00" * 16,
                 "0088000061" + "00" * 97, "00CA0101"]:
        both(pair, apdu)  # a second issue, VERIFY on a card without PIN, bad lengths


def test_many_signatures_are_all_low_s(pair: Pair) -> None:
    """About half of raw ECDSA signatures have a high s: the applet must rewrite every one."""
    doc = issued(pair, pin=None)[1]
    session = IdCardSession(pair[1])
    for n in range(40):
        challenge = n.to_bytes(16, "big")
        signature = session.authenticate(KEYMGR, challenge)
        assert is_canonical(signature), signature.hex()
        assert crypto.verify(doc.public_key, signature, i.auth_message(audience(KEYMGR), doc.number, challenge))


PIN_SEQUENCE = [
    "0088000030" + "00" * 48, "00200081", "0020008108" + "39393939FFFFFFFF", "00200081",
    "0020008108" + "3132FFFFFFFFFFFF", "00200082", "0020018108" + "32343638FFFFFFFF", "0020FF8101FF",
    "0020008108" + "32343638FFFFFFFF", "00200081", "0020FF81", "00200081",
    "0020008108" + "32343638FFFFFFFF", "power cycle", "00200081", "0088000030" + "00" * 48,
    *["0020008108" + "39393939FFFFFFFF"] * 3, "00200081", "0020008108" + "32343638FFFFFFFF",
]


def test_the_pin(pair: Pair) -> None:
    issued(pair, pin="2468")
    for apdu in PIN_SEQUENCE:
        if apdu == "power cycle":
            for card in pair:
                card.power_cycle()
            both(pair, SELECT)
        elif apdu.startswith("0088"):
            _signature_or_sw(pair, apdu)
        else:
            both(pair, apdu)


def _signature_or_sw(pair: Pair, apdu: str) -> tuple[bytes, int]:
    """The same status word; keys, documents and signatures differ by card, so only their presence."""
    answers = [card.send_and_receive(bytes.fromhex(apdu)) for card in pair]
    assert answers[0][1] == answers[1][1] and bool(answers[0][0]) == bool(answers[1][0]), answers
    return answers[0]


COMMANDS = st.sampled_from(["00CA0000", "00CA0083", "00CA000000", "00CA008300", "00CA008341", "00CA008310",
                            "0088000030" + "00" * 48 + "00", "00CA0101", "00200081", "0020FF81", "00200082",
                            "0020008108" + "32343638FFFFFFFF", "0020008108" + "39393939FFFFFFFF",
                            "0020008104" + "31323334", "0088000030" + "00" * 48, "0088000010" + "00" * 16,
                            "00DA000000", "00B00000", "issue", "issue with PIN", "select"])


@settings(max_examples=300 if FULL else 25, deadline=None)
@given(st.lists(COMMANDS, max_size=25))
def test_random_sequences(id_jvm: AppletTransport, sequence: list[str]) -> None:
    """The same random command sequence to both cards: the same status words, and the same data
    wherever the data does not come from each card's own key."""
    pair = blank_pair(id_jvm)
    for apdu in sequence:
        if apdu.startswith("issue"):
            sws = []
            for card in pair:
                key = i.parse_public_key(card.send_and_receive(bytes(i.get_public_key()))[0])
                doc = i.IdDocument.signed("A", "N1", EXPIRY, key, apdu.endswith("PIN"), ISSUER.sign)
                block = bytes.fromhex("32343638FFFFFFFF") if apdu.endswith("PIN") else None
                sws.append(card.send_and_receive(bytes(i.put_document(doc, block)))[1])
            assert sws[0] == sws[1]
        elif apdu == "select":
            both(pair, SELECT)
        elif apdu.startswith(("00CA0083", "00CA0000", "0088")):
            _signature_or_sw(pair, apdu)
        else:
            both(pair, apdu)


@pytest.fixture(scope="module")
def id_jvm_t0(applet_build: Build) -> Iterator[AppletTransport]:
    transport = AppletTransport(applet_build, ID_APPLET_CLASS, i.AID_IDCARD, protocol="T=0")
    yield transport
    transport.close()


def test_t0_answers_61xx_and_get_response(id_jvm_t0: AppletTransport) -> None:
    """On T=0 data without Le is announced with 61xx and fetched with GET RESPONSE (the Python
    card's OS does it for every applet), an Le too short on a case-4 command gives Ne bytes and
    61xx, and GET RESPONSE's refusals leave the data waiting."""
    pair = blank_pair(id_jvm_t0)
    for apdu in ["00CA0000", "00C00000", "80C0000000"]:
        both(pair, apdu)  # blank: 6A88, then nothing waiting
    for card in pair:
        key, sw = card.send_and_receive(bytes.fromhex("00CA0083"))
        assert (key, sw) == (b"", 0x6143)
        for refused in ["90C0000000", "01C0000000", "A0C0000000", "00C0010000", "00C000000100"]:
            assert card.send_and_receive(bytes.fromhex(refused))[0] == b""
        key, sw = card.send_and_receive(bytes.fromhex("80C0000010"))
        assert sw == 0x6133 and key[:2] == bytes.fromhex("8341")
        assert card.send_and_receive(bytes.fromhex("00C0000000"))[1] == 0x9000
    for apdu in ["00CA008310", "90C0000000", "01C0000000", "A0C0000000", "00C0010000", "00C000000100",
                 "00C0000000", "00C0000000"]:
        both(pair, apdu)  # refusals keep the data waiting; 6Cxx only on a case-2 command
    documents = issued(pair, pin=None)
    for card, doc in ((pair[0], documents[0]), (pair[1], documents[1])):
        raw, sw = card.send_and_receive(bytes.fromhex("00CA0000"))
        assert (raw, sw) == (b"", 0x6100 | len(bytes(doc.to_bytes())) & 0xFF)
        raw, sw = card.send_and_receive(bytes.fromhex("00C0000000"))
        assert (raw, sw) == (doc.to_bytes(), 0x9000)
    challenge = bytes(16)
    for le in ("", "10"):  # without Le: all of it waits; Le 16: 16 bytes, the rest waits
        for card, doc in ((pair[0], documents[0]), (pair[1], documents[1])):
            head, sw = card.send_and_receive(bytes.fromhex("0088000030") + bytes(32) + challenge + bytes.fromhex(le))
            assert sw >> 8 == 0x61 and len(head) == (16 if le else 0), (head, sw)
            rest, last = card.send_and_receive(bytes.fromhex("00C0000000"))
            assert last == 0x9000 and len(rest) == sw & 0xFF
            message = i.auth_message(bytes(32), doc.number, challenge)
            assert is_canonical(head + rest) and crypto.verify(doc.public_key, head + rest, message)
    both(pair, "00C0000000")  # fetched: nothing waits
