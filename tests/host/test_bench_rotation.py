"""The rotation benchmark runs end to end at a tiny size (its figures are for the closing
note, never asserted: the machine is shared)."""

from __future__ import annotations

from host.bench import run_rotation_bench


def test_the_rotation_benchmark_runs() -> None:
    seen: set[str] = set()
    result = run_rotation_bench(1, 4, progress=lambda what, done, total: seen.add(what))
    assert result.cards == 1 and result.values == 4 and seen == {"backing up", "rotating"}
    assert result.backup_per_s > 0 and result.rotation_per_s > 0
