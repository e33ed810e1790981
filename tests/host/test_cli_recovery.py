"""``evb account enrol-card``, ``evb card lost`` and ``evb recover`` through click's runner,
against a key manager and a vault on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from host.keymgr_client import KeyManagerClient
from servers.keymgr.server import running as keymgr_running
from servers.tls import Issued
from servers.vault.server import running as vault_running

from ..servers.test_split_key import FAST
from .test_cli import PIN, evb
from .test_cli import image as image  # noqa: F401 (fixture)
from .test_cli import stocked as stocked  # noqa: F401 (fixture)


@pytest.fixture
def urls(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli_tls: Issued) -> Iterator[tuple[str, str]]:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))  # the saved login lives there
    monkeypatch.setenv("EVB_PASSWORD", "correct horse battery")
    with keymgr_running(f"sqlite:///{tmp_path / 'km.db'}", tmp_path / "km.pem", tmp_path / "km.key", FAST,
                        tls=cli_tls.server) as km:
        with KeyManagerClient(km, ca=cli_tls.ca_cert) as client:
            trusted = client.statement_key()
        with vault_running(f"sqlite:///{tmp_path / 'v.db'}", tmp_path / "v.pem", cli_tls.server,
                           keymgr_key=trusted) as vault:
            yield km, vault


@contextmanager
def linked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli_tls: Issued) -> Iterator[tuple[str, str]]:
    """A key manager that knows the vault and a vault that trusts its statements (E6, E7)."""
    from keyfile import load_or_create_key, public_bytes
    from servers.keymgr.server import statement_key_path

    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.setenv("EVB_PASSWORD", "correct horse battery")
    trusted = public_bytes(load_or_create_key(statement_key_path(tmp_path / "km.pem")).public_key())
    with vault_running(f"sqlite:///{tmp_path / 'v.db'}", tmp_path / "v.pem", cli_tls.server,
                       keymgr_key=trusted) as vault, \
            keymgr_running(f"sqlite:///{tmp_path / 'km.db'}", tmp_path / "km.pem", tmp_path / "km.key",
                           FAST.__class__(**{**FAST.__dict__, "vault_url": vault, "vault_ca": cli_tls.ca_cert}),
                           tls=cli_tls.server) as km:
        yield km, vault


def ok(*args: str) -> str:
    r = evb(*args)
    assert r.exit_code == 0, r.output
    return r.output


def test_lost_card_then_recover_onto_a_new_one(stocked: Path, tmp_path: Path,  # noqa: F811
                                               urls: tuple[str, str]) -> None:
    km, vault = urls
    old, new = ["--card-image", str(stocked)], ["--card-image", str(tmp_path / "new.img")]
    ok("card", "init", *new, "--pin", PIN)
    servers = ["--keymgr", km, "--vault", vault]
    ok("account", "create", "hanako", "--keymgr", km)
    ok("account", "login", "hanako", "--keymgr", km)
    old_id = json.loads(ok("card", "info", *old, "--json"))["card_id"]
    assert json.loads(ok("account", "enrol-card", *old, "--pin", PIN, "--keymgr", km, "--json")) == {
        "card_id": old_id, "enrolled": True}  # the card id spelled as card info spells it
    ok("backup", "1", "2", *old, "--pin", PIN, "--vault", vault)
    assert json.loads(ok("card", "lost", old_id, *servers, "--json")) == {"card_id": old_id, "revoked": True}
    result = json.loads(ok("recover", "--from-card", old_id, *new, "--pin", PIN, *servers, "--json"))
    assert result["imported"] == 2 and [v["name"] for v in result["restored"]] == ["Movie ticket A", "Prepaid card E"]
    again = json.loads(ok("recover", "--from-card", old_id, *new, "--pin", PIN, *servers, "--json"))
    assert again["imported"] == 0 and again["restored"] == []
    names = [v["name"] for v in json.loads(ok("card", "list", *new, "--json"))]
    assert sorted(names) == ["Movie ticket A", "Prepaid card E"]
    r = evb("backup", "1", *old, "--pin", PIN, "--vault", vault)  # the lost card, found again, is revoked
    assert r.exit_code == 1 and "revoked" in r.output and r.output.count("\n") == 1


@pytest.mark.parametrize("args, message", [
    (["card", "lost", "12"], "16 hex digits"),
    (["card", "lost", "0102030405060708"], "not logged in"),
])
def test_bad_input_is_one_line(args: list[str], message: str, urls: tuple[str, str]) -> None:
    km, vault = urls
    r = evb(*args, "--keymgr", km, "--vault", vault)
    assert r.exit_code != 0 and message in r.output and r.output.count("\n") == 1


def test_a_card_not_enrolled_cannot_be_reported(image: Path, urls: tuple[str, str]) -> None:  # noqa: F811
    km, vault = urls
    assert json.loads(ok("account", "create", "taro", "--keymgr", km, "--json")) == {"name": "taro", "created": True}
    assert json.loads(ok("account", "login", "taro", "--keymgr", km, "--json"))["name"] == "taro"
    card_id = json.loads(ok("card", "info", "--card-image", str(image), "--json"))["card_id"]
    r = evb("card", "lost", card_id, "--keymgr", km, "--vault", vault)
    assert r.exit_code == 1 and "not enrolled" in r.output


def test_key_init_by_the_key_manager(image: Path, tmp_path: Path, urls: tuple[str, str]) -> None:  # noqa: F811
    km, _ = urls
    card = ["--card-image", str(image)]
    ok("account", "create", "jiro", "--keymgr", km)
    ok("account", "login", "jiro", "--keymgr", km)
    info = json.loads(ok("key", "init", *card, "--pin", PIN, "--by-keymgr", km, "--json"))
    assert info["mode"] == "public"
    status = json.loads(ok("account", "status", "--keymgr", km, "--json"))
    assert [k["key_id"] for c in status["cards"] for k in c["keys"]] == [info["key_id"]]


def test_restore_via_the_key_manager(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli_tls: Issued) -> None:
    """evb restore --via-keymgr: the key manager and the vault talk to each other (E6)."""
    with linked(tmp_path, monkeypatch, cli_tls) as (km, vault):
        card = ["--card-image", str(tmp_path / "c.img")]
        ok("card", "init", *card, "--pin", PIN)
        ok("card", "store", *card, "--pin", PIN, "--type", "ticket", "--name", "Movie ticket A")
        ok("account", "create", "saburo", "--keymgr", km)
        ok("account", "login", "saburo", "--keymgr", km)
        ok("key", "init", *card, "--pin", PIN, "--by-keymgr", km)
        ok("backup", "1", *card, "--pin", PIN, "--vault", vault)
        out = json.loads(ok("restore", "1", "--via-keymgr", *card, "--pin", PIN, "--vault", vault, "--keymgr", km,
                            "--json"))
        assert out["done"][0]["action"] == "restored via the key manager", out
        r = evb("restore", "1", "--via-keymgr", *card, "--pin", PIN, "--vault", vault, "--keymgr", km)
        assert r.exit_code == 0 and "already done" in r.output


def test_key_rotate(stocked: Path, urls: tuple[str, str]) -> None:  # noqa: F811
    km, vault = urls
    card, servers = ["--card-image", str(stocked)], ["--keymgr", km, "--vault", vault]
    ok("account", "create", "shiro", "--keymgr", km)
    ok("account", "login", "shiro", "--keymgr", km)
    r = evb("key", "rotate", *card, "--pin", PIN, *servers)
    assert r.exit_code == 1 and "no key to rotate" in r.output and r.output.count("\n") == 1
    ok("key", "init", *card, "--pin", PIN)
    ok("key", "backup", *card, "--pin", PIN, "--keymgr", km)
    ok("backup", "1", *card, "--pin", PIN, "--vault", vault)
    before = json.loads(ok("key", "info", *card, "--json"))["key_id"]
    result = json.loads(ok("key", "rotate", *card, "--pin", PIN, *servers, "--json"))
    assert result["moved"] == 1 and result["destroyed"] == 1 and result["key_id"] != before
    ok("restore", "1", *card, "--pin", PIN, "--vault", vault)
    assert [v["name"] for v in json.loads(ok("card", "list", *card, "--json"))][0] == "Movie ticket A"


def test_key_per_value_backup_and_restore(stocked: Path, tmp_path: Path, urls: tuple[str, str]) -> None:  # noqa: F811
    """Claims 7 and 49 through the CLI: `key backup --per-value` leaves one part at the key
    manager, each encrypted backup carries the other; `key restore --per-value` rebuilds the key
    on a new card from the owner's login and a certificate, with no code and no lost-card report."""
    km, vault = urls
    old, new = ["--card-image", str(stocked)], ["--card-image", str(tmp_path / "new.img")]
    ok("card", "init", *new, "--pin", PIN)
    ok("account", "create", "goro", "--keymgr", km)
    ok("account", "login", "goro", "--keymgr", km)
    key = json.loads(ok("key", "init", *old, "--pin", PIN, "--json"))
    r = evb("key", "backup", *old, "--pin", PIN, "--keymgr", km, "--split", "--per-value")
    assert r.exit_code != 0 and "choose one mode" in r.output and r.output.count("\n") == 1
    backed = json.loads(ok("key", "backup", *old, "--pin", PIN, "--keymgr", km, "--per-value", "--json"))
    assert backed["key_id"] == key["key_id"] and backed["kind"] == "per-value"
    ok("backup", "1", *old, "--pin", PIN, "--vault", vault)
    certificate = json.loads(ok("card", "show", "1", *old, "--json"))["certificate"]
    old_id = json.loads(ok("card", "info", *old, "--json"))["card_id"]
    servers = ["--keymgr", km, "--vault", vault]
    r = evb("key", "restore", "--from-card", old_id, *new, "--pin", PIN, *servers, "--per-value")
    assert r.exit_code == 1 and "--certificate" in r.output and r.output.count("\n") == 1
    restored = json.loads(ok("key", "restore", "--from-card", old_id, *new, "--pin", PIN, *servers, "--per-value",
                             "--certificate", certificate, "--json"))
    assert restored == key
    assert json.loads(ok("key", "info", *new, "--json")) == key


def test_key_rotate_by_the_key_manager_on_a_card_that_lost_its_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                    cli_tls: Issued) -> None:
    """evb key rotate --by-keymgr [--restore-all] (seed E7/E8, claims 16, 17): the card's key
    store wiped, the key manager re-keys it from escrow; the card-side mode cannot."""
    from card import SimulatedCard
    from card.keys import wipe_key_store

    with linked(tmp_path, monkeypatch, cli_tls) as (km, vault):
        image = tmp_path / "c.img"
        card, servers = ["--card-image", str(image)], ["--keymgr", km, "--vault", vault]
        ok("card", "init", *card, "--pin", PIN)
        for name in ("Movie ticket A", "Concert ticket C"):
            ok("card", "store", *card, "--pin", PIN, "--type", "ticket", "--name", name)
        ok("account", "create", "goro", "--keymgr", km)
        ok("account", "login", "goro", "--keymgr", km)
        ok("key", "init", *card, "--pin", PIN)
        ok("key", "backup", *card, "--pin", PIN, "--keymgr", km)
        ok("backup", "1", "2", *card, "--pin", PIN, "--vault", vault)
        before = json.loads(ok("key", "info", *card, "--json"))["key_id"]
        wiped = SimulatedCard.open(image)
        wiped.eeprom.power_on()
        wipe_key_store(wiped.eeprom)
        wiped.eeprom.power_off()
        wiped.close()
        r = evb("key", "rotate", *card, "--pin", PIN, *servers)
        assert r.exit_code == 1 and "no key to rotate" in r.output and r.output.count("\n") == 1
        result = json.loads(ok("key", "rotate", "--by-keymgr", *card, "--pin", PIN, *servers, "--json"))
        assert result["moved"] == 2 and result["destroyed"] == 1 and result["key_id"] != before
        assert result["restored"] == 0 and result["failed"] == []
        again = json.loads(ok("key", "rotate", "--by-keymgr", "--restore-all", *card, "--pin", PIN, *servers,
                              "--json"))
        assert again["restored"] == 2 and again["key_id"] != result["key_id"]
        assert [v["flags"] for v in json.loads(ok("card", "list", *card, "--json"))] == [[], []]
        text = ok("key", "rotate", "--by-keymgr", *card, "--pin", PIN, *servers)
        assert "re-sealed by the key manager" in text


def test_a_key_the_key_manager_rekeyed_restores_per_value(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                          cli_tls: Issued) -> None:
    """Claims 16 and 49 through the CLI: after 'key rotate --by-keymgr' the re-sealed backup
    carries the vault's part of the new key, so 'key restore --per-value' rebuilds the new key
    on another card from it and the key manager's part; 'key backup' says which escrow it made."""
    with linked(tmp_path, monkeypatch, cli_tls) as (km, vault):
        card, other = ["--card-image", str(tmp_path / "c.img")], ["--card-image", str(tmp_path / "d.img")]
        servers = ["--keymgr", km, "--vault", vault]
        for c in (card, other):
            ok("card", "init", *c, "--pin", PIN)
        ok("card", "store", *card, "--pin", PIN, "--type", "ticket", "--name", "Movie ticket A")
        ok("account", "create", "rokuro", "--keymgr", km)
        ok("account", "login", "rokuro", "--keymgr", km)
        ok("key", "init", *card, "--pin", PIN)
        assert json.loads(ok("key", "backup", *card, "--pin", PIN, "--keymgr", km, "--json"))["kind"] == "whole"
        assert json.loads(ok("key", "backup", *card, "--pin", PIN, "--keymgr", km, "--per-value",
                             "--json"))["kind"] == "per-value"
        ok("backup", "1", *card, "--pin", PIN, "--vault", vault)
        rekeyed = json.loads(ok("key", "rotate", "--by-keymgr", *card, "--pin", PIN, *servers, "--json"))
        assert rekeyed["moved"] == 1
        certificate = json.loads(ok("card", "show", "1", *card, "--json"))["certificate"]
        card_id = json.loads(ok("card", "info", *card, "--json"))["card_id"]
        restored = json.loads(ok("key", "restore", "--from-card", card_id, *other, "--pin", PIN, *servers,
                                 "--per-value", "--certificate", certificate, "--json"))
        assert restored["key_id"] == rekeyed["key_id"] and restored["public_key"] == rekeyed["public_key"]


def test_plain_restore_of_a_certificate_the_card_has_no_key_for(stocked: Path, tmp_path: Path,  # noqa: F811
                                                                urls: tuple[str, str]) -> None:
    """A lost card's encrypted certificates on a new card without its key (never escrowed): a
    plain ``evb restore`` cannot open them (the card answers 6984), says so in one line with the
    way that can (--via-keymgr), and leaves the certificate as it was, not pending."""
    km, vault = urls
    old, new = ["--card-image", str(stocked)], ["--card-image", str(tmp_path / "new.img")]
    servers = ["--keymgr", km, "--vault", vault]
    ok("card", "init", *new, "--pin", PIN)
    ok("account", "create", "shiro", "--keymgr", km)
    ok("account", "login", "shiro", "--keymgr", km)
    ok("key", "init", *old, "--pin", PIN)  # kept on the card alone: nothing escrowed
    old_id = json.loads(ok("card", "info", *old, "--json"))["card_id"]
    ok("account", "enrol-card", *old, "--pin", PIN, "--keymgr", km)
    ok("backup", "1", *old, "--pin", PIN, "--vault", vault)
    ok("card", "lost", old_id, *servers)
    r = evb("recover", "--from-card", old_id, *new, "--pin", PIN, *servers, "--json")
    assert r.exit_code == 1, r.output  # the value not restored, said per value
    result = json.loads(r.output[r.output.index("{"):])
    assert result["imported"] == 1 and result["restored"] == [] and "--via-keymgr" in result["failed"][0]["error"]
    value_id = result["failed"][0]["id"]
    r = evb("restore", str(value_id), *new, "--pin", PIN, "--vault", vault)
    assert r.exit_code == 1 and r.output.count("\n") == 1, r.output
    assert "no key" in r.output and "--via-keymgr" in r.output and "6984" not in r.output
    [entry] = json.loads(ok("card", "list", *new, "--json"))
    assert entry["flags"] == ["certificate"], entry  # the certificate stays, not left pending
