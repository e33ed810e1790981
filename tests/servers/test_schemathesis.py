"""schemathesis against both servers on both backends, in process through the ASGI app, with
every check: no 5xx, every status and body as documented, schema-invalid input refused. Positive
(schema-valid) data may still be refused with 400 (a key that is no P-256 point, a record that
does not parse) or 401/403/404/409/423 (no session, a signature that does not verify): the schema
cannot express those. EVB_TEST_SIZE=full multiplies the example budget by ten.

Each server is fuzzed twice: anonymously (every operation), and with a real session (a card's at
the vault, an account's at the key manager) over the operations that need one, so the fuzzer
gets past the bearer check into their bodies. The session is a fresh one per case: a fuzzed
logout must not leave later cases anonymous."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from apdu.backup import Audience
from servers.keymgr import server as keymgr_server
from servers.keymgr.services import KeyManagerService
from servers.vault import server as vault_server
from servers.vault.service import VaultService

from ..conftest import FULL
from .test_keymgr import FAST, NAME, PASSWORD
from .test_vault_api import new_card

EXAMPLES = 200 if FULL else 20
AUTHENTICATED_EXAMPLES = 100 if FULL else 10
CONFIG = SchemathesisConfig.from_str("""
[checks]
positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "423"]
""")
AUTH_CONFIG = SchemathesisConfig.from_str(f"""
[checks]
positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "423"]
[phases.coverage]
enabled = {"true" if FULL else "false"}
""")
"""The runs in session: in CI the fuzzing phase only (about 320 cases a backend); the full size
adds the coverage phase's edge cases of every field (about 2,000) and ten times the examples."""


@pytest.fixture
def vault_api(db_url: str, tmp_path: Path) -> Iterator[object]:
    app, db = vault_server.build(db_url, tmp_path / "vault-key.pem")
    yield schemathesis.openapi.from_asgi("/openapi.json", app, config=CONFIG)
    db.close()


@pytest.fixture
def keymgr_api(db_url: str, tmp_path: Path) -> Iterator[object]:
    app, db = keymgr_server.build(db_url, tmp_path / "keymgr-key.pem", tmp_path / "master.key", FAST)
    yield schemathesis.openapi.from_asgi("/openapi.json", app, config=CONFIG)
    db.close()


CASES: Counter[str] = Counter()
"""Cases sent per test and backend: printed at the end (``pytest -s``) for the closing figures."""


@pytest.fixture(autouse=True, scope="module")
def count_cases() -> Iterator[None]:
    yield
    for name, count in sorted(CASES.items()):
        print(f"schemathesis: {count} cases in {name}")


def call(case: schemathesis.Case, request: pytest.FixtureRequest, token: str | None = None) -> Any:
    """The case sent and every check run on its answer (with ``token`` as the session)."""
    CASES[request.node.name] += 1
    return case.call_and_validate(headers={"Authorization": f"Bearer {token}"} if token else None)


def secured(ctx: Any) -> bool:
    """Operations that take a session (a bearer token in the schema's security)."""
    return bool(ctx.operation.definition.raw.get("security"))


@pytest.fixture
def vault_session(db_url: str, tmp_path: Path) -> Iterator[tuple[object, Callable[[], str]]]:
    """The vault's secured operations, and a maker of sessions of a real card (its first session
    opened as a card opens one: a signature over the vault's challenge, with its attestation)."""
    app, db = vault_server.build(db_url, tmp_path / "vault-key.pem")
    service: VaultService = app.state.service
    card = new_card("ticket")
    identity = card.identity()
    card.put_vault_key(service.public_key)
    challenge, _ = service.challenge(identity.card_id)
    service.open_session(identity.card_id, identity.public_key, bytes(card.attestation()), challenge,
                         card.authenticate(Audience.VAULT, challenge))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=AUTH_CONFIG).include(func=secured)
    yield schema, lambda: service.sessions.open(identity.card_id)[0]
    db.close()


@pytest.fixture
def keymgr_session(db_url: str, tmp_path: Path) -> Iterator[tuple[object, Callable[[], str]]]:
    """The key manager's secured operations, and a maker of sessions of a real account."""
    app, db = keymgr_server.build(db_url, tmp_path / "keymgr-key.pem", tmp_path / "master.key", FAST)
    service: KeyManagerService = app.state.service
    service.accounts.create_account(NAME, PASSWORD)
    service.accounts.login(NAME, PASSWORD)
    account = service.repo.account(NAME)
    assert account is not None
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=AUTH_CONFIG).include(func=secured)
    yield schema, lambda: service.accounts.sessions.open(account)[0]
    db.close()


@pytest.fixture
def vault_authed_api(vault_session: tuple[object, Callable[[], str]]) -> object:
    return vault_session[0]


@pytest.fixture
def keymgr_authed_api(keymgr_session: tuple[object, Callable[[], str]]) -> object:
    return keymgr_session[0]


@schemathesis.hook
def filter_body(ctx: object, body: object) -> bool:
    """No floats: JSON Schema counts 79315.0 an integer, the servers (strictly) do not; both APIs
    have no number that is not an integer (tests/servers/test_hostile_input.py checks the refusal)."""
    return not _has_float(body)


def _has_float(item: object) -> bool:
    if isinstance(item, float):
        return True
    if isinstance(item, dict):
        return any(_has_float(v) for v in item.values())
    return isinstance(item, list) and any(_has_float(v) for v in item)


vault = schemathesis.pytest.from_fixture("vault_api")
keymgr = schemathesis.pytest.from_fixture("keymgr_api")
vault_authed = schemathesis.pytest.from_fixture("vault_authed_api")
keymgr_authed = schemathesis.pytest.from_fixture("keymgr_authed_api")


@vault.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_vault_answers_as_documented(case: schemathesis.Case, request: pytest.FixtureRequest) -> None:
    call(case, request)


@keymgr.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_key_manager_answers_as_documented(case: schemathesis.Case, request: pytest.FixtureRequest) -> None:
    call(case, request)


def in_session(response: Any) -> None:
    """The case got past the bearer check: the run fuzzes what a session reaches."""
    assert not (response.status_code == 401 and "session is unknown" in response.text), response.text


@vault_authed.parametrize()
@settings(max_examples=AUTHENTICATED_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_vault_answers_a_card_in_session_as_documented(
        case: schemathesis.Case, vault_session: tuple[object, Callable[[], str]],
        request: pytest.FixtureRequest) -> None:
    in_session(call(case, request, vault_session[1]()))


@keymgr_authed.parametrize()
@settings(max_examples=AUTHENTICATED_EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_key_manager_answers_an_owner_in_session_as_documented(
        case: schemathesis.Case, keymgr_session: tuple[object, Callable[[], str]],
        request: pytest.FixtureRequest) -> None:
    in_session(call(case, request, keymgr_session[1]()))
