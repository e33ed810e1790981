"""The harness's own transactions, power cuts and heap file, on a tiny applet (javacard/probe).

jCardSim alone fails every test here but the transient ones: its abortTransaction rolls nothing
back, and it has no power-cut hook and no heap file (../shared/javacard/README.md).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from apdu import idcard as i
from apdu.command import CommandApdu
from card import CardMute
from card.javacard import ID_APPLET_CLASS, AppletBuild, AppletCard, KitError, PowerCut

from .applet import NO_KIT

if not os.environ.get("JC_HOME"):
    pytest.skip(NO_KIT, allow_module_level=True)

PROBE = "evb.probe.ProbeApplet"
PROBE_AID = bytes.fromhex("F0455642505201")
SELECT = bytes.fromhex("00A4040007") + PROBE_AID
COMMIT, ABORT, THROW, LEAVE_OPEN = 0, 1, 2, 3
NO_TX, TX = 0, 1
DATA = bytes(range(0x41, 0x51))  # 16 bytes
DEFAULT_CAPACITY = 4096
BUFFER_FULL = 3  # TransactionException.BUFFER_FULL


@dataclass(frozen=True)
class State:
    """What the probe keeps (its READ answer), persistent and transient."""

    store: bytes
    counter: int
    static_counter: int
    short0: int
    object_set: bool
    depth: int
    max_capacity: int
    unused_capacity: int
    on_reset: bytes
    on_deselect: bytes
    pin_tries: int
    big_sum: int

    @property
    def persistent(self) -> tuple[object, ...]:
        return (self.store, self.counter, self.static_counter, self.short0, self.object_set, self.pin_tries,
                self.big_sum)


def probe_card(built: AppletBuild, state_file: Path | None = None) -> AppletCard:
    return AppletCard(built, applet_class=PROBE, aid=PROBE_AID, state_file=state_file)


@pytest.fixture(scope="module")
def probe_jvm(applet_build: AppletBuild) -> Iterator[AppletCard]:
    with probe_card(applet_build) as card:
        yield card


@pytest.fixture
def probe(probe_jvm: AppletCard) -> AppletCard:
    probe_jvm.new_card()
    probe_jvm.set_commit_capacity(DEFAULT_CAPACITY)
    select(probe_jvm)
    return probe_jvm


def select(card: AppletCard) -> None:
    assert card.transmit(SELECT)[-2:] == b"\x90\x00"


def ask(card: AppletCard, ins: int, p1: int = 0, p2: int = 0, data: bytes = b"") -> int:
    """The status word of one probe command."""
    apdu = bytes((0x80, ins, p1, p2)) + (bytes((len(data),)) + data if data else b"")
    answer = card.transmit(apdu)
    return answer[-2] << 8 | answer[-1]


def read(card: AppletCard) -> State:
    r = card.transmit(bytes.fromhex("8020000000"))
    assert r[-2:] == b"\x90\x00" and len(r) == 41

    def s(at: int) -> int:
        return int.from_bytes(r[at : at + 2], "big", signed=True)

    return State(r[:16], s(16), s(18), s(20), r[22] == 1, r[23], s(24), s(26), r[28:32], r[32:36], r[36], s(37))


# --- transactions ------------------------------------------------------------------------------

ATOMIC_WRITES = {0x10: "arrayCopy", 0x11: "array stores", 0x14: "setShort, sastore, putfield, putstatic, aastore"}


@pytest.mark.parametrize("ins", ATOMIC_WRITES, ids=ATOMIC_WRITES.values())
@pytest.mark.parametrize("end", [ABORT, THROW, LEAVE_OPEN], ids=["abort", "exception", "left open"])
def test_an_uncommitted_transaction_rolls_back(probe: AppletCard, ins: int, end: int) -> None:
    before = read(probe)
    sw = ask(probe, ins, end, TX, DATA)
    assert sw == (0x6F01 if end == THROW else 0x9000)
    after = read(probe)
    assert after.persistent == before.persistent and after.depth == 0
    assert after.unused_capacity == DEFAULT_CAPACITY


@pytest.mark.parametrize("ins", ATOMIC_WRITES, ids=ATOMIC_WRITES.values())
def test_a_commit_keeps_the_writes(probe: AppletCard, ins: int) -> None:
    before = read(probe)
    assert ask(probe, ins, COMMIT, TX, DATA) == 0x9000
    after = read(probe)
    assert after.persistent != before.persistent
    assert after.store[:2] == DATA[:2]


def test_owner_pin_update_rolls_back_but_its_counter_does_not(probe: AppletCard) -> None:
    """update() joins the transaction; check() spends a try outside it (the spec, both)."""
    assert ask(probe, 0x15, ABORT, TX, b"\x09\x09\x09\x09") == 0x9000
    assert ask(probe, 0x16, data=b"\x01\x02\x03\x04") == 0x9000  # the old PIN still holds
    assert ask(probe, 0x16, ABORT, TX, b"\x07\x07\x07\x07") == 0x63C2
    assert read(probe).pin_tries == 2  # the aborted transaction gave no try back
    assert ask(probe, 0x15, COMMIT, TX, b"\x09\x09\x09\x09") == 0x9000
    assert ask(probe, 0x16, data=b"\x09\x09\x09\x09") == 0x9000
    assert read(probe).pin_tries == 3


@pytest.mark.parametrize("ins", [0x12, 0x13], ids=["arrayCopyNonAtomic", "arrayFillNonAtomic"])
def test_non_atomic_writes_are_not_journalled(probe: AppletCard, ins: int) -> None:
    assert ask(probe, ins, ABORT, TX, DATA) == 0x9000
    state = read(probe)
    assert state.store == (DATA if ins == 0x12 else DATA[:1] * 16)
    assert state.unused_capacity == DEFAULT_CAPACITY


def test_the_commit_capacity_is_finite(probe: AppletCard) -> None:
    # each 16-byte arrayCopy costs 16 bytes and a 4-byte entry head
    fits = DEFAULT_CAPACITY // 20
    assert read(probe).max_capacity == DEFAULT_CAPACITY
    assert ask(probe, 0x19, 0, fits + 1, DATA) == 0x6400 | BUFFER_FULL
    assert read(probe).big_sum == 0  # aborted: none of the copies stayed
    assert ask(probe, 0x19, 0, fits, DATA) == 0x9000
    assert read(probe).big_sum != 0
    probe.set_commit_capacity(100)
    assert read(probe).max_capacity == 100
    assert ask(probe, 0x19, 0, 5, DATA) == 0x9000
    assert ask(probe, 0x19, 0, 6, DATA) == 0x6400 | BUFFER_FULL


def test_transient_memory_is_never_journalled_and_cleared_as_its_type_says(probe: AppletCard) -> None:
    marks = b"\x11\x22\x33\x44"
    assert ask(probe, 0x17, ABORT, TX, marks) == 0x9000
    state = read(probe)
    assert (state.on_reset, state.on_deselect, state.unused_capacity) == (marks, marks, DEFAULT_CAPACITY)
    select(probe)  # a new selection: CLEAR_ON_DESELECT goes, CLEAR_ON_RESET stays
    state = read(probe)
    assert (state.on_reset, state.on_deselect) == (marks, bytes(4))
    assert ask(probe, 0x17, data=marks) == 0x9000
    probe.reset()
    select(probe)
    state = read(probe)
    assert (state.on_reset, state.on_deselect) == (bytes(4), bytes(4))


# --- power cuts -------------------------------------------------------------------------------

def writes_of(card: AppletCard, ins: int, p1: int, p2: int, data: bytes) -> int:
    start = card.writes
    assert ask(card, ins, p1, p2, data) == 0x9000
    return card.writes - start


def torn(card: AppletCard, ins: int, p1: int, p2: int, data: bytes, n: int) -> State:
    """The state after a cut at write ``n`` of the command and a power-on."""
    card.new_card()
    select(card)
    card.cut_power_after(n)
    with pytest.raises(PowerCut):
        ask(card, ins, p1, p2, data)
    with pytest.raises(CardMute):  # off until the reader powers it again
        ask(card, 0x20)
    card.reset()
    select(card)
    return read(card)


@pytest.mark.parametrize("ins", ATOMIC_WRITES, ids=ATOMIC_WRITES.values())
def test_a_cut_before_the_commit_point_leaves_nothing(probe: AppletCard, ins: int) -> None:
    before = read(probe).persistent
    total = writes_of(probe, ins, COMMIT, TX, DATA)
    assert total > 0
    for n in range(total):
        assert torn(probe, ins, COMMIT, TX, DATA, n).persistent == before, f"cut at write {n} of {total}"


def test_a_commit_survives_a_cut_after_it(probe: AppletCard) -> None:
    """Two transactions (INS 18): a cut in the second keeps the first whole."""
    data = DATA[:8]
    total = writes_of(probe, 0x18, 0, 0, data)
    assert total == 2
    empty = bytes(16)
    assert torn(probe, 0x18, 0, 0, data, 0).store == empty
    assert torn(probe, 0x18, 0, 0, data, 1).store == data + bytes(8)


def test_writes_outside_a_transaction_land_one_by_one(probe: AppletCard) -> None:
    total = writes_of(probe, 0x11, 0, NO_TX, DATA)
    assert total == len(DATA)
    for n in range(total):
        assert torn(probe, 0x11, 0, NO_TX, DATA, n).store == DATA[:n] + bytes(16 - n)


def test_a_cut_in_a_non_atomic_copy_lands_part_of_it(probe: AppletCard) -> None:
    assert writes_of(probe, 0x12, 0, NO_TX, DATA) == 1
    assert torn(probe, 0x12, 0, NO_TX, DATA, 0).store == DATA[:8] + bytes(8)


def test_a_cut_clears_transient_memory(probe: AppletCard) -> None:
    assert ask(probe, 0x17, data=b"\x11\x22\x33\x44") == 0x9000
    probe.cut_power_after(0)
    with pytest.raises(PowerCut):
        ask(probe, 0x10, COMMIT, TX, DATA)
    probe.reset()
    select(probe)
    state = read(probe)
    assert (state.on_reset, state.on_deselect, state.store) == (bytes(4), bytes(4), bytes(16))


# --- the heap file ------------------------------------------------------------------------------

def test_the_heap_file_keeps_the_card_across_processes(applet_build: AppletBuild, tmp_path: Path) -> None:
    heap = tmp_path / "probe.heap"
    with probe_card(applet_build, heap) as card:
        select(card)
        assert ask(card, 0x14, COMMIT, TX, DATA) == 0x9000
        assert ask(card, 0x15, COMMIT, TX, b"\x05\x05\x05\x05") == 0x9000
        assert ask(card, 0x16, data=b"\x01\x01\x01\x01") == 0x63C2  # a try spent outside a transaction
        assert ask(card, 0x17, data=b"\x11\x22\x33\x44") == 0x9000
        kept = read(card)
    with probe_card(applet_build, heap) as card:
        select(card)
        state = read(card)
        assert state.persistent == kept.persistent
        assert (state.on_reset, state.on_deselect) == (bytes(4), bytes(4))  # a restart is a power-on
        assert ask(card, 0x16, data=b"\x05\x05\x05\x05") == 0x9000


def test_a_killed_harness_leaves_the_last_answered_state(applet_build: AppletBuild, tmp_path: Path) -> None:
    """A cut mid-command, then the JVM killed before a reset: the file holds the recovered card."""
    heap = tmp_path / "probe.heap"
    card = probe_card(applet_build, heap)
    select(card)
    assert ask(card, 0x10, COMMIT, TX, DATA[:4] * 4) == 0x9000
    card.cut_power_after(3)
    with pytest.raises(PowerCut):
        ask(card, 0x11, COMMIT, TX, DATA)
    card.kill()
    with probe_card(applet_build, heap) as again:
        select(again)
        assert read(again).store == DATA[:4] * 4


def test_one_heap_file_one_process(applet_build: AppletBuild, tmp_path: Path) -> None:
    heap = tmp_path / "probe.heap"
    with probe_card(applet_build, heap), pytest.raises(Exception, match="in use"):
        probe_card(applet_build, heap)


def test_a_damaged_heap_file_is_refused(applet_build: AppletBuild, tmp_path: Path) -> None:
    heap = tmp_path / "probe.heap"
    with probe_card(applet_build, heap) as card:
        select(card)
        assert ask(card, 0x10, COMMIT, TX, DATA) == 0x9000
    for slot in (heap, heap.with_name(heap.name + ".1")):
        raw = bytearray(slot.read_bytes())
        raw[-1] ^= 0xFF
        slot.write_bytes(bytes(raw))
    with pytest.raises(KitError, match="checksum"):
        probe_card(applet_build, heap)


def test_a_torn_save_leaves_the_previous_image(applet_build: AppletBuild, tmp_path: Path) -> None:
    """Saves go to two slot files in turn: the newest cut short (a crash mid-write), the card
    comes back as the other slot holds it, the state one command earlier."""
    heap = tmp_path / "probe.heap"
    with probe_card(applet_build, heap) as card:
        select(card)
        assert ask(card, 0x10, COMMIT, TX, DATA[:8] * 2) == 0x9000
        assert ask(card, 0x10, COMMIT, TX, DATA) == 0x9000
    # a slot: magic, version, generation (8 bytes at 8), length, CRC32, the image
    newest = max((heap, heap.with_name(heap.name + ".1")), key=lambda p: int.from_bytes(p.read_bytes()[8:16], "big"))
    newest.write_bytes(newest.read_bytes()[:-10])
    with probe_card(applet_build, heap) as card:
        select(card)
        assert read(card).store == DATA[:8] * 2


def test_the_heap_file_keeps_keys(applet_build: AppletBuild, tmp_path: Path) -> None:
    """An AES key and a generated EC key pair come back with the same values, and still sign."""
    heap = tmp_path / "probe.heap"
    with probe_card(applet_build, heap) as card:
        select(card)
        assert ask(card, 0x1A, data=DATA) == 0x9000
        assert ask(card, 0x1B) == 0x9000
        keys = card.transmit(bytes.fromhex("8021000000"))
        assert keys[:16] == DATA and keys[16] == 0x04 and keys[81] == 1
    with probe_card(applet_build, heap) as card:
        select(card)
        assert card.transmit(bytes.fromhex("8021000000")) == keys


def test_a_key_set_in_an_aborted_transaction_comes_back(probe: AppletCard) -> None:
    assert ask(probe, 0x1A, COMMIT, TX, DATA) == 0x9000
    assert ask(probe, 0x1A, ABORT, TX, DATA[::-1]) == 0x9000
    assert probe.transmit(bytes.fromhex("8021000000"))[:16] == DATA
    assert writes_of(probe, 0x1A, COMMIT, TX, DATA[::-1]) == 1
    torn(probe, 0x1A, COMMIT, TX, DATA, 0)
    assert probe.transmit(bytes.fromhex("8021000000"))[:16] == bytes(16)  # cut at the key's write: unset


def test_a_crypto_output_into_persistent_memory_is_a_write_never_journalled(probe: AppletCard) -> None:
    """RandomData.generateData into a persistent array: counted (a cut falls before it), and
    an abort leaves it (the API's writes are not promised to join a transaction)."""
    assert ask(probe, 0x1C, ABORT, TX, DATA) == 0x9000
    assert read(probe).store != bytes(16)
    assert writes_of(probe, 0x1C, COMMIT, TX, DATA) == 1
    assert torn(probe, 0x1C, COMMIT, TX, DATA, 0).store == bytes(16)


# --- the product's applets in a heap file ---------------------------------------------------------

WALLET_SELECT = bytes.fromhex("00A4040008F0455642574C0101")
CARD_INFO = bytes.fromhex("801000001D")


def test_the_wallet_is_the_same_card_after_a_restart(applet_build: AppletBuild, tmp_path: Path) -> None:
    """Card id, life cycle, PIN and its spent try: what `evb card serve --javacard` needs kept."""
    heap = tmp_path / "wallet.heap"
    with AppletCard(applet_build, state_file=heap) as card:
        card.transmit(WALLET_SELECT)
        personalize = "8002000010" + "31323334FFFFFFFF" + "3837363534333231"
        assert card.transmit(bytes.fromhex(personalize))[-2:] == b"\x90\x00"
        assert card.transmit(bytes.fromhex("0020008108" + "39393939FFFFFFFF")).hex() == "63c2"
        info = card.transmit(CARD_INFO)
    with AppletCard(applet_build, state_file=heap) as card:
        card.transmit(WALLET_SELECT)
        assert card.transmit(CARD_INFO) == info  # the same card id, personalized, 2 tries left
        assert card.transmit(bytes.fromhex("0020008108" + "31323334FFFFFFFF")).hex() == "9000"


def test_the_id_card_keeps_its_key_pair_after_a_restart(applet_build: AppletBuild, tmp_path: Path) -> None:
    heap = tmp_path / "idcard.heap"
    select = bytes(CommandApdu(0x00, 0xA4, 0x04, 0x00, i.AID_IDCARD))
    with AppletCard(applet_build, ID_APPLET_CLASS, i.AID_IDCARD, state_file=heap) as card:
        card.transmit(select)
        key = card.transmit(bytes(i.get_public_key()))
        assert key[-2:] == b"\x90\x00" and len(key) > 60
    with AppletCard(applet_build, ID_APPLET_CLASS, i.AID_IDCARD, state_file=heap) as card:
        card.transmit(select)
        assert card.transmit(bytes(i.get_public_key())) == key
