"""A PC/SC connection's context is released when evb closes it, never left to pyscard's
``__del__``: there a context pcscd no longer knows raised out of the garbage collector into
whatever test or command ran at that moment (seen as a stray failure in CI)."""

from __future__ import annotations

from smartcard.Exceptions import CardConnectionException

from host.transport.pcsc import release


class StaleConnection:
    """pyscard's PCSCCardConnection after pcscd forgot its context: release() raises."""

    def __init__(self) -> None:
        self.hcontext: int | None = 0x1234
        self.released = 0

    def release(self) -> None:
        self.released += 1
        raise CardConnectionException("Failed to release context: Invalid handle.")


class Decorated:
    def __init__(self, component: StaleConnection) -> None:
        self.component = component


def test_a_stale_context_is_released_once_and_quietly() -> None:
    stale = StaleConnection()
    release(Decorated(stale))  # type: ignore[arg-type]
    assert stale.released == 1 and stale.hcontext is None  # __del__ will have nothing left to do
