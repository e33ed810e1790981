"""GET MEMORY MAP on the card (docs/APDU.md 3.10): the areas and extents the card really has,
after stores, deletes and a compaction; read-only, no PIN, P1-P2 and data checked, and a long
answer through GET RESPONSE."""

from __future__ import annotations

from apdu import SW, ApduError
from apdu import wallet as w
from apdu.records import ValueFlags, ValueRecord, ValueType
from card import SimulatedCard
from card.card import T0
from card.eeprom import HEADER_SIZE
from card.wallet import HEADER_SIZE as WALLET_HEADER
from host.memory_map import layout
from host.session import WalletSession
from host.transport.inprocess import connect_card

from .cards import AnyCard, Cards
from .helpers import PIN, personalized, send


def coupon(name: str, payload: int) -> ValueRecord:
    return ValueRecord(ValueType.COUPON, name, payload=bytes(payload))


def extents(m: w.MemoryMap) -> dict[int, tuple[int, int]]:
    return {e.id: (e.offset, e.size) for e in m.entries}


def test_the_areas_are_the_cards_geometry() -> None:
    card, s = personalized(size=16384, index_capacity=16)
    m = s.memory_map()
    applet = card.applets[0]
    assert m.memory_size == 16384
    assert [(a.kind, a.start, a.length) for a in m.areas] == [
        (w.AreaKind.MEMORY_HEADER, 0, HEADER_SIZE),
        (w.AreaKind.JOURNAL, HEADER_SIZE, card.eeprom.journal_size),
        (w.AreaKind.APPLET_HEADER, card.eeprom.app_offset, WALLET_HEADER),
        (w.AreaKind.INDEX, applet.index.base, 16 * w.INDEX_ENTRY_LEN),  # type: ignore[attr-defined]
        (w.AreaKind.DATA, applet.index.data_start, applet.index.data_size),  # type: ignore[attr-defined]
    ]
    assert m.areas[-1].end == 16384 and m.entries == ()
    assert m.area(w.AreaKind.DATA).length == s.info().total_memory


def test_the_areas_lie_in_the_memory_and_name_the_data_area_and_index(card: AnyCard) -> None:
    """What docs/APDU.md 3.10 asks of either card's map (the Python card's own areas are above,
    the applet's are its arrays): areas in address order, disjoint, inside the memory; the data
    area as long as GET CARD INFO's total, the index as its capacity's entries; no entries yet."""
    s = WalletSession(connect_card(card))
    s.verify_pin(PIN)
    m, info = s.memory_map(), s.info()
    assert m.areas[-1].end <= m.memory_size
    assert all(a.end <= b.start for a, b in zip(m.areas, m.areas[1:], strict=False))
    assert m.area(w.AreaKind.DATA).length == info.total_memory
    assert m.area(w.AreaKind.INDEX).length == info.index_capacity * w.INDEX_ENTRY_LEN
    assert m.entries == ()


def test_entries_follow_store_delete_and_compaction(card: AnyCard) -> None:
    s = WalletSession(connect_card(card))
    s.verify_pin(PIN)
    a, b = s.store(coupon("A", 300)), s.store(coupon("B", 300))
    size = {e.id: e.size for e in s.list()}[a]
    assert extents(s.memory_map()) == {a: (0, size), b: (size, size)}
    s.delete(a)
    m = s.memory_map()
    assert extents(m) == {b: (size, size)} and [e.slot for e in m.entries] == [1]  # slot 0 free again
    ids = [b]
    while True:  # fill the data area
        try:
            ids.append(s.store(coupon(f"C{len(ids)}", 300)))
        except ApduError as exc:
            assert exc.sw == SW.NOT_ENOUGH_MEMORY
            break
    for i in ids[1:-1:2]:
        s.delete(i)  # holes of one record each; none fits a 512-byte payload
    before = s.memory_map()
    kept = sorted(extents(before).items(), key=lambda kv: kv[1][0])
    gaps = layout(before).gaps
    assert len(gaps) > 2 and max(g.size for g in gaps) < 512
    wide = s.store(coupon("Wide", 512))  # fits in no gap: the card compacts first
    after = extents(s.memory_map())
    cursor = 0
    for value_id, (_, n) in kept:  # slid down in address order, nothing between them
        assert after[value_id] == (cursor, n)
        cursor += n
    assert after[wide][0] == cursor
    assert all(e.type == ValueType.COUPON and e.flags == ValueFlags.NONE for e in s.memory_map().entries)


def writes(card: AnyCard) -> int:
    """Persistent writes so far: the Python card's page writes, the applet's as the harness counts."""
    return card.eeprom.page_writes if isinstance(card, SimulatedCard) else card.writes


def test_no_pin_no_writes_and_the_same_answer_twice(card: AnyCard) -> None:
    s = WalletSession(connect_card(card))
    s.verify_pin(PIN)
    s.store(coupon("A", 10))
    s.log_out()
    before = writes(card)
    assert s.memory_map() == s.memory_map()
    assert writes(card) == before


def test_p1p2_data_and_life_cycle_are_checked(cards: Cards) -> None:
    s = WalletSession(connect_card(cards.new()))
    s.verify_pin(PIN)
    link = s.protocol.transport
    assert send(link, "801C000100").sw == SW.INCORRECT_P1P2
    assert send(link, "801C010000").sw == SW.INCORRECT_P1P2
    assert send(link, "801C00000100").sw == SW.WRONG_LENGTH
    assert send(link, "001C000000").sw == SW.CLA_NOT_SUPPORTED
    fresh = WalletSession(connect_card(cards.blank()))
    try:
        fresh.memory_map()
    except ApduError as exc:
        assert exc.sw == SW.CONDITIONS_NOT_SATISFIED  # as LIST VALUES before personalization
    else:
        raise AssertionError("a card in personalization answered its memory map")


def test_a_long_map_comes_through_get_response_on_t0(cards: Cards) -> None:
    card = cards.blank()
    s = WalletSession(connect_card(card, "T=0"))
    from ..conftest import ISSUER, PUK

    ISSUER.personalize(s, PIN, PUK)
    s.verify_pin(PIN)
    ids = [s.store(coupon(f"C{i}", 1)) for i in range(40)]
    assert card.protocol == T0
    whole = s.memory_map()  # through the processors: GET RESPONSE until 9000
    assert [e.id for e in whole.entries] == ids
    part = send(s.protocol.transport, "801C000000")  # no Le on T=0: 61xx, data waits
    data = bytearray(part.data)
    while part.sw1 == 0x61:
        part = send(s.protocol.transport, f"80C00000{part.sw2:02X}")
        data += part.data
    assert part.sw == SW.OK
    assert len(data) > 256 and w.MemoryMap.from_bytes(bytes(data)) == whole
