"""scripts/cluster's own failure reports, without a cluster: CI shows only the message of a start
that failed, so it must name the step and quote the logs of the processes involved."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Any

import pytest

from .conftest import free_base, recipe


@pytest.fixture
def bare(tmp_path: Path) -> Any:
    """A Cluster object over an empty folder: its logs and pids folders, nothing started."""
    module = recipe()
    built = module.Cluster(module.Layout(tmp_path / "c", free_base()))
    for folder in (built.root, built.pids, built.logs):
        folder.mkdir(parents=True)
    return built


def test_a_process_that_exits_fails_the_wait_at_once_with_its_log(bare: Any) -> None:
    """Not at the deadline (minutes on a loaded machine), and with what the process said."""
    bare.spawn("node1", ["sh", "-c", "echo 'FATAL:  could not bind to 127.0.0.1'; exit 3"])
    with pytest.raises(recipe().ClusterError) as failed:
        bare._wait(lambda: False, 600, "node1 to be primary", "node1")
    message = str(failed.value)
    assert "node1 exited while waiting for node1 to be primary" in message
    assert "FATAL:  could not bind to 127.0.0.1" in message


def test_a_failed_step_is_named_with_its_logs_tail(bare: Any) -> None:
    (bare.logs / "vault0.log").write_text("".join(f"line {i}\n" for i in range(100)))
    with pytest.raises(recipe().ClusterError) as failed, bare.step("vault replica 0", "vault0"):
        raise OSError("no such file")
    message = str(failed.value)
    assert message.startswith("step 'vault replica 0' failed after ") and "OSError: no such file" in message
    assert "line 99" in message and "line 50" not in message  # the tail, not the whole log


def test_taken_ports_stop_the_start_before_anything_runs(tmp_path: Path) -> None:
    module = recipe()
    base = free_base()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", base + 20))  # the first vault replica's
        taken.listen()
        with pytest.raises(module.ClusterError, match=rf"port\(s\) {base + 20} already in use"):
            module.Cluster(module.Layout(tmp_path / "c", base)).up()
    assert not (tmp_path / "c").exists()


def test_a_failed_start_keeps_its_logs(bare: Any) -> None:
    (bare.logs / "monitor.log").write_text("what happened\n")
    kept = bare.down(keep_logs=True)
    assert kept is not None and (kept / "monitor.log").read_text() == "what happened\n"
    assert not bare.root.exists()


def test_ports_in_the_range_of_outgoing_connections_are_refused(tmp_path: Path) -> None:
    """Any client's connection may take one of them as its local port, and a server of the
    cluster (or a killed one restarting) then cannot bind it: a start that fails now and then."""
    module = recipe()
    with pytest.raises(module.ClusterError, match="range for outgoing connections"):
        module.Cluster(module.Layout(tmp_path / "c", module.ephemeral_ports().start + 1000)).up()
    assert not (tmp_path / "c").exists()
