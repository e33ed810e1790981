"""Shared fixtures and the size knob.

``EVB_TEST_SIZE`` scales the heavy suites: ``ci`` (default) runs sizes that still mean
something in a few minutes; ``full`` runs the sizes reported in closing notes.
"""

from __future__ import annotations

import atexit
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

from card import SimulatedCard
from card.javacard import AppletBuild
from host.issuer import Issuer
from host.session import WalletSession
from host.transport import Transport
from host.transport.inprocess import connect_card
from servers.tls import Issued, init_folder

from . import readers
from .readers import Reader

# the reader fixtures: in-process and PC/SC
pcscd, pcsc_bridge, reader = readers.pcscd, readers.pcsc_bridge, readers.reader

SIZE = os.environ.get("EVB_TEST_SIZE", "ci")
FULL = SIZE == "full"

settings.register_profile("ci", max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("full", max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("full" if FULL else "ci")

PIN = "1234"
PUK = "87654321"

# One card issuer for the whole run: cards the tests make are attested by it, and the servers the
# tests start (in-process or as processes, which inherit the environment) trust it and no other.
_issuer_dir = Path(tempfile.mkdtemp(prefix="evb-test-issuer-"))
atexit.register(shutil.rmtree, _issuer_dir, True)
ISSUER = Issuer.load_or_create(_issuer_dir / "issuer-key.pem")
os.environ["EVB_ISSUER_KEY_FILE"] = str(_issuer_dir / "issuer-key.pem")
os.environ["EVB_ISSUER_KEY"] = ISSUER.public_key.hex()
os.environ.pop("EVB_ID_ISSUER_KEY", None)


def issue(card: SimulatedCard, pin: str = PIN) -> SimulatedCard:
    """Attest and personalize a freshly manufactured card, as its issuer would; leaves it off."""
    ISSUER.personalize(WalletSession(connect_card(card)), pin, PUK)
    card.power_off()
    return card


@pytest.fixture(scope="session")
def applet_build(tmp_path_factory: pytest.TempPathFactory) -> AppletBuild:
    """The applet's CAP and harness, built once per run from JC_HOME (tests/javacard and the
    applet half of tests/card); the converter's refusals raise here."""
    from card.javacard import NO_KIT, build

    if not os.environ.get("JC_HOME"):  # the test modules skip first, in one line each
        pytest.skip(NO_KIT)
    out: Path = tmp_path_factory.mktemp("javacard") / "build"
    return build(out, force=True)


@pytest.fixture
def cli_tls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Issued:
    """A CA and a loopback server certificate for the servers a CLI test starts; the CLI trusts
    the CA through EVB_CA, as a user would set it."""
    issued = init_folder(tmp_path / "tls")
    monkeypatch.setenv("EVB_CA", str(issued.ca_cert))
    return issued


@pytest.fixture
def card() -> SimulatedCard:
    """A personalized card in the reader, powered, with nothing on it."""
    return issue(SimulatedCard.manufacture())


@pytest.fixture
def transport(reader: Reader, card: SimulatedCard) -> Transport:
    """``card`` inserted in the reader under test (in-process, then PC/SC)."""
    return reader.insert(card)


@pytest.fixture
def session(transport: Transport) -> WalletSession:
    """A session on ``card`` with the PIN verified."""
    s = WalletSession(transport)
    s.verify_pin(PIN)
    return s


@pytest.fixture(autouse=True)
def _close_databases_left_open(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A PostgreSQL pool left open is closed by the garbage collector, some tests later and
    possibly from one of the pool's own threads, which fails whichever test is running then:
    close every database a test opened when it ends, in its own teardown."""
    from servers import storage

    opened: list[storage.Database] = []
    real = storage.Database.open.__func__  # type: ignore[attr-defined]

    def tracked(cls: type[storage.Database], url: str, migrations: object) -> storage.Database:
        db: storage.Database = real(cls, url, migrations)
        opened.append(db)
        return db

    monkeypatch.setattr(storage.Database, "open", classmethod(tracked))
    yield
    for db in opened:
        if isinstance(db, storage._Postgres):  # SQLite runs no threads of its own
            db.close()
