"""The vault and the key manager as real processes (``evb … serve``), to SIGKILL mid-flow."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx

from servers.tls import Issued


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class ServerProcess:
    """One server on a fixed port and database across restarts; ``kill`` is SIGKILL. HTTPS with
    ``tls`` (the server's certificate and the CA the health check trusts), else plain HTTP."""

    health = "/"

    def __init__(self, args: list[str], tls: Issued | None = None) -> None:
        self.port = free_port()
        self.url = f"{'https' if tls else 'http'}://127.0.0.1:{self.port}"
        serving = ["--tls-cert", str(tls.server.cert), "--tls-key", str(tls.server.key)] if tls else ["--insecure-http"]
        self.args = [sys.executable, "-m", "host.cli", *args, "--port", str(self.port), *serving]
        self.verify: ssl.SSLContext | bool = ssl.create_default_context(cafile=tls.ca_cert) if tls else True
        self.proc: subprocess.Popen[bytes] | None = None
        self.lock = threading.Lock()

    def start(self) -> None:
        self.proc = subprocess.Popen(self.args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 60  # a loaded machine (2 cores, many sessions) took over 20 s
        while True:
            try:
                httpx.get(f"{self.url}{self.health}", timeout=1, verify=self.verify).raise_for_status()
                return
            except httpx.HTTPError:
                assert self.proc.poll() is None, f"{self.args[3]} exited"
                assert time.monotonic() < deadline, f"{self.args[3]} did not start"
                time.sleep(0.05)

    def kill(self) -> None:
        with self.lock:  # a killer thread and the test may both get here
            if self.proc and self.proc.poll() is None:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


class VaultProcess(ServerProcess):
    health = "/v1/vault"

    def __init__(self, tmp: Path, keymgr_key: bytes | None = None, db: str | None = None,
                 tls: Issued | None = None) -> None:
        self.db = db or f"sqlite:///{tmp / 'vault.db'}"
        trust = ["--keymgr-key", keymgr_key.hex()] if keymgr_key else []
        super().__init__(["vault", "serve", "--db", self.db, "--key", str(tmp / "vault-key.pem"), *trust], tls)


class KeyManagerProcess(ServerProcess):
    health = "/v1/keymgr"

    def __init__(self, tmp: Path, vault_url: str | None = None, db: str | None = None,
                 tls: Issued | None = None) -> None:
        self.db = db or f"sqlite:///{tmp / 'keymgr.db'}"
        vault = ["--vault", vault_url] if vault_url else []
        trust = ["--ca", str(tls.ca_cert)] if tls else []
        super().__init__(["keymgr", "serve", "--db", self.db, "--key", str(tmp / "keymgr-key.pem"),
                          "--master-key", str(tmp / "keymgr-master.key"), *vault, *trust], tls)
