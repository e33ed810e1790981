"""``evb account login|enrol|policy`` with an ID card image and a simulated finger, through
click's runner against a key manager on loopback."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from host.cli.keymgr import session_file
from host.keymgr_client import KeyManagerClient
from servers.keymgr.server import running
from servers.tls import Issued

from ..servers.test_keymgr import refused
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
    # changing factors or the policy proves the policy's factors again (step-up), the ID card too
    fails("logs in with: password and id-card", "account", "enrol", "--finger", "hanako/index", "--keymgr", km)
    enrolled = json.loads(ok("account", "enrol", "--finger", "hanako/index", "--proof-id-card-image",
                             str(tmp_path / "id.img"), "--proof-id-pin", "2468", "--keymgr", km, "--json"))
    assert enrolled == {"enrolled": [{"kind": "fingerprint", "ref": None}], "other_sessions_ended": False}
    assert json.loads(ok("account", "policy", "set", "fingerprint or (password and id-card)", *idc, "--id-pin",
                         "2468", "--keymgr", km, "--json")) == {"policy": "fingerprint or (password and id-card)"}
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


def test_sensitive_commands_prove_the_factors_again(km: str, monkeypatch: pytest.MonkeyPatch) -> None:
    ok("account", "create", "jiro", "--keymgr", km)
    ok("account", "login", "jiro", "--keymgr", km)
    monkeypatch.delenv("EVB_PASSWORD")  # the saved session alone does not do
    fails("password is required: pass --password", "account", "policy", "set", "password", "--keymgr", km)
    fails("password is required: pass --proof-password", "account", "enrol", "--finger", "jiro/index", "--keymgr", km)
    fails("wrong name or password (9 tries left)", "account", "policy", "set", "password", "--password",
          "a wrong one", "--keymgr", km)
    assert "password" in ok("account", "policy", "set", "password", "--password", "correct horse battery",
                            "--keymgr", km)
    monkeypatch.setenv("EVB_NEW_PASSWORD", "another horse battery")
    with KeyManagerClient(km, ca=Path(os.environ["EVB_CA"])) as laptop:  # another session of the owner's
        laptop.login("jiro", "correct horse battery")
        out = ok("account", "enrol", "--password", "--proof-password", "correct horse battery", "--keymgr", km)
        assert "other sessions ended" in out
        refused(laptop.status, 401, "not logged in")
    ok("account", "policy", "show", "--keymgr", km)  # the session that changed it goes on


def test_logout_ends_the_session_and_forgets_it(km: str) -> None:
    ok("account", "create", "saburo", "--keymgr", km)
    ok("account", "login", "saburo", "--keymgr", km)
    token = json.loads(session_file().read_text())["token"]
    assert "Logged out" in ok("account", "logout", "--keymgr", km)
    assert not session_file().exists()
    with KeyManagerClient(km, ca=Path(os.environ["EVB_CA"])) as sniffed:
        sniffed._token = token
        refused(sniffed.status, 401, "not logged in")
    fails("not logged in", "account", "policy", "show", "--keymgr", km)
    fails("not logged in", "account", "logout", "--keymgr", km)
    ok("account", "login", "saburo", "--keymgr", km)
    assert json.loads(ok("account", "logout", "--keymgr", km, "--json")) == {"logged_out": True}
    assert not session_file().exists()


def test_the_administrator_unlocks_a_locked_name(km: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from servers.keymgr.services.accounts import MAX_FAILURES

    ok("account", "create", "saburo", "--keymgr", km)
    monkeypatch.setenv("EVB_PASSWORD", "wrong horse battery")
    for _ in range(MAX_FAILURES):
        evb("account", "login", "saburo", "--keymgr", km)
    monkeypatch.setenv("EVB_PASSWORD", "correct horse battery")
    assert evb("account", "login", "saburo", "--keymgr", km).exit_code != 0  # locked: the right one too
    done = json.loads(ok("keymgr", "unlock", "saburo", "--db", f"sqlite:///{tmp_path / 'km.db'}", "--json"))
    assert done == {"name": "saburo", "unlocked": True}
    ok("account", "login", "saburo", "--keymgr", km)
