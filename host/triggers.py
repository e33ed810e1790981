"""Automatic backup (seed E9): the periodic run of the card's conditions, and making room when
a store or restore does not fit (claims 25-27, 37).

The card decides *which* values its conditions select (fig. 40); the host plans how much a
backup would free, because a value's certificate record is not free: it keeps the title and
about 240 bytes of certificate, so backing up a small value can cost memory. The automatic
path therefore checks before it touches anything that the selected values free enough, backs
them up one swap at a time (each conserves value on its own), and only then continues.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from enum import Enum
from pathlib import Path

from apdu import SW, ApduError
from apdu import backup as b
from apdu.certificate import Certificate, make_digest, value_hash
from apdu.records import ValueFlags, ValueRecord
from apdu.triggers import Candidate, ShortagePolicy

from .backup import BackupError, Outcome, Progress, backup, connect, run_all
from .session import WalletSession
from .vault_client import VaultClient


class ShortageError(BackupError):
    """Not enough card memory, and the policy or the user would not (or could not) make room."""


class Choice(Enum):
    ABORT = "abort"
    AUTOMATIC = "automatic"
    MANUAL = "manual"


@dataclass(frozen=True)
class Gain:
    """What backing up one live value would free on the card (negative: it would cost)."""

    value_id: int
    name: str
    size: int
    gain: int


@dataclass(frozen=True)
class Shortage:
    what: str  # "storing 'Movie ticket X'", for messages and prompts
    needed: int
    free: int
    selected: tuple[Gain, ...]  # what the card's conditions select, best gain first
    live: tuple[Gain, ...]  # every live value, for a manual choice

    @property
    def automatic(self) -> tuple[int, ...]:
        """The fewest selected values, best gain first, that make room; () if they cannot."""
        chosen, free = [], self.free
        for g in self.selected:
            if free >= self.needed or g.gain <= 0:
                break
            chosen.append(g.value_id)
            free += g.gain
        return tuple(chosen) if free >= self.needed else ()

    def frees(self, ids: tuple[int, ...]) -> int:
        gains = {g.value_id: g.gain for g in self.live}
        return sum(gains[i] for i in ids)

    def __str__(self) -> str:
        return f"not enough card memory for {self.what}: it needs {self.needed} bytes and {self.free} are free"


Decide = Callable[[Shortage], tuple[Choice, tuple[int, ...]]]


class VaultLink:
    """The vault, reached on first need: a store that fits never talks to it, and planning
    reads only public facts, so the card authenticates (and pins the vault's key) only when
    something is about to be backed up."""

    def __init__(self, url: str, ca: Path | None = None) -> None:
        self.url = url
        self.ca = ca
        self._client: VaultClient | None = None
        self._key: bytes | None = None

    def client(self) -> VaultClient:
        if self._client is None:
            self._client = VaultClient(self.url, ca=self.ca)
        return self._client

    def open(self, session: WalletSession) -> tuple[VaultClient, bytes]:
        client = self.client()
        if self._key is None:
            self._key = connect(session, client)
        return client, self._key

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client, self._key = None, None

    def __enter__(self) -> VaultLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# --- periodic and on-request runs (fig. 40) ----------------------------------------------------


@dataclass(frozen=True)
class AutoRun:
    selected: tuple[Candidate, ...]
    done: tuple[Outcome, ...]
    failed: tuple[tuple[int, str], ...]


def run_auto(session: WalletSession, link: VaultLink, today: date, progress: Progress | None = None) -> AutoRun:
    """Back up every value the card's conditions select today, and finish backups a torn run
    left pending; the card records the run when all went, so a failed run is due again."""
    selected = session.select_for_backup(today)
    # a run torn after BEGIN BACKUP left its value pending, which the card no longer selects:
    # finish those swaps first (the vault answers the same certificate for the same value)
    torn = [e.id for e in session.list() if e.flags & ValueFlags.PENDING and not e.flags & ValueFlags.CERTIFICATE]
    ids = torn + [c.value_id for c in selected if c.value_id not in torn]
    done: list[Outcome] = []
    failed: list[tuple[int, str]] = []
    if ids:
        client, key = link.open(session)
        done, failed = run_all(ids, lambda i: backup(session, client, key, i), progress)
    if not failed:
        session.record_run(today)
    return AutoRun(selected, tuple(done), tuple(failed))


def run_if_due(session: WalletSession, link: VaultLink, today: date, progress: Progress | None = None) -> AutoRun | None:
    """The periodic trigger, checked when a terminal session starts: None when not due."""
    return run_auto(session, link, today, progress) if session.triggers().due(today, free_percent(session)) else None


def free_percent(session: WalletSession) -> int:
    """How much of the data area is free, in whole percent: what a "both" combination watches."""
    info = session.info()
    return info.free_memory * 100 // info.total_memory if info.total_memory else 0


# --- storage shortage (claims 25-27) -----------------------------------------------------------


def plan(session: WalletSession, link: VaultLink, needed: int, today: date, what: str) -> Shortage:
    fields = link.client().digest_fields()
    card_id = session.identity().card_id
    selected = {c.value_id for c in session.select_for_backup(today)}
    gains = []
    for entry in session.list():
        if entry.flags & (ValueFlags.CERTIFICATE | ValueFlags.PENDING):
            continue
        body = session.read(entry.id).body()
        worst = Certificate(card_id, 0xFFFFFFFF, value_hash(body), make_digest(body, fields),
                            signature=bytes(b.MAX_SIGNATURE))
        kept = b.certificate_record(ValueRecord.from_bytes(body), worst.to_bytes()).body()
        gains.append(Gain(entry.id, entry.name, entry.size, entry.size - len(kept)))
    best_first = sorted((g for g in gains if g.value_id in selected), key=lambda g: -g.gain)
    return Shortage(what, needed, session.info().free_memory, tuple(best_first), tuple(gains))


def make_room(
    session: WalletSession,
    link: VaultLink,
    needed: int,
    what: str,
    today: date,
    policy: ShortagePolicy,
    decide: Decide | None = None,
    progress: Progress | None = None,
) -> tuple[Outcome, ...]:
    """Free ``needed`` bytes by the policy, or raise :class:`ShortageError` having changed nothing
    (or, if the plan's estimate was wrong, having only swapped values for certificates)."""
    info = session.info()
    if info.free_memory >= needed:
        return ()
    if info.index_used >= info.index_capacity:
        raise ShortageError(f"the card's index is full ({info.index_used} entries) and a backup frees "
                            "no entry: delete a value first")
    if policy == ShortagePolicy.ABORT:
        raise ShortageError(f"not enough card memory for {what}: it needs {needed} bytes and "
                            f"{info.free_memory} are free (shortage policy: abort)")
    if policy == ShortagePolicy.ASK and decide is None:
        raise ShortageError(f"not enough card memory for {what}: it needs {needed} bytes and "
                            f"{info.free_memory} are free; choose with --on-shortage abort|auto")
    shortage = plan(session, link, needed, today, what)
    ids: tuple[int, ...] = ()
    if policy == ShortagePolicy.AUTOMATIC:
        choice = Choice.AUTOMATIC
    else:
        assert decide is not None
        choice, ids = decide(shortage)
    if choice == Choice.ABORT:
        raise ShortageError(f"{shortage} (aborted)")
    if choice == Choice.AUTOMATIC:
        ids = shortage.automatic
        if not ids:
            most = sum(max(g.gain, 0) for g in shortage.selected)
            raise ShortageError(f"{shortage}; backing up what the conditions select would free at most "
                                f"{most} bytes")
    elif unknown := set(ids) - {g.value_id for g in shortage.live}:
        raise ShortageError(f"value {min(unknown)} is not a live value on the card")
    elif shortage.free + shortage.frees(ids) < needed:
        raise ShortageError(f"{shortage}; the chosen values would free only {max(shortage.frees(ids), 0)} bytes")
    client, key = link.open(session)
    done = [backup(session, client, key, i) for i in ids]
    if progress:
        progress(len(done))
    if session.info().free_memory < needed:
        raise ShortageError(f"{shortage}: the backups freed less than planned")
    return tuple(done)


def store(
    session: WalletSession,
    record: ValueRecord,
    link: VaultLink,
    today: date,
    policy: ShortagePolicy,
    decide: Decide | None = None,
) -> tuple[int, tuple[Outcome, ...]]:
    """Store a value; on 6A84 make room by the policy, then store it (claims 25-27)."""
    try:
        return session.store(record), ()
    except ApduError as exc:
        if exc.sw != SW.NOT_ENOUGH_MEMORY:
            raise
    made = make_room(session, link, len(record.body()), f"storing '{record.name}'", today, policy, decide)
    return session.store(record), made
