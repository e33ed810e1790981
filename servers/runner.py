"""Running a server app: uvicorn in a background thread (the embedded demo and the tests), and
where servers keep their files by default."""

from __future__ import annotations

import asyncio
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .tls import ServerTls

MAX_CONNECTIONS = 1000
"""Connections and requests in progress at once; past it uvicorn answers 503 at once. Above the
200 slow clients the tests hold, below the open-file limit :func:`raise_open_files` asks for."""
KEEP_ALIVE_SECONDS = 5
"""An idle keep-alive connection is closed after this long."""
MAX_HEADER_BYTES = 16 * 1024
"""A request line and headers larger than this are refused with 431 (:func:`header_deadline`)."""
HEADER_SECONDS = 10.0
"""A request's line and headers must have arrived this long after the connection opened (or the
previous answer went out); then 408 and the connection closes (:func:`header_deadline`)."""


def _closing_answer(status: str, detail: str) -> bytes:
    """A whole refusal written straight to the socket, before any request reached the app."""
    body = json.dumps({"detail": detail}).encode()
    return (f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\nconnection: close\r\n"
            f"content-length: {len(body)}\r\n\r\n").encode() + body


LINGER_SECONDS = 1.0
"""How long a connection refused before its headers were in is read (and dropped) before it closes."""


def _drop(data: bytes) -> None:
    """What a refused connection does with the bytes still arriving."""


_TIMED_OUT = _closing_answer("408 Request Timeout", "the request line and headers did not arrive in time")
_TOO_LARGE = _closing_answer("431 Request Header Fields Too Large", "the request line and headers are too large")


class Coalescing(asyncio.Transport):
    """A connection's transport whose writes of one event-loop turn go out as one: uvicorn writes
    an answer's head and its body separately, which over TLS made two records, two ``send``
    calls and two wake-ups of the client, a third of the server's CPU for a small answer."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        super().__init__()
        self._transport, self._loop, self._pending = transport, loop, bytearray()

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not self._pending:
            self._loop.call_soon(self._flush)
        self._pending += data

    def _flush(self) -> None:
        if self._pending and not self._transport.is_closing():
            self._transport.write(bytes(self._pending))
        self._pending.clear()

    def close(self) -> None:
        self._flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self._transport.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._transport.pause_reading()

    def resume_reading(self) -> None:
        self._transport.resume_reading()

    def is_reading(self) -> bool:
        return self._transport.is_reading()

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self._transport.set_protocol(protocol)

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._transport.get_protocol()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + len(self._pending)


def header_deadline(seconds: float, max_bytes: int = MAX_HEADER_BYTES) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with a deadline and a size cap for each request's line and
    headers. uvicorn has neither: its keep-alive timer stops at the first byte, so a client
    sending its headers a byte at a time (slowloris) held a connection, and a slot under the
    connection limit, for ever; and httptools buffers a header's value whole before handing it
    over, so one endless header grew the process without limit. Its writes go out through
    :class:`Coalescing`."""

    class HeaderDeadline(HttpToolsProtocol):
        _deadline: asyncio.TimerHandle | None = None
        _awaiting_headers = True  # from the connection or the last answer until the headers are in
        _header_bytes = 0

        def _arm(self) -> None:
            self._disarm()
            self._awaiting_headers, self._header_bytes = True, 0
            self._deadline = self.loop.call_later(seconds, self._refuse, _TIMED_OUT)

        def _disarm(self) -> None:
            if self._deadline is not None:
                self._deadline.cancel()
                self._deadline = None

        def _refuse(self, answer: bytes) -> None:
            """Answer, then read and drop what the client still sends for a moment before
            closing: closing on unread bytes resets the connection, and a reset can destroy
            the answer before the client reads it."""
            self._deadline = None
            if self._awaiting_headers and not self.transport.is_closing():
                self.transport.write(answer)
                self._awaiting_headers, self.data_received = False, _drop  # type: ignore[method-assign]
                self.loop.call_later(LINGER_SECONDS, self.transport.close)

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(Coalescing(transport, self.loop))
            self._arm()

        def data_received(self, data: bytes) -> None:
            super().data_received(data)
            if self._awaiting_headers:  # these bytes did not finish the headers
                self._header_bytes += len(data)
                if self._header_bytes > max_bytes:
                    self._disarm()
                    self._refuse(_TOO_LARGE)

        def on_headers_complete(self) -> None:
            self._awaiting_headers = False  # the request runs: no deadline on its body or answer
            self._disarm()
            super().on_headers_complete()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing() and not self.pipeline and self.cycle.response_complete:
                self._arm()  # the next request's headers, on a kept-alive connection

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            super().connection_lost(exc)

    return HeaderDeadline


def raise_open_files(wanted: int = 4 * MAX_CONNECTIONS) -> None:
    """Lift the soft open-file limit towards ``wanted`` (at most the hard limit): with the
    default 1,024 a few hundred held connections ran the vault out of descriptors."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft != resource.RLIM_INFINITY and soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))


def server_config(app: FastAPI, host: str, port: int, tls: ServerTls | None, log_level: str = "info",
                  lifespan: str = "auto", header_seconds: float = HEADER_SECONDS) -> uvicorn.Config:
    """uvicorn with the limits both servers run under, in the foreground (``evb … serve``) and in
    a thread (:class:`BackgroundServer`); the request body cap is :class:`servers.wire.BodyLimit`."""
    if tls is not None:
        tls.check()
    raise_open_files()
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, lifespan=lifespan,  # type: ignore[arg-type]
                          ssl_certfile=tls.cert if tls else None, ssl_keyfile=tls.key if tls else None,
                          limit_concurrency=MAX_CONNECTIONS, timeout_keep_alive=KEEP_ALIVE_SECONDS,
                          backlog=2048,
                          http=header_deadline(header_seconds))


def data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "evb"


class BackgroundServer:
    """uvicorn in a thread of this process: the embedded demo and the tests use it. HTTPS with
    ``tls``; plain HTTP without (tests in one process, where nobody is on the wire)."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0, tls: ServerTls | None = None,
                 header_seconds: float = HEADER_SECONDS) -> None:
        self.server = uvicorn.Server(server_config(app, host, port, tls, "warning", "off", header_seconds))
        self.thread = threading.Thread(target=self.server.run, name="evb-server", daemon=True)
        self.scheme = "https" if tls else "http"

    @property
    def url(self) -> str:
        sock = self.server.servers[0].sockets[0]
        host, port = sock.getsockname()[:2]
        return f"{self.scheme}://{host}:{port}"

    def start(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("the vault did not start")
            time.sleep(0.01)
        return self.url

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)
