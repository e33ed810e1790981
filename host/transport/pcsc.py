"""PC/SC readers through pyscard: list them, pick one, connect T=0 or T=1.

This module and :mod:`host.transport.pyscard` are the only places that talk to pcscd.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from smartcard.CardConnection import CardConnection
from smartcard.Exceptions import CardConnectionException, NoCardException
from smartcard.System import readers as pcsc_readers

from . import CardRemovedError, TransportError
from .pyscard import PyscardTransport

PROTOCOLS = {"T0": CardConnection.T0_protocol, "T1": CardConnection.T1_protocol, "any": None}


@dataclass(frozen=True, slots=True)
class ReaderInfo:
    index: int
    name: str
    atr: bytes | None  # None when no card is present


def list_readers() -> list[str]:
    try:
        return [str(r) for r in pcsc_readers()]
    except Exception as exc:  # pcscd not running, no readers configured
        raise TransportError(f"cannot list PC/SC readers: {exc}") from exc


def describe_readers() -> list[ReaderInfo]:
    found = []
    for index, reader in enumerate(pcsc_readers() if list_readers() else []):
        atr: bytes | None
        try:
            connection = reader.createConnection()
            connection.connect()
            atr = bytes(connection.getATR())
            connection.disconnect()
        except (NoCardException, CardConnectionException):
            atr = None
        found.append(ReaderInfo(index, str(reader), atr))
    return found


def pick_reader(wanted: str | None = None) -> str:
    """A reader by exact name, by index, or by unique substring; the only one if not given."""
    wanted = wanted if wanted is not None else os.environ.get("EVB_READER")
    names = list_readers()
    if not names:
        raise TransportError("no PC/SC readers (is pcscd running?)")
    if wanted is None:
        if len(names) > 1:
            raise TransportError(f"{len(names)} readers: choose one with --reader ({', '.join(names)})")
        return names[0]
    if wanted in names:
        return wanted
    if wanted.isdigit() and int(wanted) < len(names):
        return names[int(wanted)]
    matches = [n for n in names if wanted.lower() in n.lower()]
    if len(matches) == 1:
        return matches[0]
    raise TransportError(f"no reader matches {wanted!r} (readers: {', '.join(names)})")


def connect_reader(name: str | None = None, protocol: str = "any") -> PyscardTransport:
    reader_name = pick_reader(name)
    reader = next(r for r in pcsc_readers() if str(r) == reader_name)
    connection = reader.createConnection()
    try:
        connection.connect(PROTOCOLS[protocol])
    except NoCardException as exc:
        raise CardRemovedError(f"no card in {reader_name}") from exc
    except CardConnectionException as exc:
        raise TransportError(f"cannot connect to the card in {reader_name}: {exc}") from exc
    return PyscardTransport(connection)
