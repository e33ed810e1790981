"""The card OS below the applets: 61xx only where ISO 7816-4 asks, GET RESPONSE under the classes
the card uses with the waiting data kept until fetched, T=0 vs T=1, and a T=0 host that strips Le
from case-4 commands as the JDK's ``javax.smartcardio`` does (issue 16)."""

from __future__ import annotations

from datetime import date

import pytest

from apdu import SW, CommandApdu, ResponseApdu
from apdu import backup as b
from apdu import keys as k
from apdu import rotation as r
from apdu import triggers as t
from apdu import wallet as w
from apdu.records import ValueType
from card import SimulatedCard
from card.card import T0, T1
from host.demo import FIG15
from host.session import WalletSession
from host.transport import Transport
from host.transport.inprocess import connect_card

from ..conftest import PIN
from .cards import AnyCard
from .helpers import send

SELECT_NO_LE = w.select().to_bytes()[:-1].hex()
FCI_LEN = 12


def selected(card: AnyCard, protocol: str) -> Transport:
    link = connect_card(card, protocol)
    assert card.protocol == protocol
    assert send(link, w.select().to_bytes().hex()).sw == SW.OK
    return link


def test_t1_command_without_le_gets_no_61xx(card: AnyCard) -> None:
    """On T=1 no Le field means Ne = 0: the status alone, never 61xx."""
    link = connect_card(card, T1)
    assert send(link, SELECT_NO_LE) == ResponseApdu(b"", SW.OK)
    with_le = send(link, w.select().to_bytes().hex())
    assert with_le.sw == SW.OK and len(with_le.data) == FCI_LEN
    assert send(link, "0020008108" + w.pin_block(PIN).hex()).sw == SW.OK
    stored = send(link, w.store_value(FIG15[0].body()).to_bytes()[:-1].hex())  # STORE without Le
    assert (stored.sw, stored.data) == (SW.OK, b"")
    assert send(link, "00C0000002").sw == SW.CONDITIONS_NOT_SATISFIED  # nothing waits


def test_t0_command_without_le_gets_61xx_and_get_response_under_either_class(card: AnyCard) -> None:
    link = connect_card(card, T0)
    assert send(link, SELECT_NO_LE).sw == 0x6100 | FCI_LEN
    fci = send(link, f"00C00000{FCI_LEN:02X}")
    assert fci.sw == SW.OK and fci.data[:2] == b"\x6f\x0a"
    send(link, "0020008108" + w.pin_block(PIN).hex())
    stored = send(link, w.store_value(FIG15[0].body()).to_bytes()[:-1].hex())
    assert stored == ResponseApdu(b"", 0x6102)
    assert send(link, "80C0000002").data == (1).to_bytes(2, "big")  # the JDK's GET RESPONSE: CLA 80


def test_waiting_data_survives_a_refused_get_response_and_not_another_command(card: AnyCard) -> None:
    link = selected(card, T0)
    send(link, "0020008108" + w.pin_block(PIN).hex())
    store = w.store_value(FIG15[0].body()).to_bytes()[:-1].hex()
    assert send(link, store).sw == 0x6102
    # refused GET RESPONSEs are not new commands: the data still waits
    for refused, sw in (("A0C0000002", SW.CLA_NOT_SUPPORTED), ("90C0000002", SW.CHAINING_NOT_SUPPORTED),
                        ("81C0000002", SW.LOGICAL_CHANNEL_NOT_SUPPORTED), ("80C0010002", SW.INCORRECT_P1P2),
                        ("80C0000001AA02", SW.WRONG_LENGTH)):
        assert send(link, refused).sw == sw, refused
    # fetched in two pieces, under both classes
    first = send(link, "80C0000001")
    assert (first.data, first.sw) == (b"\x00", 0x6101)
    last = send(link, "00C0000001")
    assert (last.data, last.sw) == (b"\x01", SW.OK)
    # any other command ends the wait (ISO 7816-4: the response belongs to the command before)
    assert send(link, store).sw == 0x6102
    assert send(link, "80100000").sw == 0x611D  # GET CARD INFO without Le, itself waiting now
    assert len(send(link, "80C000001D").data) == 0x1D
    assert send(link, "80C0000002").sw == SW.CONDITIONS_NOT_SATISFIED  # the id of value 2 is gone


def test_a_power_cycle_returns_to_t0(card: AnyCard) -> None:
    connect_card(card, T1)
    assert card.protocol == T1
    card.reset()
    assert card.protocol == T0  # no PPS after the reset: the first protocol the ATR offers


class JdkT0Transport:
    """What ``javax.smartcardio`` does on T=0 (sun.security.smartcardio.ChannelImpl): it strips Le
    from case-4 commands, fetches 61xx with GET RESPONSE under the command's own CLA, and
    re-issues after 6Cxx with SW2 as the last byte."""

    def __init__(self, inner: Transport) -> None:
        self.inner = inner
        self.sent: list[bytes] = []

    @property
    def atr(self) -> bytes:
        return self.inner.atr

    def send_and_receive(self, apdu: bytes) -> tuple[bytes, int]:
        command = bytearray(apdu)
        if len(command) >= 7 and command[4] != 0 and len(command) == command[4] + 6:
            del command[-1]  # case 4 short: Le stripped
        result = b""
        while True:
            self.sent.append(bytes(command))
            data, sw = self.inner.send_and_receive(bytes(command))
            if sw >> 8 == 0x6C and not data:
                command[-1] = sw & 0xFF
                continue
            if sw >> 8 == 0x61:
                result += data
                command = bytearray((command[0], 0xC0, 0, 0, sw & 0xFF))
                continue
            return result + data, sw

    def begin_exclusive(self) -> None:
        self.inner.begin_exclusive()

    def close(self) -> None:
        self.inner.close()


def test_every_proprietary_case_4_command_works_for_a_jdk_t0_client(card: AnyCard) -> None:
    jdk = JdkT0Transport(connect_card(card, T0))
    s = WalletSession(jdk)
    s.verify_pin(PIN)
    ids = [s.store(r) for r in FIG15[:3]]  # STORE VALUE: case 4
    assert ids == [1, 2, 3]
    assert [e.id for e in s.list(w.ListFilter(type=ValueType.TICKET))] == [1, 2]  # LIST with a filter
    prepaid = next(e.id for e in s.list() if e.type == ValueType.PREPAID)
    before = s.read(prepaid).balance or 0
    assert s.spend(prepaid, 1) == before - 1  # MODIFY VALUE: case 4
    s.put_triggers(t.TriggerSettings())
    assert isinstance(s.select_for_backup(date(2000, 3, 15)), tuple)  # SELECT FOR BACKUP: case 4
    info = s.generate_key(k.KeyMode.PUBLIC)
    assert s.key_info() == info
    assert s.info().index_used == 3  # GET CARD INFO: case 2
    case4 = [c for c in jdk.sent if c[0] == 0x80 and len(c) > 5 and len(c) == c[4] + 5]
    assert {c[1] for c in case4} >= {w.INS_STORE_VALUE, w.INS_MODIFY_VALUE, t.INS_SELECT_FOR_BACKUP}
    assert any(c[:2] == b"\x80\xc0" for c in jdk.sent)  # the data came back through GET RESPONSE under 80


def test_verify_with_p1_ff_forgets_the_pin(card: AnyCard) -> None:
    link = selected(card, T1)
    assert send(link, "0020008108" + w.pin_block(PIN).hex()).sw == SW.OK
    assert send(link, "00200081").sw == SW.OK
    assert send(link, "0020FF81").sw == SW.OK
    assert send(link, "00200081").sw == 0x63C3
    assert send(link, "801A0001").sw == SW.SECURITY_STATUS_NOT_SATISFIED


@pytest.mark.parametrize("protocol", [T0, T1])
def test_case_2_with_le_is_answered_the_same_on_both_protocols(card: AnyCard, protocol: str) -> None:
    link = selected(card, protocol)
    info = send(link, bytes(w.get_card_info()).hex())
    assert info.sw == SW.OK and len(info.data) == 0x1D
    assert send(link, "8010000005").sw == 0x6C1D
    assert CommandApdu.from_bytes(bytes(w.get_card_info())).ne == 0x1D


def test_the_whole_demo_runs_for_a_jdk_t0_client(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every card the demo opens, through a T=0 link that strips Le as the JDK does: backup,
    restore, receipts, handovers, key escrow, rotation and factors all work, their case-4
    commands answered through 61xx and GET RESPONSE under the command's class."""
    from click.testing import CliRunner

    import host.transport.inprocess as inprocess
    from host.cli import cli

    links: list[JdkT0Transport] = []
    plain = inprocess.connect_card

    def jdk_t0(card: SimulatedCard, protocol: str | None = None) -> JdkT0Transport:
        links.append(JdkT0Transport(plain(card, T0)))
        return links[-1]

    monkeypatch.setattr(inprocess, "connect_card", jdk_t0)
    result = CliRunner().invoke(cli, ["demo"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "Demo complete." in result.output
    sent = [c for link in links for c in link.sent]
    after = {prev[1] for prev, c in zip(sent, sent[1:], strict=False) if c[:2] == b"\x80\xc0" and prev[1] != 0xC0}
    case_4 = {w.INS_STORE_VALUE, w.INS_MODIFY_VALUE, b.INS_SIGN_RECEIPT, b.INS_BEGIN_ENCRYPTED_BACKUP,
              b.INS_IMPORT_CERTIFICATE, t.INS_SELECT_FOR_BACKUP, k.INS_IMPORT_KEY, k.INS_IMPORT_SHARE, r.INS_REENCRYPT}
    assert case_4 <= {c[1] for c in sent}, "the demo no longer sends every case-4 command"
    # the JDK strips Le from short case-4 commands only: a handover's certificate and signatures
    # make IMPORT CERTIFICATE short or extended (over 255 bytes) from one run to the next
    short = {c[1] for c in sent if len(c) > 5 and c[4] != 0}
    assert case_4 & short <= after, sorted(hex(i) for i in case_4 & short - after)  # through 61xx, GET RESPONSE 80
