"""Every refused request changes nothing: for every endpoint of both servers, on both backends,
a request without a session, with an unknown token, with a body the schema refuses and with a
body over the cap; every table of the database is dumped before and after each refusal."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from host import factors
from host.keymgr_client import KeyManagerClient
from servers.keymgr import server as keymgr_server
from servers.runner import BackgroundServer
from servers.storage import Database
from servers.vault import server as vault_server
from servers.wire import MAX_BODY, api_routes

from .test_keymgr import FAST, NAME, PASSWORD

Dump = dict[str, list[tuple[object, ...]]]


def dump(db: Database) -> Dump:
    """Every row of every table, sorted: what a refusal must leave as it was."""
    with db.transaction() as tx:
        if db.dialect == "sqlite":
            names = [r[0] for r in tx.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        else:
            names = [r[0] for r in tx.execute(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")]
        return {name: sorted(tx.execute(f"SELECT * FROM {name}"), key=repr) for name in names}


def endpoints(app: FastAPI) -> list[tuple[str, str]]:
    found = [(method, route.path.replace("{card_id}", "00" * 8)) for route in api_routes(app)
             for method in sorted(route.methods or ())]
    assert len(found) > 8
    return found


def refusals(method: str, path: str) -> Iterator[tuple[str, dict[str, str], bytes | None]]:
    """(what, headers, body) of requests that must be refused."""
    yield "no token", {}, b'{"unknown": 1}'
    yield "unknown token", {"authorization": "Bearer " + "A" * 43}, b'{"unknown": 1}'
    if method in ("POST", "PUT"):
        yield "schema-invalid body", {}, b'{"card_id": 5, "name": false}'
        yield "NaN in the body", {}, b'{"card_id": NaN}'
        yield "body over the cap", {}, b" " * (MAX_BODY + 1)


def check_every_refusal(app: FastAPI, db: Database, public: set[str]) -> int:
    """Send every refusal to every endpoint but the token ones to ``public`` paths; answers how
    many were sent."""
    server = BackgroundServer(app)
    url = server.start()
    sent = 0
    try:
        for method, path in endpoints(app):
            for what, headers, body in refusals(method, path):
                if path in public and what.endswith("token"):
                    continue  # needs none: a body the schema refuses still is one of the cases
                if method == "GET" and path in public:
                    continue  # reads that need nothing are not refusals
                before = dump(db)
                answer = httpx.request(method, url + path, headers={"content-type": "application/json", **headers},
                                       content=body, timeout=60)
                assert 400 <= answer.status_code < 500, (method, path, what, answer.status_code, answer.text)
                assert dump(db) == before, (method, path, what)
                sent += 1
    finally:
        server.stop()
    return sent


def test_no_refusal_changes_the_vault(db_url: str, tmp_path: Path) -> None:
    app, db = vault_server.build(db_url, tmp_path / "vault-key.pem")
    try:
        public = {"/v1/vault", "/v1/challenges", "/v1/sessions", "/v1/replacements", "/v1/keymgr/registered-values"}
        assert check_every_refusal(app, db, public) > 30
    finally:
        db.close()


def test_no_refusal_changes_the_key_manager(db_url: str, tmp_path: Path) -> None:
    app, db = keymgr_server.build(db_url, tmp_path / "keymgr-key.pem", tmp_path / "master.key", FAST)
    server = BackgroundServer(app)
    url = server.start()
    try:  # an account with a session, so there is state a refusal could disturb
        with KeyManagerClient(url) as client:
            client.create_account(NAME, PASSWORD)
            factors.login(client, NAME, PASSWORD)
    finally:
        server.stop()
    try:
        public = {"/v1/keymgr", "/v1/accounts", "/v1/auth-challenges", "/v1/sessions"}
        assert check_every_refusal(app, db, public) > 60
    finally:
        db.close()


@pytest.mark.parametrize("server", ["vault", "keymgr"])
def test_the_dump_sees_a_change(server: str, db_url: str, tmp_path: Path) -> None:
    """The comparison can fail: an accepted request shows in the dump."""
    if server == "vault":
        app, db = vault_server.build(db_url, tmp_path / "vault-key.pem")
        path, body = "/v1/challenges", b'{"card_id": "0000000000000000"}'
    else:
        app, db = keymgr_server.build(db_url, tmp_path / "keymgr-key.pem", tmp_path / "master.key", FAST)
        path, body = "/v1/accounts", b'{"name": "taro", "password": "a long enough password"}'
    runner = BackgroundServer(app)
    url = runner.start()
    try:
        before = dump(db)
        answer = httpx.post(url + path, content=body, headers={"content-type": "application/json"}, timeout=60)
        assert answer.status_code < 300, answer.text
        assert dump(db) != before
    finally:
        runner.stop()
        db.close()
