"""schemathesis against both servers on both backends, in process through the ASGI app, with
every check: no 5xx, every status and body as documented, schema-invalid input refused. Positive
(schema-valid) data may still be refused with 400 (a key that is no P-256 point, a record that
does not parse) or 401/403/404/409/423 (no session, a signature that does not verify): the schema
cannot express those. EVB_TEST_SIZE=full multiplies the example budget by ten."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig

from servers.keymgr import server as keymgr_server
from servers.vault import server as vault_server

from ..conftest import FULL
from .test_keymgr import FAST

EXAMPLES = 200 if FULL else 20
CONFIG = SchemathesisConfig.from_str("""
[checks]
positive_data_acceptance.expected-statuses = ["2xx", "400", "401", "403", "404", "409", "423"]
""")


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


@vault.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_vault_answers_as_documented(case: schemathesis.Case) -> None:
    case.call_and_validate()


@keymgr.parametrize()
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck))
def test_the_key_manager_answers_as_documented(case: schemathesis.Case) -> None:
    case.call_and_validate()
