"""``evb account login|enrol|policy`` with an ID card image and a simulated finger, through
click's runner against a key manager on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from servers.keymgr.server import running
from servers.tls import Issued

from ..servers.test_split_key import FAST
from .test_cli import evb


@pytest.fixture
def km(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli_tls: Issued) -> Iterator[str]:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("EVB_PASSWORD", "correct horse battery")
    with running(f"sqlite:///{tmp_path / 'km.db'}", tmp_path / "km.pem", tmp_path / "km.key", FAST,
                 tls=cli_tls.server) as url:
        yield url


def ok(*args: str) -> str:
    r = evb(*args)
    assert r.exit_code == 0, r.output
    return r.output


def fails(words: str, *args: str) -> None:
    r = evb(*args)
    assert r.exit_code != 0 and words in r.output and r.output.count("\n") == 1, r.output


def test_password_id_card_and_finger(km: str, tmp_path: Path) -> None:
    idc = ["--id-card-image", str(tmp_path / "id.img")]
    ok("card", "issue-id", *idc, "--holder", "Hanako Yamada", "--number", "DL-42", "--expiry", "2099-12-31",
       "--pin", "2468")
    assert json.loads(ok("card", "id-info", *idc, "--json"))["pin"] is True
    ok("account", "create", "hanako", "--keymgr", km)
    ok("account", "login", "hanako", "--keymgr", km)
    fails("6982", "account", "enrol", *idc, "--keymgr", km)  # the ID card's PIN first
    assert "DL-42 enrolled" in ok("account", "enrol", *idc, "--id-pin", "2468", "--keymgr", km)
    ok("account", "policy", "set", "password and id-card", "--keymgr", km)
    fails("logs in with: password and id-card", "account", "login", "hanako", "--keymgr", km)
    ok("account", "login", "hanako", *idc, "--id-pin", "2468", "--keymgr", km)
    ok("account", "enrol", "--finger", "hanako/index", "--keymgr", km)
    ok("account", "policy", "set", "fingerprint or (password and id-card)", "--keymgr", km)
    ok("account", "login", "hanako", "--no-password", "--finger", "hanako/index", "--keymgr", km)
    fails("does not match", "account", "login", "hanako", "--no-password", "--finger", "taro/index", "--keymgr", km)
    shown = json.loads(ok("account", "policy", "show", "--keymgr", km, "--json"))
    assert shown["policy"] == "fingerprint or (password and id-card)"
    assert {f["kind"] for f in shown["factors"]} == {"password", "id-card", "fingerprint"}


def test_bad_input_is_one_line(km: str) -> None:
    ok("account", "create", "taro", "--keymgr", km)
    ok("account", "login", "taro", "--keymgr", km)
    fails("what to enrol", "account", "enrol", "--keymgr", km)
    fails("unknown factor", "account", "policy", "set", "password or retina", "--keymgr", km)
    fails("enrol id-card", "account", "policy", "set", "id-card", "--keymgr", km)
