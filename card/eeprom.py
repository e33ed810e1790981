"""Simulated EEPROM: page-programmed non-volatile memory with a redo journal.

Why a redo journal: a command's writes are buffered in RAM (the logical view) and only reach
the cells at commit, as ``journal body -> (length, CRC) -> commit byte -> apply -> clear``. The
commit byte is a single-byte write, so it is either set or not; power-on recovery rolls a set
journal forward (re-applying is idempotent) and ignores an unset one. This is JavaCard's
``beginTransaction/commitTransaction`` contract, and every mutating command runs inside one.

Physical memory map: ``[header 16][journal J][application area ...]``. The header records the
geometry so an image file is self-describing.

Tearing: :meth:`Eeprom.cut_power_after` arms a hook that cuts power after the N-th physical page
write; the next page write is torn (its first half lands) and :class:`PowerLoss` is raised. The
card image is then whatever the cells hold, as on a real card pulled from the reader.
"""

from __future__ import annotations

import fcntl
import os
import tempfile
import zlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

MAGIC = b"EVBE"
HEADER_SIZE = 16
PAGE = 64
DEFAULT_SIZE = 32 * 1024
DEFAULT_JOURNAL = 2 * 1024
MIN_SIZE, MAX_SIZE = 8 * 1024, 64 * 1024

# journal layout: [commit byte][length u16][crc32 u32][body: (addr u16, len u16, data)...]
J_COMMIT = 0
J_LENGTH = 1
J_BODY = 7
ENTRY_HEAD = 4


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

    Two processes writing one image would each replace the other's file and lose writes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = open(path.with_name(path.name + ".lock"), "a")  # noqa: SIM115 (held by the caller)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        lock.close()
        raise ImageBusyError(f"card image {path} is in use by another process") from None
    return lock


class Eeprom:
    def __init__(self, cells: bytearray, image: Path | None = None) -> None:
        if cells[:4] != MAGIC:
            raise ImageError("not a card image (bad magic)")
        self._cells = cells
        self.size = len(cells)
        self.journal_offset = HEADER_SIZE
        self.journal_size = int.from_bytes(cells[4:8], "big")
        self.app_offset = HEADER_SIZE + self.journal_size
        if int.from_bytes(cells[8:12], "big") != self.size or self.app_offset >= self.size:
            raise ImageError("card image geometry does not match its size")
        self.image = image
        self._view: bytearray | None = None  # the logical view inside a transaction
        self._dirty: list[tuple[int, int]] = []
        self._powered = False
        self._tear_after: int | None = None
        self.page_writes = 0  # physical page writes since manufacture of this object
        self._unsaved = False

    # --- manufacture and images -------------------------------------------------------------

    @classmethod
    def blank(cls, size: int = DEFAULT_SIZE, journal_size: int = DEFAULT_JOURNAL) -> Eeprom:
        if not MIN_SIZE <= size <= MAX_SIZE:
            raise ValueError(f"EEPROM size must be {MIN_SIZE}..{MAX_SIZE} bytes")
        cells = bytearray(size)
        cells[0:4] = MAGIC
        cells[4:8] = journal_size.to_bytes(4, "big")
        cells[8:12] = size.to_bytes(4, "big")
        return cls(cells)

    @classmethod
    def load(cls, path: Path) -> Eeprom:
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise ImageError(f"cannot read card image {path}: {exc.strerror}") from exc
        if not MIN_SIZE <= len(raw) <= MAX_SIZE:
            raise ImageError(f"{path} is not a card image (size {len(raw)})")
        return cls(bytearray(raw), image=path)

    def save(self, path: Path | None = None) -> None:
        """Write the cells to the image file atomically: a killed process leaves the old image."""
        target = path or self.image
        if target is None:
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".card-", dir=target.parent)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(self._cells)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, target)
        except BaseException:
            os.unlink(tmp)
            raise
        self.image = target
        self._unsaved = False

    def snapshot(self) -> bytes:
        """The cells as they are, for cloning a card or comparing states in tests."""
        return bytes(self._cells)

    def flush(self) -> None:
        if self._unsaved:
            self.save()

    # --- power -------------------------------------------------------------------------------

    @property
    def powered(self) -> bool:
        return self._powered

    def power_on(self) -> None:
        """Recover the journal, as a card's OS does before it answers the reset."""
        self._powered = True
        self._view, self._dirty = None, []
        if self._cells[self.journal_offset + J_COMMIT] == 1:
            self._roll_forward()
        self.flush()

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
        body = b"".join(
            a.to_bytes(2, "big") + (b - a).to_bytes(2, "big") + bytes(view[a:b]) for a, b in ranges
        )
        if J_BODY + len(body) > self.journal_size:
            raise JournalFull(f"transaction of {len(body)} bytes exceeds the journal")
        j = self.journal_offset
        self._program(j + J_BODY, body)
        self._program(j + J_LENGTH, len(body).to_bytes(2, "big") + zlib.crc32(body).to_bytes(4, "big"))
        self._program(j + J_COMMIT, b"\x01")  # the commit point: one byte, one write
        self._roll_forward()

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

    def _roll_forward(self) -> None:
        j = self.journal_offset
        length = int.from_bytes(self._cells[j + J_LENGTH : j + J_LENGTH + 2], "big")
        crc = int.from_bytes(self._cells[j + J_LENGTH + 2 : j + J_BODY], "big")
        body = bytes(self._cells[j + J_BODY : j + J_BODY + length])
        if J_BODY + length <= self.journal_size and zlib.crc32(body) == crc:
            pos = 0
            while pos < len(body):
                addr = int.from_bytes(body[pos : pos + 2], "big")
                n = int.from_bytes(body[pos + 2 : pos + 4], "big")
                self._program(addr, body[pos + 4 : pos + 4 + n])
                pos += ENTRY_HEAD + n
        self._program(j + J_COMMIT, b"\x00")

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
                self._tear_after = None
                self._powered = False
                self._view, self._dirty = None, []
                self._unsaved = True
                raise PowerLoss(f"power cut at page write {self.page_writes}")
            self._cells[start : start + len(chunk)] = chunk
            self.page_writes += 1
            self._unsaved = True
            pos += len(chunk)

    def _require_power(self) -> None:
        if not self._powered:
            raise PowerLoss("the card is not powered")


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for a, b in sorted(ranges):
        if merged and a <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], b))
        else:
            merged.append((a, b))
    return merged
