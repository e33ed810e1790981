"""Assemble and run the vault: database, signing key, configuration, HTTP app."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from fastapi import FastAPI

from apdu.certificate import ALL_DIGEST_FIELDS, DigestField
from keyfile import trusted_issuers

from ..runner import BackgroundServer, data_dir
from ..serverkey import ServerKey
from ..storage import Database
from ..tls import ServerTls
from .app import create_app
from .config import VaultConfig
from .repository import MIGRATIONS, VaultRepository
from .service import VaultService

DEFAULT_PORT = 8470


def default_db() -> str:
    return f"sqlite:///{data_dir() / 'vault.db'}"


def default_key() -> Path:
    return data_dir() / "vault-key.pem"


def build(
    db_url: str,
    key_path: Path,
    digest_fields: tuple[DigestField, ...] = ALL_DIGEST_FIELDS,
    counter_modulus: int = 2**32,
    keymgr_key: bytes | None = None,
    issuers: tuple[bytes, ...] = (),
) -> tuple[FastAPI, Database]:
    """``keymgr_key``: the key manager's statement key, pinned; without it no card is replaced.
    ``issuers``: the card issuers' keys (default: EVB_ISSUER_KEY); without one no card is let in."""
    config = VaultConfig(digest_fields=digest_fields, keymgr_key=keymgr_key, issuers=issuers or trusted_issuers(),
                         counter_modulus=counter_modulus)
    key = ServerKey.load_or_create(key_path)  # first: a refused key file leaves no database behind
    db = Database.open(db_url, MIGRATIONS)
    service = VaultService(VaultRepository(db, config.counter_modulus), key, config)
    return create_app(service), db


@contextmanager
def running(db_url: str, key_path: Path, tls: ServerTls | None = None, **options: object) -> Iterator[str]:
    """A vault on a free loopback port for the length of the block (HTTPS with ``tls``);
    answers its URL."""
    app, db = build(db_url, key_path, **options)  # type: ignore[arg-type]
    server = BackgroundServer(app, tls=tls)
    try:
        yield server.start()
    finally:
        server.stop()
        db.close()
