"""One cluster (scripts/cluster) per test module: primary, synchronous standby, pg_auto_failover's
monitor, vault and key-manager replicas, haproxy. Built in a folder under /tmp the postgres user
can reach (pytest's own tmp folders are 0700 root), on free ports, and removed afterwards."""

from __future__ import annotations

import functools
import importlib.util
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "cluster.py"


@functools.cache
def recipe() -> ModuleType:
    """scripts/cluster.py as a module (it is a script, not a package of ours), loaded once: its
    ClusterError is then one class."""
    spec = importlib.util.spec_from_file_location("evb_cluster_recipe", SCRIPT)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def free_base(span: int = 60) -> int:
    """The first of ``span`` consecutive free loopback ports, below the kernel's range for
    outgoing connections (which could take one between this check and a server's bind)."""
    module = recipe()
    for base in range(20000, module.ephemeral_ports().start - span, span + 7):
        if all(module.port_free(port) for port in range(base, base + span)):
            return base
    raise RuntimeError("no free port range")


@pytest.fixture(scope="module")
def cluster() -> Iterator[object]:
    module = recipe()
    root = Path(tempfile.mkdtemp(prefix="evb-cluster-", dir="/tmp"))
    built = module.Cluster(module.Layout(root, free_base(), vaults=2, keymgrs=2))
    try:
        try:
            built.up()
        except module.ClusterError as exc:  # the message quotes the logs; keep them all to look at
            pytest.fail(f"scripts/cluster up: {exc}\nthe logs are kept in {built.down(keep_logs=True)}")
        yield built
    finally:
        if not os.environ.get("EVB_CLUSTER_KEEP"):  # keep it to look at after a failure
            built.down()
