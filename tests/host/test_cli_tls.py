"""TLS at the CLI: ``evb tls init``, the servers' ``--tls-cert/--tls-key`` (and ``--insecure-http``
only on request, with a warning), clients trusting ``--ca``/``EVB_CA``, one ``Error:`` line for a
refused certificate, and a warning line whenever plain HTTP is used."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from host.cli import cli
from host.keymgr_client import KeyManagerClient
from host.vault_client import VaultClient, VaultClientError
from servers.keymgr.server import running as keymgr_running
from servers.tls import Issued, init_folder

from ..processes import KeyManagerProcess, VaultProcess
from ..servers.test_split_key import FAST

PASSWORD = "correct horse battery"


def evb(*args: str, env: dict[str, str] | None = None) -> Result:
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


@pytest.fixture
def issued(tmp_path: Path) -> Issued:
    return init_folder(tmp_path / "tls")


@pytest.fixture
def tls_keymgr(tmp_path: Path, issued: Issued) -> Iterator[str]:
    with keymgr_running(f"sqlite:///{tmp_path / 'km.db'}", tmp_path / "km.pem", tmp_path / "master.key", FAST,
                        tls=issued.server) as url:
        yield url


def test_tls_init_makes_a_ca_and_a_server_certificate(tmp_path: Path) -> None:
    folder = tmp_path / "tls"
    r = evb("tls", "init", str(folder))
    assert r.exit_code == 0, r.output
    assert f"--tls-cert {folder / 'server.pem'} --tls-key {folder / 'server-key.pem'}" in r.output
    assert {p.name: p.stat().st_mode & 0o777 for p in folder.iterdir()} == {
        "ca.pem": 0o644 & ~_umask(), "server.pem": 0o644 & ~_umask(), "ca-key.pem": 0o600, "server-key.pem": 0o600}
    assert folder.stat().st_mode & 0o777 == 0o700
    ca, cert = (folder / "ca.pem").read_bytes(), (folder / "server.pem").read_bytes()
    assert evb("tls", "init", str(folder), "--name", "vault.example").exit_code == 0
    assert (folder / "ca.pem").read_bytes() == ca and (folder / "server.pem").read_bytes() != cert  # same CA


def _umask() -> int:
    import os

    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_the_cli_with_the_right_ca_talks_tls(tls_keymgr: str, issued: Issued) -> None:
    r = evb("account", "create", "hanako", "--keymgr", tls_keymgr, "--ca", str(issued.ca_cert), "--password", PASSWORD)
    assert r.exit_code == 0 and "Warning" not in r.output, r.output
    r = evb("account", "create", "taro", "--keymgr", tls_keymgr, "--password", PASSWORD,
            env={"EVB_CA": str(issued.ca_cert)})
    assert r.exit_code == 0, r.output


def test_a_certificate_from_another_ca_is_one_error_line(tls_keymgr: str, tmp_path: Path) -> None:
    other = init_folder(tmp_path / "other").ca_cert
    r = evb("account", "create", "hanako", "--keymgr", tls_keymgr, "--ca", str(other), "--password", PASSWORD)
    assert r.exit_code == 1 and "Traceback" not in r.output
    assert r.output.splitlines() == [f"Error: the key manager at {tls_keymgr} is not trusted: its TLS certificate "
                                     "is refused (unable to get local issuer certificate); give the CA that issued "
                                     "it with --ca FILE (or EVB_CA)"]
    with KeyManagerClient(tls_keymgr, ca=tmp_path / "tls" / "ca.pem") as keymgr:  # nothing was created
        keymgr.create_account("hanako", PASSWORD)


def test_the_cli_warns_on_plain_http(tmp_path: Path) -> None:
    with keymgr_running(f"sqlite:///{tmp_path / 'km.db'}", tmp_path / "km.pem", tmp_path / "master.key", FAST) as url:
        r = evb("account", "create", "hanako", "--keymgr", url, "--password", PASSWORD)
    assert r.exit_code == 0, r.output
    assert r.stderr.splitlines() == [f"Warning: plain HTTP to the key manager at {url}: anyone on the network can "
                                     "read and change the traffic; use https://"]


def test_serving_needs_tls_or_the_explicit_flag(tmp_path: Path, issued: Issued) -> None:
    for server in (["vault", "serve"], ["keymgr", "serve", "--master-key", str(tmp_path / "m.key")]):
        r = evb(*server, "--key", str(tmp_path / "k.pem"), "--db", f"sqlite:///{tmp_path / 'x.db'}")
        assert r.exit_code == 1 and r.output.splitlines() == [
            "Error: give --tls-cert and --tls-key ('evb tls init DIR' makes them), or --insecure-http"]
        r = evb(*server, "--insecure-http", "--tls-cert", str(issued.server.cert))
        assert r.exit_code == 1 and "leave out --tls-cert" in r.output
    assert not (tmp_path / "x.db").exists()


def test_a_tls_key_others_can_read_is_refused(tmp_path: Path, issued: Issued) -> None:
    issued.server.key.chmod(0o640)
    r = evb("vault", "serve", "--key", str(tmp_path / "k.pem"), "--tls-cert", str(issued.server.cert),
            "--tls-key", str(issued.server.key))
    assert r.exit_code == 1 and r.output.splitlines() == [
        f"Error: key file {issued.server.key} is open to group or others (mode 640): "
        f"run 'chmod 600 {issued.server.key}'"]


def test_both_servers_serve_https(tmp_path: Path, issued: Issued) -> None:
    vault = VaultProcess(tmp_path, tls=issued)
    vault.start()
    try:
        keymgr = KeyManagerProcess(tmp_path, vault_url=vault.url, tls=issued)
        keymgr.start()
        try:
            assert vault.url.startswith("https://") and keymgr.url.startswith("https://")
            with VaultClient(vault.url, ca=issued.ca_cert) as v, KeyManagerClient(keymgr.url, ca=issued.ca_cert) as k:
                assert len(v.public_key()) == 65 and len(k.public_key()) == 65
            with VaultClient(vault.url.replace("https:", "http:")) as plain, pytest.raises(VaultClientError, match="https://"):
                plain.public_key()
        finally:
            keymgr.kill()
    finally:
        vault.kill()


def test_a_ca_file_without_a_certificate_is_one_error_line(tmp_path: Path, issued: Issued) -> None:
    bad = tmp_path / "bad.pem"
    bad.write_text("not a certificate\n")
    r = evb("account", "create", "hanako", "--keymgr", "https://127.0.0.1:9", "--ca", str(bad), "--password", "pw")
    assert r.exit_code == 1 and len(r.output.splitlines()) == 1
    assert r.output.startswith(f"Error: cannot use {bad} as a CA certificate (PEM): ")
    r = evb("keymgr", "serve", "--key", str(tmp_path / "k.pem"), "--master-key", str(tmp_path / "m.key"),
            "--db", f"sqlite:///{tmp_path / 'km.db'}", "--vault", "https://127.0.0.1:8470", "--ca", str(bad),
            "--tls-cert", str(issued.server.cert), "--tls-key", str(issued.server.key))
    assert r.exit_code == 1 and r.output.startswith(f"Error: cannot use {bad} as a CA certificate (PEM): ")


def test_serving_plain_http_warns(tmp_path: Path) -> None:
    r = evb("vault", "serve", "--insecure-http", "--digest", "type,colour", "--key", str(tmp_path / "k.pem"))
    assert r.exit_code == 1 and r.stderr.splitlines() == [
        "Warning: serving plain HTTP (--insecure-http): anyone on the network can read and change the traffic",
        "Error: unknown digest field colour (type, name, count, start, expiry, place)"]
