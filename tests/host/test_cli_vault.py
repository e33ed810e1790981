"""``evb backup``, ``evb restore``, ``evb certs`` and ``evb vault serve`` through click's runner,
against a vault on loopback."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from servers.tls import Issued
from servers.vault.server import running

from .test_cli import PIN, evb
from .test_cli import image as image  # noqa: F401 (fixture)
from .test_cli import stocked as stocked  # noqa: F401 (fixture)


@pytest.fixture
def vault_url(tmp_path: Path, cli_tls: Issued) -> Iterator[str]:
    with running(f"sqlite:///{tmp_path / 'vault.db'}", tmp_path / "key.pem", cli_tls.server) as url:
        yield url


def test_backup_certs_restore(stocked: Path, vault_url: str) -> None:  # noqa: F811
    common = ["--card-image", str(stocked), "--vault", vault_url, "--pin", PIN]
    r = evb("backup", "--all", *common, "--json")
    assert r.exit_code == 0, r.output
    assert [o["action"] for o in json.loads(r.output)["done"]] == ["backed up", "backed up"]
    certs = json.loads(evb("certs", "--card-image", str(stocked), "--json").output)
    assert [c["name"] for c in certs] == ["Movie ticket A", "Prepaid card E"]
    r = evb("restore", "1", *common)
    assert r.exit_code == 0 and "restored" in r.output
    r = evb("restore", "--all", *common)
    assert r.exit_code == 0 and "Prepaid card E: restored" in r.output
    assert json.loads(evb("certs", "--card-image", str(stocked), "--json").output) == []


def state(image: Path) -> tuple[str, str]:
    """What a terminal sees (the raw image differs after any VERIFY: the journal is reused)."""
    return (evb("card", "list", "--card-image", str(image), "--json").output,
            evb("card", "info", "--card-image", str(image), "--json").output)


@pytest.mark.parametrize(
    "args, message",
    [
        (["backup"], "name the values"),
        (["backup", "1", "--all"], "not both"),
        (["backup", "1", "--vault", "https://127.0.0.1:9"], "cannot reach the vault"),
        (["backup", "7"], "no value 7"),
        (["restore", "1"], ""),  # value 1 is not a certificate: nothing to do, not an error
    ],
)
def test_bad_input_is_one_line(stocked: Path, vault_url: str, args: list[str], message: str) -> None:  # noqa: F811
    before = state(stocked)
    if "--vault" not in args:
        args = [*args, "--vault", vault_url]
    r = evb(*args, "--card-image", str(stocked), "--pin", PIN)
    if not message:
        assert r.exit_code == 0 and "already done" in r.output
        return
    assert r.exit_code != 0 and "Traceback" not in r.output
    assert message in r.output and len(r.output.strip().splitlines()) <= 2, r.output
    assert state(stocked) == before


def test_vault_serve_refuses_a_bad_database(tmp_path: Path) -> None:
    r = evb("vault", "serve", "--db", "postgresql://evb:secret@127.0.0.1:1/none", "--key", str(tmp_path / "k.pem"),
            "--insecure-http")
    assert r.exit_code == 1 and "secret" not in r.output and "cannot connect" in r.output
    r = evb("vault", "serve", "--digest", "type,colour", "--key", str(tmp_path / "k.pem"), "--insecure-http")
    assert r.exit_code == 1 and "unknown digest field colour" in r.output


def test_encrypt_or_plain(stocked: Path, vault_url: str) -> None:  # noqa: F811
    from apdu.certificate import Certificate, Mode
    from host.session import WalletSession
    from host.transport.inprocess import open_image

    card = ["--card-image", str(stocked), "--pin", PIN, "--vault", vault_url]
    r = evb("backup", "1", "--encrypt", *card)
    assert r.exit_code == 1 and "no key to encrypt with" in r.output and r.output.count("\n") == 1
    assert evb("key", "init", "--card-image", str(stocked), "--pin", PIN).exit_code == 0
    assert evb("backup", "1", "--plain", *card).exit_code == 0
    assert evb("backup", "2", *card).exit_code == 0  # encrypted by default now
    with open_image(stocked) as transport:
        s = WalletSession(transport)
        modes = [Certificate.from_bytes(s.read(i).certificate).mode for i in (1, 2)]
    assert modes == [Mode.PLAIN, Mode.ENCRYPTED]
