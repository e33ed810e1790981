"""The value index on both cards: STORE / LIST / READ / MODIFY / DELETE VALUE, the record
normalisation, allocation and compaction, chaining, extended length and 61xx / 6Cxx / GET RESPONSE.

Same APDUs to the Python card and the applet, every answer and status word compared
(:func:`tests.javacard.test_differential.run_both`). Records are built with
:class:`apdu.records.ValueRecord` where they should be canonical and by hand where the point is
what the card does with bytes a host should not send.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from datetime import date, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from apdu import wallet as w
from apdu.records import ValueRecord, ValueType
from host.transport import Transport

from ..conftest import FULL
from .applet import NO_KIT, AppletTransport, Build
from .test_differential import CARD_INFO, PERSONALIZE, POWER_CYCLE, SELECT, pin, python_card, run_both

if not os.environ.get("JC_HOME"):
    pytest.skip(NO_KIT, allow_module_level=True)

VERIFY = "0020008108" + pin("1234")
LOG_OUT = "0020FF81"
LIST_ALL = "8012000000"
LIST_ALL_EXTENDED = "80120000000000"  # case 2 extended: 00, then Le 0000 (65536)


def tlv(tag: int, value: bytes) -> str:
    n = len(value)
    head = bytes((n,)) if n < 0x80 else (b"\x81" + bytes((n,)) if n <= 0xFF else b"\x82" + n.to_bytes(2, "big"))
    return (bytes((tag,)) + head + value).hex().upper()


def command(header: str, data: str, le: str = "00") -> str:
    """A case-3/4 APDU, extended when the data needs it (Le then 2 bytes, ``le`` as given or 0000)."""
    n = len(data) // 2
    if n == 0:
        return header + le
    if n <= 255:
        return f"{header}{n:02X}{data}{le}"
    return f"{header}00{n:04X}{data}" + ("0000" if le else "")


def store(body: str, le: str = "00") -> str:
    return command("80160000", body, le)


def value_id(n: int) -> str:
    return f"{n:04X}"


def read(n: int, le: str = "00") -> str:
    """Le as given: "" none, 1 byte short, 2 bytes extended (after the 00 that marks it)."""
    return f"8014{value_id(n)}{'00' if len(le) == 4 else ''}{le}"


def modify(n: int, op: int, amount: int) -> str:
    return f"8018{value_id(n)}05{op:02X}{amount:08X}00"


def delete(n: int) -> str:
    return f"801A{value_id(n)}"


def list_filter(flags: int, type_: int = 0, today: str = "00000000", days: int = 0) -> str:
    return f"8012000008{flags:02X}{type_:02X}{today}{days:04X}00"


def body(**fields: object) -> str:
    defaults: dict[str, object] = {"type": ValueType.TICKET, "name": "Movie ticket A"}
    return ValueRecord(**{**defaults, **fields}).body().hex().upper()  # type: ignore[arg-type]


MOVIE = body(issuer="Cinema B", face_value=1600, valid_from=date(2000, 4, 1), valid_to=date(2000, 5, 31),
             place="B", acquired_at=datetime(2000, 3, 1, 10, 0, 0))
PREPAID = body(type=ValueType.PREPAID, name="Prepaid card E", issuer="Shop F", face_value=1000, balance=800,
               place="F")
COUPON = body(type=ValueType.COUPON, name="Coupon", quantity=5, valid_to=date(2001, 1, 10))
BIG = body(name="Big", payload=bytes(range(256)) * 2)  # 512 bytes: an extended APDU
OPEN = [PERSONALIZE, VERIFY]


def name_of(length: int) -> str:
    return tlv(0x81, b"\x01") + tlv(0x83, b"n" * length)


def bare(extra: str = "") -> str:
    return name_of(4) + extra


VECTORS: dict[str, list[str]] = {
    "store, list and read": OPEN + [
        store(MOVIE), store(PREPAID), store(COUPON), LIST_ALL, read(1), read(2), read(3), CARD_INFO,
        read(4), "8014000000", "80140001" + "0100", list_filter(0x01, 0x02), list_filter(0x02),
        LIST_ALL_EXTENDED, read(1, "0000"),
    ],
    "before personalization and without the PIN": [
        store(MOVIE), LIST_ALL, read(1), PERSONALIZE, store(MOVIE), LIST_ALL, read(1), modify(1, 1, 1),
        delete(1), VERIFY, store(MOVIE), LOG_OUT, store(MOVIE), modify(1, 2, 1), delete(1), read(1), CARD_INFO,
    ],
    "P1-P2 and classes": OPEN + [
        store(MOVIE), command("80160001", bare()), "8012000100", "8014000000", "8018000005010000000100",
        "801A0000", "0016000000", "0012000000", "00140001", "801A0001", CARD_INFO,
    ],
    "record refusals": OPEN + [
        store(bare().replace("8101", "8105", 1)), store(tlv(0x81, b"\x01\x01") + tlv(0x83, b"x")),
        store(tlv(0x81, b"\x00") + tlv(0x83, b"x")), store(tlv(0x83, b"name")), store(tlv(0x81, b"\x01")),
        store(tlv(0x81, b"\x01") + tlv(0x83, b"")), store(name_of(65)), store(name_of(64)),
        store(bare(tlv(0x82, b"i" * 65))), store(bare(tlv(0x89, b"p" * 65))), store(bare(tlv(0x90, b"r" * 65))),
        store(bare(tlv(0x82, b"i" * 64) + tlv(0x89, b"p" * 64) + tlv(0x90, b"r" * 64))),
        store(bare(tlv(0x84, b"\x00\x01"))), store(bare(tlv(0x85, b"\x00" * 5))), store(bare(tlv(0x8F, b"\x01"))),
        store(bare(tlv(0x8B, b"EU"))), store(bare(tlv(0x8B, b"\xe2\x82\xac"))), store(bare(tlv(0x8B, b"US\x80"))),
        store(bare(tlv(0x8B, b"usd"))), store(bare(tlv(0x8B, b"\x00\x01\x7f"))),
        store(bare(tlv(0x80, b"\x00\x01"))), store(bare(tlv(0x8D, b"\x00"))), store(bare(tlv(0x8E, b""))),
        store(bare(tlv(0x8E, b"x"))), store(bare(tlv(0x91, b"x"))), store(bare("9F0101")), store(bare("1F810101")),
        store(bare(tlv(0x82, b"a") + tlv(0x82, b"b"))), store(bare("8281")), store(bare("828105" + "61" * 5)),
        store(bare("8282000561616161" + "61")), store(bare("8283000005" + "61" * 5)), store(bare("8205616161")),
        store(bare(tlv(0x8C, bytes(513)))), store(bare(tlv(0x8C, bytes(512)))), store(bare("84")), store(""),
        CARD_INFO, LIST_ALL,
    ],
    "UTF-8 as Python decodes it": OPEN + [
        store(bare(tlv(0x82, raw))) for raw in (
            b"\xc3\xa9", b"\xc0\x80", b"\xc1\xbf", b"\xe0\x80\x80", b"\xe0\xa0\x80", b"\xed\x9f\xbf",
            b"\xed\xa0\x80", b"\xef\xbf\xbf", b"\xf0\x8f\xbf\xbf", b"\xf0\x90\x80\x80", b"\xf4\x8f\xbf\xbf",
            b"\xf4\x90\x80\x80", b"\xf5\x80\x80\x80", b"\xe2\x82", b"\x80", b"\xff", "映画".encode(), b"a\x00b",
            b"\xe2\x28\xa1",
        )
    ] + [LIST_ALL],
    "dates": OPEN + [
        store(bare(tlv(0x88, bytes.fromhex(d)))) for d in (
            "20000229", "19000229", "20010229", "20040229", "21000229", "24000229", "00000101", "00010101",
            "99991231", "20001301", "20000001", "20000100", "20000431", "20001231", "2000123A", "20001232",
            "200012", "2000120101",
        )
    ] + [
        store(bare(tlv(0x87, bytes.fromhex("20000102")) + tlv(0x88, bytes.fromhex("20000101")))),
        store(bare(tlv(0x87, bytes.fromhex("20000101")) + tlv(0x88, bytes.fromhex("20000101")))),
        store(bare(tlv(0x87, bytes.fromhex("19991231")) + tlv(0x88, bytes.fromhex("20000101")))),
    ] + [
        store(bare(tlv(0x8A, bytes.fromhex(t)))) for t in (
            "20000301100000", "20000301235959", "20000301240000", "20000301106000", "20000301100060",
            "20000301100061", "200003011000", "20000230100000", "2000030110000000",
            "200003011000A0",
        )
    ] + [LIST_ALL],
    "normalisation": OPEN + [
        # the canonical order, defaults written out, empty texts and a zero total left out
        store(tlv(0x83, b"Reordered") + tlv(0x8B, b"EUR") + tlv(0x81, b"\x03") + tlv(0x89, b"")
              + tlv(0x82, b"") + tlv(0x8F, bytes(4)) + tlv(0x90, b"") + tlv(0x8C, b"")),
        store(tlv(0x90, b"remarks") + tlv(0x8F, b"\x00\x00\x01\x00") + tlv(0x8C, b"\x01\x02")
              + tlv(0x8A, bytes.fromhex("19991231235959")) + tlv(0x88, bytes.fromhex("20001231"))
              + tlv(0x87, bytes.fromhex("20000101")) + tlv(0x86, b"\x00\x00\x00\x09") + tlv(0x85, bytes(4))
              + tlv(0x84, bytes(4)) + tlv(0x89, b"P") + tlv(0x82, b"I") + tlv(0x83, b"All") + tlv(0x81, b"\x7f")),
        store(bare(tlv(0x8C, bytes(200)))), store(bare(tlv(0x8C, bytes(300)))),
        read(1), read(2), read(3), read(4), LIST_ALL, CARD_INFO,
    ],
    "modify": OPEN + [
        store(MOVIE), store(PREPAID), store(COUPON),
        modify(2, 1, 300), modify(2, 1, 500), modify(2, 1, 1), modify(2, 1, 0), modify(2, 3, 1),
        "80180002040100012C00", "8018000206010000012C0000", modify(3, 2, 2), modify(3, 2, 3), modify(3, 2, 1),
        modify(1, 1, 1), modify(1, 2, 1), modify(1, 2, 1), modify(9, 1, 1), modify(2, 1, 0xFFFFFFFF),
        store(body(type=ValueType.PREPAID, name="Big balance", balance=0xFFFFFFFE)),
        modify(4, 1, 0xFFFFFFFF), modify(4, 1, 0x80000000), modify(4, 1, 0x7FFFFFFE), modify(4, 1, 0x00010000),
        read(2), read(3), read(4), LIST_ALL,
    ],
    "delete": OPEN + [
        store(MOVIE), store(PREPAID), store(COUPON), delete(2), delete(2), "801A000300", delete(9),
        LIST_ALL, CARD_INFO, store(PREPAID), LIST_ALL, read(4), LOG_OUT, delete(1), read(1), CARD_INFO,
    ],
    "the expiry filter": OPEN + [
        store(body(name=f"to {d}", valid_to=date.fromisoformat(d))) for d in (
            "2000-03-14", "2000-03-15", "2000-03-16", "2000-05-14", "2000-05-15", "2000-12-31", "2001-01-01",
            "2004-03-15", "2179-12-31", "2180-01-01", "9999-12-31",
        )
    ] + [
        store(body(name="no date")),
        list_filter(0x04, 0, "20000315", 60), list_filter(0x04, 0, "20000315", 0), list_filter(0x04, 0, "20000315", 1),
        list_filter(0x04, 0, "20000315", 291), list_filter(0x04, 0, "20000315", 292),
        list_filter(0x04, 0, "20000315", 1461), list_filter(0x04, 0, "20000315", 65535),
        list_filter(0x04, 0, "21000301", 65535), list_filter(0x04, 0, "19991231", 1),
        list_filter(0x04, 0, "99991231", 0), list_filter(0x05, 1, "20000315", 60), list_filter(0x05, 2, "20000315", 60),
        list_filter(0x04, 0, "20000230", 60), list_filter(0x04, 0, "2000031A", 60), list_filter(0x08),
        list_filter(0x01, 5), list_filter(0x01, 0x7F), list_filter(0x00, 9, "FFFFFFFF", 7),
        list_filter(0x06, 0, "20000315", 60), "80120000070400200003150000", "801200000904002000031500000000",
    ],
    "response lengths: 6Cxx, 61xx, GET RESPONSE": OPEN + [
        store(MOVIE, "01"), store(MOVIE, ""), "80C0000000", store(PREPAID), read(1, "05"), read(1, ""),
        "8012000005", "8012000008010100000000000005", "80C0000000", "80C0000003", "00C0000000", "80C0000000",
        store(BIG), read(4, "10"), "80C0000010", "84C0000000", "90C0000000", "80C0000100", "80C000000100",
        "81C0000000", "80C0000000", "80C0000000", "80C0000000", "80C0000000",
        read(4, "10"), CARD_INFO, "80C0000000", read(4, "0000"), read(4, "0010"),
        "00C0000000", "80100000", "801000001C", "8010000100", "00A4040008F0455642574C010105",
    ],
    "a listing longer than 256 bytes": OPEN + [
        store(body(name=f"A long name for a value, number {n:02d} of a listing", issuer="x")) for n in range(9)
    ] + [
        LIST_ALL, "80C0000000", "80C0000000", LIST_ALL, "80C0000040", "80C0000040", "80C0000000",
        LIST_ALL_EXTENDED, list_filter(0x01, 0x01), "80C0000000", LIST_ALL, store(MOVIE), "80C0000000",
    ],
    "chaining": OPEN + [
        # a record in three links, the answer on the last; GET RESPONSE inside a chain leaves it
        "9016000005" + MOVIE[:10], "9016000005" + MOVIE[10:20], "80C0000000",
        "80160000" + f"{len(MOVIE) // 2 - 10:02X}" + MOVIE[20:] + "00", read(1),
        # another INS, P1 or P2 in a link, or last link: 6883
        "9016000005" + MOVIE[:10], "9012000000", "8016000005" + MOVIE[:10],
        "9016000005" + MOVIE[:10], "9016000105" + MOVIE[:10], CARD_INFO, "9016000005" + MOVIE[:10],
        "8010000000",
        # more than 4096 bytes: 6700
        *(["90160000FF" + "00" * 255] * 16), "9016000002" + "0000", "9016000001" + "00", CARD_INFO,
        # a chain of 4096 bytes exactly ends in its command (here refused as no record)
        *(["90160000FF" + "00" * 255] * 16), "8016000010" + "00" * 16, CARD_INFO,
        # a chain for an unknown INS is collected, then refused as the command
        "90F0000001AA", "80F0000001BB", "90A4000000", LIST_ALL,
        # chained class refusals and GET RESPONSE under the chaining bit
        "94160000", "B0160000", "91160000", "90C0000000",
        store(BIG), LIST_ALL,
    ],
}


@pytest.mark.parametrize("name", VECTORS)
def test_vectors(applet: AppletTransport, name: str) -> None:
    run_both(applet, VECTORS[name])


@pytest.fixture(scope="module")
def applet_t0(applet_build: Build) -> Iterator[AppletTransport]:
    transport = AppletTransport(applet_build, protocol="T=0")
    yield transport
    transport.close()


T0_VECTORS = {name: VECTORS[name] for name in (
    "store, list and read", "response lengths: 6Cxx, 61xx, GET RESPONSE", "a listing longer than 256 bytes",
    "chaining", "modify", "delete")}


@pytest.mark.parametrize("name", T0_VECTORS)
def test_vectors_on_t0(applet_t0: AppletTransport, name: str) -> None:
    """On T=0 data without Le is announced with 61xx and waits for GET RESPONSE (docs/APDU.md 1);
    a case-4 command arrives without Le there, so the same sequences exercise it: compare with the
    Python card on T=0 too."""
    applet_t0.new_card()
    run_both(applet_t0, [*T0_VECTORS[name], store(MOVIE, ""), "80C0000000", command("80180001", "0100000001", ""),
                         "00C0000002", "80C0000000", read(1, ""), "80C0000000", "8012000000", "80C0000000"])


def test_memory_full_and_compaction(applet: AppletTransport) -> None:
    """Every index entry taken (6A84), then the data area full; deletes leave gaps no record
    fits until compaction slides the records down. Free bytes and contents must agree."""
    small = [store(bare()) for _ in range(129)]
    ids = list(range(1, 129))
    big = body(name="Big", payload=bytes(512))  # 560 bytes a record
    steps = OPEN + small + [CARD_INFO] + [delete(i) for i in ids] + [CARD_INFO]
    steps += [store(big) for _ in range(52)] + [CARD_INFO, store(bare(tlv(0x8C, bytes(100))))]
    steps += [delete(i) for i in range(129, 181, 2)] + [CARD_INFO]
    steps += [store(body(name="Bigger", payload=bytes(512), issuer="i" * 64, place="p" * 64)) for _ in range(3)]
    steps += [CARD_INFO, LIST_ALL_EXTENDED] + [read(i, "0000") for i in (130, 132, 180, 181, 182, 183)]
    run_both(applet, steps)


# --- random sequences over the value commands -------------------------------------------------

TAG_VALUES: dict[int, st.SearchStrategy[bytes]] = {
    0x81: st.one_of(st.sampled_from([b"\x01", b"\x02", b"\x03", b"\x04", b"\x7f"]), st.binary(max_size=2)),
    0x83: st.one_of(st.text(min_size=1, max_size=20).map(str.encode), st.text(max_size=20).map(str.encode),
                    st.binary(max_size=66)),
    0x82: st.one_of(st.text(max_size=10).map(str.encode), st.text(max_size=10).map(str.encode),
                    st.binary(max_size=66)),
    0x89: st.text(max_size=66).map(str.encode),
    0x90: st.text(max_size=8).map(str.encode),
    0x84: st.one_of(st.integers(0, 9).map(lambda n: n.to_bytes(4, "big")), st.binary(max_size=5)),
    0x85: st.binary(min_size=4, max_size=4),
    0x86: st.one_of(st.integers(0, 2000).map(lambda n: n.to_bytes(4, "big")), st.binary(max_size=5)),
    0x8F: st.sampled_from([bytes(4), b"\x00\x00\x00\x07", b"\x07"]),
    0x8B: st.one_of(st.just(b"EUR"), st.binary(min_size=2, max_size=4)),
    0x87: st.sampled_from([bytes.fromhex(d) for d in ("20000101", "20000315", "20010229", "2000010A")]),
    0x88: st.sampled_from([bytes.fromhex(d) for d in ("20000301", "20000401", "20001231", "20000230", "000101")]),
    0x8A: st.sampled_from([bytes.fromhex(d) for d in ("20000301100000", "20000301240000", "200003011000")]),
    0x8C: st.one_of(st.binary(max_size=40), st.integers(100, 520).map(bytes)),
    0x80: st.just(b"\x00\x01"),
    0x8D: st.just(b"\x00"),
    0x8E: st.just(b""),
}
common_tags = st.lists(st.sampled_from([0x82, 0x84, 0x86, 0x88, 0x89, 0x8B, 0x8C, 0x87, 0x85, 0x8A, 0x8F, 0x90]),
                       max_size=6, unique=True)
rare_tags = st.lists(st.sampled_from([0x80, 0x8D, 0x8E]), max_size=1)


@st.composite
def records(draw: st.DrawFn) -> str:
    """A record as a host might send it: mostly well-formed, in any order, now and then refused."""
    tags = [0x81, 0x83, *draw(common_tags), *draw(rare_tags)]
    if draw(st.integers(0, 9)) == 0:
        tags.remove(draw(st.sampled_from([0x81, 0x83])))
    tags = draw(st.permutations(tags))
    return "".join(tlv(t, draw(TAG_VALUES[t])) for t in tags)


@st.composite
def stores(draw: st.DrawFn) -> list[str]:
    data = draw(st.one_of(records(), st.sampled_from([MOVIE, PREPAID, COUPON, bare()])))
    le = draw(st.sampled_from(["00", "00", "", "01"]))
    n = len(data) // 2
    if 2 <= n <= 255 and draw(st.booleans()):  # in two links
        cut = draw(st.integers(1, n - 1)) * 2
        return ["90160000" + f"{cut // 2:02X}" + data[:cut], command("80160000", data[cut:], le)]
    return [store(data, le)]


ids = st.integers(0, 5)
les = st.sampled_from(["", "00", "05", "10"])
value_steps = st.one_of(
    stores(),
    stores(),
    st.builds(lambda i, le: [read(i, le) if i else "8014000000"], ids, st.sampled_from(["", "00", "05", "0000"])),
    st.builds(lambda i, op, amount: [modify(i or 1, op, amount)], ids, st.sampled_from([1, 2, 3]),
              st.sampled_from([0, 1, 2, 100, 799, 800, 0xFFFFFFFF])),
    st.builds(lambda i: [delete(i or 1)], ids),
    st.builds(lambda flags, t, today, days, le: [f"8012000008{flags:02X}{t:02X}{today}{days:04X}{le}"],
              st.sampled_from([0, 1, 2, 4, 5, 8]), st.sampled_from([0, 1, 2, 5, 0x7F]),
              st.sampled_from(["20000315", "19991231", "20000230"]), st.sampled_from([0, 1, 60, 400, 65535]), les),
    st.builds(lambda le: ["80120000" + le], les),
    st.builds(lambda cla, le: [f"{cla}C00000{le}"], st.sampled_from(["00", "80", "84", "90"]),
              st.sampled_from(["", "00", "03", "40"])),
    st.sampled_from([[VERIFY], [LOG_OUT], [CARD_INFO], [SELECT], [POWER_CYCLE, SELECT]]),
)


@settings(max_examples=1000 if FULL else 100, deadline=None)
@given(st.booleans(), st.lists(value_steps, min_size=1, max_size=30))
def test_random_value_sequences(applet_jvm: AppletTransport, personalized: bool, sequence: list[list[str]]) -> None:
    applet_jvm.new_card()
    opening = OPEN if personalized else []
    run_both(applet_jvm, [*opening, *(s for step in sequence for s in step), LIST_ALL_EXTENDED, CARD_INFO])


@settings(max_examples=300 if FULL else 40, deadline=None)
@given(st.lists(value_steps, min_size=1, max_size=30))
def test_random_value_sequences_on_t0(applet_t0: AppletTransport, sequence: list[list[str]]) -> None:
    """The same on T=0, where data without Le comes as 61xx and GET RESPONSE."""
    applet_t0.new_card()
    run_both(applet_t0, [*OPEN, *(s for step in sequence for s in step), LIST_ALL_EXTENDED, CARD_INFO])


MAP = "801C000000"
MAP_STEPS = [*OPEN, store(MOVIE), store(PREPAID), store(COUPON), store(BIG), delete(2), store(PREPAID), delete(1),
             *(store(bare()) for _ in range(25))]


def test_memory_map_refusals(applet: AppletTransport) -> None:
    run_both(applet, ["801C000100", "801C0000", "801C000000", PERSONALIZE, "801C000100", "801C00000100",
                      "001C000000", "901C000000", LOG_OUT, "801C0000", CARD_INFO])


def test_memory_map_entries_are_the_python_cards(applet: AppletTransport) -> None:
    """Both cards keep the same index, so the entries agree byte for byte; the areas differ by
    design (the applet lists its own arrays, no journal), and the applet's map must parse as one."""
    card, python = python_card()
    for step in [SELECT, *MAP_STEPS]:
        assert python.send_and_receive(bytes.fromhex(step)) == applet.send_and_receive(bytes.fromhex(step))
    theirs, ours = (w.MemoryMap.from_bytes(send_all(t, MAP)) for t in (python, applet))
    assert ours.entries == theirs.entries and len(ours.entries) == 28
    assert [a.kind for a in ours.areas] == [w.AreaKind.APPLET_HEADER, w.AreaKind.INDEX, w.AreaKind.DATA]
    assert ours.area(w.AreaKind.DATA).length == theirs.area(w.AreaKind.DATA).length
    assert ours.area(w.AreaKind.INDEX).length == theirs.area(w.AreaKind.INDEX).length
    assert ours.area(w.AreaKind.APPLET_HEADER).length == APPLET_HEADER_BYTES
    assert ours.memory_size == sum(a.length for a in ours.areas)


# What the wallet applet holds in EEPROM, by the field that holds it (card/javacard.py footprint):
# arrays at their length, an OwnerPIN as its hash and try counter, a persistent key as its
# material (a point 65, a scalar 32; a pair both), nothing for RAM, crypto engines or constants
APPLET_EEPROM = {
    "cardId": 8,
    "state": 3,                 # life cycle, next value id
    "pin": 32 + 1,              # SHA-256(card id | digits), try counter
    "puk": 32 + 1,
    "vaultKey": 65,
    "keymgrKey": 65,
    "attestation": 1 + 65 + 72,  # signature length, issuer key, signature
    "building": 1024,           # a certificate record put together before its swap
    "received": 4096,           # chains and long data (EvbApplet)
    "index.entries": 128 * 8,   # the index area
    "index.data": 28656,        # the data area
    "ecc.pair": 65 + 32,        # the identity key pair
    "ecc.identity": 65,         # its point, read out at install
    "ecc.peer": 65,             # a server's key being checked or used
    "triggers.area": 2 + 250,   # the trigger settings (length, TLV)
    "handover.counter": 4,      # the import counter
    "keys.key": 1 + 32 + 65,    # mode, d, Q
    "keys.next": 1 + 32 + 65,   # a rotation's next key
    "keys.transport": 32,
    "keys.shares": 10 + 3 * 33,
    "keys.zeros": 10 + 3 * 33,
    "keys.out": 2560 + 1024 + 16,  # a registered value, an opened one
    "keys.pair": 65,            # genKeyPair's public half (the private one is RAM)
    "keys.seal.ephemeral": 65 + 32,
}
APPLET_HEADER_BYTES = sum(APPLET_EEPROM.values()) - APPLET_EEPROM["index.entries"] - APPLET_EEPROM["index.data"]


def test_memory_map_header_is_all_the_applet_holds(applet: AppletTransport) -> None:
    """The map's header area is every persistent byte the applet holds beside its index and data
    area, as the harness finds them in its heap (a new array or key the map does not count shows
    up here by name), and the memory size is the sum of all."""
    assert applet.card.footprint() == APPLET_EEPROM
    for step in [SELECT, *OPEN]:
        assert applet.send_and_receive(bytes.fromhex(step))[1] == 0x9000
    ours = w.MemoryMap.from_bytes(send_all(applet, MAP))
    assert ours.area(w.AreaKind.APPLET_HEADER).length == APPLET_HEADER_BYTES
    assert ours.memory_size == sum(APPLET_EEPROM.values())


def send_all(transport: AppletTransport | Transport, command: str) -> bytes:
    """The whole answer, fetched with GET RESPONSE while 61xx says more waits."""
    data, sw = transport.send_and_receive(bytes.fromhex(command))
    while sw >> 8 == 0x61:
        more, sw = transport.send_and_receive(bytes.fromhex("80C00000" + f"{sw & 0xFF:02X}"))
        data += more
    assert sw == 0x9000
    return data
