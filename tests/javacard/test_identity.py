"""Identity, attestation and the servers' keys on both cards (docs/APDU.md 4): GET IDENTITY,
PUT / GET ATTESTATION, PUT VAULT KEY, PUT KEY MANAGER KEY, INTERNAL AUTHENTICATE.

Each card has its own id and identity key, so some APDUs are made per card (the issuer signs each
card's own identity) and answers are compared with each card's own values put back in their
place: a signature counts as equal when it is canonical (strict DER, low s) and verifies under
that card's identity key over the message docs/APDU.md 4.1 names.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature, encode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from apdu import backup as b
from apdu.signature import ORDER, canonical, is_canonical, verify
from host.transport import Transport

from .applet import NO_KIT, AppletTransport
from .test_differential import CARD_INFO, PERSONALIZE, POWER_CYCLE, SELECT, pin, python_card

if not os.environ.get("JC_HOME"):
    pytest.skip(NO_KIT, allow_module_level=True)

VERIFY = "0020008108" + pin("1234")
GET_IDENTITY = "8030000049"


def keypair() -> tuple[ec.EllipticCurvePrivateKey, bytes]:
    key = ec.generate_private_key(ec.SECP256R1())
    return key, key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)


ISSUER, ISSUER_PUB = keypair()
VAULT, VAULT_PUB = keypair()
KEYMGR, KEYMGR_PUB = keypair()
_, OTHER_PUB = keypair()
OFF_CURVE = b"\x04" + bytes(31) + b"\x01" + bytes(31) + b"\x01"


@dataclass(frozen=True)
class Card:
    """What is this card's own: the values its answers are compared by."""

    card_id: bytes
    public_key: bytes
    seen: list[bytes] = field(default_factory=list, compare=False)  # the vault's signatures for it
    made: dict[str, bytes] = field(default_factory=dict, compare=False)  # what was made for it, by recipe

    @property
    def identity(self) -> b.Identity:
        return b.Identity(self.card_id, self.public_key)


Step = str | Callable[[Card], str]


def apdu(header: str, data: bytes, le: str = "") -> str:
    return f"{header}{len(data):02X}{data.hex().upper()}{le}"


def attestation(card: Card, *, signer: ec.EllipticCurvePrivateKey = ISSUER, key: bytes = ISSUER_PUB,
                high_s: bool = False, of: b.Identity | None = None) -> bytes:
    """Made once per card and recipe, with a 70-byte signature: both cards' answers have one length."""
    recipe = repr(("attestation", signer.public_key().public_numbers(), key, high_s, of))
    if recipe not in card.made:
        signature = b""
        while len(signature) != 70:
            der = signer.sign(b.Attestation.message(of or card.identity), ec.ECDSA(hashes.SHA256()))
            r, s = decode_dss_signature(canonical(der))
            signature = encode_dss_signature(r, ORDER - s if high_s else s)
        card.made[recipe] = key + signature
    return card.made[recipe]


def put_attestation(**kwargs: object) -> Callable[[Card], str]:
    return lambda card: apdu("80360000", attestation(card, **kwargs))  # type: ignore[arg-type]


def authenticate(p1: int, challenge: bytes, p2: int = 0) -> str:
    return apdu(f"0088{p1:02X}{p2:02X}", challenge, "00")


def masked(card: Card, command: bytes, data: bytes) -> bytes:
    """The answer with this card's own values named instead of given."""
    if command[1] == b.INS_INTERNAL_AUTHENTICATE and data:
        audience = b.Audience(command[2])
        server = VAULT_PUB if audience == b.Audience.VAULT else KEYMGR_PUB
        challenge = command[5 : 5 + command[4]]
        message = b.auth_message(audience, server, card.card_id, challenge)
        ok = is_canonical(data) and verify(card.public_key, data, message)
        return b"<a canonical signature that verifies>" if ok else data
    for own, name in ((card.card_id, b"<card id>"), (card.public_key, b"<identity>"),
                      *((signature, b"<the vault's signature for this card>") for signature in card.seen)):
        data = data.replace(own, name)
    if command[1] == b.INS_GET_ATTESTATION and data[:65] == ISSUER_PUB:
        ok = verify(ISSUER_PUB, data[65:], b.Attestation.message(card.identity))
        data = ISSUER_PUB + (b"<this card's attestation>" if ok else data[65:])
    return data


def own(transport: Transport) -> Card:
    data, sw = transport.send_and_receive(bytes.fromhex(GET_IDENTITY))
    assert sw == 0x9000
    return Card(data[:8], data[8:])


Receipts = Callable[[Card, bytes, bytes], bytes]
Masker = Callable[[Card, bytes, bytes, int], bytes]  # card, command, answer data, SW


def run_pair(applet: AppletTransport, steps: Sequence[Step], receipts: Receipts | None = None,
             more: Masker | None = None) -> None:
    """Each step to both cards, made for each card when it is a function of the card; answers
    compared with each card's own values named (``receipts`` names SIGN RECEIPT's). With ``more``,
    every answer is fetched whole (61xx followed by GET RESPONSE) and ``more`` names what else is
    the card's own in it."""
    card, python = python_card()
    for t in (python, applet):
        t.send_and_receive(bytes.fromhex(SELECT))
    mine, theirs = own(python), own(applet)
    for step in steps:
        if step == POWER_CYCLE:
            card.power_off()
            card.power_on()
            card.select_protocol("T=1")
            applet.power_cycle()
            continue
        answers = []
        for t, who in ((python, mine), (applet, theirs)):
            command = bytes.fromhex(step(who) if callable(step) else step)
            data, sw = t.send_and_receive(command)
            while more is not None and sw >> 8 == 0x61 and command[1] != 0xC0:  # the whole answer, to look inside
                rest, sw = t.send_and_receive(bytes.fromhex(f"00C00000{sw & 0xFF:02X}"))
                data += rest
            if receipts is not None and command[1] == b.INS_SIGN_RECEIPT and sw == 0x9000:
                data = receipts(who, command, data)
            if more is not None:
                data = more(who, command, data, sw)
            answers.append((masked(who, command, data), f"{sw:04X}"))
        assert answers[1] == answers[0], f"after {step if isinstance(step, str) else step(mine)}"


CHALLENGE = bytes(range(32))
VECTORS: dict[str, list[Step]] = {
    "identity": [GET_IDENTITY, "80300000", "8030000005", "80300001", "803000000100", PERSONALIZE, GET_IDENTITY,
                 CARD_INFO],
    "attestation": [
        "803A000000", put_attestation(high_s=True), put_attestation(of=b.Identity(bytes(8), OTHER_PUB)),
        put_attestation(key=OTHER_PUB), put_attestation(key=OFF_CURVE),
        lambda card: apdu("80360000", ISSUER_PUB), lambda card: apdu("80360000", attestation(card) + b"\x00"),
        lambda card: apdu("80360000", b"\x05" + attestation(card)[1:]),
        lambda card: apdu("80360000", attestation(card)[:-1]), "80360100",
        "803A000000", put_attestation(), "803A000000", "803A000010", put_attestation(), "803A00000100",
        "803A0001", PERSONALIZE, "803A000000", put_attestation(), VERIFY, put_attestation(), GET_IDENTITY,
    ],
    "operational only after personalization": [
        apdu("80320000", VAULT_PUB), apdu("80640000", KEYMGR_PUB), authenticate(1, CHALLENGE),
    ],
    "server keys": [
        PERSONALIZE, apdu("80320000", VAULT_PUB), authenticate(1, CHALLENGE), VERIFY,
        apdu("80320000", OFF_CURVE), apdu("80320000", VAULT_PUB[:-1]), apdu("80320000", b"\x02" + VAULT_PUB[1:]),
        apdu("80320001", VAULT_PUB), authenticate(1, CHALLENGE), authenticate(2, CHALLENGE),
        apdu("80320000", OTHER_PUB), apdu("80320000", VAULT_PUB), apdu("80320000", VAULT_PUB),
        apdu("80640000", OFF_CURVE), apdu("80640000", KEYMGR_PUB), apdu("80640000", KEYMGR_PUB),
        apdu("80640000", OTHER_PUB), "80640000", apdu("00640000", KEYMGR_PUB), apdu("00320000", VAULT_PUB),
    ],
    "internal authenticate": [
        PERSONALIZE, VERIFY, apdu("80320000", VAULT_PUB), apdu("80640000", KEYMGR_PUB),
        authenticate(1, CHALLENGE), authenticate(2, CHALLENGE), authenticate(3, CHALLENGE),
        authenticate(0, CHALLENGE), authenticate(1, CHALLENGE, p2=1), authenticate(1, bytes(15)),
        authenticate(1, bytes(16)), authenticate(1, bytes(64)), authenticate(1, bytes(65)),
        # (not with a short Le: each card's signature has its own length, 70-72 bytes)
        "0088010000", authenticate(1, CHALLENGE)[:-2],
        "8088010010" + "00" * 16, "0020FF81", authenticate(1, CHALLENGE), POWER_CYCLE, SELECT,
        authenticate(2, CHALLENGE),
    ],
    # each signature's s is high half the time: all of them low says the card normalises s
    "every signature is canonical": [PERSONALIZE, VERIFY, apdu("80320000", VAULT_PUB),
                                     apdu("80640000", KEYMGR_PUB),
                                     *(authenticate(1 + n % 2, bytes((n,)) * 16) for n in range(40))],
}


@pytest.mark.parametrize("name", VECTORS)
def test_vectors(applet: AppletTransport, name: str) -> None:
    run_pair(applet, VECTORS[name])


def test_identity_keys_differ_per_card(applet: AppletTransport) -> None:
    keys = set()
    for _ in range(3):
        applet.new_card()
        applet.send_and_receive(bytes.fromhex(SELECT))
        keys.add(own(applet).public_key)
    assert len(keys) == 3 and all(k[0] == 4 and len(k) == 65 for k in keys)


def test_a_python_card_identity_is_not_the_applets(applet: AppletTransport) -> None:
    """The mask cannot hide a mismatch: the applet's signature does not verify as the Python card's."""
    python = python_card()[1]
    python.send_and_receive(bytes.fromhex(SELECT))
    applet.send_and_receive(bytes.fromhex(SELECT))
    mine = own(python)
    for step in (PERSONALIZE, VERIFY, apdu("80320000", VAULT_PUB)):
        applet.send_and_receive(bytes.fromhex(step))
    command = bytes.fromhex(authenticate(1, CHALLENGE))
    data, sw = applet.send_and_receive(command)
    assert sw == 0x9000 and masked(mine, command, data) == data
