"""The processor stack against the simulated card and against scripted cards."""

from __future__ import annotations

import pytest

from apdu import CommandApdu, ResponseApdu
from apdu.atr import build_atr
from apdu.records import ValueRecord, ValueType
from card import SimulatedCard
from host.processors import TRACE, GetResponseProcessor, ReissueProcessor, TraceProcessor
from host.session import WalletSession
from host.transport import TransportError
from host.transport.inprocess import connect_card

from ..conftest import ISSUER


class Recorder:
    """A transport that records what crosses it and forwards to a real simulated card."""

    def __init__(self, card: SimulatedCard) -> None:
        self.inner = connect_card(card)
        self.sent: list[bytes] = []

    @property
    def atr(self) -> bytes:
        return self.inner.atr

    def send_and_receive(self, apdu: bytes) -> tuple[bytes, int]:
        self.sent.append(apdu)
        return self.inner.send_and_receive(apdu)

    def begin_exclusive(self) -> None:
        self.inner.begin_exclusive()

    def close(self) -> None:
        self.inner.close()


class Scripted:
    """A processor answering from a script, for card behaviour ours never shows."""

    def __init__(self, answers: list[ResponseApdu]) -> None:
        self.answers = answers
        self.sent: list[CommandApdu] = []

    def send_apdu(self, command: CommandApdu) -> ResponseApdu:
        self.sent.append(command)
        return self.answers.pop(0)


BIG = ValueRecord(ValueType.VOUCHER, "Big voucher", payload=bytes(range(256)) * 2)


def personalized(historical: bytes | None = None) -> SimulatedCard:
    card = SimulatedCard.manufacture()
    if historical is not None:
        card.atr = build_atr(historical)
    s = WalletSession(connect_card(card))
    ISSUER.personalize(s, "1234")
    card.power_off()
    return card


@pytest.mark.parametrize(
    ("historical", "extended_on_wire"),
    [(None, True), (bytes.fromhex("80738021") + b"\x80", False), (b"", False)],
    ids=["extended-card", "chaining-only-card", "card-that-says-nothing"],
)
def test_long_commands_use_extended_length_or_chaining(
    historical: bytes | None, extended_on_wire: bool
) -> None:
    card = personalized(historical)
    link = Recorder(card)
    session = WalletSession(link)
    session.verify_pin("1234")
    value_id = session.store(BIG)
    assert session.read(value_id) == BIG.stored(value_id)
    stores = [a for a in link.sent if a[1] == 0x16]
    if extended_on_wire:
        assert len(stores) == 1 and stores[0][4] == 0x00  # extended Lc
    else:
        assert len(stores) > 1 and all(a[0] & 0x10 for a in stores[:-1]) and not stores[-1][0] & 0x10
        reads = [a for a in link.sent if a[1] in (0x14, 0xC0)]
        assert len(reads) > 1  # the long READ came back through GET RESPONSE


def test_reissue_on_6cxx() -> None:
    script = Scripted([ResponseApdu(b"", 0x6C05), ResponseApdu(b"12345", 0x9000)])
    response = ReissueProcessor(script).send_apdu(CommandApdu(0x80, 0x10, ne=1))
    assert response == ResponseApdu(b"12345", 0x9000)
    assert [c.ne for c in script.sent] == [1, 5]


def test_get_response_collects_61xx() -> None:
    script = Scripted([ResponseApdu(b"ab", 0x6102), ResponseApdu(b"cd", 0x6100), ResponseApdu(b"ef", 0x9000)])
    response = GetResponseProcessor(script).send_apdu(CommandApdu(0x80, 0x12))
    assert response == ResponseApdu(b"abcdef", 0x9000)
    assert [(c.ins, c.ne) for c in script.sent] == [(0x12, None), (0xC0, 2), (0xC0, 256)]


def test_endless_61xx_is_a_transport_error() -> None:
    class Endless:
        def send_apdu(self, command: CommandApdu) -> ResponseApdu:
            return ResponseApdu(b"x", 0x6101)

    with pytest.raises(TransportError):
        GetResponseProcessor(Endless()).send_apdu(CommandApdu(0x80, 0x12))


def test_trace_redacts_pins(caplog: pytest.LogCaptureFixture) -> None:
    card = personalized()
    session = WalletSession(connect_card(card))
    with caplog.at_level(TRACE, logger="evb.apdu"):
        session.verify_pin("1234")
        session.info()
    text = caplog.text
    assert "00 20 00 81 08 AA AA AA AA AA AA AA AA" in text
    assert "31 32 33 34" not in text
    assert "> 80 10 00 00" in text and "< " in text


def test_trace_redacts_a_secret_answer_through_get_response(caplog: pytest.LogCaptureFixture) -> None:
    """SPLIT KEY's shares (recovery codes) come in 61xx pieces; every piece stays hidden, and the
    next command's answer is shown again."""
    share = bytes(range(0x30, 0x51))
    script = Scripted([ResponseApdu(share[:20], 0x610D), ResponseApdu(share[20:], 0x9000),
                       ResponseApdu(b"\x12\x34", 0x9000)])
    stack = GetResponseProcessor(TraceProcessor(script))
    with caplog.at_level(TRACE, logger="evb.apdu"):
        assert stack.send_apdu(CommandApdu(0x80, 0x6C, 2, 3, ne=256)).data == share
        stack.send_apdu(CommandApdu(0x80, 0x10))
    flat = caplog.text.replace(" ", "")
    assert not any(share[i:i + 4].hex().upper() in flat for i in range(len(share) - 3))
    assert "< AA AA" in caplog.text and "< 12 34 90 00" in caplog.text


def test_a_trace_turned_on_mid_answer_hides_the_rest_of_it(caplog: pytest.LogCaptureFixture) -> None:
    """Untraced, the trace knows no command's name (their codecs load on first trace): an answer
    whose command went untraced stays hidden when a trace starts before its GET RESPONSE."""
    share = bytes(range(0x30, 0x51))
    script = Scripted([ResponseApdu(share[:20], 0x610D), ResponseApdu(share[20:], 0x9000)])
    trace = TraceProcessor(script)
    first = trace.send_apdu(CommandApdu(0x80, 0x6C, 2, 3, ne=256))  # SPLIT KEY, not traced
    with caplog.at_level(TRACE, logger="evb.apdu"):
        rest = trace.send_apdu(CommandApdu(0x80, 0xC0, 0, 0, ne=first.sw & 0xFF))
    assert rest.data == share[20:]
    assert share[20:24].hex(" ").upper() not in caplog.text and "< AA AA" in caplog.text
