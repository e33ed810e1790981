"""Re-keying by the key manager on both cards (docs/APDU.md 7.2, card/rekey.py): SUCCEED
CERTIFICATE and REPLACE KEY, differential, every refusal and in random sequences.

The key manager's part is played here: it seals NEW_MATERIAL (or MATERIAL) to the card's
transport key under ECDH with its own key; the vault's, a successor certificate of each value
under NEW_MATERIAL and its SUCCESSION signature over the old and new signed parts. The old
certificate is the one commit_encrypted gave the card (cert() hands back the same bytes for the
same recipe), so the succession names what the card holds.
"""

from __future__ import annotations

import os
from collections.abc import Callable

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from apdu import keys as k
from apdu import rekey as rk
from apdu import seal
from apdu.certificate import Certificate, Mode, make_digest, value_hash
from apdu.signature import canonical

from ..conftest import FULL
from .applet import NO_KIT, AppletTransport
from .test_backup import begin_backup, begin_restore, cancel, cert, commit_raw, receipt_of, value_id
from .test_differential import CARD_INFO, PERSONALIZE, POWER_CYCLE, SELECT
from .test_identity import VAULT, VERIFY, Card, apdu, run_pair
from .test_keys import (
    BEGIN_ROTATION,
    COMMIT_ROTATION,
    KEYMGR_D,
    LOG_OUT,
    MATERIAL,
    MISMATCHED,
    NEW_TRANSPORT,
    OPEN,
    OTHER_KEY,
    PIN_KEYMGR,
    PIN_VAULT,
    PUBLIC,
    SYMMETRIC,
    Step,
    begin_encrypted,
    commit_encrypted,
    commit_registered,
    export,
    import_key,
    info,
    key_masked,
    learned,
)
from .test_values import BIG, COUPON, LIST_ALL, MOVIE, PREPAID, command, read, store

if not os.environ.get("JC_HOME"):
    pytest.skip(NO_KIT, allow_module_level=True)

NEW_MATERIAL = {PUBLIC: k.generate_material(PUBLIC), SYMMETRIC: k.generate_material(SYMMETRIC)}
NEW_INFO = {k.key_info_of(m, mode): (m, mode) for mode, m in NEW_MATERIAL.items()}


def replace_key(mode: int, material: bytes | None = None, *, context_mode: int | None = None,
                card_id: bytes | None = None, anonymous: bool = False, tamper: bool = False,
                p2: int = 0) -> Callable[[Card], str]:
    """REPLACE KEY of NEW_MATERIAL (the mode's) as the key manager seals it to the card's
    transport key; or sealed for another card or mode, anonymously (as for IMPORT KEY), tampered."""
    def made(card: Card) -> str:
        plain = NEW_MATERIAL[k.KeyMode(mode)] if material is None and mode in (1, 2) else (material or b"")
        context = rk.replace_context(card_id or card.card_id, k.KeyMode(context_mode or (mode if mode in (1, 2) else 1)))
        transport = learned(card).transport
        blob = bytearray(seal.seal(transport, plain, context) if anonymous
                         else seal.seal_symmetric(seal.ecdh(KEYMGR_D, transport), plain, context))
        if tamper:
            blob[-1] ^= 1
        return apdu(f"8078{mode:02X}{p2:02X}", bytes(blob), "00")
    return made


def _sign(signer: ec.EllipticCurvePrivateKey, message: bytes) -> bytes:
    return canonical(signer.sign(message, ec.ECDSA(hashes.SHA256())))


def succeed(n: int, value: str, old_mode: k.KeyMode = PUBLIC, new_mode: k.KeyMode = PUBLIC, *,
            tamper: str = "") -> Callable[[Card], str]:
    """SUCCEED CERTIFICATE: the vault's successor of the certificate commit_encrypted(n, value,
    mode=old_mode) gave, for ``value`` sealed under NEW_MATERIAL[new_mode], with the succession."""
    def made(card: Card) -> str:
        raw = bytes.fromhex(value)
        old = cert(card, value, 7, x=value_hash(k.seal_value(MATERIAL[old_mode], old_mode, raw, card.card_id)),
                   digest=make_digest(raw), mode=Mode.ENCRYPTED)
        x = value_hash(k.seal_value(NEW_MATERIAL[new_mode], new_mode, raw, card.card_id))
        learned(card).names[x] = b"<X: SHA-256 of the E2 ciphertext of " + raw + b", the key manager's key>"
        digest = make_digest(raw)[:-1] + b"\x00" if tamper == "digest" else make_digest(raw)
        new = cert(card, value, 9, x=x, digest=digest, mode=Mode.PLAIN if tamper == "plain" else Mode.ENCRYPTED,
                   card_id=bytes(8) if tamper == "card id" else None,
                   signer=OTHER_KEY if tamper == "signer" else VAULT)
        old_part = b"another certificate" if tamper == "another old" else Certificate.from_bytes(old).signed_part()
        named = rk.succession_message(card.card_id, card.public_key, old_part, Certificate.from_bytes(new).signed_part())
        signature = _sign(OTHER_KEY if tamper == "succession signer" else VAULT, named)
        data = bytes(rk.Succession(new, signature))
        if tamper == "garbage":
            data += b"\x1f"
        if tamper == "no signature":
            data = data[:-2 - len(signature)]
        if tamper == "swapped":
            data = bytes([0x9E, len(signature)]) + signature + data[:-2 - len(signature)]
        return command(f"807A{value_id(n)}", data.hex(), "")
    return made


def rekey_masked(card: Card, command_: bytes, data: bytes, sw: int) -> bytes:
    """key_masked, and a REPLACE KEY's key learned as the card's material (exports then open to it)."""
    if command_[1] == rk.INS_REPLACE_KEY and sw == 0x9000:
        known = NEW_INFO.get(k.KeyInfo.from_bytes(data)) or next(
            ((m, mode) for mode, m in MATERIAL.items() if k.key_info_of(m, mode) == k.KeyInfo.from_bytes(data)), None)
        state = learned(card)
        state.material, state.generated = known, None
        return b"<replaced: " + data + b">"
    return key_masked(card, command_, data, sw)


def run_rekey(applet: AppletTransport, steps: list[Step]) -> None:
    run_pair(applet, steps, receipts=receipt_of, more=rekey_masked)


BACKED_UP: list[Step] = [
    *OPEN, store(MOVIE), store(COUPON), store(PREPAID), store(BIG), NEW_TRANSPORT, import_key(1),
    begin_encrypted(1), commit_encrypted(1, MOVIE), begin_encrypted(2), commit_encrypted(2, COUPON, 1),
    begin_encrypted(3), commit_encrypted(3, PREPAID),
]
EVERY_REKEY_COMMAND: list[Step] = [replace_key(1), succeed(1, MOVIE), "807A0000", "8078010000"]
WRONG_PIN = "0020008108" + "39393939FFFFFFFF"

VECTORS: dict[str, list[Step]] = {
    "personalization state, no PIN, a blocked PIN": [
        *EVERY_REKEY_COMMAND, PERSONALIZE, *EVERY_REKEY_COMMAND, WRONG_PIN, WRONG_PIN, WRONG_PIN,
        *EVERY_REKEY_COMMAND, VERIFY, *EVERY_REKEY_COMMAND,
    ],
    "succeed certificate, every refusal": BACKED_UP + [
        succeed(1, MOVIE, tamper="signer"), succeed(1, MOVIE, tamper="succession signer"),
        succeed(1, MOVIE, tamper="another old"), succeed(1, MOVIE, tamper="card id"), succeed(1, MOVIE, tamper="digest"),
        succeed(1, MOVIE, tamper="plain"), succeed(1, MOVIE, tamper="garbage"), succeed(1, MOVIE, tamper="no signature"),
        succeed(1, MOVIE, tamper="swapped"), "807A0001", "807A000101AA", "807A00010482009E00", succeed(9, MOVIE),
        succeed(0, MOVIE), succeed(4, MOVIE), succeed(1, COUPON), succeed(2, COUPON), begin_restore(3),
        succeed(3, PREPAID), cancel(3), begin_backup(4), "807A0004" + "00", cancel(4), LIST_ALL, read(1),
        succeed(1, MOVIE), succeed(1, MOVIE), read(1), LIST_ALL, succeed(3, PREPAID, new_mode=SYMMETRIC),
        succeed(3, PREPAID), read(3), LIST_ALL, CARD_INFO,
    ],
    "succeed certificate: a plain certificate": [
        *OPEN, store(MOVIE), begin_backup(1), lambda card: commit_raw(1, b"\x00" + cert(card, MOVIE)),
        succeed(1, MOVIE), POWER_CYCLE, SELECT, VERIFY, succeed(1, MOVIE), LIST_ALL,
    ],
    "replace key, every refusal": BACKED_UP + [
        replace_key(1), NEW_TRANSPORT, replace_key(0), replace_key(3), replace_key(1, p2=1),
        replace_key(1, anonymous=True), replace_key(1, tamper=True), replace_key(1, context_mode=2),
        replace_key(1, card_id=bytes(8)), replace_key(2, NEW_MATERIAL[PUBLIC]), replace_key(1, MISMATCHED),
        replace_key(1, NEW_MATERIAL[PUBLIC][:96]), replace_key(1, bytes(32) + NEW_MATERIAL[PUBLIC][32:]),
        "80780100", "8078010001AA00", begin_backup(4), replace_key(1), cancel(4), BEGIN_ROTATION, replace_key(1),
        info(1), LIST_ALL, info(),
    ],
    "re-keying: every certificate succeeded, the key replaced, values restored": BACKED_UP + [
        succeed(1, MOVIE), succeed(2, COUPON), succeed(3, PREPAID), LIST_ALL, NEW_TRANSPORT, replace_key(1),
        replace_key(1), info(), info(1), LIST_ALL, export(), begin_restore(1),
        commit_registered(1, MOVIE, material=NEW_MATERIAL[PUBLIC]), read(1), begin_restore(3),
        commit_registered(3, PREPAID, material=NEW_MATERIAL[PUBLIC]), LIST_ALL, begin_encrypted(2), POWER_CYCLE, SELECT,
        VERIFY, info(), CARD_INFO,
    ],
    "re-keying a card without a key, symmetric": [
        *OPEN, store(COUPON), NEW_TRANSPORT, replace_key(2), info(), export(), LOG_OUT, replace_key(2), VERIFY,
        NEW_TRANSPORT, replace_key(2, NEW_MATERIAL[SYMMETRIC]), info(), begin_encrypted(1), LIST_ALL,
    ],
    "replace key without a key manager pinned": [
        PERSONALIZE, VERIFY, PIN_VAULT, NEW_TRANSPORT, replace_key(1), PIN_KEYMGR, replace_key(1), info(),
    ],
}


@pytest.mark.parametrize("name", VECTORS)
def test_vectors(applet: AppletTransport, name: str) -> None:
    run_rekey(applet, VECTORS[name])


# --- random sequences ----------------------------------------------------------------------------

ids = st.integers(1, 4)
values = st.sampled_from((MOVIE, PREPAID, COUPON))
modes = st.sampled_from([PUBLIC, SYMMETRIC])
tampers = st.sampled_from(["", "", "", "signer", "succession signer", "digest", "plain"])
rekey_steps: st.SearchStrategy[list[Step]] = st.one_of(
    st.builds(lambda v: [store(v)], values),
    st.builds(lambda m: [NEW_TRANSPORT, import_key(m)], st.sampled_from([1, 2])),
    st.builds(lambda i: [begin_encrypted(i)], ids),
    st.builds(lambda i, v, option, m: [commit_encrypted(i, v, option, m)], ids, values, st.sampled_from([0, 1]), modes),
    st.builds(lambda i, v, old, new, t: [succeed(i, v, old, new, tamper=t)], ids, values, modes, modes, tampers),
    st.builds(lambda m, anonymous: [replace_key(m, anonymous=anonymous)], st.sampled_from([1, 2, 3]), st.booleans()),
    st.builds(lambda i: [begin_backup(i)], ids),
    st.builds(lambda i: [cancel(i)], ids),
    st.builds(lambda i: [begin_restore(i)], ids),
    st.builds(lambda i, v, m: [commit_registered(i, v, m, material=NEW_MATERIAL[m])], ids, values, modes),
    st.builds(lambda i: [read(i)], ids),
    st.sampled_from([[NEW_TRANSPORT], [BEGIN_ROTATION], [COMMIT_ROTATION], [info()], [export()], [LIST_ALL],
                     [LOG_OUT], [VERIFY], [POWER_CYCLE, SELECT, VERIFY]]),
)


@settings(max_examples=300 if FULL else 25, deadline=None)
@given(st.lists(rekey_steps, min_size=1, max_size=25))
def test_random_rekey_sequences(applet_jvm: AppletTransport, sequence: list[list[Step]]) -> None:
    applet_jvm.new_card()
    run_rekey(applet_jvm, [*OPEN, *(s for step in sequence for s in step), info(), LIST_ALL, CARD_INFO])
