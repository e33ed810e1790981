"""Fixtures for the applet: built once per run from JC_HOME, one JVM per test module."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .applet import NO_KIT, AppletTransport, Build, build


@pytest.fixture(scope="session")
def applet_build(tmp_path_factory: pytest.TempPathFactory) -> Build:
    if not os.environ.get("JC_HOME"):  # the test modules skip first, in one line each
        pytest.skip(NO_KIT)
    out: Path = tmp_path_factory.mktemp("javacard") / "build"
    return build(out, force=True)


@pytest.fixture(scope="module")
def applet_jvm(applet_build: Build) -> Iterator[AppletTransport]:
    transport = AppletTransport(applet_build)
    yield transport
    transport.close()


@pytest.fixture
def applet(applet_jvm: AppletTransport) -> AppletTransport:
    """A new card holding the applet, freshly installed, powered, nothing selected."""
    applet_jvm.new_card()
    return applet_jvm
