"""Random and half-structured APDUs: the card always answers a status word, never raises, and
a refused command changes no EEPROM cell. Sized by EVB_TEST_SIZE (10k examples in CI)."""

from __future__ import annotations

from functools import cache

from hypothesis import given, settings
from hypothesis import strategies as st

from apdu import SW, ResponseApdu
from apdu import wallet as w
from host.demo import FIG15
from host.session import WalletSession
from host.transport.inprocess import connect_card

from ..conftest import FULL
from .helpers import cells_with, clone

EXAMPLES = 100_000 if FULL else 10_000
PIN = "1234"
INS = [
    w.INS_PERSONALIZE,
    w.INS_GET_CARD_INFO,
    w.INS_LIST_VALUES,
    w.INS_READ_VALUE,
    w.INS_STORE_VALUE,
    w.INS_MODIFY_VALUE,
    w.INS_DELETE_VALUE,
    w.INS_GET_MEMORY_MAP,
    w.INS_VERIFY,
    w.INS_CHANGE_REFERENCE_DATA,
    w.INS_SELECT,
    w.INS_GET_RESPONSE,
]


@cache
def loaded_cells() -> bytes:
    return cells_with(FIG15)


def pin_related(apdu: bytes) -> bool:
    return len(apdu) > 1 and apdu[1] in (w.INS_VERIFY, w.INS_CHANGE_REFERENCE_DATA)


structured = st.builds(
    lambda cla, ins, p1, p2, body: bytes((cla, ins, p1, p2)) + body,
    st.sampled_from([0x00, 0x80, 0x10, 0x90, 0x84, 0x01]) | st.integers(0, 255),
    st.sampled_from(INS) | st.integers(0, 255),
    st.integers(0, 4),
    st.sampled_from([0, 1, 2, 3, 4, 0x81]) | st.integers(0, 255),
    st.binary(max_size=40) | st.binary(max_size=300).map(lambda b: bytes((len(b) & 0xFF,)) + b),
)


@settings(max_examples=EXAMPLES)
@given(apdus=st.lists(st.binary(max_size=270) | structured, min_size=1, max_size=3), verified=st.booleans())
def test_random_apdus_never_raise_and_refusals_change_nothing(apdus: list[bytes], verified: bool) -> None:
    card = clone(loaded_cells())
    session = WalletSession(connect_card(card))  # powered and selected
    if verified:
        session.verify_pin(PIN)
    for apdu in apdus:
        before = card.eeprom.snapshot()
        response = ResponseApdu.from_bytes(card.transmit(apdu))
        accepted = response.sw == SW.OK or response.sw1 == 0x61
        if not accepted and not pin_related(apdu):
            assert card.eeprom.snapshot() == before, f"{apdu.hex()} -> {response.sw:04X} changed the card"
    card.applets[0].index.check()  # type: ignore[attr-defined]
    card.reset()  # and after a reset the card still answers, with a consistent index
    after = WalletSession(connect_card(card))
    info = after.info()
    assert info.index_used == info.value_count + info.certificate_count
    assert len(after.list()) == info.index_used
