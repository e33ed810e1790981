"""Simulated EEPROM: page-programmed non-volatile memory with a redo journal.

Why a redo journal: a command's writes are buffered in RAM (the logical view) and only reach
the cells at commit, as ``journal record -> commit byte -> apply``. The commit byte is a single
byte write, so it is either set or not; power-on recovery rolls a committed record forward
(re-applying is idempotent) and ignores an uncommitted one. This is JavaCard's
``beginTransaction/commitTransaction`` contract, and every mutating command runs inside one.

Physical memory map: ``[header 16][journal J][application area ...]``. The header records the
geometry and the journal format so an image file is self-describing.

The journal has two slots of J/2 bytes, used in turn. A record is ``[commit byte][length
u16][crc32 u32][body: (addr u16, len u16, data)...]``; a slot's commit byte is the record's
generation (2..255, counting on from the other slot's) and the CRC covers the generation, the
length and the body, so a slot whose bytes are a mix of two records is no record. Recovery
redoes the valid records, older generation first. Why two slots: a record is overwritten only
two transactions later, when the data it redoes is known to be on disk (see below), so no
transaction needs its journal cleared or waits for the one before. A transaction too large for
a slot writes a *wide* record (commit byte 1) over both slots' bodies, skipping the second
slot's header, and clears both headers after its data is on disk. Images written before the
two slots (format 0 in the header) hold one wide-style record over the whole journal; power-on
rolls it forward and converts the image.

Tearing: :meth:`Eeprom.cut_power_after` arms a hook that cuts power after the N-th physical page
write; the next page write is torn (its first half lands) and :class:`PowerLoss` is raised. The
card image is then whatever the cells hold, as on a real card pulled from the reader.

An image file is the EEPROM itself: every page write goes to the file where it happens, in the
order the journal needs, so a process killed between two writes leaves exactly the cells a
power cut leaves, and the next power-on recovers them. ``fdatasync`` orders what must reach the
disk before what, should the machine itself crash:

* after the commit byte, before any data page: the commit point is durable (the command is
  done once it answers) and a redo record exists for every data page about to change. The
  record and its commit byte need no sync between them: a commit byte on disk without its
  record fails the CRC and is no commit, and no data page has changed yet.
* nothing else on the common path. The data pages of transaction N reach the disk with N+1's
  sync, and N's record, in the other slot, survives until N+2 rewrites it, after that sync.
* a wide record syncs between clearing the older slot's commit byte and the newer one's (the
  older record alone would roll the newer one's pages back), after its own commit byte, and
  after its data before it clears the headers. A recovery that rewrote pages syncs them before
  a later record may overwrite the slot that redoes them; converting an old image syncs before
  it marks the header.

One sync per common command, where a one-slot journal needs three (record, commit byte, data
before the clear): an fdatasync costs 0.2-0.3 ms on this machine kind, about what the command
itself costs.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import weakref
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

MAGIC = b"EVBE"
HEADER_SIZE = 16
H_FORMAT = 12  # the journal format: 0 one slot (images from before in-place writes), 1 two slots
FORMAT_ONE_SLOT, FORMAT_TWO_SLOTS = 0, 1
PAGE = 64
DEFAULT_SIZE = 32 * 1024
DEFAULT_JOURNAL = 2 * 1024
MIN_SIZE, MAX_SIZE = 8 * 1024, 64 * 1024

# journal record: [commit byte][length u16][crc32 u32][body: (addr u16, len u16, data)...]
J_COMMIT = 0
J_LENGTH = 1
J_BODY = 7
ENTRY_HEAD = 4
EMPTY, WIDE = 0, 1  # commit byte values; a slot record's is its generation, 2..255
FIRST_GEN, LAST_GEN = 2, 255


class PowerLoss(Exception):
    """Power was cut (a test hook, or the card was torn from the reader)."""


class TransactionError(Exception):
    """Misuse of transactions: a write outside one, or a transaction too large for the journal."""


class JournalFull(TransactionError):
    pass


class ImageError(Exception):
    """A card image file that is not an EEPROM image of ours."""


class ImageBusyError(ImageError):
    """Another process has the card image open: one card cannot be in two readers."""


def lock_image(path: Path) -> IO[str]:
    """An exclusive lock on ``path`` (through ``path.lock``), held while the file stays open.

    Two processes writing one image would interleave their page writes and journals."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = open(path.with_name(path.name + ".lock"), "a")  # noqa: SIM115 (held by the caller)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise ImageBusyError(f"card image {path} is in use by another process") from None
    return lock


Entries = list[tuple[int, bytes]]


class Eeprom:
    def __init__(self, cells: bytearray) -> None:
        if cells[:4] != MAGIC:
            raise ImageError("not a card image (bad magic)")
        self._cells = cells
        self.size = len(cells)
        self.journal_offset = HEADER_SIZE
        self.journal_size = int.from_bytes(cells[4:8], "big")
        self.app_offset = HEADER_SIZE + self.journal_size
        if int.from_bytes(cells[8:12], "big") != self.size or self.app_offset >= self.size \
                or self.journal_size % 2 or self.journal_size < 2 * PAGE:
            raise ImageError("card image geometry does not match its size")
        if cells[H_FORMAT] not in (FORMAT_ONE_SLOT, FORMAT_TWO_SLOTS):
            raise ImageError(f"card image journal format {cells[H_FORMAT]} is not one this software reads")
        self._slot_size = self.journal_size // 2
        self._slots = (self.journal_offset, self.journal_offset + self._slot_size)
        self._newest: tuple[int, int] | None = None  # (slot, generation) of the newest slot record
        self.image: Path | None = None
        self._fd: int | None = None  # the image file, written in place
        self._close_fd: weakref.finalize[[int], Eeprom] | None = None
        self._reload = False  # an image write failed: the cells may hold what the file does not
        self._view: bytearray | None = None  # the logical view inside a transaction
        self._dirty: list[tuple[int, int]] = []
        self._powered = False
        self._tear_after: int | None = None
        self.page_writes = 0  # physical page writes since manufacture of this object

    # --- manufacture and images -------------------------------------------------------------

    @classmethod
    def blank(cls, size: int = DEFAULT_SIZE, journal_size: int = DEFAULT_JOURNAL) -> Eeprom:
        if not MIN_SIZE <= size <= MAX_SIZE:
            raise ValueError(f"EEPROM size must be {MIN_SIZE}..{MAX_SIZE} bytes")
        cells = bytearray(size)
        cells[0:4] = MAGIC
        cells[4:8] = journal_size.to_bytes(4, "big")
        cells[8:12] = size.to_bytes(4, "big")
        cells[H_FORMAT] = FORMAT_TWO_SLOTS
        return cls(cells)

    @classmethod
    def load(cls, path: Path) -> Eeprom:
        """The EEPROM in the image file ``path``; its writes go to the file, in place."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_CLOEXEC)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise ImageError(f"cannot open card image {path}: {exc.strerror}") from exc
        try:
            raw = _read_all(fd)
            if not MIN_SIZE <= len(raw) <= MAX_SIZE:
                raise ImageError(f"{path} is not a card image (size {len(raw)})")
            eeprom = cls(bytearray(raw))
        except OSError as exc:
            os.close(fd)
            raise ImageError(f"cannot read card image {path}: {exc.strerror}") from exc
        except BaseException:
            os.close(fd)
            raise
        eeprom._attach(path, fd)
        return eeprom

    def save(self, path: Path) -> None:
        """Write the cells to a new image file at ``path``, then keep writing there in place.

        Atomic (temporary file, fsync, rename, fsync of the folder): a process killed meanwhile
        leaves no half-written image at ``path``, and the new name survives a crash."""
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".card-", dir=path.parent)
        try:
            view = memoryview(self._cells)
            while view:
                view = view[os.write(fd, view) :]
            os.fsync(fd)
            os.replace(tmp, path)
        except BaseException:
            os.close(fd)
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        _fsync_folder(path.parent)
        self._attach(path, fd)

    def close(self) -> None:
        """Power off and let go of the image file; a closed image cannot be powered on again."""
        self.power_off()
        self._release()

    def snapshot(self) -> bytes:
        """The cells as they are, for cloning a card or comparing states in tests."""
        return bytes(self._cells)

    def _attach(self, path: Path, fd: int) -> None:
        self._release()
        self.image, self._fd = path, fd
        self._close_fd = weakref.finalize(self, os.close, fd)  # closed with the object, or by close()

    def _release(self) -> None:
        if self._close_fd is not None:
            self._close_fd()
            self._close_fd = None
        self._fd = None

    # --- power -------------------------------------------------------------------------------

    @property
    def powered(self) -> bool:
        return self._powered

    def power_on(self) -> None:
        """Recover the journal, as a card's OS does before it answers the reset."""
        if self.image is not None and self._fd is None:
            raise ImageError(f"card image {self.image} is closed")
        if self._reload and self._fd is not None:
            try:
                raw = _read_all(self._fd)
            except OSError as exc:
                raise ImageError(f"cannot read card image {self.image}: {exc.strerror}") from exc
            if len(raw) != self.size:
                raise ImageError(f"card image {self.image} changed size")
            self._cells[:] = raw
            self._reload = False
        self._powered = True
        self._view, self._dirty = None, []
        if self._cells[H_FORMAT] == FORMAT_ONE_SLOT:
            self._convert_one_slot()
        elif self._cells[self._slots[0] + J_COMMIT] == WIDE:
            self._newest = None
            self._redo(self._wide_record())
            self._finish_wide()
        else:
            self._recover_slots()

    def power_off(self) -> None:
        self._powered = False
        self._view, self._dirty = None, []

    def cut_power_after(self, writes: int | None) -> None:
        """Test hook: after ``writes`` more page writes, tear the next one and lose power."""
        self._tear_after = None if writes is None else self.page_writes + writes

    # --- reads and writes --------------------------------------------------------------------

    def read(self, addr: int, n: int) -> bytes:
        self._check_range(addr, n)
        src = self._view if self._view is not None else self._cells
        return bytes(src[addr : addr + n])

    def read_u16(self, addr: int) -> int:
        return int.from_bytes(self.read(addr, 2), "big")

    def write(self, addr: int, data: bytes) -> None:
        if self._view is None:
            raise TransactionError("EEPROM write outside a transaction")
        if addr < self.app_offset:
            raise TransactionError("write into the EEPROM header or journal")
        self._check_range(addr, len(data))
        self._view[addr : addr + len(data)] = data
        self._dirty.append((addr, addr + len(data)))

    def write_u16(self, addr: int, n: int) -> None:
        self.write(addr, n.to_bytes(2, "big"))

    def _check_range(self, addr: int, n: int) -> None:
        if addr < 0 or n < 0 or addr + n > self.size:
            raise TransactionError(f"EEPROM access out of range: {addr}+{n}")

    # --- transactions ------------------------------------------------------------------------

    @property
    def in_transaction(self) -> bool:
        return self._view is not None

    def begin(self) -> None:
        if self._view is not None:
            raise TransactionError("transactions do not nest")
        self._require_power()
        self._view = bytearray(self._cells)
        self._dirty = []

    def abort(self) -> None:
        self._view, self._dirty = None, []

    def commit(self) -> None:
        if self._view is None:
            raise TransactionError("commit outside a transaction")
        view, ranges = self._view, _merge(self._dirty)
        self._view, self._dirty = None, []
        if not ranges:
            return
        entries = [(a, bytes(view[a:b])) for a, b in ranges]
        body = b"".join(a.to_bytes(2, "big") + len(d).to_bytes(2, "big") + d for a, d in entries)
        if J_BODY + len(body) <= self._slot_size:
            self._commit_in_slot(body)
        elif len(body) <= 2 * (self._slot_size - J_BODY):
            self._commit_wide(body)
        else:
            raise JournalFull(f"transaction of {len(body)} bytes exceeds the journal")
        self._apply(entries)
        if self._newest is None:  # a wide record: its data on disk, then no record is left
            self._finish_wide()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside land together at the end, or none do if it raises."""
        self.begin()
        try:
            yield
        except BaseException:
            self.abort()
            raise
        self.commit()

    # --- the journal -------------------------------------------------------------------------

    def _commit_in_slot(self, body: bytes) -> None:
        """The record goes into the slot not holding the newest one, whose data may not be on
        disk yet; the older record's data is (the newest one's commit synced it)."""
        slot = 0 if self._newest is None else 1 - self._newest[0]
        gen = FIRST_GEN if self._newest is None else _next_gen(self._newest[1])
        at = self._slots[slot]
        length = len(body).to_bytes(2, "big")
        # one call, commit byte first: the slot's first page write makes it hold no record
        self._program(at, bytes((EMPTY,)) + length + _slot_crc(gen, length, body).to_bytes(4, "big") + body)
        self._program(at + J_COMMIT, bytes((gen,)))  # the commit point: one byte, one write
        self._newest = (slot, gen)
        self._sync()

    def _commit_wide(self, body: bytes) -> None:
        older, newer = [0, 1] if self._newest is not None and self._newest[0] == 1 else [1, 0]
        # the older record goes first, on disk before the newer one goes: alone, it would
        # roll the newer one's pages back; the sync also puts the newer one's data on disk
        self._clear_headers([older], commit_only=True)
        self._sync()
        self._clear_headers([newer], commit_only=True)
        first, rest = self._wide_spans()
        self._program(first, body[: self._slot_size - J_BODY])
        if len(body) > self._slot_size - J_BODY:
            self._program(rest, body[self._slot_size - J_BODY :])
        at = self._slots[0]
        self._program(at + J_LENGTH, len(body).to_bytes(2, "big") + zlib.crc32(body).to_bytes(4, "big"))
        self._program(at + J_COMMIT, bytes((WIDE,)))  # the commit point
        self._newest = None
        self._sync()

    def _finish_wide(self) -> None:
        """A wide record's data is on disk before its headers go; the second slot's first, so
        that no header ever reads as a slot record once the first says nothing."""
        self._sync()
        self._clear_headers([1, 0], commit_only=False)
        self._newest = None

    def _clear_headers(self, order: list[int], commit_only: bool) -> None:
        """The slots' commit bytes, or whole headers, in ``order``."""
        for slot in order:
            at = self._slots[slot]
            n = 1 if commit_only else J_BODY
            if any(self._cells[at : at + n]):
                self._program(at, bytes(n))

    def _wide_spans(self) -> tuple[int, int]:
        """Where a wide record's body lies: the first slot's body, then the second slot's body."""
        return self._slots[0] + J_BODY, self._slots[1] + J_BODY

    def _wide_record(self) -> Entries | None:
        at = self._slots[0]
        length = int.from_bytes(self._cells[at + J_LENGTH : at + J_LENGTH + 2], "big")
        crc = int.from_bytes(self._cells[at + J_LENGTH + 2 : at + J_BODY], "big")
        if length > 2 * (self._slot_size - J_BODY):
            return None
        first, rest = self._wide_spans()
        head = min(length, self._slot_size - J_BODY)
        body = bytes(self._cells[first : first + head] + self._cells[rest : rest + length - head])
        return self._entries(body) if zlib.crc32(body) == crc else None

    def _slot_record(self, slot: int) -> tuple[int, Entries] | None:
        at = self._slots[slot]
        gen = self._cells[at + J_COMMIT]
        length_raw = bytes(self._cells[at + J_LENGTH : at + J_LENGTH + 2])
        length = int.from_bytes(length_raw, "big")
        crc = int.from_bytes(self._cells[at + J_LENGTH + 2 : at + J_BODY], "big")
        if not FIRST_GEN <= gen <= LAST_GEN or J_BODY + length > self._slot_size:
            return None
        body = bytes(self._cells[at + J_BODY : at + J_BODY + length])
        entries = self._entries(body) if _slot_crc(gen, length_raw, body) == crc else None
        return None if entries is None else (gen, entries)

    def _recover_slots(self) -> None:
        found = {slot: r for slot in (0, 1) if (r := self._slot_record(slot)) is not None}
        if len(found) == 2 and found[0][0] != _next_gen(found[1][0]) and found[1][0] != _next_gen(found[0][0]):
            raise ImageError("the card's journal holds two records that do not follow each other")
        order = sorted(found, key=lambda s: len(found) == 2 and found[s][0] == _next_gen(found[1 - s][0]))
        self._newest = (order[-1], found[order[-1]][0]) if order else None
        self._redo([e for slot in order for e in found[slot][1]])

    def _convert_one_slot(self) -> None:
        """An image from before the two slots: roll its record forward the old way (the body
        runs on over the whole journal), clear the journal, then mark the image converted."""
        at = self._slots[0]
        if self._cells[at + J_COMMIT] == WIDE:
            length = int.from_bytes(self._cells[at + J_LENGTH : at + J_LENGTH + 2], "big")
            crc = int.from_bytes(self._cells[at + J_LENGTH + 2 : at + J_BODY], "big")
            body = bytes(self._cells[at + J_BODY : at + J_BODY + length])
            if J_BODY + length <= self.journal_size and zlib.crc32(body) == crc:
                self._redo(self._entries(body))
        self._sync()
        self._clear_headers([1, 0], commit_only=False)  # stale bodies may look like slot headers
        self._sync()
        self._program(H_FORMAT, bytes((FORMAT_TWO_SLOTS,)))
        self._sync()
        self._newest = None

    def _entries(self, body: bytes) -> Entries | None:
        """The (address, data) ranges of a record body, or None if it is not one we wrote."""
        out: Entries = []
        pos = 0
        while pos < len(body):
            addr = int.from_bytes(body[pos : pos + 2], "big")
            n = int.from_bytes(body[pos + 2 : pos + ENTRY_HEAD], "big")
            data = body[pos + ENTRY_HEAD : pos + ENTRY_HEAD + n]
            if len(data) != n or addr < self.app_offset or addr + n > self.size:
                return None
            out.append((addr, data))
            pos += ENTRY_HEAD + n
        return out

    def _redo(self, entries: Entries | None) -> None:
        """Apply records in order, writing only the pages that differ from the result: a card
        powered on after a clean power-off writes nothing."""
        if not entries:
            return
        want = bytearray(self._cells)
        for addr, data in entries:
            want[addr : addr + len(data)] = data
        changed = False
        for a, b in _merge([(addr, addr + len(data)) for addr, data in entries]):
            while a < b:
                end = min(b, (a // PAGE + 1) * PAGE)
                if self._cells[a:end] != want[a:end]:
                    self._program(a, bytes(want[a:end]))
                    changed = True
                a = end
        if changed:
            self._sync()  # before a later record overwrites the slot that redoes these pages

    def _apply(self, entries: Entries) -> None:
        for addr, data in entries:
            self._program(addr, data)

    # --- physical writes ---------------------------------------------------------------------

    def _program(self, addr: int, data: bytes) -> None:
        """Physical writes, one per touched page; the tearing hook acts here."""
        self._require_power()
        pos = 0
        while pos < len(data):
            page_end = (addr + pos) // PAGE * PAGE + PAGE
            chunk = data[pos : pos + page_end - (addr + pos)]
            start = addr + pos
            if self._tear_after is not None and self.page_writes >= self._tear_after:
                half = (len(chunk) + 1) // 2 if len(chunk) > 1 else 0
                self._cells[start : start + half] = chunk[:half]
                self._store(start, chunk[:half])
                self._tear_after = None
                self._lose_power()
                raise PowerLoss(f"power cut at page write {self.page_writes}")
            self._cells[start : start + len(chunk)] = chunk
            self._store(start, chunk)
            self.page_writes += 1
            pos += len(chunk)

    def _store(self, addr: int, data: bytes) -> None:
        """The same write in the image file, where it happens."""
        if self._fd is None or not data:
            return
        try:
            if os.pwrite(self._fd, data, addr) == len(data):
                return
            reason = "short write"
        except OSError as exc:
            reason = exc.strerror or "I/O error"
        self._reload = True  # the cells hold this write, the file may not: read it again
        self._lose_power()
        raise PowerLoss(f"card image write failed: {reason}")

    def _sync(self) -> None:
        if self._fd is None:
            return
        try:
            os.fdatasync(self._fd)
        except OSError as exc:
            self._reload = True
            self._lose_power()
            raise PowerLoss(f"card image sync failed: {exc.strerror}") from exc

    def _lose_power(self) -> None:
        self._powered = False
        self._view, self._dirty = None, []

    def _require_power(self) -> None:
        if not self._powered:
            raise PowerLoss("the card is not powered")


def _next_gen(gen: int) -> int:
    return FIRST_GEN if gen >= LAST_GEN else gen + 1


def _slot_crc(gen: int, length: bytes, body: bytes) -> int:
    """Binds the generation and length: a new commit byte over an old record is no record."""
    return zlib.crc32(bytes((gen,)) + length + body)


def _read_all(fd: int) -> bytes:
    raw = os.pread(fd, MAX_SIZE + 1, 0)
    while len(raw) <= MAX_SIZE:
        more = os.pread(fd, MAX_SIZE + 1 - len(raw), len(raw))
        if not more:
            break
        raw += more
    return raw


def _fsync_folder(folder: Path) -> None:
    """A new name in ``folder`` survives a crash only once the folder itself is synced."""
    fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged
