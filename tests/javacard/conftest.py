"""Fixtures for the applet: one JVM per test module (the build, once per run, is the root
conftest's ``applet_build``: tests/card runs the applet too)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from .applet import AppletTransport, Build


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
