"""The FAR/FRR benchmark runs at a tiny size; the full population's figures go in the closing
note, never in an assertion about rates on a small sample."""

from __future__ import annotations

from apdu.fingerprint import MAX_MINUTIAE
from host.bench import run_fingerprint_bench, run_worst_case_match


def test_the_fingerprint_benchmark_runs() -> None:
    result = run_fingerprint_bench(12, seed=3)
    assert len(result.genuine) == len(result.impostor) == 12
    far, frr = result.rates(2.0)  # nothing reaches a score of 2: all rejected
    assert (far, frr) == (0.0, 1.0)
    far, frr = result.rates(0.0)  # everything reaches 0: all accepted
    assert (far, frr) == (1.0, 0.0)


def test_the_worst_case_match_reports_its_memory() -> None:
    worst = run_worst_case_match()
    assert worst.minutiae == MAX_MINUTIAE and 0 < worst.peak_bytes < 64 * 2**20 and worst.seconds > 0
