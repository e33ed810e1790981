"""Assemble and run the vault: database, signing key, configuration, HTTP app."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from apdu.certificate import ALL_DIGEST_FIELDS, DigestField

from ..storage import Database
from .app import create_app
from .repository import MIGRATIONS, VaultRepository
from .service import VaultConfig, VaultService, load_or_create_key

DEFAULT_PORT = 8470


def data_dir() -> Path:
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "evb"


def default_db() -> str:
    return f"sqlite:///{data_dir() / 'vault.db'}"


def default_key() -> Path:
    return data_dir() / "vault-key.pem"


def build(
    db_url: str,
    key_path: Path,
    digest_fields: tuple[DigestField, ...] = ALL_DIGEST_FIELDS,
    counter_modulus: int = 2**32,
) -> tuple[FastAPI, Database]:
    db = Database.open(db_url, MIGRATIONS)
    service = VaultService(VaultRepository(db, counter_modulus), load_or_create_key(key_path),
                           VaultConfig(digest_fields=digest_fields))
    return create_app(service), db


class BackgroundServer:
    """uvicorn in a thread of this process: the embedded demo and the tests use it."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int = 0) -> None:
        config = uvicorn.Config(app, host=host, port=port, log_level="warning", lifespan="off")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="vault", daemon=True)

    @property
    def url(self) -> str:
        sock = self.server.servers[0].sockets[0]
        host, port = sock.getsockname()[:2]
        return f"http://{host}:{port}"

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


@contextmanager
def running(db_url: str, key_path: Path, **options: object) -> Iterator[str]:
    """A vault on a free loopback port for the length of the block; answers its URL."""
    app, db = build(db_url, key_path, **options)  # type: ignore[arg-type]
    server = BackgroundServer(app)
    try:
        yield server.start()
    finally:
        server.stop()
        db.close()
