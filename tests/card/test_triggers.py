"""The backup-trigger manager on the card: the seed's fig. 15/16 selections, every condition
kind, random wallets against a reference evaluation written here, refusals that change
nothing, and tearing at every write of the commands that write."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apdu import SW
from apdu import triggers as t
from apdu.records import ValueFlags, ValueRecord, ValueType
from apdu.wallet import MessageError
from host.demo import FIG15
from host.session import WalletSession
from host.transport import Transport
from host.transport.inprocess import connect_card

from ..readers import Reader
from .cards import AnyCard, Cards
from .helpers import cells_with, observe, personalized, send, tear_every_write

PIN = "1234"
TODAY = date(2000, 3, 15)  # the seed's "today"


CELLS = cells_with(FIG15)  # the Python card's, for its tearing
NAMES = {1: "A", 2: "C", 3: "E", 4: "G"}


def fig15(s: WalletSession) -> None:
    for r in FIG15:
        s.store(r)


def fig15_card(cards: Cards) -> AnyCard:
    return cards.prepared("triggers: fig. 15", fig15)


def selected(s: WalletSession, condition: str, today: date = TODAY) -> str:
    s.put_triggers(t.TriggerSettings(t.parse_condition(condition)))
    return "".join(NAMES[c.value_id] for c in s.select_for_backup(today))


SELECTIONS = [
    ("type=ticket and name~Movie", "AG"),  # fig. 16(a)
    ("unusable-within=30", "CG"),  # fig. 16(b): no usable day within a month of 2000-03-15
    ("type=ticket", "ACG"),
    ("type=prepaid,coupon", "E"),
    ("name~ticket", "ACG"),
    ("name~movie", ""),  # case-sensitive, like a byte comparison on the card
    ("size>=76", "ACG"),
    ("size>=77", ""),
    ("share-of-free>=1", ""),
    ("unusable-within=16", "ACG"),  # A becomes usable on 04-01, 17 days on
    ("unusable-within=17", "CG"),
    ("held-over=13", "ACEG"),  # FIG15 values were acquired on 2000-03-01
    ("held-over=14", ""),
    ("not type=ticket", "E"),
    ("type=ticket and not name~Movie", "C"),
    ("name~Concert or name~Prepaid", "CE"),
    ("(type=ticket or type=prepaid) and unusable-within=30", "CG"),
]


@pytest.mark.parametrize(("condition", "expected"), SELECTIONS)
def test_fig15_selections(reader: Reader, cards: Cards, condition: str, expected: str) -> None:
    s = WalletSession(reader.insert(fig15_card(cards)))
    s.verify_pin(PIN)
    assert selected(s, condition) == expected


def test_expired_values_are_unusable_and_certificates_are_never_selected(cards: Cards) -> None:
    s = WalletSession(connect_card(fig15_card(cards)))
    s.verify_pin(PIN)
    assert selected(s, "unusable-within=0", date(2000, 6, 1)) == "AC"  # expired; G still valid
    s.begin_backup(2)  # pending: not selectable
    assert selected(s, "type=ticket") == "AG"


def test_share_of_free_memory(card: AnyCard) -> None:
    s = WalletSession(connect_card(card))
    s.verify_pin(PIN)
    big = s.store(ValueRecord(ValueType.COUPON, "Big", payload=bytes(500)))
    s.store(ValueRecord(ValueType.COUPON, "Small"))
    free = s.info().free_memory
    size = next(e.size for e in s.list() if e.id == big)
    s.put_triggers(t.TriggerSettings(t.ShareOfFree(size * 100 // free)))
    assert [c.value_id for c in s.select_for_backup(TODAY)] == [big]
    s.put_triggers(t.TriggerSettings(t.ShareOfFree(size * 100 // free + 1)))
    assert s.select_for_backup(TODAY) == ()


def test_factory_defaults_and_settings_round_trip(reader: Reader, cards: Cards) -> None:
    s = WalletSession(reader.insert(fig15_card(cards)))
    assert s.triggers() == t.FACTORY_SETTINGS
    s.verify_pin(PIN)
    new = t.TriggerSettings(t.parse_condition("type=ticket and name~Movie"), 7, t.ShortagePolicy.AUTOMATIC)
    s.put_triggers(new)
    s.record_run(TODAY)
    assert s.triggers() == replace(new, last_run=TODAY)
    s.put_triggers(replace(new, period_days=14))  # PUT keeps the card's record of the last run
    assert s.triggers() == replace(new, period_days=14, last_run=TODAY)
    assert not s.triggers().due(TODAY + timedelta(days=13)) and s.triggers().due(TODAY + timedelta(days=14))


@pytest.mark.parametrize(("name", "verify", "apdu", "sw"), [
    ("put-without-pin", False, "80520000" + "10" + bytes(t.FACTORY_SETTINGS).hex(), SW.SECURITY_STATUS_NOT_SATISFIED),
    ("put-garbage", True, "8052000003010203", SW.WRONG_DATA),
    ("put-version-2", True, "80520000" + "10" + bytes(t.FACTORY_SETTINGS).hex().replace("c00101", "c00102", 1),
     SW.WRONG_DATA),
    ("put-unknown-leaf", True, "8052000008c00101e0038601ff", SW.WRONG_DATA),
    ("put-with-last-run", True, "80520000" + "16" + bytes(replace(t.FACTORY_SETTINGS, last_run=TODAY)).hex(),
     SW.WRONG_DATA),
    ("put-bad-p1", True, "80520100" + "10" + bytes(t.FACTORY_SETTINGS).hex(), SW.INCORRECT_P1P2),
    ("select-no-date", False, "8054000000", SW.WRONG_DATA),
    ("select-bad-date", False, "805400000420001332", SW.WRONG_DATA),
    ("record-run-without-pin", False, "805600000420000315", SW.SECURITY_STATUS_NOT_SATISFIED),
    ("record-run-bad-date", True, "8056000004200003AA", SW.WRONG_DATA),
    ("get-with-data", False, "805000000100", SW.WRONG_LENGTH),
])
def test_refusals_change_nothing(reader: Reader, cards: Cards, name: str, verify: bool, apdu: str, sw: SW) -> None:
    card = fig15_card(cards)
    before = observe(card)
    link: Transport = reader.insert(card)
    WalletSession(link).info()  # selects the wallet
    if verify:
        WalletSession(link).verify_pin(PIN)
    assert send(link, apdu).sw == sw, name
    link.close()
    card.power_off()
    assert observe(card) == before
    assert WalletSession(connect_card(card)).triggers() == t.FACTORY_SETTINGS


# --- random wallets against a reference evaluation ---------------------------------------------


def reference(c: t.Condition, r: ValueRecord, size: int, free: int, today: date) -> bool:
    """The conditions as the module docstring words them, on the host's view of a value."""
    match c:
        case t.TypeIs(types):
            return r.type in types
        case t.NameContains(text):
            return text in r.name
        case t.MinSize(n):
            return size >= n
        case t.ShareOfFree(p):
            return size * 100 >= free * p
        case t.UnusableWithin(days):
            window_end = today + timedelta(days=days)
            usable_from = r.valid_from or date.min
            usable_to = r.valid_to or date.max
            return usable_to < today or usable_from > window_end
        case t.HeldOver(days):
            return r.acquired_at is not None and (today - r.acquired_at.date()).days > days
        case t.Not(child):
            return not reference(child, r, size, free, today)
        case t.AllOf(children):
            return all(reference(x, r, size, free, today) for x in children)
        case t.AnyOf(children):
            return any(reference(x, r, size, free, today) for x in children)
    raise AssertionError(c)


days = st.integers(0, 40)  # dates cluster, so the boundaries are hit
leaves = st.one_of(
    st.lists(st.sampled_from(list(ValueType)), min_size=1, max_size=3, unique=True).map(lambda x: t.TypeIs(tuple(x))),
    st.sampled_from(["Movie", "ticket", "C", "card", "x"]).map(t.NameContains),
    st.integers(0, 700).map(t.MinSize),
    st.integers(1, 120).map(t.ShareOfFree),
    days.map(t.UnusableWithin),
    days.map(t.HeldOver),
)
conditions = st.recursive(
    leaves,
    lambda kids: st.one_of(
        kids.map(t.Not),
        st.lists(kids, min_size=2, max_size=3).map(lambda x: t.AllOf(tuple(x))),
        st.lists(kids, min_size=2, max_size=3).map(lambda x: t.AnyOf(tuple(x))),
    ),
    max_leaves=6,
).filter(lambda c: len(t.encode_condition(c)) < 200 if _depth_ok(c) else False)


def _depth_ok(c: t.Condition, depth: int = 1) -> bool:
    if depth > t.MAX_DEPTH:
        return False
    if isinstance(c, t.Not):
        return _depth_ok(c.child, depth + 1)
    if isinstance(c, t.AllOf | t.AnyOf):
        return all(_depth_ok(x, depth + 1) for x in c.children)
    return True


def _day(n: int) -> date:
    return date(2000, 1, 1) + timedelta(days=n)


values = st.builds(
    lambda kind, name, start, length, acquired, payload, dated: ValueRecord(
        kind, name,
        valid_from=_day(start) if dated & 1 else None,
        valid_to=_day(start + length) if dated & 2 else None,
        acquired_at=datetime.combine(_day(acquired), datetime.min.time()) if dated & 4 else None,
        payload=bytes(payload),
    ),
    st.sampled_from(list(ValueType)),
    st.sampled_from(["Movie ticket A", "Concert C", "Prepaid card", "Coupon x", "Ticket"]),
    st.integers(0, 60), st.integers(0, 30), st.integers(0, 60), st.integers(0, 400), st.integers(0, 7),
)


@given(wallet=st.lists(values, min_size=1, max_size=8), condition=conditions, today=st.integers(0, 90))
def test_random_wallets_select_what_the_reference_selects(
    wallet: list[ValueRecord], condition: t.Condition, today: int
) -> None:
    _, s = personalized(size=8192)
    ids = {s.store(r): r for r in wallet}
    s.put_triggers(t.TriggerSettings(condition))
    free = s.info().free_memory
    sizes = {e.id: e.size for e in s.list()}
    expected = [i for i, r in ids.items() if reference(condition, r, sizes[i], free, _day(today))]
    assert [c.value_id for c in s.select_for_backup(_day(today))] == expected


# --- tearing -----------------------------------------------------------------------------------

WRITES = [
    ("put-triggers", lambda s: s.put_triggers(t.TriggerSettings(t.parse_condition("type=ticket and name~Movie"),
                                                                 7, t.ShortagePolicy.AUTOMATIC))),
    ("record-run", lambda s: s.record_run(TODAY)),
]


@pytest.mark.parametrize(("name", "op"), WRITES, ids=[w[0] for w in WRITES])
def test_tearing_at_every_write(name: str, op: Callable[[WalletSession], object]) -> None:
    tear_every_write(CELLS, op, lambda s: s.triggers())


def test_pending_value_is_not_selected_after_a_torn_backup(cards: Cards) -> None:
    s = WalletSession(connect_card(fig15_card(cards)))
    s.verify_pin(PIN)
    s.begin_backup(4)
    assert ValueFlags.PENDING in s.list()[3].flags
    assert selected(s, "unusable-within=30") == "C"
    with pytest.raises(MessageError):
        t.TriggerSettings(None, period_days=70000)
