"""Kill the key manager or the vault (SIGKILL, real processes) at a random moment of a key
rotation, restart it, check conservation, re-run: the rotation finishes with every value
decryptable under exactly one current key, and every value exactly once.

Sized by EVB_TEST_SIZE: 4 trials of 40 values in CI, 100 trials of 200 values with ``full``."""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from apdu.records import ValueFlags
from host.api_client import ServiceError
from host.backup import connect
from host.keymgr_client import KeyManagerClient
from host.vault_client import VaultClient

from ..conftest import FULL
from ..processes import KeyManagerProcess, ServerProcess, VaultProcess
from ..servers.test_rotation import World, assert_rotated, owner_with_backups, rotate_once, unlocked

TRIALS = 100 if FULL else 4
VALUES = 200 if FULL else 40


class Killer:
    """Kills ``victim`` a moment after the k-th request of the run, across both clients:
    before it reads the request, while it works, or after it commits but before it answers."""

    def __init__(self, victim: ServerProcess, k: int, delay: float) -> None:
        self.victim, self.k, self.delay, self.calls = victim, k, delay, 0
        self.timer: threading.Timer | None = None

    def client(self, base: type[Any]) -> type[Any]:
        killer = self

        class Killing(base):  # type: ignore[misc, valid-type]
            def _call(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
                killer.calls += 1
                if killer.calls == killer.k:
                    killer.timer = threading.Timer(killer.delay, killer.victim.kill)
                    killer.timer.start()
                return super()._call(method, path, body)

        return Killing


def conserved(world: World, owner: Any) -> None:
    """Mid-rotation: each value is live on the card, or the card holds a certificate whose
    registration the vault still has."""
    s = unlocked(owner.card)
    entries = {e.id: e for e in s.list()}
    assert set(entries) == set(owner.originals)
    with VaultClient(world.vault_url) as vault:
        connect(s, vault)
        for value_id, entry in entries.items():
            if entry.flags & ValueFlags.CERTIFICATE:
                assert vault.restore(s.read(value_id).certificate), f"value {value_id}: the vault lost it"
            else:
                assert s.read(value_id).body() == owner.originals[value_id]


def kill_and_rerun(rng: random.Random, vault: ServerProcess, keymgr: ServerProcess, world: World, owner: Any,
                   run: Callable[[type[KeyManagerClient], type[VaultClient]], object], requests: int = 2 * VALUES,
                   check: Callable[[], None] | None = None,
                   cut: tuple[type[Exception], ...] = (ServiceError,)) -> None:
    """One trial: ``run`` with either server SIGKILLed at a random one of its first ``requests``
    requests (``cut`` the errors that may end it), the server restarted on its database,
    conservation checked (by ``check``, default :func:`conserved`); the caller re-runs and
    checks the end."""
    victim = rng.choice([vault, keymgr])
    killer = Killer(victim, rng.randint(1, requests), rng.uniform(0, 0.01))
    try:
        run(killer.client(KeyManagerClient), killer.client(VaultClient))
    except cut:
        pass  # the server went away mid-run
    assert killer.timer is not None, "the run ended before the chosen request"
    killer.timer.join()
    victim.kill()
    victim.start()  # on the same database
    check() if check else conserved(world, owner)


@contextmanager
def two_servers(folder: Path) -> Iterator[tuple[VaultProcess, KeyManagerProcess, World, Any]]:
    """Both servers as processes on ``folder`` and an owner with VALUES values backed up."""
    vault, keymgr = VaultProcess(folder), KeyManagerProcess(folder)
    try:
        vault.start()
        keymgr.start()
        world = World(keymgr.url, vault.url)
        yield vault, keymgr, world, owner_with_backups(world, VALUES)
    finally:
        vault.kill()
        keymgr.kill()


@pytest.fixture(scope="module")
def rotation_requests(tmp_path_factory: pytest.TempPathFactory) -> int:
    """The requests (to both servers) of one rotation of VALUES values, the range a trial's kill
    falls in: a rotation moves its values in rounds, a few requests a round, not two a value."""
    with two_servers(tmp_path_factory.mktemp("count")) as (vault, _, world, owner):
        counter = Killer(vault, 0, 0.0)  # the 0th request never comes: it only counts
        rotate_once(world, owner, km_client=counter.client(KeyManagerClient), vault_client=counter.client(VaultClient))
        return counter.calls


@pytest.mark.parametrize("trial", range(TRIALS))
def test_kill_a_server_mid_rotation(trial: int, tmp_path: Path, rotation_requests: int) -> None:
    rng = random.Random(trial)
    with two_servers(tmp_path) as (vault, keymgr, world, owner):
        old = unlocked(owner.card).key_info().key_id
        kill_and_rerun(rng, vault, keymgr, world, owner,
                       lambda km, v: rotate_once(world, owner, km_client=km, vault_client=v), rotation_requests)
        rotate_once(world, owner)  # the re-run finishes
        assert_rotated(world, owner, old)
