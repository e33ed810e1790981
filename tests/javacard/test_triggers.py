"""The backup-trigger manager on both cards (docs/APDU.md 6, seed E9): GET / PUT TRIGGERS, SELECT
FOR BACKUP, RECORD RUN, differential: every refusal of the settings' grammar and limits, every
condition kind at its edges, the last run kept across a PUT, random settings (valid and mangled)
against random wallets and dates; and the host's trigger-driven run on the applet.
"""

from __future__ import annotations

import os
from datetime import date, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apdu import tlv
from apdu import triggers as t
from apdu.records import ValueFlags, ValueType
from host.demo import FIG15
from host.session import WalletSession
from host.triggers import VaultLink, run_auto, run_if_due
from servers.vault.server import running

from ..conftest import FULL, ISSUER, PIN, PUK
from .applet import NO_KIT, AppletTransport
from .test_differential import CARD_INFO, PERSONALIZE, POWER_CYCLE, SELECT, run_both
from .test_values import BIG, COUPON, MOVIE, PREPAID, VERIFY, body, command, store

if not os.environ.get("JC_HOME"):
    pytest.skip(NO_KIT, allow_module_level=True)

GET = "8050000000"
OPEN = [PERSONALIZE, VERIFY]
WALLET = [store(MOVIE), store(PREPAID), store(COUPON), store(BIG),
          store(body(name="Concert ticket C", valid_from=date(2000, 3, 20), valid_to=date(2000, 3, 20),
                     acquired_at=datetime(1999, 12, 31, 23, 59, 59)))]


def put(settings_: t.TriggerSettings | bytes | str, le: str = "") -> str:
    raw = settings_ if isinstance(settings_, bytes) else (
        bytes(t.TriggerSettings(t.parse_condition(settings_))) if isinstance(settings_, str) else bytes(settings_))
    return command("80520000", raw.hex().upper(), le)


def bcd(day: date | str) -> str:
    return day if isinstance(day, str) else f"{day.year:04}{day.month:02}{day.day:02}"


def select(day: date | str, le: str = "00") -> str:
    return command("80540000", bcd(day), le)


def record_run(day: date | str) -> str:
    return command("80560000", bcd(day), "")


def settings_of(condition: bytes | None, *, period: int = 30, policy: int = 2, last: bytes | None = None,
                both: bytes | None = None, version: bytes = b"\x01") -> bytes:
    """Settings put together by hand, so that they can be wrong in any one place."""
    out = b"\xc0" + bytes((len(version),)) + version
    if condition is not None:
        out += b"\xe0" + tlv.encode_length(len(condition)) + condition
    out += b"\xc1\x02" + period.to_bytes(2, "big") + b"\xc2\x01" + bytes((policy,))
    if last is not None:
        out += b"\xc3" + bytes((len(last),)) + last
    if both is not None:
        out += b"\xc4" + bytes((len(both),)) + both
    return out


def node(tag: int, value: bytes) -> bytes:
    """A one-byte tag (any, even one that reads as the start of a longer tag) and its value."""
    return bytes((tag,)) + tlv.encode_length(len(value)) + value


LEAF = node(0x80, b"\x01")
NAME_32 = node(0x81, b"n" * 32)


def deep(depth: int) -> bytes:
    """``not not ... type=ticket``: a leaf at ``depth``."""
    raw = LEAF
    for _ in range(depth - 1):
        raw = node(0xA2, raw)
    return raw


def sized(total: int) -> bytes:
    """Valid settings of exactly ``total`` bytes: names of 30 and one shorter under an ``all``."""
    for n in range(1, 9):
        for last in range(1, 33):
            names = [node(0x81, b"x" * 30)] * (n - 1) + [node(0x81, b"y" * last)]
            if n == 1:
                raw = settings_of(names[0])
            else:
                raw = settings_of(node(0xA0, b"".join(names)))
            if len(raw) == total:
                return raw
    raise AssertionError(total)


TODAY = date(2000, 3, 15)
VECTORS: dict[str, list[str]] = {
    "get, put and the last run": [
        GET, "80500000", "8050000005", "805000000100", "80500100", PERSONALIZE, GET, "8050000010", "805000000100",
        put("type=ticket"), VERIFY, put("type=ticket and name~Movie"), GET, record_run(TODAY), GET,
        put(bytes(t.TriggerSettings(t.parse_condition("size>=30"), 7, t.ShortagePolicy.AUTOMATIC, both_below=20))),
        GET, record_run(date(2001, 1, 1)), GET, put(settings_of(None, period=0, policy=0)), GET,
        record_run(date(2001, 1, 2)), GET, POWER_CYCLE, SELECT, GET, put("type=ticket"),
        VERIFY, put(settings_of(None, last=bytes.fromhex("20000315"))), "80520000", "8052000000", "80520001",
        record_run("200003"), record_run("2000031500"), record_run("20000230"), record_run("200003AA"),
        record_run(""), "80560100", "0020FF81", record_run(TODAY), GET,
    ],
    "settings refused": OPEN + [
        put(b"\x01\x02\x03"), put(settings_of(LEAF, version=b"\x02")), put(settings_of(LEAF, version=b"\x01\x01")),
        put(settings_of(node(0x86, b"\xff"))), put(settings_of(LEAF, policy=3)),
        put(settings_of(LEAF)[:-1]), put(settings_of(LEAF) + b"\x00"), put(settings_of(LEAF) + b"\xc5\x00"),
        put(settings_of(LEAF).replace(b"\xc1\x02\x00\x1e", b"\xc1\x01\x1e")),
        put(settings_of(LEAF).replace(b"\xc1\x02\x00\x1e\xc2\x01\x02", b"\xc2\x01\x02\xc1\x02\x00\x1e")),
        put(settings_of(LEAF).replace(b"\xe0\x03", b"\xe0\x81\x03")),
        put(b"\xe0\x03" + LEAF + settings_of(None)[3:]), put(settings_of(None)[3:]),
        put(settings_of(LEAF, both=b"\x00")), put(settings_of(LEAF, both=b"\x64")), put(settings_of(LEAF, both=b"")),
        put(settings_of(LEAF, both=b"\x01")), put(settings_of(LEAF, both=b"\x63")), put(settings_of(LEAF, both=b"\x01\x01")),
        put(settings_of(LEAF, last=bytes.fromhex("20000230"))), put(settings_of(LEAF, last=bytes.fromhex("200003"))),
        put(settings_of(b"")), put(settings_of(LEAF + LEAF)), put(settings_of(LEAF + b"\x00")),
        put(sized(250)), GET, put(sized(251)), put(sized(244)), record_run(TODAY), GET, put(sized(245)),
        put(sized(244)), GET, put(sized(250)), GET, "8050000010",
    ],
    "conditions refused and at their limits": OPEN + [
        put(settings_of(node(0x80, b""))), put(settings_of(node(0x80, bytes([1, 2, 3, 4, 0x7F, 1, 2, 3])))),
        put(settings_of(node(0x80, bytes([1, 2, 3, 4, 0x7F, 1, 2, 3, 4])))), put(settings_of(node(0x80, b"\x05"))),
        put(settings_of(node(0x80, b"\x00"))), put(settings_of(node(0x80, b"\xff"))),
        put(settings_of(node(0x81, b""))), put(settings_of(NAME_32)), put(settings_of(node(0x81, b"n" * 33))),
        put(settings_of(node(0x81, "é".encode()))), put(settings_of(node(0x81, b"\xc3"))),
        put(settings_of(node(0x81, b"\xed\xa0\x80"))), put(settings_of(node(0x81, b"\xc0\x80"))),
        put(settings_of(node(0x82, b"\x00"))), put(settings_of(node(0x82, b"\xff\xff"))),
        put(settings_of(node(0x83, b"\x00"))), put(settings_of(node(0x83, b"\xff"))),
        put(settings_of(node(0x83, b"\x01\x01"))), put(settings_of(node(0x84, b"\x00\x00\x00"))),
        put(settings_of(node(0x85, b"\xff\xff"))), put(settings_of(deep(4))), put(settings_of(deep(5))),
        put(settings_of(node(0xA2, b""))), put(settings_of(node(0xA2, LEAF + LEAF))),
        put(settings_of(node(0xA0, LEAF))), put(settings_of(node(0xA0, LEAF * 2))),
        put(settings_of(node(0xA1, LEAF * 8))), put(settings_of(node(0xA1, LEAF * 9))),
        put(settings_of(node(0xA0, LEAF + node(0xA1, LEAF + node(0xA2, node(0xA0, LEAF * 2)))))),
        put(settings_of(node(0xA0, LEAF + node(0xA1, LEAF + node(0xA2, deep(2)))))),
        put(settings_of(node(0xA0, LEAF + b"\x00"))), put(settings_of(node(0x20, LEAF))),
        put(settings_of(node(0xBF, b""))), put(settings_of(b"\x9f\x1f\x00")), GET,
    ],
    "select for backup": OPEN + WALLET + [
        select(TODAY), put("type=ticket and name~Movie"), select(TODAY), select(TODAY, ""), select(TODAY, "02"),
        select("200003"), select("20001301"), select("00000101"), select("2000031500"), "8054000100",
        *(x for c, d in [
            ("unusable-within=30", TODAY), ("unusable-within=16", TODAY), ("unusable-within=17", TODAY),
            ("unusable-within=0", date(2000, 6, 1)), ("unusable-within=0", date(2000, 3, 20)),
            ("unusable-within=65535", date(1, 1, 1)), ("unusable-within=4", date(2000, 3, 15)),
            ("unusable-within=5", date(2000, 3, 15)), ("held-over=13", TODAY), ("held-over=14", TODAY),
            ("held-over=74", TODAY), ("held-over=75", TODAY), ("held-over=0", date(2000, 3, 1)),
            ("held-over=65535", date(9999, 12, 31)), ("held-over=0", date(1999, 1, 1)),
            ("type=ticket", TODAY), ("type=prepaid,coupon", TODAY), ("name~ticket", TODAY),
            ("name~movie", TODAY), ("name~t", TODAY), ("size>=76", TODAY), ("size>=77", TODAY),
            ("size>=0", TODAY), ("size>=65535", TODAY), ("share-of-free>=1", TODAY), ("share-of-free>=2", TODAY),
            ("share-of-free>=255", TODAY), ("not type=ticket", TODAY), ("type=ticket and not name~Movie", TODAY),
            ("name~Concert or name~Prepaid", TODAY), ("(type=ticket or type=prepaid) and unusable-within=30", TODAY),
        ] for x in (put(c), select(d))),
        put(settings_of(None)), select(TODAY), put("type=ticket"), "80400001", select(TODAY), "8044000100",
        select(TODAY), GET, CARD_INFO,
    ],
}


@pytest.mark.parametrize("name", VECTORS)
def test_vectors(applet: AppletTransport, name: str) -> None:
    run_both(applet, VECTORS[name])


def test_share_of_free_at_its_edge(applet: AppletTransport) -> None:
    """size * 100 against free * percent, both past 16 bits, at the exact percent and one above:
    a 1-byte-short product or a signed comparison on the card would pick another value."""
    filler = [body(type=ValueType.COUPON, name=f"F{n:02}", payload=bytes(512)) for n in range(50)]
    big, small = body(type=ValueType.COUPON, name="Big", payload=bytes(500)), body(name="Small")
    size = len(bytes.fromhex(big))
    free = 28656 - sum(len(bytes.fromhex(v)) for v in [*filler, big, small])
    percent = size * 100 // free
    assert 1 <= percent < 255 and free * percent > 0x7FFF and size * 100 > 0x7FFF
    run_both(applet, [*OPEN, *(store(v) for v in [*filler, big, small]), CARD_INFO,
                      *(x for p in (percent, percent + 1, 1, 255) for x in (put(f"share-of-free>={p}"), select(TODAY)))])


# --- random settings (valid, and mangled) against random wallets -----------------------------

leaves = st.one_of(
    st.builds(lambda ts: t.TypeIs(tuple(ts)), st.lists(st.sampled_from(list(ValueType)), min_size=1, max_size=8)),
    st.builds(t.NameContains, st.sampled_from(["Movie", "ticket", "C", "card E", "Big", "é", "x"])),
    st.builds(t.MinSize, st.sampled_from([0, 1, 40, 60, 76, 77, 600, 65535])),
    st.builds(t.ShareOfFree, st.integers(1, 255)),
    st.builds(t.UnusableWithin, st.sampled_from([0, 1, 5, 16, 17, 30, 365, 366, 65535])),
    st.builds(t.HeldOver, st.sampled_from([0, 1, 13, 14, 74, 75, 400, 65535])),
)
conditions = st.recursive(
    leaves, lambda kids: st.one_of(
        st.builds(t.Not, kids),
        st.builds(lambda cs: t.AllOf(tuple(cs)), st.lists(kids, min_size=2, max_size=3)),
        st.builds(lambda cs: t.AnyOf(tuple(cs)), st.lists(kids, min_size=2, max_size=3))),
    max_leaves=6)


def loose(c: t.Condition) -> bytes:
    """A condition's encoding without the limits' checks: a card must refuse what is too deep."""
    match c:
        case t.Not(child):
            return node(0xA2, loose(child))
        case t.AllOf(children) | t.AnyOf(children):
            return node(0xA0 if isinstance(c, t.AllOf) else 0xA1, b"".join(loose(x) for x in children))
    return t.encode_condition(c)


@st.composite
def put_steps(draw: st.DrawFn) -> str:
    condition = draw(st.none() | conditions)
    raw = settings_of(None if condition is None else loose(condition), period=draw(st.integers(0, 0xFFFF)),
                      policy=draw(st.sampled_from([0, 1, 2, 2, 3])), both=draw(st.sampled_from([None, b"\x01", b"\x63"])))
    mangle = draw(st.sampled_from(["none", "none", "flip", "cut", "append"]))
    if mangle == "flip":
        at = draw(st.integers(0, len(raw) - 1))
        raw = raw[:at] + bytes((raw[at] ^ draw(st.integers(1, 255)),)) + raw[at + 1:]
    elif mangle == "cut":
        raw = raw[:draw(st.integers(0, len(raw)))]
    elif mangle == "append":
        raw += draw(st.binary(min_size=1, max_size=3))
    return put(raw)


days = st.dates(date(1999, 1, 1), date(2002, 12, 31))
trigger_steps = st.one_of(
    put_steps(),
    st.builds(lambda d: select(d), days),
    st.builds(lambda d: record_run(d), days),
    st.sampled_from([GET, "8050000008", CARD_INFO, VERIFY, "0020FF81", POWER_CYCLE, "80400001", "80440001",
                     "801A0002", select("20000229"), select("20010229")]),
    st.builds(lambda name, kind, valid_to: store(body(type=kind, name=name, valid_to=valid_to,
                                                      acquired_at=datetime(2000, 1, 1, 12, 0, 0))),
              st.sampled_from(["Movie ticket", "Big card", "Coupon x", "é"]), st.sampled_from(list(ValueType)),
              st.none() | days),
)


@settings(max_examples=400 if FULL else 40, deadline=None)
@given(st.lists(trigger_steps, min_size=1, max_size=30))
def test_random_trigger_sequences(applet_jvm: AppletTransport, sequence: list[str]) -> None:
    applet_jvm.new_card()
    steps = [*OPEN, *WALLET]
    for step in sequence:
        steps += [POWER_CYCLE, SELECT] if step == POWER_CYCLE else [step]
    run_both(applet_jvm, [*steps, GET])


# --- the host's trigger-driven run (fig. 40) on the applet -------------------------------------


def test_the_hosts_periodic_run_backs_up_what_the_applet_selects(applet: AppletTransport, tmp_path: Path) -> None:
    """host.triggers on the applet through a real vault on loopback: the factory settings are due
    on a card never run; the run backs up exactly the values the applet's condition selects
    (the seed's fig. 15 values on 2000-03-15: C and G, no usable day within 30 days), records the
    run, and is not due again until the period has passed; a value left pending by a torn run is
    finished by the next."""
    session = WalletSession(applet)
    ISSUER.personalize(session, PIN, PUK)
    session.verify_pin(PIN)
    ids = [session.store(record) for record in FIG15]
    with running(f"sqlite:///{tmp_path / 'vault.db'}", tmp_path / "vault-key.pem") as url, VaultLink(url) as link:
        assert session.triggers() == t.FACTORY_SETTINGS and session.triggers().due(TODAY)
        run = run_if_due(session, link, TODAY)
        assert run is not None and not run.failed
        chosen = [c.value_id for c in run.selected]
        assert chosen == [ids[1], ids[3]] and sorted(o.value_id for o in run.done) == chosen
        flags = {e.id: e.flags for e in session.list()}
        assert {i for i, f in flags.items() if f & ValueFlags.CERTIFICATE} == set(chosen)
        assert session.triggers().last_run == TODAY
        assert run_if_due(session, link, TODAY + timedelta(days=29)) is None
        session.put_triggers(t.TriggerSettings(t.parse_condition("type=prepaid"), 7, t.ShortagePolicy.AUTOMATIC))
        session.begin_backup(ids[2])  # a run torn after its BEGIN BACKUP
        again = run_auto(session, link, TODAY + timedelta(days=1))
        assert again.selected == () and [o.value_id for o in again.done] == [ids[2]]
        assert len(link.client().registrations()) == 3
        assert session.triggers().last_run == TODAY + timedelta(days=1)
