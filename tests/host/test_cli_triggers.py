"""``evb triggers``, ``evb auto`` and ``--on-shortage`` through click's runner: the seed's fig. 16
selections, JSON for scripts, and one clear line (nothing changed) for each bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from servers.tls import Issued
from servers.vault.server import running

from .test_cli import PIN, evb
from .test_cli import image as image  # noqa: F401 (fixture)

DAY = ["--today", "2000-03-15"]
FIG15 = [
    ("Movie ticket A", "ticket", ["--valid-from", "2000-04-01", "--valid-to", "2000-05-31", "--place", "B"]),
    ("Concert ticket C", "ticket", ["--quantity", "2", "--valid-from", "2000-04-29", "--valid-to", "2000-04-29"]),
    ("Prepaid card E", "prepaid", ["--face-value", "1000", "--balance", "800"]),
    ("Movie ticket G", "ticket", ["--quantity", "2", "--valid-from", "2000-05-01", "--valid-to", "2000-06-30"]),
]


@pytest.fixture
def vault_url(tmp_path: Path, cli_tls: Issued) -> Iterator[str]:
    with running(f"sqlite:///{tmp_path / 'vault.db'}", tmp_path / "key.pem", cli_tls.server) as url:
        yield url


@pytest.fixture
def fig15(image: Path) -> Path:  # noqa: F811
    for name, vtype, extra in FIG15:
        r = evb("card", "store", "--card-image", str(image), "--pin", PIN, "--type", vtype, "--name", name, *extra)
        assert r.exit_code == 0, r.output
    return image


def names(output: str) -> list[str]:
    return [e["name"] for e in json.loads(output)]


def test_show_set_check(fig15: Path) -> None:
    card = ["--card-image", str(fig15)]
    shown = json.loads(evb("triggers", "show", *card, *DAY, "--json").output)
    assert shown == {"condition": "unusable-within=30", "period_days": 30, "combine": "either",
                     "both_below_percent": None, "on_shortage": "ask", "last_run": None, "due": True}
    assert names(evb("triggers", "check", *card, *DAY, "--json").output) == ["Concert ticket C", "Movie ticket G"]
    r = evb("triggers", "set", *card, "--condition", "type=ticket and name~Movie", "--pin", PIN)
    assert r.exit_code == 0 and "type=ticket and name~Movie" in r.output
    assert names(evb("triggers", "check", *card, *DAY, "--json").output) == ["Movie ticket A", "Movie ticket G"]
    table = evb("triggers", "show", *card).output
    assert "type=ticket and name~Movie" in table and "every 30 days" in table
    r = evb("triggers", "set", *card, "--factory", "--period", "0", "--pin", PIN, "--json")
    assert json.loads(r.output)["condition"] == "unusable-within=30" and json.loads(r.output)["period_days"] == 0


def test_run_and_auto(fig15: Path, vault_url: str) -> None:
    common = ["--card-image", str(fig15), "--vault", vault_url, "--pin", PIN, *DAY]
    r = evb("auto", *common, "--json")
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["selected"] == [2, 4]
    r = evb("auto", *common)
    assert r.exit_code == 0 and "Not due: last run 2000-03-15, every 30 days" in r.output
    r = evb("triggers", "run", *common)
    assert r.exit_code == 0 and "No value meets the backup conditions" in r.output
    certs = json.loads(evb("certs", "--card-image", str(fig15), "--json").output)
    assert [c["name"] for c in certs] == ["Concert ticket C", "Movie ticket G"]


def test_store_on_a_full_card_follows_the_shortage_option(tmp_path: Path, vault_url: str) -> None:
    image = tmp_path / "small.img"
    assert evb("card", "init", "--card-image", str(image), "--pin", PIN, "--size", "8192").exit_code == 0
    common = ["--card-image", str(image), "--pin", PIN, "--vault", vault_url, *DAY]
    store = ["card", "store", "--type", "coupon", "--payload-hex", "00" * 500, *common]
    n = 0
    while (r := evb(*store, "--name", f"C{n}", "--on-shortage", "abort")).exit_code == 0:
        n += 1
    assert r.output.count("\n") == 1 and "shortage policy: abort" in r.output  # one line, no traceback
    before = evb("card", "list", "--card-image", str(image), "--json").output
    r = evb(*store, "--name", "late")  # the card's policy is "ask", and a script cannot answer
    assert r.exit_code == 1 and "--on-shortage" in r.output
    assert evb("card", "list", "--card-image", str(image), "--json").output == before
    assert evb("triggers", "set", "--card-image", str(image), "--pin", PIN, "--condition", "type=coupon").exit_code == 0
    r = evb(*store, "--name", "late", "--on-shortage", "auto", "--json")
    assert r.exit_code == 0, r.output
    out = json.loads(r.output)
    assert out["id"] == n + 1 and [o["action"] for o in out["backed_up"]] == ["backed up"]


SET = ["triggers", "set", "--pin", PIN]


@pytest.mark.parametrize(("args", "message"), [
    ([*SET, "--condition", "type=ticket and ("], "ends too early"),
    ([*SET, "--condition", "type=train"], "unknown value type train"),
    ([*SET, "--condition", "size>=lots"], "needs a whole number"),
    ([*SET, "--condition", "colour=red"], "unknown condition 'colour='"),
    ([*SET, "--period", "-1"], "-1 is not in the range"),
    ([*SET, "--on-shortage", "maybe"], "'maybe' is not one of"),
    (["triggers", "set", "--pin", "9999", "--period", "1"], "wrong PIN, 2 tries left"),
    (["triggers", "check", "--today", "15/03/2000"], "does not match the format"),
    (["triggers", "run", "--pin", PIN, "--vault", "https://127.0.0.1:9", *DAY], "cannot reach the vault"),
])
def test_bad_input_is_one_line_and_changes_nothing(fig15: Path, args: list[str], message: str) -> None:
    before = evb("triggers", "show", "--card-image", str(fig15), "--json").output
    r = evb(*args, "--card-image", str(fig15))
    assert r.exit_code != 0 and message in r.output and r.output.count("\n") == 1, r.output
    assert evb("triggers", "show", "--card-image", str(fig15), "--json").output == before

