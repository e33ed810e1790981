"""Every wallet command at the APDU level: the happy path and each status word it can answer."""

from __future__ import annotations

from datetime import date

import pytest

from apdu import SW, ApduError, split_chain
from apdu import wallet as w
from apdu.records import ValueRecord, ValueType
from card import CardMute, SimulatedCard
from card.card import T0
from host.demo import FIG15
from host.session import WalletSession
from host.transport import CardRemovedError, Transport
from host.transport.inprocess import connect_card

from ..conftest import ISSUER, PUK
from ..readers import Reader
from .cards import AnyCard, Cards, state
from .helpers import send

SELECT = w.select().to_bytes().hex()
PIN_BLOCK = "31323334FFFFFFFF"
WRONG_BLOCK = "39393939FFFFFFFF"
PUK_BLOCK = PUK.encode().hex()


@pytest.fixture
def link(card: AnyCard, transport: Transport) -> Transport:
    """The fig. 15 values on a powered, selected card in the reader; PIN not verified."""
    s = WalletSession(connect_card(card))
    s.verify_pin("1234")
    for r in FIG15:
        s.store(r)
    card.reset()
    assert send(transport, SELECT).sw == SW.OK
    return transport


def verified(link: Transport) -> Transport:
    assert send(link, "0020008108" + PIN_BLOCK).sw == SW.OK
    return link


ERRORS = [
    # (name, pin verified?, APDU hex, expected SW)
    ("malformed-apdu", False, "801000", SW.WRONG_LENGTH),
    ("lc-mismatch", False, "8016000005AABB", SW.WRONG_LENGTH),
    ("logical-channel", False, "81100000", SW.LOGICAL_CHANNEL_NOT_SUPPORTED),
    ("secure-messaging-cla", False, "8C100000", SW.CLA_NOT_SUPPORTED),
    ("unknown-cla", False, "A0100000", SW.CLA_NOT_SUPPORTED),
    ("unknown-ins", False, "80F00000", SW.INS_NOT_SUPPORTED),
    ("iso-ins-with-proprietary-cla", False, "80200081", SW.CLA_NOT_SUPPORTED),
    ("select-unknown-aid", False, "00A4040003A00000", SW.FILE_NOT_FOUND),
    ("select-by-file-id", False, "00A40000023F00", SW.INCORRECT_P1P2),
    ("personalize-twice", True, "8002000008" + PIN_BLOCK, SW.CONDITIONS_NOT_SATISFIED),
    ("card-info-with-data", False, "801000000100", SW.WRONG_LENGTH),
    ("list-bad-p1", False, "80120100", SW.INCORRECT_P1P2),
    ("list-bad-filter-length", False, "801200000101", SW.WRONG_DATA),
    ("read-unknown-id", False, "80140063", SW.RECORD_NOT_FOUND),
    ("read-id-zero", False, "80140000", SW.INCORRECT_P1P2),
    ("delete-id-zero", True, "801A0000", SW.INCORRECT_P1P2),
    ("card-info-bad-p1p2", False, "80100100", SW.INCORRECT_P1P2),
    ("identity-bad-p1p2", False, "80300001", SW.INCORRECT_P1P2),
    ("attestation-bad-p1p2", False, "803A0100", SW.INCORRECT_P1P2),
    ("triggers-bad-p1p2", False, "80500100", SW.INCORRECT_P1P2),
    ("import-counter-bad-p1p2", False, "80340001", SW.INCORRECT_P1P2),
    ("put-attestation-bad-p1p2-before-state", False, "80360100", SW.INCORRECT_P1P2),
    ("commit-rotation-bad-p1p2", True, "80760001", SW.INCORRECT_P1P2),
    ("read-with-data", False, "801400010100", SW.WRONG_LENGTH),
    ("store-without-pin", False, "8016000003810101", SW.SECURITY_STATUS_NOT_SATISFIED),
    ("store-bad-tlv", True, "80160000028105", SW.WRONG_DATA),
    ("store-no-name", True, "8016000003810101", SW.WRONG_DATA),
    ("store-with-card-owned-id", True, "801600000C80020001810101830341424302", SW.WRONG_DATA),
    ("store-bad-p1p2", True, "8016000105810101830141", SW.INCORRECT_P1P2),
    # card-owned tags are refused present at all (the applet's rule too: docs/APDU.md 3.5)
    ("store-with-zero-flags", True, "8016000008810101830141" + "8D0100", SW.WRONG_DATA),
    ("store-with-empty-certificate", True, "80160000078101018301418E00", SW.WRONG_DATA),
    # acquired-at is 7 BCD bytes at fixed positions, not what strptime can stretch 6 bytes into
    ("store-six-byte-acquired-at", True, "801600000E8101018301418A06200003011000", SW.WRONG_DATA),
    ("store-acquired-at-second-60", True, "801600000F8101018301418A0720000301100060", SW.WRONG_DATA),
    ("modify-without-pin", False, "801800030501000000C8", SW.SECURITY_STATUS_NOT_SATISFIED),
    ("modify-unknown-id", True, "801800630501000000C8", SW.RECORD_NOT_FOUND),
    ("modify-overspend", True, "80180003050100000384", SW.CONDITIONS_NOT_SATISFIED),
    ("modify-overuse", True, "80180002050200000003", SW.CONDITIONS_NOT_SATISFIED),
    ("modify-zero-amount", True, "80180003050100000000", SW.WRONG_DATA),
    ("modify-unknown-op", True, "80180003050900000001", SW.WRONG_DATA),
    ("modify-short-request", True, "801800030401000000", SW.WRONG_DATA),
    ("delete-without-pin", False, "801A0001", SW.SECURITY_STATUS_NOT_SATISFIED),
    ("delete-unknown-id", True, "801A0063", SW.RECORD_NOT_FOUND),
    ("delete-with-data", True, "801A00010100", SW.WRONG_LENGTH),
    ("verify-wrong-p2", False, "0020008208" + PIN_BLOCK, SW.REFERENCE_DATA_NOT_FOUND),
    ("verify-wrong-p1", False, "0020018108" + PIN_BLOCK, SW.INCORRECT_P1P2),
    ("verify-bad-block", False, "002000810831323334FF00FFFF", SW.WRONG_DATA),
    ("verify-short-block", False, "002000810431323334", SW.WRONG_DATA),
    ("change-pin-wrong-length", False, "0024008108" + PIN_BLOCK, SW.WRONG_LENGTH),
    ("change-pin-bad-new-block", False, "0024008110" + PIN_BLOCK + "3132FFFFFFFFFFFF", SW.WRONG_DATA),
    ("get-response-nothing-pending", False, "00C0000000", SW.CONDITIONS_NOT_SATISFIED),
    ("get-response-bad-p1", False, "00C0010000", SW.INCORRECT_P1P2),
    ("get-response-proprietary-nothing-pending", False, "80C0000000", SW.CONDITIONS_NOT_SATISFIED),
    ("get-response-chained", False, "10C0000000", SW.CHAINING_NOT_SUPPORTED),
    ("get-response-unknown-class", False, "A0C0000000", SW.CLA_NOT_SUPPORTED),
    ("personalize-one-block-form", True, "8002000008" + PIN_BLOCK, SW.CONDITIONS_NOT_SATISFIED),
    ("verify-reset-with-data", True, "0020FF8108" + PIN_BLOCK, SW.WRONG_LENGTH),
    ("unblock-wrong-length", False, "002C008108" + PIN_BLOCK, SW.WRONG_LENGTH),
    ("unblock-wrong-p1", False, "002C018110" + PUK_BLOCK + PIN_BLOCK, SW.INCORRECT_P1P2),
    ("unblock-wrong-p2", False, "002C008210" + PUK_BLOCK + PIN_BLOCK, SW.REFERENCE_DATA_NOT_FOUND),
    ("unblock-bad-puk-block", False, "002C008110" + "3132333435FFFFFF" + PIN_BLOCK, SW.WRONG_DATA),
    ("unblock-bad-new-pin", False, "002C008110" + PUK_BLOCK + "3132FFFFFFFFFFFF", SW.WRONG_DATA),
    ("unblock-proprietary-class", False, "802C008110" + PUK_BLOCK + PIN_BLOCK, SW.CLA_NOT_SUPPORTED),
]


@pytest.mark.parametrize(("name", "pin", "apdu", "sw"), ERRORS, ids=[e[0] for e in ERRORS])
def test_error_status_words_change_nothing(
    card: AnyCard, link: Transport, name: str, pin: bool, apdu: str, sw: int
) -> None:
    if pin:
        verified(link)
    before = state(card)
    response = send(link, apdu)
    assert (response.sw, response.data) == (sw, b""), name
    assert state(card) == before


def test_list_filter_with_unknown_flag_is_wrong_data(card: AnyCard, link: Transport) -> None:
    assert send(link, "80120000088000" + "20000315" + "0000").sw == SW.WRONG_DATA


@pytest.mark.python_only("before a SELECT the Java Card OS answers, not the applet (docs/APDU.md 3.1)")
def test_command_before_select_is_refused(transport: Transport) -> None:
    assert send(transport, "80100000").sw == SW.CONDITIONS_NOT_SATISFIED


def test_personalization_state_allows_only_personalize_and_info(reader: Reader, cards: Cards) -> None:
    card = reader.insert(cards.blank())
    send(card, SELECT)
    assert send(card, "0020008108" + PIN_BLOCK).sw == SW.CONDITIONS_NOT_SATISFIED
    info = w.CardInfo.from_bytes(send(card, "8010000000").data)
    assert info.life_cycle == w.LifeCycle.PERSONALIZATION
    assert send(card, "8002000004" + "31323334").sw == SW.WRONG_LENGTH
    assert send(card, "8002000008" + PIN_BLOCK).sw == SW.WRONG_LENGTH  # no unblocking code
    assert send(card, "8002000010" + PIN_BLOCK + "31323334FFFFFFFF").sw == SW.WRONG_DATA  # a PUK is 8 digits
    assert send(card, "8002000010" + PIN_BLOCK + PUK_BLOCK).sw == SW.OK
    assert send(card, "0020008108" + PIN_BLOCK).sw == SW.OK


def test_pin_retry_counter_blocks_after_three_wrong_tries(card: AnyCard, link: Transport) -> None:
    answers = [send(link, "0020008108" + WRONG_BLOCK).sw for _ in range(4)]
    assert answers == [0x63C2, 0x63C1, SW.AUTH_METHOD_BLOCKED, SW.AUTH_METHOD_BLOCKED]
    assert send(link, "0020008108" + PIN_BLOCK).sw == SW.AUTH_METHOD_BLOCKED  # right PIN too late
    assert send(link, "00200081").sw == SW.AUTH_METHOD_BLOCKED
    assert send(link, "801A0001").sw == SW.AUTH_METHOD_BLOCKED
    card.reset()  # blocking survives power cycles
    send(link, SELECT)
    assert send(link, "00200081").sw == SW.AUTH_METHOD_BLOCKED


def test_right_pin_restores_the_counter(card: AnyCard, link: Transport) -> None:
    assert send(link, "0020008108" + WRONG_BLOCK).sw == 0x63C2
    assert send(link, "0020008108" + PIN_BLOCK).sw == SW.OK
    assert send(link, "00200081").sw == SW.OK  # verified in this session
    card.reset()
    send(link, SELECT)
    assert send(link, "00200081").sw == 0x63C3  # a reset forgets the verification


def test_change_pin(card: AnyCard, link: Transport) -> None:
    new = "3837363534333231"
    assert send(link, "0024008110" + WRONG_BLOCK + new).sw == 0x63C2
    assert send(link, "0024008110" + PIN_BLOCK + new).sw == SW.OK
    card.reset()
    send(link, SELECT)
    assert send(link, "0020008108" + PIN_BLOCK).sw == 0x63C2
    assert send(link, "0020008108" + new).sw == SW.OK


def test_store_list_read_modify_delete(session: WalletSession) -> None:
    ids = [session.store(r) for r in FIG15]
    assert ids == [1, 2, 3, 4]
    assert [e.name for e in session.list()] == [r.name for r in FIG15]
    assert session.read(3) == FIG15[2].stored(3)
    assert session.spend(3, 300) == 500
    assert session.use(2, 2) == 0
    session.delete(1)
    assert [e.id for e in session.list()] == [2, 3, 4]
    assert session.store(FIG15[0]) == 5  # ids are never reused
    info = session.info()
    assert (info.value_count, info.index_used, info.certificate_count) == (4, 4, 0)
    assert info.free_memory == info.total_memory - sum(e.size for e in session.list())


@pytest.mark.parametrize(
    ("flt", "names"),
    [
        (w.ListFilter(), ["Movie ticket A", "Concert ticket C", "Prepaid card E", "Movie ticket G"]),
        (w.ListFilter(type=ValueType.TICKET), ["Movie ticket A", "Concert ticket C", "Movie ticket G"]),
        (w.ListFilter(type=ValueType.PREPAID), ["Prepaid card E"]),
        (w.ListFilter(type=ValueType.COUPON), []),
        (w.ListFilter(certificates_only=True), []),
        (w.ListFilter(today=date(2000, 3, 15), expiring_within=60), ["Concert ticket C"]),
        (w.ListFilter(today=date(2000, 3, 15), expiring_within=77), ["Movie ticket A", "Concert ticket C"]),
        (w.ListFilter(today=date(2000, 4, 30), expiring_within=31), ["Movie ticket A"]),  # C expired
        (w.ListFilter(today=date(2000, 4, 29), expiring_within=0), ["Concert ticket C"]),
        (
            w.ListFilter(type=ValueType.TICKET, today=date(2000, 3, 15), expiring_within=400),
            ["Movie ticket A", "Concert ticket C", "Movie ticket G"],
        ),
    ],
    ids=[
        "all",
        "tickets",
        "prepaid",
        "coupons",
        "certificates",
        "60-days",
        "77-days",
        "expired-excluded",
        "today",
        "type-and-expiry",
    ],
)
def test_list_filters(session: WalletSession, flt: w.ListFilter, names: list[str]) -> None:
    for r in FIG15:
        session.store(r)
    assert [e.name for e in session.list(flt)] == names


@pytest.mark.parametrize("payload", [500, 0], ids=["data-area-full", "index-full"])
def test_a_full_card_answers_6a84_and_changes_nothing(card: AnyCard, payload: int) -> None:
    """Both cards' default geometry: a 28656-byte data area, 128 index entries."""
    s = WalletSession(connect_card(card))
    s.verify_pin("1234")
    record = ValueRecord(ValueType.COUPON, "Big" if payload else "Tiny", payload=bytes(payload))
    refused = None
    while refused is None:
        try:
            s.store(record)
        except ApduError as exc:
            refused = exc.sw
    assert refused == SW.NOT_ENOUGH_MEMORY
    info = s.info()
    assert (info.index_used == info.index_capacity) == (payload == 0)  # which of the two is full
    before = state(card)
    with pytest.raises(ApduError) as again:
        s.store(record)
    assert again.value.sw == SW.NOT_ENOUGH_MEMORY and state(card) == before


@pytest.mark.python_only("a card of 8 KiB: the applet's sizes are fixed")
def test_full_card_answers_6a84_and_changes_nothing(reader: Reader) -> None:
    card = SimulatedCard.manufacture(size=8192, index_capacity=8)
    s = WalletSession(reader.insert(card))
    ISSUER.personalize(s, "1234")
    s.verify_pin("1234")
    big = ValueRecord(ValueType.COUPON, "Big", payload=bytes(500))
    while True:
        before = card.eeprom.snapshot()
        try:
            s.store(big)
        except Exception as exc:
            assert getattr(exc, "sw", None) == SW.NOT_ENOUGH_MEMORY
            break
    assert card.eeprom.snapshot() == before
    # the index, not the data area, is the limit now: 8 entries
    assert s.info().index_used == 8


@pytest.mark.python_only("a card of 8 KiB and its page writes: the applet's sizes are fixed")
def test_fragmented_card_compacts_to_make_room(reader: Reader) -> None:
    card = SimulatedCard.manufacture(size=8192, index_capacity=32)
    s = WalletSession(reader.insert(card))
    ISSUER.personalize(s, "1234")
    s.verify_pin("1234")
    ids = []
    while True:  # fill the data area with 300-byte records
        try:
            ids.append(
                s.store(ValueRecord(ValueType.COUPON, f"C{len(ids)}", payload=bytes([len(ids)]) * 300))
            )
        except Exception as exc:
            assert getattr(exc, "sw", None) == SW.NOT_ENOUGH_MEMORY
            break
    for i in ids[:-1:2]:
        s.delete(i)  # holes of one record each; none fits a 512-byte payload
    kept = {i: s.read(i) for i in ids[1::2]}
    writes_before = card.eeprom.page_writes
    new_id = s.store(ValueRecord(ValueType.COUPON, "Wide", payload=bytes(range(256)) * 2))
    assert card.eeprom.page_writes - writes_before > 20  # records were moved
    assert {i: s.read(i) for i in ids[1::2]} == kept  # moved, not changed
    assert s.read(new_id).payload == bytes(range(256)) * 2
    card.applets[0].index.check()  # type: ignore[attr-defined]


def test_response_shaping_61xx_and_6cxx(card: AnyCard, link: Transport) -> None:
    verified(link)
    # READ with a too-small Le on a read-only case-2 command: re-issue with the exact length
    short = send(link, "8014000110")
    assert short.sw1 == 0x6C and short.data == b""
    full = send(link, f"80140001{short.sw2:02X}")
    assert full.sw == SW.OK and len(full.data) == short.sw2
    # STORE without Le has data to return: on T=0 (the virtual reader: no PPS reaches the card)
    # the command was case 4 with Le stripped and the card asks for GET RESPONSE; on T=1 (the
    # in-process reader's choice) no Le means no data
    stored = send(link, w.store_value(FIG15[0].body()).to_bytes().hex()[:-2])
    if card.protocol == T0:
        assert stored.sw == 0x6102
        assert send(link, "00C0000002").data == (5).to_bytes(2, "big")
    else:
        assert (stored.sw, stored.data) == (SW.OK, b"")
        assert send(link, "8014000500").sw == SW.OK  # stored as value 5
    # a case-4 listing (filter: tickets) read in pieces of 16 through GET RESPONSE
    flt = bytes(w.ListFilter(type=ValueType.TICKET)).hex()
    part = send(link, f"8012000008{flt}10")
    assert part.sw1 == 0x61 and len(part.data) == 16
    data = bytearray(part.data)
    while part.sw1 == 0x61:
        part = send(link, "00C0000010")
        data += part.data
    assert part.sw == SW.OK
    assert [e.name for e in w.parse_listing(bytes(data))] == [
        "Movie ticket A",
        "Concert ticket C",
        "Movie ticket G",
        "Movie ticket A",
    ]


def test_command_chaining_on_the_card(card: AnyCard, link: Transport) -> None:
    verified(link)
    body = ValueRecord(ValueType.VOUCHER, "Chained", payload=bytes(range(256)) * 2).body()
    *chain, last = split_chain(w.store_value(body), max_nc=200)
    assert len(chain) == 2 and all(c.cla == 0x90 for c in chain)
    for c in chain:
        assert send(link, c.to_bytes().hex()).sw == SW.OK
    r = send(link, last.to_bytes().hex())
    assert (r.sw, r.data) == (SW.OK, (5).to_bytes(2, "big"))
    assert WalletSession(link).read(5).payload == bytes(range(256)) * 2
    # an interrupted chain is refused and forgotten
    assert send(link, "9016000001AA").sw == SW.OK
    assert send(link, "80100000").sw == SW.LAST_COMMAND_OF_CHAIN_EXPECTED
    assert send(link, "8010000000").sw == SW.OK


def test_oversized_chain_is_refused(card: AnyCard, link: Transport) -> None:
    chunk = "90160000FF" + "AA" * 255
    sws = [send(link, chunk).sw for _ in range(17)]
    assert sws[:16] == [SW.OK] * 16 and sws[16] == SW.WRONG_LENGTH


@pytest.mark.python_only("the harness powers its card on at RESET: a card off is the Python card's model")
def test_unpowered_card_is_mute(card: SimulatedCard) -> None:
    with pytest.raises(CardMute):
        card.transmit(bytes.fromhex("80100000"))


@pytest.mark.python_only("the harness powers its card on at RESET: a card off is the Python card's model")
def test_pulled_card_is_a_transport_error(card: SimulatedCard, transport: Transport) -> None:
    card.power_off()
    with pytest.raises(CardRemovedError):
        send(transport, "80100000")
