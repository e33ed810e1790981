"""The card suite over both implementations of docs/APDU.md: every test that takes ``card``,
``cards`` or ``reader`` runs on the Python card (in-process, and through pcscd + vpcd where it
takes ``reader``) and on the applet (in-process, its JVMs kept for the run: tests/card/cards.py).

A test of the Python card's internals is marked ``python_only("why")`` and so is parametrized
over the Python card alone (nothing reported as skipped). Without JC_HOME the applet's params
skip in one line: how to get the kit.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from card.javacard import AppletBuild

from ..readers import InProcessReader, PcscReader, Reader
from .cards import APPLET, PYTHON, AnyCard, AppletPool, Cards

PCSC = "python-pcsc"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "rig" not in metafunc.fixturenames:
        return
    rigs = [PYTHON, PCSC] if "reader" in metafunc.fixturenames else [PYTHON]
    if metafunc.definition.get_closest_marker("python_only") is None:
        rigs.append(APPLET)
    metafunc.parametrize("rig", rigs, indirect=True)


@pytest.fixture
def rig(request: pytest.FixtureRequest) -> str:
    """Which card and reader: the Python card in-process or through pcscd, or the applet."""
    return str(request.param)


@pytest.fixture(scope="session")
def _prepared(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[tuple[str, str], object], Path]:
    return {}, tmp_path_factory.mktemp("card-heaps")


@pytest.fixture(scope="session")
def applet_pool(applet_build: AppletBuild) -> Iterator[AppletPool]:
    """The applet's JVMs for the whole run: a JVM starts in seconds, ``NEW`` gives a new card at once."""
    pool = AppletPool(applet_build)
    yield pool
    pool.close()


@pytest.fixture
def cards(rig: str, request: pytest.FixtureRequest,
          _prepared: tuple[dict[tuple[str, str], object], Path]) -> Cards:
    """New cards of the implementation under test."""
    saved, heaps = _prepared
    if rig != APPLET:
        return Cards(PYTHON, None, saved, heaps)
    pool: AppletPool = request.getfixturevalue("applet_pool")
    pool.begin_test()
    return Cards(APPLET, pool, saved, heaps)


@pytest.fixture
def card(cards: Cards) -> AnyCard:
    """A personalized card, powered off, with nothing on it (PIN 1234)."""
    return cards.new()


@pytest.fixture
def reader(rig: str, request: pytest.FixtureRequest) -> Iterator[Reader]:
    """In-process, or (the Python card) pcscd's virtual reader."""
    r: Reader = PcscReader(request.getfixturevalue("pcsc_bridge")) if rig == PCSC else InProcessReader()
    yield r
    r.close()
