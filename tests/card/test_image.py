"""The card image file is the EEPROM: written in place, page by page, in journal order.

A process holding the card killed between two page writes leaves the file as a power cut leaves
the cells, and the next power-on recovers it. Images written by the old whole-file writer still
open (tests/card/data, made by ``make_old_images.py`` with that writer).
"""

from __future__ import annotations

import gzip
import os
import random
import signal
import stat
import time
import traceback
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest

from apdu.records import ValueRecord, ValueType
from card import Eeprom, SimulatedCard
from card.eeprom import H_FORMAT, PAGE, ImageError
from host.demo import FIG15
from host.session import WalletSession
from host.transport.inprocess import connect_card

from ..conftest import FULL
from .helpers import PIN, cells_with, clone, observe

DATA = Path(__file__).parent / "data"
KILL_TRIALS = 100 if FULL else 6
NEW = replace(FIG15[0], name="Stored in the test")


def old_image(name: str, path: Path) -> Path:
    path.write_bytes(gzip.decompress((DATA / f"{name}.img.gz").read_bytes()))
    return path


def unlocked(card: SimulatedCard) -> WalletSession:
    session = WalletSession(connect_card(card))
    session.verify_pin(PIN)
    return session


def in_child(work: Callable[[], object]) -> int:
    """Run ``work`` in a forked process (a real one, which a SIGKILL really kills) and answer
    its wait status; the child never returns into pytest."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            work()
            code = 0
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    return os.waitpid(pid, 0)[1]


def application_area(card: SimulatedCard) -> bytes:
    """Every cell a command may change: all but the header and the journal."""
    return card.eeprom.snapshot()[card.eeprom.app_offset :]


def killed(status: int) -> bool:
    return os.WIFSIGNALED(status) and os.WTERMSIG(status) == signal.SIGKILL


# --- in place ----------------------------------------------------------------------------------


def test_commands_write_the_image_in_place_page_by_page(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No command rewrites the 32 KiB file: its writes are page-sized, one sync per command,
    the file stays the same inode, and it holds exactly the card's cells after every command."""
    image = tmp_path / "card.img"
    image.write_bytes(cells_with(FIG15))
    inode = image.stat().st_ino
    card = SimulatedCard.open(image)
    session = unlocked(card)
    writes: list[tuple[int, int]] = []
    syncs = 0
    real_pwrite, real_fdatasync = os.pwrite, os.fdatasync

    def pwrite(fd: int, data: bytes, offset: int) -> int:
        writes.append((offset, len(data)))
        return real_pwrite(fd, data, offset)

    def fdatasync(fd: int) -> None:
        nonlocal syncs
        syncs += 1
        real_fdatasync(fd)

    monkeypatch.setattr(os, "pwrite", pwrite)
    monkeypatch.setattr(os, "fdatasync", fdatasync)
    commands = 0
    for _ in range(3):
        value_id = session.store(NEW)
        session.delete(value_id)
        commands += 2
        assert image.read_bytes() == card.eeprom.snapshot()
    monkeypatch.undo()
    card.close()

    assert image.stat().st_ino == inode
    assert sorted(p.name for p in tmp_path.iterdir()) == ["card.img", "card.img.lock"]
    assert writes and all(offset // PAGE == (offset + n - 1) // PAGE for offset, n in writes)
    assert sum(n for _, n in writes) < commands * 1024  # the whole image is 32,768 bytes
    assert syncs == commands


def test_a_new_image_is_created_whole_and_its_name_synced(tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Creation goes through a temporary file, a rename and a sync of the folder (the new name
    survives a crash), and leaves nothing else behind."""
    image = tmp_path / "cards" / "card.img"
    synced: list[str] = []
    real_fsync = os.fsync

    def fsync(fd: int) -> None:
        is_folder = stat.S_ISDIR(os.fstat(fd).st_mode)
        synced.append(f"folder with {sorted(os.listdir(image.parent))}" if is_folder else "file")
        real_fsync(fd)

    monkeypatch.setattr(os, "fsync", fsync)
    card = SimulatedCard.manufacture(image=image)
    monkeypatch.undo()
    assert image.read_bytes() == card.eeprom.snapshot()
    assert synced == ["file", "folder with ['card.img']"]
    assert os.listdir(image.parent) == ["card.img"]


def test_a_closed_card_does_not_power_on(tmp_path: Path) -> None:
    image = tmp_path / "card.img"
    SimulatedCard.manufacture(image=image)
    card = SimulatedCard.open(image)
    card.close()
    with pytest.raises(ImageError, match="closed"):
        card.power_on()


# --- images from the old writer ----------------------------------------------------------------


def test_an_old_wallet_image_opens_and_finishes_its_torn_store(tmp_path: Path) -> None:
    """A wallet whose last STORE lost power after its commit byte, written by the old writer:
    power-on leaves the cells the old writer's own recovery left, and the image converted."""
    image = old_image("old-wallet-torn", tmp_path / "card.img")
    want = gzip.decompress((DATA / "old-wallet-torn-recovered.img.gz").read_bytes())
    e = Eeprom.load(image)
    e.power_on()
    assert e.snapshot()[e.app_offset :] == want[e.app_offset :]
    assert e.snapshot()[H_FORMAT] == 1  # converted to the two-slot journal
    with e.transaction():
        e.write(e.app_offset + 2000, b"then a new commit")
    e.close()
    again = Eeprom.load(image)
    again.power_on()
    assert again.read(again.app_offset + 2000, 17) == b"then a new commit"
    assert again.snapshot()[again.app_offset + 17 : again.app_offset + 2000] == want[again.app_offset + 17 :
                                                                                     again.app_offset + 2000]


def test_an_old_wide_record_rolls_forward(tmp_path: Path) -> None:
    """The old journal's one record runs over the whole journal: it is redone as it was written."""
    e = Eeprom.load(old_image("old-wide-torn", tmp_path / "card.img"))
    e.power_on()
    assert e.read(e.app_offset + 100, 1500) == bytes(i % 251 + 1 for i in range(1500))
    e.close()
    again = Eeprom.load(tmp_path / "card.img")
    again.power_on()
    assert again.read(e.app_offset + 100, 1500) == bytes(i % 251 + 1 for i in range(1500))


def test_stale_bytes_of_an_old_journal_are_not_taken_for_a_record(tmp_path: Path) -> None:
    """An old image's journal may hold, where the second slot now starts, bytes that read as a
    committed slot record (this one writes EVIL into the card): the image says it is old, so
    they are not."""
    image = old_image("old-stale-journal", tmp_path / "card.img")
    before = image.read_bytes()
    e = Eeprom.load(image)
    e.power_on()
    assert e.read(e.app_offset, 1300) == before[e.app_offset : e.app_offset + 1300]
    assert e.read(e.app_offset + 8, 4) == bytes(4)
    with e.transaction():
        e.write(e.app_offset, b"after")
    e.power_off()
    e.power_on()
    assert e.read(e.app_offset, 12) == b"after" + bytes(7)


# --- killed processes --------------------------------------------------------------------------


def test_tearing_at_every_write_of_the_file_recovers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A process runs STORE then DELETE on an image card and is SIGKILLed at each of the file's
    page writes in turn, before it or with half of it written: reopened, the card is as before,
    after the STORE, or after both, to the last cell of its application area."""
    cells = cells_with(FIG15)
    image = tmp_path / "card.img"
    states = []
    for ops in ((), (NEW,), (NEW, 2)):
        image.write_bytes(cells)
        card = SimulatedCard.open(image)
        session = unlocked(card)
        for op in ops:
            session.store(op) if isinstance(op, ValueRecord) else session.delete(op)
        states.append(application_area(card))
        card.close()

    def run(kill_at: int | None, torn: bool) -> int:
        """STORE then DELETE, killing this process at page write ``kill_at``; answers the writes."""
        card = SimulatedCard.open(image)
        session = unlocked(card)
        real, writes = os.pwrite, 0

        def pwrite(fd: int, data: bytes, offset: int) -> int:
            nonlocal writes
            if writes == kill_at:
                if torn:
                    real(fd, data[: (len(data) + 1) // 2], offset)
                os.kill(os.getpid(), signal.SIGKILL)
            writes += 1
            return real(fd, data, offset)

        monkeypatch.setattr(os, "pwrite", pwrite)
        session.store(NEW)
        session.delete(2)
        monkeypatch.undo()
        card.close()
        return writes

    image.write_bytes(cells)
    total = run(None, False)
    assert total > 10
    seen = set()
    for kill_at in range(total):
        for torn in (False, True):
            image.write_bytes(cells)
            status = in_child(lambda: run(kill_at, torn))  # noqa: B023 (called at once)
            assert killed(status), f"the child was not killed at write {kill_at} (status {status})"
            card = SimulatedCard.open(image)
            state = application_area(card)
            observe(card)  # and the index is consistent
            card.close()
            assert state in states, f"killed at write {kill_at} of {total} (torn: {torn})"
            seen.add(states.index(state))
    assert seen == {0, 1, 2}


def prepaid(trial: int, i: int) -> ValueRecord:
    return ValueRecord(ValueType.PREPAID, f"T{trial}-{i}", face_value=10_000,
                       balance=(trial * 7919 + i * 104_729) % 10_000 + 1)


def hammer(image: Path, log: Path, ids: list[int], trial: int) -> None:
    """STORE and DELETE on the card until killed, each command logged before and after."""
    session = unlocked(SimulatedCard.open(image))
    fd = os.open(log, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    os.write(fd, b"ready\n")
    rng = random.Random(trial)
    for i in range(100_000):
        if len(ids) < 3 or (len(ids) < 10 and rng.random() < 0.5):
            os.write(fd, f"store {i}\n".encode())
            ids.append(session.store(prepaid(trial, i)))
            os.write(fd, f"stored {ids[-1]}\n".encode())
        else:
            value_id = ids.pop(rng.randrange(len(ids)))
            os.write(fd, f"delete {value_id}\n".encode())
            session.delete(value_id)
            os.write(fd, f"deleted {value_id}\n".encode())


Seen = tuple[bytes, int]  # the application area, and the sum of the balances on the card


def replay(cells: bytes, log: str, trial: int) -> list[Seen]:
    """The model: the logged commands again on a copy of the card in memory. Answers what the
    card is after the last command done, and after the one in flight if any."""
    card = clone(cells)
    session = unlocked(card)
    states, in_flight = [(application_area(card), balances(session))], False
    for line in log.splitlines():
        word, arg = (line.split() + [""])[:2]
        if word == "store":
            stored = session.store(prepaid(trial, int(arg)))
        elif word == "delete":
            session.delete(int(arg))
        elif word == "stored":
            assert int(arg) == stored  # the model gives the ids the card gave
        if word in ("store", "delete"):
            states.append((application_area(card), balances(session)))
        in_flight = word in ("store", "delete")
    return states[-2:] if in_flight else states[-1:]


def balances(session: WalletSession) -> int:
    return sum(session.read(e.id).balance for e in session.list())


def test_a_process_killed_at_random_leaves_each_command_done_or_not(tmp_path: Path) -> None:
    """A process hammers STORE and DELETE on an image card and is SIGKILLed at a random moment,
    trial after trial on the same image: reopened, the card is, to the cell, the model card
    after the commands the process finished, or after the one in flight too (so the value on
    it is the model's, to the yen)."""
    image = tmp_path / "card.img"
    image.write_bytes(cells_with([]))
    rng = random.Random(18)
    ids: list[int] = []
    for trial in range(KILL_TRIALS):
        cells = image.read_bytes()
        log = tmp_path / f"trial-{trial}.log"
        pid = os.fork()
        if pid == 0:
            try:
                hammer(image, log, ids, trial)
            finally:
                os._exit(1)
        while not log.exists() or not log.read_bytes().startswith(b"ready\n"):
            assert os.waitpid(pid, os.WNOHANG) == (0, 0), f"trial {trial}: the child died"
            time.sleep(0.005)
        time.sleep(rng.uniform(0, 0.3))
        os.kill(pid, signal.SIGKILL)
        assert killed(os.waitpid(pid, 0)[1]), f"trial {trial}: the child ended by itself"
        model = replay(cells, log.read_text(), trial)
        card = SimulatedCard.open(image)
        session = WalletSession(connect_card(card))
        found = (application_area(card), balances(session))
        assert found in model, f"trial {trial}: the card is not the model ({log.read_text().splitlines()[-1]})"
        ids = [e.id for e in session.list()]
        card.close()
