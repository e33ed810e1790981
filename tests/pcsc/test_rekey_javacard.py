"""``evb key rotate --by-keymgr`` (docs/APDU.md 7.2) on the Java Card applet in pcscd's reader,
against a key manager and a vault on loopback that know each other: the key manager re-seals
every encrypted backup, the applet takes the successor certificates and the new key, and with
``--restore-all`` every value comes back to it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from card.javacard import NO_KIT
from servers.tls import Issued

from ..host.test_cli_recovery import linked
from .test_serve import SLOT1, evb
from .test_serve_javacard import serve

if not os.environ.get("JC_HOME"):
    pytest.skip(NO_KIT, allow_module_level=True)


def ok(*args: str) -> str:
    return evb(*args).stdout


def test_key_rotate_by_the_key_manager_on_the_applet(pcscd: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     cli_tls: Issued) -> None:
    card = ["--reader", SLOT1]
    proc: subprocess.Popen[str] = serve()
    try:
        with linked(tmp_path, monkeypatch, cli_tls) as (km, vault):
            servers = ["--keymgr", km, "--vault", vault]
            ok("card", "init", *card, "--pin", "1234")
            for name in ("Movie ticket A", "Concert ticket C"):
                ok("card", "store", *card, "--type", "ticket", "--name", name)
            ok("account", "create", "goro", "--keymgr", km)
            ok("account", "login", "goro", "--keymgr", km)
            ok("key", "init", *card)
            ok("key", "backup", *card, "--keymgr", km)
            ok("backup", "1", "2", *card, "--vault", vault)
            before = json.loads(ok("key", "info", *card, "--json"))["key_id"]
            result = json.loads(ok("key", "rotate", "--by-keymgr", *card, *servers, "--json"))
            assert result["moved"] == 2 and result["destroyed"] == 1 and result["key_id"] != before
            again = json.loads(ok("key", "rotate", "--by-keymgr", "--restore-all", *card, *servers, "--json"))
            assert again["restored"] == 2 and again["key_id"] != result["key_id"]
            listed = json.loads(ok("card", "list", *card, "--json"))
            assert [(v["name"], v["flags"]) for v in listed] == [("Movie ticket A", []), ("Concert ticket C", [])]
    finally:
        proc.kill()
        proc.communicate()  # its output pipe closed too
