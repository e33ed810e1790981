"""Running a server app: uvicorn in a background thread (the embedded demo and the tests), and
where servers keep their files by default."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from .tls import ServerTls


def data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "evb"


class BackgroundServer:
    """uvicorn in a thread of this process: the embedded demo and the tests use it. HTTPS with
    ``tls``; plain HTTP without (tests in one process, where nobody is on the wire)."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0, tls: ServerTls | None = None) -> None:
        if tls is not None:
            tls.check()
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off",
                                ssl_certfile=tls.cert if tls else None, ssl_keyfile=tls.key if tls else None)
        self.server = uvicorn.Server(config)
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
