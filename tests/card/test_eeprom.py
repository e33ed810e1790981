from __future__ import annotations

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


def test_tearing_at_every_page_write_leaves_before_or_after(eeprom: Eeprom) -> None:
    image = eeprom.snapshot()
    before = cells(eeprom)
    reference = Eeprom(bytearray(image))
    reference.power_on()
    start = reference.page_writes
    _two_range_commit(reference)
    after, total = cells(reference), reference.page_writes - start
    assert after != before
    assert total > 4
    outcomes = set()
    for n in range(total):
        e = Eeprom(bytearray(image))
        e.power_on()
        e.cut_power_after(n)
        with pytest.raises(PowerLoss):
            _two_range_commit(e)
        e.power_on()
        outcomes.add(cells(e))
        assert cells(e) in (before, after), f"torn state after {n} writes"
    assert outcomes == {before, after}  # both sides of the commit point were reached


def test_tearing_during_recovery_still_recovers(eeprom: Eeprom) -> None:
    image = eeprom.snapshot()
    before = cells(eeprom)
    reference = Eeprom(bytearray(image))
    reference.power_on()
    start = reference.page_writes
    _two_range_commit(reference)
    after, total = cells(reference), reference.page_writes - start
    for n in range(total):
        for k in range(4):  # then cut power again k writes into the recovery
            e = Eeprom(bytearray(image))
            e.power_on()
            e.cut_power_after(n)
            with pytest.raises(PowerLoss):
                _two_range_commit(e)
            e.cut_power_after(k)
            try:
                e.power_on()
            except PowerLoss:
                pass
            e.cut_power_after(None)
            e.power_on()
            assert cells(e) in (before, after), f"torn after {n} writes, recovery torn after {k}"


def test_image_round_trip_and_torn_image_recovers(tmp_path: Path, eeprom: Eeprom) -> None:
    image = tmp_path / "card.img"
    eeprom.save(image)
    eeprom.cut_power_after(5)  # body written, commit byte set, mid-apply
    with pytest.raises(PowerLoss):
        _two_range_commit(eeprom)
    eeprom.flush()  # the torn cells are what the image holds now
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
