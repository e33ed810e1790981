"""``evb bench pcsc`` runs end to end: both slots, both cards, medians and a ratio.

It measures, it asserts no timing (the machine is shared): figures go in closing notes."""

from __future__ import annotations

import json
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
