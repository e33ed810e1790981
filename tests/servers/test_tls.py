"""TLS between the terminal and the servers, and between the key manager and the vault: a client
trusting the right CA talks to both; a certificate from another CA, or for another host name, is
refused with one clear error; plain HTTP to a TLS server fails cleanly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from apdu.records import ValueFlags
from host import factors
from host.assisted import assisted_restore
from host.keymgr_client import KeyManagerClient, KeyManagerClientError
from host.vault_client import VaultClient, VaultClientError
from keyfile import load_or_create_key, public_bytes
from servers.keymgr.config import KeyManagerConfig
from servers.keymgr.server import running as keymgr_running
from servers.keymgr.server import statement_key_path
from servers.tls import Issued, init_folder
from servers.vault.server import running as vault_running

from .test_assisted_restore import PASSWORD, World, encrypted_backup
from .test_split_key import FAST


@pytest.fixture
def issued(tmp_path: Path) -> Issued:
    return init_folder(tmp_path / "tls")


@pytest.fixture
def other_ca(tmp_path: Path) -> Path:
    """A CA that did not issue the servers' certificates."""
    return init_folder(tmp_path / "other").ca_cert


@pytest.fixture
def vault_url(tmp_path: Path, issued: Issued) -> Iterator[str]:
    with vault_running(f"sqlite:///{tmp_path / 'vault.db'}", tmp_path / "vault.pem", issued.server) as url:
        yield url


@pytest.fixture
def keymgr_url(tmp_path: Path, issued: Issued) -> Iterator[str]:
    with keymgr_running(f"sqlite:///{tmp_path / 'km.db'}", tmp_path / "km.pem", tmp_path / "master.key", FAST,
                        tls=issued.server) as url:
        yield url


def test_clients_with_the_right_ca_talk_to_both_servers(vault_url: str, keymgr_url: str, issued: Issued) -> None:
    assert vault_url.startswith("https://") and keymgr_url.startswith("https://")
    with VaultClient(vault_url, ca=issued.ca_cert) as vault:
        assert len(vault.public_key()) == 65
    with KeyManagerClient(keymgr_url, ca=issued.ca_cert) as keymgr:
        keymgr.create_account("hanako", PASSWORD)
        factors.login(keymgr, "hanako", PASSWORD)
        assert keymgr.status() == ("hanako", {})


@pytest.mark.parametrize("client", [VaultClient, KeyManagerClient])
def test_a_certificate_from_another_ca_is_refused(client: type[VaultClient | KeyManagerClient], vault_url: str,
                                                  keymgr_url: str, other_ca: Path) -> None:
    url = vault_url if client is VaultClient else keymgr_url
    with client(url, ca=other_ca) as c, pytest.raises((VaultClientError, KeyManagerClientError)) as refused:
        c.public_key()
    assert refused.value.status == 0
    assert str(refused.value) == (f"the {client.error.service} at {url} is not trusted: its TLS certificate is "
                                  "refused (unable to get local issuer certificate); give the CA that issued it "
                                  "with --ca FILE (or EVB_CA)")


def test_the_system_store_does_not_trust_a_local_ca(vault_url: str) -> None:
    with VaultClient(vault_url) as vault, pytest.raises(VaultClientError, match="is not trusted"):
        vault.public_key()


def test_a_certificate_for_another_host_name_is_refused(tmp_path: Path) -> None:
    only_localhost = init_folder(tmp_path / "tls", names=("localhost",))
    with vault_running(f"sqlite:///{tmp_path / 'v.db'}", tmp_path / "v.pem", only_localhost.server) as url:
        port = url.rsplit(":", 1)[1]
        with VaultClient(f"https://localhost:{port}", ca=only_localhost.ca_cert) as vault:
            assert len(vault.public_key()) == 65  # the same server, named as its certificate says
        with VaultClient(url, ca=only_localhost.ca_cert) as vault, pytest.raises(VaultClientError) as refused:
            vault.public_key()  # 127.0.0.1 is not in the certificate
    assert "is not trusted: its TLS certificate is for another host" in str(refused.value)
    assert "127.0.0.1" in str(refused.value)


def test_plain_http_to_a_tls_server_fails_cleanly(vault_url: str, issued: Issued) -> None:
    plain = vault_url.replace("https://", "http://")
    with VaultClient(plain, ca=issued.ca_cert) as vault, pytest.raises(VaultClientError) as refused:
        vault.public_key()
    assert refused.value.status == 0 and "(if it serves HTTPS, use an https:// URL)" in str(refused.value)


def test_https_to_a_plain_server_fails_cleanly(tmp_path: Path, issued: Issued) -> None:
    with vault_running(f"sqlite:///{tmp_path / 'v.db'}", tmp_path / "v.pem") as plain:
        assert plain.startswith("http://")
        with VaultClient(plain.replace("http://", "https://"), ca=issued.ca_cert) as vault, \
                pytest.raises(VaultClientError, match="cannot reach the vault"):
            vault.public_key()


@pytest.fixture
def tls_world(tmp_path: Path, issued: Issued, request: pytest.FixtureRequest) -> Iterator[World]:
    """The assisted-restore world over TLS; the key manager trusts ``request.param`` for the vault."""
    km_key = tmp_path / "km.pem"
    trusted = public_bytes(load_or_create_key(statement_key_path(km_key)).public_key())
    vault_ca = issued.ca_cert if request.param == "right CA" else init_folder(tmp_path / "other").ca_cert
    db = f"sqlite:///{tmp_path / 'vault.db'}"
    with vault_running(db, tmp_path / "vault.pem", issued.server, keymgr_key=trusted) as vault_url:
        config = KeyManagerConfig(**{**FAST.__dict__, "vault_url": vault_url, "vault_ca": vault_ca})
        with keymgr_running(f"sqlite:///{tmp_path / 'km.db'}", km_key, tmp_path / "master.key", config,
                            tls=issued.server) as km_url, \
                KeyManagerClient(km_url, ca=issued.ca_cert) as keymgr, VaultClient(vault_url, ca=issued.ca_cert) as vault:
            keymgr.create_account("hanako", PASSWORD)
            factors.login(keymgr, "hanako", PASSWORD)
            yield World(keymgr, vault, db)


@pytest.mark.parametrize("tls_world", ["right CA"], indirect=True)
def test_the_key_manager_fetches_from_the_vault_over_tls(tls_world: World) -> None:
    _, s = encrypted_backup(tls_world)
    assert assisted_restore(s, tls_world.keymgr, 1, tls_world.vault).action == "restored via the key manager"


@pytest.mark.parametrize("tls_world", ["another CA"], indirect=True)
def test_the_key_manager_refuses_a_vault_certificate_from_another_ca(tls_world: World) -> None:
    _, s = encrypted_backup(tls_world)
    with pytest.raises(KeyManagerClientError, match="cannot reach the vault.*: its TLS certificate is refused") as e:
        assisted_restore(s, tls_world.keymgr, 1, tls_world.vault)
    assert e.value.status == 503
    assert s.list()[0].flags & ValueFlags.CERTIFICATE  # still a certificate, re-run later (two-phase)
    assert len(tls_world.vault.registrations()) == 1
