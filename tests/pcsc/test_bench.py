"""``evb bench pcsc`` runs end to end: both slots, both cards, medians and a ratio.

It measures, it asserts no timing (the machine is shared): figures go in closing notes."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator

import pytest
from click.testing import CliRunner

from card.bridge.vpcd import VpcdBridge, wait_connected
from host.cli import cli


@pytest.fixture
def both_slots_free(pcsc_bridge: VpcdBridge) -> Iterator[None]:
    """The benchmark brings its own cards to slots 0 and 1: lend it the test bridge's slot."""
    pcsc_bridge.stop()
    yield
    pcsc_bridge.start()
    wait_connected(pcsc_bridge)


def test_bench_pcsc_reports_both_cards(both_slots_free: None) -> None:
    result = CliRunner().invoke(cli, ["bench", "pcsc", "--rounds", "20", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert report["rounds"] == 20
    names = [row["name"] for row in report["rows"]]
    assert names == ["SELECT wallet", "GET CARD INFO", "READ VALUE", "LIST VALUES", "VERIFY (status)"]
    for row in report["rows"]:
        assert row["ours_ms"] > 0 and row["echo_ms"] > 0
    if os.environ.get("JC_HOME"):  # the applet took the Python card's place in slot 0, same values
        assert all(row["applet_ms"] > 0 for row in report["rows"])
        assert report["applet_inprocess_apdus_per_s"] > 0 and report["python_inprocess_apdus_per_s"] > 0


def test_bench_pcsc_without_the_applet(both_slots_free: None) -> None:
    result = CliRunner().invoke(cli, ["bench", "pcsc", "--rounds", "10", "--json", "--no-javacard"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert all(row["applet_ms"] is None for row in report["rows"]) and report["applet_inprocess_apdus_per_s"] is None
