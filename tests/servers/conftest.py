"""A database URL per backend: SQLite in a temporary file, PostgreSQL from EVB_TEST_POSTGRES
(default: the role and database ``scripts/postgres`` creates). PostgreSQL tests fail, never skip,
when the server is unreachable: CI must run them."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

POSTGRES = os.environ.get("EVB_TEST_POSTGRES", "postgresql://evb:evb@127.0.0.1:5432/evb_test")


def fresh_postgres() -> str:
    import psycopg

    try:
        with psycopg.connect(POSTGRES, connect_timeout=5, autocommit=True) as conn:
            conn.execute("DROP SCHEMA public CASCADE")
            conn.execute("CREATE SCHEMA public")
    except psycopg.OperationalError as exc:
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES.split('@')[-1]}: run 'bash scripts/postgres' ({exc})")
    return POSTGRES


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield fresh_postgres() if request.param == "postgresql" else f"sqlite:///{tmp_path / 'test.db'}"
