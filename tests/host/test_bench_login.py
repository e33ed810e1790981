"""``evb bench login`` runs and reports both medians (the figures go in closing notes, never
into an assertion about time)."""

from __future__ import annotations

import json

from .test_cli import evb


def test_login_bench_reports_both_medians() -> None:
    r = evb("bench", "login", "--rounds", "5", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["rounds"] == 5 and out["unknown_name_ms"] > 0 and out["wrong_password_ms"] > 0
