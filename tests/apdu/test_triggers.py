"""The backup-condition codec and its text form: vectors, round trips over random trees, and
the card's limits refused with a clear message."""

from __future__ import annotations

from datetime import date

import pytest
from hypothesis import given
from hypothesis import strategies as st

from apdu import triggers as t
from apdu.records import ValueType
from apdu.wallet import MessageError

VECTORS = [
    ("type=ticket and name~Movie", "a00a80010181054d6f766965"),
    ("unusable-within=30", "8402001e"),
    ("(size>=300 or share-of-free>=50) and not type=prepaid", "a00ea1078202012c830132a203800102"),
    ('held-over=90 or (type=coupon,voucher and name~"a b")', "a10f8502005aa009800203048103612062"),
    ('name~"A=0"', "8103413d30"),  # found by hypothesis: text that looks like a condition is quoted
]


@pytest.mark.parametrize(("text", "hex_tlv"), VECTORS)
def test_vectors(text: str, hex_tlv: str) -> None:
    c = t.parse_condition(text)
    assert t.encode_condition(c).hex() == hex_tlv
    assert t.decode_condition(bytes.fromhex(hex_tlv)) == c
    assert t.format_condition(c) == text


@pytest.mark.parametrize(("text", "words"), [
    ("", "empty"),
    ("type=ticket and", "ends too early"),
    ("(type=ticket", "')' is missing"),
    ("type=ticket )", "unexpected ')'"),
    ("type=train", "unknown value type train"),
    ("size>=x", "whole number"),
    ("size>=70000", "size>= must be 0..65535"),
    ("share-of-free>=0", "share-of-free>= must be 1..255"),
    ("colour=red", "unknown condition"),
    ("name~" + "x" * 33, "1..32 bytes"),
    ("not not not not type=ticket", "nest at most 4"),
    (" or ".join(f"size>={i}" for i in range(9)), "2..8 conditions"),
])
def test_bad_text_is_refused_clearly(text: str, words: str) -> None:
    with pytest.raises(MessageError, match=words.replace("(", r"\(").replace(")", r"\)")):
        t.parse_condition(text)


@pytest.mark.parametrize(("hex_tlv", "words"), [
    ("", "exactly one node"),
    ("8402001e8402001e", "exactly one node"),
    ("860100", "unknown or malformed"),
    ("84011e", "unknown or malformed"),  # a 1-byte day count
    ("8481021e00", "non-minimal"),  # long-form length for a short value
    ("a0048402001e", "2..8 conditions"),  # and with one child
    ("a2088402001e8402001e", "exactly one condition"),
    ("8001ff", "bad condition node"),  # no such value type
])
def test_bad_tlv_is_refused(hex_tlv: str, words: str) -> None:
    with pytest.raises((MessageError, ValueError), match=words):
        t.decode_condition(bytes.fromhex(hex_tlv))


leaves = st.one_of(
    st.lists(st.sampled_from(list(ValueType)), min_size=1, max_size=8).map(lambda x: t.TypeIs(tuple(x))),
    st.text(st.characters(codec="utf-8", exclude_characters='"'), min_size=1, max_size=8).map(t.NameContains),
    st.integers(0, 0xFFFF).map(t.MinSize),
    st.integers(1, 255).map(t.ShareOfFree),
    st.integers(0, 0xFFFF).map(t.UnusableWithin),
    st.integers(0, 0xFFFF).map(t.HeldOver),
)
trees = st.recursive(leaves, lambda kids: st.one_of(
    kids.map(t.Not),
    st.lists(kids, min_size=2, max_size=3).map(lambda x: t.AllOf(tuple(x))),
    st.lists(kids, min_size=2, max_size=3).map(lambda x: t.AnyOf(tuple(x))),
), max_leaves=5)


def encodable(c: t.Condition) -> bool:
    try:
        t.encode_condition(c)
    except MessageError:
        return False
    return True


@given(trees.filter(encodable))
def test_tlv_round_trip(c: t.Condition) -> None:
    assert t.decode_condition(t.encode_condition(c)) == c


def flat(c: t.Condition) -> t.Condition:
    """The text form cannot tell 'a and (b and c)' from 'a and b and c': compare flattened."""
    match c:
        case t.AllOf(children):
            return t.AllOf(tuple(y for x in map(flat, children) for y in (x.children if isinstance(x, t.AllOf) else (x,))))
        case t.AnyOf(children):
            return t.AnyOf(tuple(y for x in map(flat, children) for y in (x.children if isinstance(x, t.AnyOf) else (x,))))
        case t.Not(child):
            return t.Not(flat(child))
    return c


printable = st.text(st.characters(min_codepoint=33, max_codepoint=126, exclude_characters='"()'), min_size=1,
                    max_size=8)


@given(trees.filter(encodable))
def test_text_round_trip(c: t.Condition) -> None:
    text = t.format_condition(c)
    try:
        again = t.parse_condition(text)
    except MessageError as exc:  # flattening can exceed the card's 8 children: said so clearly
        assert "2..8 conditions" in str(exc)
        return
    assert flat(again) == flat(c)


@given(st.one_of(st.none(), trees.filter(encodable)), st.integers(0, 0xFFFF), st.sampled_from(list(t.ShortagePolicy)),
       st.one_of(st.none(), st.dates(date(2000, 1, 1), date(2099, 12, 31))), st.integers(0, 99))
def test_settings_round_trip(c: t.Condition | None, period: int, policy: t.ShortagePolicy, last: date | None,
                             both_below: int) -> None:
    s = t.TriggerSettings(c, period, policy, last, both_below)
    try:
        raw = bytes(s)
    except MessageError as exc:
        assert "the card keeps" in str(exc)
        return
    assert t.TriggerSettings.from_bytes(raw) == s


def test_due() -> None:
    s = t.TriggerSettings(period_days=7, last_run=date(2000, 3, 15))
    assert not s.due(date(2000, 3, 21)) and s.due(date(2000, 3, 22))
    assert t.TriggerSettings(period_days=7).due(date(2000, 1, 1))
    assert not t.TriggerSettings(period_days=0).due(date(2000, 1, 1))


@pytest.mark.parametrize("free_percent, due", [(None, False), (0, True), (19, True), (20, False), (80, False)])
def test_both_combines_the_period_with_a_shortage(free_percent: int | None, due: bool) -> None:
    """Seed para. 0133, "both": periodic *and* short of memory (under 20% free here)."""
    s = t.TriggerSettings(period_days=7, both_below=20)
    assert s.due(date(2000, 1, 1), free_percent) == due
    assert t.TriggerSettings(period_days=7).due(date(2000, 1, 1), 80)  # "either": whenever due


@pytest.mark.parametrize("hex_tlv", [
    "C00101C1020007C20102C40100",  # a threshold of 0 is written as no C4 at all
    "C00101C1020007C20102C40164",  # 100%: always short, i.e. not "both"
    "C00101C1020007C20102C4020014",  # two bytes
])
def test_bad_both_thresholds_are_refused(hex_tlv: str) -> None:
    with pytest.raises(MessageError):
        t.TriggerSettings.from_bytes(bytes.fromhex(hex_tlv))


def test_both_vector() -> None:
    s = t.TriggerSettings(None, 7, t.ShortagePolicy.ASK, None, 20)
    assert bytes(s).hex().upper() == "C00101C1020007C20102C40114"
