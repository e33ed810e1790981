from __future__ import annotations

import os
import random
from collections.abc import Callable
from pathlib import Path

import pytest

from card.eeprom import (
    DEFAULT_JOURNAL,
    Eeprom,
    ImageError,
    JournalFull,
    PowerLoss,
    TransactionError,
)

from ..conftest import FULL


@pytest.fixture
def eeprom() -> Eeprom:
    e = Eeprom.blank(8192)
    e.power_on()
    return e


def app(e: Eeprom, off: int = 0) -> int:
    return e.app_offset + off


def test_write_outside_transaction_is_refused(eeprom: Eeprom) -> None:
    with pytest.raises(TransactionError):
        eeprom.write(app(eeprom), b"x")


def test_write_into_journal_is_refused(eeprom: Eeprom) -> None:
    with pytest.raises(TransactionError), eeprom.transaction():
        eeprom.write(eeprom.journal_offset, b"x")


def test_commit_lands_and_abort_discards(eeprom: Eeprom) -> None:
    with eeprom.transaction():
        eeprom.write(app(eeprom), b"abc")
        assert eeprom.read(app(eeprom), 3) == b"abc"  # the transaction sees its own writes
    assert eeprom.read(app(eeprom), 3) == b"abc"
    with pytest.raises(RuntimeError), eeprom.transaction():
        eeprom.write(app(eeprom), b"xyz")
        raise RuntimeError
    assert eeprom.read(app(eeprom), 3) == b"abc"


def test_transactions_do_not_nest(eeprom: Eeprom) -> None:
    with pytest.raises(TransactionError), eeprom.transaction():
        eeprom.begin()


def test_oversized_transaction_is_refused_whole(eeprom: Eeprom) -> None:
    before = eeprom.snapshot()
    with pytest.raises(JournalFull), eeprom.transaction():
        eeprom.write(app(eeprom), bytes(range(256)) * (DEFAULT_JOURNAL // 256))
    assert eeprom.snapshot() == before


def test_unpowered_eeprom_cannot_start_a_transaction() -> None:
    e = Eeprom.blank(8192)
    with pytest.raises(PowerLoss):
        e.begin()


def cells(e: Eeprom) -> bytes:
    """The application area: what a transaction changes (the journal keeps stale bytes by design)."""
    return e.snapshot()[e.app_offset :]


def _two_range_commit(e: Eeprom) -> None:
    with e.transaction():
        e.write(app(e, 10), b"A" * 100)  # spans pages
        e.write(app(e, 500), b"B" * 3)


def _wide_commit(e: Eeprom, first: int = 1) -> None:
    """Too large for one journal slot: the record runs over both."""
    with e.transaction():
        e.write(app(e, 40), bytes(range(first, first + 200)) * 6)
        e.write(app(e, 2600), b"W" * 50)


def _small(e: Eeprom, fill: bytes) -> None:
    with e.transaction():
        e.write(app(e, 20), fill * 90)  # overlaps both commits above
        e.write(app(e, 3000), fill)


# what the journal holds before the torn commit: nothing, the other slot, both slots, a wide record
HISTORIES: dict[str, list[Callable[[Eeprom], None]]] = {
    "fresh": [],
    "one-record": [lambda e: _small(e, b"1")],
    "both-slots": [lambda e: _small(e, b"1"), lambda e: _small(e, b"2"), lambda e: _small(e, b"3")],
    "after-wide": [lambda e: _small(e, b"1"), lambda e: _wide_commit(e, first=7)],
    "old-format": [],
}
COMMITS = {"two-range": _two_range_commit, "wide": _wide_commit}


def prepared(history: str) -> bytes:
    e = Eeprom.blank(8192)
    if history == "old-format":  # an image from before the two slots, its journal empty
        cells = bytearray(e.snapshot())
        cells[12] = 0
        e = Eeprom(cells)
    e.power_on()
    for step in HISTORIES[history]:
        step(e)
    return e.snapshot()


@pytest.mark.parametrize("commit", COMMITS)
@pytest.mark.parametrize("history", HISTORIES)
def test_tearing_at_every_page_write_leaves_before_or_after(history: str, commit: str) -> None:
    image = prepared(history)
    reference = Eeprom(bytearray(image))
    reference.power_on()
    before = cells(reference)
    start = reference.page_writes
    COMMITS[commit](reference)
    after, total = cells(reference), reference.page_writes - start
    assert after != before
    assert total > 4
    outcomes = set()
    for n in range(total):
        e = Eeprom(bytearray(image))
        e.power_on()
        e.cut_power_after(n)
        with pytest.raises(PowerLoss):
            COMMITS[commit](e)
        e.power_on()
        outcomes.add(cells(e))
        assert cells(e) in (before, after), f"torn state after {n} writes"
        COMMITS[commit](e)  # and the journal takes the next commit as well
        e.power_on()
        assert cells(e) == after
    assert outcomes == {before, after}  # both sides of the commit point were reached


@pytest.mark.parametrize("commit", COMMITS)
@pytest.mark.parametrize("history", HISTORIES)
def test_tearing_during_recovery_still_recovers(history: str, commit: str) -> None:
    image = prepared(history)
    reference = Eeprom(bytearray(image))
    reference.power_on()
    before = cells(reference)
    start = reference.page_writes
    COMMITS[commit](reference)
    after, total = cells(reference), reference.page_writes - start
    for n in range(total):
        for k in range(4):  # then cut power again k writes into the recovery
            e = Eeprom(bytearray(image))
            e.power_on()
            e.cut_power_after(n)
            with pytest.raises(PowerLoss):
                COMMITS[commit](e)
            e.cut_power_after(k)
            try:
                e.power_on()
            except PowerLoss:
                pass
            e.cut_power_after(None)
            e.power_on()
            assert cells(e) in (before, after), f"torn after {n} writes, recovery torn after {k}"


def test_a_clean_power_on_writes_nothing(eeprom: Eeprom) -> None:
    """Recovery redoes the journal's records only where the cells differ from them."""
    _two_range_commit(eeprom)
    _small(eeprom, b"x")
    writes = eeprom.page_writes
    eeprom.power_off()
    eeprom.power_on()
    assert eeprom.page_writes == writes


def test_image_round_trip_and_torn_image_recovers(tmp_path: Path, eeprom: Eeprom) -> None:
    image = tmp_path / "card.img"
    eeprom.save(image)
    eeprom.cut_power_after(5)  # body written, commit byte set, mid-apply
    with pytest.raises(PowerLoss):
        _two_range_commit(eeprom)
    loaded = Eeprom.load(image)
    loaded.power_on()
    assert loaded.read(app(loaded, 10), 100) == b"A" * 100
    assert [p.name for p in tmp_path.iterdir()] == ["card.img"]  # no temporary files left


@pytest.mark.parametrize(
    "content",
    [
        b"",
        b"EVBE" + bytes(100),
        b"XXXX" + bytes(8188),
        b"EVBE" + (2048).to_bytes(4, "big") + (1).to_bytes(4, "big") + bytes(8180),
    ],
    ids=["empty", "too-small", "bad-magic", "bad-geometry"],
)
def test_load_refuses_what_is_not_an_image(tmp_path: Path, content: bytes) -> None:
    image = tmp_path / "bad.img"
    image.write_bytes(content)
    with pytest.raises(ImageError):
        Eeprom.load(image)


def test_blank_refuses_sizes_out_of_range() -> None:
    with pytest.raises(ValueError):
        Eeprom.blank(1024)


class Disk:
    """An image file as the disk holds it, for a crash of the whole machine: what was synced,
    and of each 512-byte sector written since, its content at some moment since the sync (the
    kernel writes pages back at any time, in any order, and a disk may tear a page by sector)."""

    SECTOR = 512

    def __init__(self, cells: bytes) -> None:
        self.durable = bytearray(cells)
        self.pending: list[tuple[int, bytes]] = []

    def pwrite(self, fd: int, data: bytes, offset: int) -> int:
        assert offset // self.SECTOR == (offset + len(data) - 1) // self.SECTOR
        self.pending.append((offset, bytes(data)))
        return len(data)

    def fdatasync(self, fd: int) -> None:
        for offset, data in self.pending:
            self.durable[offset : offset + len(data)] = data
        self.pending = []

    def after_crash(self, rng: random.Random) -> bytes:
        disk = bytearray(self.durable)
        by_page: dict[int, list[tuple[int, bytes]]] = {}
        for offset, data in self.pending:
            by_page.setdefault(offset // self.SECTOR, []).append((offset, data))
        for writes in by_page.values():
            for offset, data in writes[: rng.randint(0, len(writes))]:
                disk[offset : offset + len(data)] = data
        return bytes(disk)


CRASH_SAMPLES = 64 if FULL else 8
RECOVERY_CRASH_SAMPLES = 8 if FULL else 4  # per crash point, twice over
SEQUENCE: list[Callable[[Eeprom], None]] = [
    _two_range_commit,
    lambda e: _small(e, b"1"),
    lambda e: _small(e, b"2"),
    _wide_commit,
    lambda e: _small(e, b"3"),
    lambda e: _wide_commit(e, first=9),
    lambda e: _small(e, b"4"),
    lambda e: _small(e, b"5"),
]


Events = list[tuple[int, bytes] | None]  # the image's page writes, None for a sync


def recorded(e: Eeprom, commits: list[Callable[[Eeprom], None]], monkeypatch: pytest.MonkeyPatch,
             power_on: bool = False) -> tuple[Events, list[bytes], list[int]]:
    """Run ``commits`` on the image card ``e`` (after powering it on, if asked), recording its
    file's writes and syncs. Answers them, the application area before and after each commit,
    and how many events each commit had seen when it returned."""
    events: Events = []

    def pwrite(fd: int, data: bytes, offset: int) -> int:
        events.append((offset, bytes(data)))
        return len(data)

    monkeypatch.setattr(os, "pwrite", pwrite)
    monkeypatch.setattr(os, "fdatasync", lambda fd: events.append(None))
    if power_on:
        e.power_on()
    states, answered_at = [cells(e)], []
    for commit in commits:
        commit(e)
        states.append(cells(e))
        answered_at.append(len(events))
    monkeypatch.undo()
    e.close()
    return events, states, answered_at


def disk_after(image: bytes, events: Events) -> Disk:
    disk = Disk(image)
    for event in events:
        if event is None:
            disk.fdatasync(0)
        else:
            disk.pwrite(0, event[1], event[0])
    return disk


def test_a_machine_crash_at_any_write_keeps_every_answered_commit(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The syncs are where durability needs them: crash the machine after any write of an image
    card's commits, losing any unsynced page writes the kernel may not have written back; the
    card powers on after the last commit that returned, or after the one in progress."""
    e = Eeprom.blank(8192)
    image = e.snapshot()
    e.save(tmp_path / "card.img")
    e.power_on()
    events, states, answered_at = recorded(e, SEQUENCE, monkeypatch)
    rng = random.Random(18)
    for k in range(len(events) + 1):
        disk = disk_after(image, events[:k])
        answered = sum(at <= k for at in answered_at)
        for _ in range(CRASH_SAMPLES):
            after = Eeprom(bytearray(disk.after_crash(rng)))
            after.power_on()
            assert cells(after) in states[answered : answered + 2], f"crash after {k} of {len(events)} writes"


def test_a_machine_crash_after_a_recovery_keeps_what_it_recovered(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """Crash once at any write, power on (the recovery writes pages too), commit once more and
    crash again at any write: the card is as the first recovery left it, or after the new commit."""
    e = Eeprom.blank(8192)
    image = e.snapshot()
    e.save(tmp_path / "card.img")
    e.power_on()
    events, _, _ = recorded(e, SEQUENCE, monkeypatch)
    rng = random.Random(18)
    for k in range(len(events) + 1):
        for _ in range(RECOVERY_CRASH_SAMPLES):
            crashed = disk_after(image, events[:k]).after_crash(rng)
            (tmp_path / "crashed.img").write_bytes(crashed)
            again = Eeprom.load(tmp_path / "crashed.img")
            more, states, answered_at = recorded(again, [lambda e: _small(e, b"9")], monkeypatch, power_on=True)
            for j in range(len(more) + 1):
                disk = disk_after(crashed, more[:j])
                answered = sum(at <= j for at in answered_at)
                for _ in range(RECOVERY_CRASH_SAMPLES):
                    after = Eeprom(bytearray(disk.after_crash(rng)))
                    after.power_on()
                    assert cells(after) in states[answered : answered + 2], f"crash after {k}, then after {j}"
