"""Stackable APDU processors: everything between "send this command" and the raw link.

Bottom to top: :class:`RawProcessor` encodes and talks to the transport; :class:`TraceProcessor`
logs hex with secrets redacted (PINs, key material, key shares and recovery codes); :class:`ChainingProcessor` splits long data into a command chain and
caps Ne when the card has no extended length; :class:`ReissueProcessor` answers ``6Cxx``;
:class:`GetResponseProcessor` collects ``61xx`` continuations. Application code sees one
:class:`ApduProcessor` and a complete response.
"""

from __future__ import annotations

import functools
import logging
from typing import Protocol

from apdu import CommandApdu, ResponseApdu, split_chain
from apdu.atr import capabilities
from apdu.command import SHORT_MAX_NC, SHORT_MAX_NE
from apdu.wallet import INS_CHANGE_REFERENCE_DATA, INS_GET_RESPONSE, INS_PERSONALIZE, INS_VERIFY, get_response

from .transport import Transport, TransportError

log = logging.getLogger("evb.apdu")
TRACE = 5  # below DEBUG: APDU traffic is noisy and only wanted on purpose
logging.addLevelName(TRACE, "TRACE")

MAX_GET_RESPONSE = 1024  # a card that keeps answering 61xx is broken, not generous


class ApduProcessor(Protocol):
    def send_apdu(self, command: CommandApdu) -> ResponseApdu: ...


class RawProcessor:
    def __init__(self, transport: Transport) -> None:
        self.transport = transport

    def send_apdu(self, command: CommandApdu) -> ResponseApdu:
        data, sw = self.transport.send_and_receive(command.to_bytes())
        return ResponseApdu(data, sw)


@functools.cache
def secret_commands() -> tuple[frozenset[int], frozenset[int]]:
    """The commands whose data is secret (PIN blocks, key material sealed for this card, a key
    share: a recovery code when unsealed), and those whose answer is (the recovery codes among the
    shares, the sealed key material). Made when a trace is first written: the key commands' codecs
    cost a command that traces nothing more than its work."""
    from apdu.keys import INS_EXPORT_KEY, INS_IMPORT_KEY, INS_IMPORT_SHARE, INS_SPLIT_KEY
    from apdu.rekey import INS_REPLACE_KEY

    return (frozenset({INS_VERIFY, INS_CHANGE_REFERENCE_DATA, INS_PERSONALIZE, INS_IMPORT_KEY, INS_IMPORT_SHARE,
                       INS_REPLACE_KEY}),
            frozenset({INS_SPLIT_KEY, INS_EXPORT_KEY}))


class TraceProcessor:
    """Hex of every APDU at the TRACE level, secret data replaced by AA bytes of the same length.

    It sits below GET RESPONSE, so the rest of a secret answer arrives as answers to GET RESPONSE:
    they stay redacted until another command is sent."""

    def __init__(self, inner: ApduProcessor) -> None:
        self.inner = inner
        self._secret_answer: bool | None = False  # None: not known (sent untraced), so redacted

    def send_apdu(self, command: CommandApdu) -> ResponseApdu:
        if not log.isEnabledFor(TRACE):
            if command.ins != INS_GET_RESPONSE:
                self._secret_answer = None  # a trace turned on before the rest of this answer hides it
            return self.inner.send_apdu(command)
        secret_data, secret_answer = secret_commands()
        if command.ins != INS_GET_RESPONSE:
            self._secret_answer = command.ins in secret_answer
        shown = command.to_bytes()
        if command.ins in secret_data and command.data:
            shown = shown[:5] + b"\xaa" * len(command.data)
        log.log(TRACE, "> %s", shown.hex(" ").upper())
        response = self.inner.send_apdu(command)
        if log.isEnabledFor(TRACE):
            shown = bytes(response)
            if self._secret_answer is not False and response.data:
                shown = b"\xaa" * len(response.data) + shown[-2:]
            log.log(TRACE, "< %s", shown.hex(" ").upper())
        return response


class ChainingProcessor:
    """ISO 7816-4 5.3.3: data over 255 bytes goes as a chain when extended length is not offered."""

    def __init__(self, inner: ApduProcessor, extended: bool) -> None:
        self.inner = inner
        self.extended = extended

    def send_apdu(self, command: CommandApdu) -> ResponseApdu:
        if self.extended or not command.needs_extended:
            return self.inner.send_apdu(command)
        if command.ne is not None and command.ne > SHORT_MAX_NE:
            command = CommandApdu(
                command.cla, command.ins, command.p1, command.p2, command.data, SHORT_MAX_NE
            )
        *links, last = split_chain(command, SHORT_MAX_NC)
        for link in links:
            response = self.inner.send_apdu(link)
            if response.sw != 0x9000:
                return response
        return self.inner.send_apdu(last)


class ReissueProcessor:
    """``6Cxx``: the card wants the same command again with Le = xx."""

    def __init__(self, inner: ApduProcessor) -> None:
        self.inner = inner

    def send_apdu(self, command: CommandApdu) -> ResponseApdu:
        response = self.inner.send_apdu(command)
        if response.sw1 == 0x6C:
            ne = response.sw2 or 256
            command = CommandApdu(command.cla, command.ins, command.p1, command.p2, command.data, ne)
            response = self.inner.send_apdu(command)
        return response


class GetResponseProcessor:
    """``61xx``: fetch the rest with GET RESPONSE until the card answers a final status."""

    def __init__(self, inner: ApduProcessor) -> None:
        self.inner = inner

    def send_apdu(self, command: CommandApdu) -> ResponseApdu:
        response = self.inner.send_apdu(command)
        data = bytearray(response.data)
        for _ in range(MAX_GET_RESPONSE):
            if response.sw1 != 0x61:
                return ResponseApdu(bytes(data), response.sw)
            response = self.inner.send_apdu(get_response(response.sw2 or 256))
            data += response.data
        raise TransportError("card kept answering 61xx")


def build_stack(transport: Transport) -> ApduProcessor:
    """The standard stack, sized by what the card's ATR says it supports."""
    extended, _chaining = capabilities(transport.atr) if transport.atr else (False, False)
    raw: ApduProcessor = TraceProcessor(RawProcessor(transport))
    return GetResponseProcessor(ReissueProcessor(ChainingProcessor(raw, extended)))
