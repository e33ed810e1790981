"""Hostile input to both servers on both backends: every body that once made a 500 now gets a
4xx with a one-line message that echoes nothing; bodies over the cap are refused before they are
parsed; strict types; and the server keeps answering while 200 slow clients hold connections."""

from __future__ import annotations

import json
import select
import socket
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from apdu.backup import Audience
from host import factors
from host.keymgr_client import KeyManagerClient
from host.vault_client import VaultClient
from servers.keymgr import server as keymgr_server
from servers.keymgr.policy import PolicyError, parse
from servers.runner import MAX_HEADER_BYTES, BackgroundServer
from servers.storage import Database
from servers.vault import server as vault_server
from servers.vault.models import HandoverRequest, ReplacementRequest
from servers.wire import MAX_BODY, b64

from .test_keymgr import FAST, NAME, PASSWORD, refused
from .test_vault_api import new_card


@pytest.fixture
def vault_app(db_url: str, tmp_path: Path) -> Iterator[str]:
    with vault_server.running(db_url, tmp_path / "vault-key.pem") as url:
        yield url


@pytest.fixture
def keymgr_app(db_url: str, tmp_path: Path) -> Iterator[str]:
    with keymgr_server.running(db_url, tmp_path / "keymgr-key.pem", tmp_path / "master.key", FAST) as url:
        yield url


def post(url: str, path: str, raw: bytes | str) -> httpx.Response:
    content = raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw
    return httpx.post(url + path, content=content, headers={"content-type": "application/json"}, timeout=60)


# Each once answered 500: json.loads takes NaN, Infinity and 1e400 (inf), the 422 handler could not
# serialise them (nor a lone surrogate) back, and PostgreSQL's text refuses NUL.
HOSTILE = [
    ('{"name": NaN}', "NaN is not a JSON number"),
    ('{"name": "a", "password": Infinity}', "Infinity is not a JSON number"),
    ('{"name": "a", "password": -Infinity}', "-Infinity is not a JSON number"),
    ('{"name": 1e400, "password": "x"}', "out of range"),
    ('{"name": "\\ud800", "password": "x"}', "lone surrogate"),
    ('{"name": "a\\u0000b", "password": "x"}', "NUL"),
    ('{"name": "\ud800", "password": "x"}', None),  # raw, not escaped: not UTF-8 at all
    ('{"\\ud800": 1}', "lone surrogate"),
    ("[" * 100_000, None),
]


@pytest.mark.parametrize(("raw", "words"), HOSTILE)
@pytest.mark.parametrize("path", ["/v1/accounts", "/v1/sessions", "/v1/auth-challenges"])
def test_hostile_json_to_the_key_manager_is_a_422(keymgr_app: str, path: str, raw: str, words: str | None) -> None:
    answer = post(keymgr_app, path, raw)
    assert answer.status_code in (413, 422), answer.text
    if words is not None:
        assert words in answer.json()["detail"]


@pytest.mark.parametrize(("raw", "words"), [(r.replace('"name"', '"card_id"'), w) for r, w in HOSTILE])
@pytest.mark.parametrize("path", ["/v1/challenges", "/v1/sessions", "/v1/replacements"])
def test_hostile_json_to_the_vault_is_a_422(vault_app: str, path: str, raw: str, words: str | None) -> None:
    answer = post(vault_app, path, raw)
    assert answer.status_code in (413, 422), answer.text
    if words is not None:
        assert words in answer.json()["detail"]


@pytest.mark.parametrize("issued_at", [-1, 2**53, 2**64, 2**70])
@pytest.mark.parametrize("path", ["/v1/replacements", "/v1/keymgr/registered-values"])
def test_a_time_outside_64_bits_is_a_422(vault_app: str, path: str, issued_at: int) -> None:
    body = {"old_card_id": "00" * 8, "old_public_key": "AAAA", "certificate": "AAAA", "issued_at": issued_at,
            "signature": "AAAA"}
    answer = post(vault_app, path, json.dumps(body))
    assert answer.status_code == 422 and "issued_at" in answer.json()["detail"], answer.text


def test_a_422_never_echoes_the_input(keymgr_app: str) -> None:
    secret = "my-secret-password-" * 100  # over the 1,024 limit
    answer = post(keymgr_app, "/v1/accounts", json.dumps({"name": "x" * 5000, "password": secret}))
    assert answer.status_code == 422
    assert "my-secret-password" not in answer.text and "xxxxxxxx" not in answer.text
    assert "body.password" in answer.json()["detail"] and len(answer.text) < 1000


def test_a_body_over_the_cap_is_a_413_before_it_is_read(keymgr_app: str) -> None:
    huge = b'{"name": "' + b"a" * (10 * 1024 * 1024) + b'", "password": "x"}'
    answer = post(keymgr_app, "/v1/accounts", huge)
    assert answer.status_code == 413 and str(MAX_BODY) in answer.json()["detail"]
    assert len(answer.text) < 200


def test_a_chunked_body_over_the_cap_is_a_413(vault_app: str) -> None:
    def chunks() -> Iterator[bytes]:  # no Content-Length: the cap counts the bytes as they come
        for _ in range(100):
            yield b" " * 4096

    answer = httpx.post(vault_app + "/v1/challenges", content=chunks(), headers={"content-type": "application/json"})
    assert answer.status_code == 413 and "larger than" in answer.json()["detail"]


def test_a_405_names_every_method_of_the_path(vault_app: str) -> None:
    """The Allow header lists the methods of every route on the path, whichever router holds them
    (FastAPI keeps an included router as one entry of the app's routes)."""
    assert httpx.put(vault_app + "/v1/registrations").headers["allow"] == "GET, POST"
    assert httpx.get(vault_app + "/v1/sessions").headers["allow"] == "POST"


def test_a_405_of_the_key_manager_names_every_method_of_the_path(keymgr_app: str) -> None:
    assert httpx.put(keymgr_app + "/v1/rotations/" + "00" * 8).headers["allow"] == "GET"
    assert httpx.get(keymgr_app + "/v1/sessions").headers["allow"] == "POST"


def test_a_body_within_the_cap_still_works(vault_app: str) -> None:
    padded = json.dumps({"card_id": "00" * 8}) + " " * (MAX_BODY - 100)
    assert post(vault_app, "/v1/challenges", padded).status_code == 200


@pytest.mark.parametrize("body", ['{"imported": false}', '{"imported": 132557.0}', '{"imported": "5"}'])
def test_ints_are_strict(body: str) -> None:
    with pytest.raises(ValueError, match="imported"):
        HandoverRequest.model_validate_json(body)
    assert HandoverRequest.model_validate_json('{"imported": 132557}').imported == 132557


def test_a_float_time_is_refused(vault_app: str) -> None:
    body = {"old_card_id": "00" * 8, "old_public_key": "AAAA", "issued_at": 132557.0, "signature": "AAAA"}
    answer = post(vault_app, "/v1/replacements", json.dumps(body))
    assert answer.status_code == 422 and "issued_at" in answer.json()["detail"]
    with pytest.raises(ValueError, match="card_id"):
        ReplacementRequest.model_validate_json(json.dumps({**body, "issued_at": 1, "old_card_id": "zz" * 8}))


def test_a_deeply_nested_policy_is_refused_not_a_recursion_error(db_url: str, tmp_path: Path) -> None:
    with pytest.raises(PolicyError, match="deeper"):
        parse("(" * 200 + "password" + ")" * 200)
    assert parse("(((password)))") == parse("password")
    with keymgr_server.running(db_url, tmp_path / "k.pem", tmp_path / "m.key", FAST) as url, \
            KeyManagerClient(url) as client:
        client.create_account(NAME, PASSWORD)
        factors.login(client, NAME, PASSWORD)
        refused(lambda: client.set_policy("(" * 200), 400, "deeper")
        assert client.set_policy("(password)") == "password"


def test_the_vault_answers_while_200_slow_clients_hold_connections(tmp_path: Path) -> None:
    app, db = vault_server.build(f"sqlite:///{tmp_path / 'v.db'}", tmp_path / "vault-key.pem")
    server = BackgroundServer(app)
    url = server.start()
    host, port = url.removeprefix("http://").split(":")
    slow: list[socket.socket] = []
    try:
        for _ in range(200):  # each sends half a request and then nothing
            sock = socket.create_connection((host, int(port)), timeout=10)
            sock.sendall(b"POST /v1/challenges HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n")
            slow.append(sock)
        answer = httpx.get(f"{url}/v1/vault", timeout=30)
        assert answer.status_code == 200 and answer.json()["public_key"]
    finally:
        for sock in slow:
            sock.close()
        server.stop()
        db.close()


def header_without_end(server: BackgroundServer, piece: bytes, most: int, pause: float) -> tuple[int, bytes]:
    """Open a request whose last header never ends and send ``piece`` after ``piece`` of it
    (``pause`` apart, at most ``most`` bytes) until the server answers or closes: the bytes sent
    and everything it answered. The bound is a guard against a hang, not a measurement."""
    host, port = server.url.removeprefix("http://").split(":")
    sock = socket.create_connection((host, int(port)), timeout=30)
    answer, sent = b"", 0
    try:
        sock.sendall(b"GET /v1/vault HTTP/1.1\r\nHost: x\r\nX-Endless: ")
        while sent < most:
            readable, _, _ = select.select([sock], [], [], pause)
            if readable:
                break
            try:
                sock.sendall(piece)
            except OSError:  # closed under us: read what it said
                break
            sent += len(piece)
        while chunk := sock.recv(4096):
            answer += chunk
    finally:
        sock.close()
    return sent, answer


def test_headers_sent_a_byte_at_a_time_are_cut_off_with_a_408(tmp_path: Path) -> None:
    """Slowloris: uvicorn's keep-alive timer stops at the first byte, so a client dribbling its
    headers held the connection for ever. With the header deadline (1 s here) the server answers
    408 and closes, long before the headers reach the size limit."""
    app, db = vault_server.build(f"sqlite:///{tmp_path / 'v.db'}", tmp_path / "vault-key.pem")
    server = BackgroundServer(app, header_seconds=1.0)
    server.start()
    try:
        sent, answer = header_without_end(server, b"a", 200, 0.1)
    finally:
        server.stop()
        db.close()
    assert answer.startswith(b"HTTP/1.1 408 "), (sent, answer)
    assert b"did not arrive in time" in answer and sent < MAX_HEADER_BYTES


def test_an_endless_header_is_cut_off_with_a_431(tmp_path: Path) -> None:
    """httptools buffers a header's value whole before handing it to uvicorn, so one header that
    never ends grew the server for as long as the client kept sending (up to the 408). Past the
    cap the server answers 431 and closes; headers just under it still pass."""
    app, db = vault_server.build(f"sqlite:///{tmp_path / 'v.db'}", tmp_path / "vault-key.pem")
    server = BackgroundServer(app)
    url = server.start()
    try:
        assert httpx.get(f"{url}/v1/vault", headers={"X-Big": "a" * (MAX_HEADER_BYTES // 2)}).status_code == 200
        sent, answer = header_without_end(server, b"a" * 1024, 64 * MAX_HEADER_BYTES, 0)
    finally:
        server.stop()
        db.close()
    assert answer.startswith(b"HTTP/1.1 431 "), (sent, answer)
    assert b"too large" in answer


def test_no_request_reaches_the_database_when_refused_for_size(tmp_path: Path) -> None:
    """The cap sits before the app: a refused body leaves no row (the challenge table stays empty)."""
    app, db = vault_server.build(f"sqlite:///{tmp_path / 'v.db'}", tmp_path / "vault-key.pem")
    server = BackgroundServer(app)
    url = server.start()
    try:
        body = json.dumps({"card_id": "00" * 8}) + " " * MAX_BODY
        assert post(url, "/v1/challenges", body).status_code == 413
        assert count_rows(db, "challenges") == 0
        assert post(url, "/v1/challenges", json.dumps({"card_id": "00" * 8})).status_code == 200
        assert count_rows(db, "challenges") == 1
    finally:
        server.stop()
        db.close()


def count_rows(db: Database, table: str) -> int:
    with db.transaction() as tx:
        return int(tx.execute(f"SELECT COUNT(*) FROM {table}")[0][0])


def test_concurrent_first_sessions_of_a_new_card_all_open(vault_app: str) -> None:
    """Eight first sessions of one new card at once: each gets a session (on PostgreSQL, all but
    one once died on the cards table's primary key with a 500)."""
    s = new_card()
    identity, attestation = s.identity(), s.attestation()
    with VaultClient(vault_app) as vault:
        s.put_vault_key(vault.public_key())
        signed = []
        for _ in range(8):
            challenge = vault.challenge(identity.card_id)
            signed.append((challenge, s.authenticate(Audience.VAULT, challenge)))
    start = threading.Barrier(len(signed))

    def first_session(challenge: bytes, signature: bytes) -> int:
        start.wait()
        body = {"card_id": identity.card_id.hex(), "public_key": b64(identity.public_key),
                "attestation": b64(bytes(attestation)), "challenge": b64(challenge), "signature": b64(signature)}
        return httpx.post(f"{vault_app}/v1/sessions", json=body, timeout=60).status_code

    with ThreadPoolExecutor(len(signed)) as pool:
        statuses = list(pool.map(lambda pair: first_session(*pair), signed))
    assert statuses == [200] * len(signed)
