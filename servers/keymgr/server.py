"""Assemble and run the key manager: database, its own key pair, the master key, HTTP app."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

from fastapi import FastAPI

from keyfile import trusted_issuers

from ..runner import BackgroundServer, data_dir
from ..serverkey import MasterKey, ServerKey
from ..storage import Database
from ..tls import ServerTls
from .app import create_app
from .config import MASTER_KEY_ENV, KeyManagerConfig
from .repository import MIGRATIONS, KeyManagerRepository
from .services import KeyManagerService

DEFAULT_PORT = 8471


def default_db() -> str:
    return f"sqlite:///{data_dir() / 'keymgr.db'}"


def default_key() -> Path:
    return data_dir() / "keymgr-key.pem"


def statement_key_path(key_path: Path) -> Path:
    """The statement-signing key lives beside the key manager's own key."""
    return key_path.with_name(key_path.stem + "-statements.pem")


def default_master_key() -> Path:
    """Outside the database on purpose: a stolen database alone opens no escrowed key."""
    return Path(os.environ.get(MASTER_KEY_ENV) or data_dir() / "keymgr-master.key")


def build_service(db_url: str, key_path: Path, master_path: Path,
                  config: KeyManagerConfig | None = None) -> tuple[KeyManagerService, Database]:
    """Card and ID-card issuers not in ``config`` come from EVB_ISSUER_KEY and EVB_ID_ISSUER_KEY
    (ID-card issuers default to the card issuers: one issuer in the embedded default)."""
    config = config or KeyManagerConfig()
    issuers = config.issuers or trusted_issuers()
    config = replace(config, issuers=issuers,
                     id_issuers=config.id_issuers or trusted_issuers("EVB_ID_ISSUER_KEY") or issuers)
    # the keys first: a refused key file leaves no database behind
    key, master = ServerKey.load_or_create(key_path), MasterKey.load_or_create(master_path)
    signer = ServerKey.load_or_create(statement_key_path(key_path))
    db = Database.open(db_url, MIGRATIONS)
    service = KeyManagerService(KeyManagerRepository(db), key, master, signer, config)
    return service, db


def build(db_url: str, key_path: Path, master_path: Path,
          config: KeyManagerConfig | None = None) -> tuple[FastAPI, Database]:
    service, db = build_service(db_url, key_path, master_path, config)
    return create_app(service), db


@contextmanager
def running(db_url: str, key_path: Path, master_path: Path, config: KeyManagerConfig | None = None,
            tls: ServerTls | None = None) -> Iterator[str]:
    """A key manager on a free loopback port for the length of the block (HTTPS with ``tls``);
    answers its URL."""
    app, db = build(db_url, key_path, master_path, config)
    server = BackgroundServer(app, tls=tls)
    try:
        yield server.start()
    finally:
        server.stop()
        db.close()
