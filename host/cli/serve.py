"""The server side of the CLI: ``evb vault …``, ``evb keymgr …`` (run, describe and administer
the servers) and ``evb tls init`` (their certificates).

The one CLI module that reaches into ``servers/``, and only inside the commands: the terminal's
own flows never import the servers (tests/host/test_imports.py holds that), and FastAPI,
pydantic and numpy load only when a server command runs."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from apdu.signature import valid_public_key

from .errors import CliFail
from .issuer import trusted_keys, trusted_option
from .net import trust, warn_plain_http, with_ca
from .options import json_option, serve_options
from .render import console, print_json

if TYPE_CHECKING:
    from servers.storage import Database
    from servers.tls import ServerTls


def serve_tls(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``--tls-cert/--tls-key`` (HTTPS) or ``--insecure-http``; passes ``tls`` (None: plain HTTP)."""

    @click.option("--tls-cert", type=click.Path(dir_okay=False, path_type=Path), envvar="EVB_TLS_CERT",
                  help="The server's certificate (chain), PEM; 'evb tls init' makes one (or EVB_TLS_CERT).")
    @click.option("--tls-key", type=click.Path(dir_okay=False, path_type=Path), envvar="EVB_TLS_KEY",
                  help="Its private key, PEM, mode 0600 (or EVB_TLS_KEY).")
    @click.option("--insecure-http", is_flag=True,
                  help="Serve plain HTTP instead: only where nobody else is on the network.")
    @wraps(fn)
    def wrapper(tls_cert: Path | None, tls_key: Path | None, insecure_http: bool, **kwargs: Any) -> Any:
        return fn(tls=server_tls(tls_cert, tls_key, insecure_http), **kwargs)

    return wrapper


def server_tls(cert: Path | None, key: Path | None, insecure_http: bool) -> ServerTls | None:
    from servers.tls import ServerTls, TlsError

    if insecure_http:
        if cert or key:
            raise CliFail("--insecure-http serves plain HTTP: leave out --tls-cert and --tls-key")
        click.echo("Warning: serving plain HTTP (--insecure-http): anyone on the network can read and change "
                   "the traffic", err=True)
        return None
    if cert is None or key is None:
        raise CliFail("give --tls-cert and --tls-key ('evb tls init DIR' makes them), or --insecure-http")
    tls = ServerTls(cert, key)
    try:
        tls.check()
    except TlsError as exc:
        raise CliFail(str(exc)) from exc
    return tls


def run_server(what: str, app: Any, db: Database, host: str, port: int, tls: ServerTls | None) -> None:
    """Serve ``app`` in the foreground until Ctrl-C; its database is closed however it ends."""
    import uvicorn

    from servers.runner import server_config

    console.print(f"{what} on {'https' if tls else 'http'}://{host}:{port} (database {db.describe()}); "
                  "Ctrl-C to stop.")
    try:
        uvicorn.Server(server_config(app, host, port, tls)).run()
    finally:
        db.close()


@click.group()
def vault() -> None:
    """The vault server."""


@vault.command("serve")
@serve_options(8470, "The vault's signing key, PEM; created on first start [default: beside the data].")
@click.option("--digest", default="type,name,count,start,expiry,place", show_default=True,
              help="Value fields copied into certificates (comma-separated, may be empty).")
@click.option("--counter-modulus", type=click.IntRange(2, 2**32), default=2**32, show_default=True,
              help="Registration counters wrap here.")
@click.option("--keymgr-key", envvar="EVB_KEYMGR_KEY",
              help="The key manager's statement key, hex ('evb keymgr statement-key'): lost cards are "
                   "replaced on its signed word only.")
@trusted_option("--issuer-key", "EVB_ISSUER_KEY", "card")
@serve_tls
def vault_serve(db_url: str | None, key_path: Path | None, host: str, port: int, digest: str, counter_modulus: int,
          keymgr_key: str | None, issuer_key: tuple[str, ...], tls: ServerTls | None) -> None:
    """Run the vault in the foreground (OpenAPI schema at /openapi.json)."""
    from apdu.certificate import DigestField
    from servers.storage import StorageError
    from servers.vault.server import build, default_db, default_key

    try:
        fields = tuple(DigestField[f.strip().upper()] for f in digest.split(",") if f.strip())
    except KeyError as exc:
        raise CliFail(f"unknown digest field {exc.args[0].lower()} (type, name, count, start, expiry, place)") from exc
    trusted = None
    if keymgr_key:
        try:
            trusted = bytes.fromhex(keymgr_key)
        except ValueError as exc:
            raise CliFail("--keymgr-key is the key manager's statement key in hex") from exc
        if not valid_public_key(trusted):
            raise CliFail("--keymgr-key is not a P-256 public key")
    issuers = trusted_keys(issuer_key, "issuer")
    try:
        app, db = build(db_url or default_db(), key_path or default_key(), fields, counter_modulus, trusted, issuers)
    except (StorageError, ValueError) as exc:  # ValueError: a key file others can read
        raise CliFail(str(exc)) from exc
    run_server("Vault", app, db, host, port, tls)


@vault.command("openapi")
def vault_openapi() -> None:
    """Print the vault's OpenAPI schema (JSON), as published in docs/vault-openapi.json."""
    from servers.vault.app import openapi_schema

    click.echo(json.dumps(openapi_schema(), indent=2, sort_keys=True))


@click.group()
def keymgr() -> None:
    """The key manager server."""


@keymgr.command("serve")
@serve_options(8471, "The key manager's own key pair, PEM; created on first start.")
@click.option("--master-key", "master_path", type=click.Path(dir_okay=False, path_type=Path),
              help="32-byte file encrypting escrowed keys at rest, kept outside the database "
                   "(or EVB_KEYMGR_MASTER_KEY_FILE); created on first start.")
@click.option("--vault", "vault_url", envvar="EVB_VAULT",
              help="The vault, for server-assisted restore (E6); its certificate is checked as a client's (--ca).")
@with_ca
@trusted_option("--issuer-key", "EVB_ISSUER_KEY", "card")
@trusted_option("--id-issuer-key", "EVB_ID_ISSUER_KEY", "ID-card")
@serve_tls
def keymgr_serve(db_url: str | None, key_path: Path | None, master_path: Path | None, vault_url: str | None, host: str,
          port: int, issuer_key: tuple[str, ...], id_issuer_key: tuple[str, ...], tls: ServerTls | None) -> None:
    """Run the key manager in the foreground (OpenAPI schema at /openapi.json)."""
    from servers.keymgr.config import KeyManagerConfig
    from servers.keymgr.server import build, default_db, default_key, default_master_key
    from servers.storage import StorageError
    from servers.tls import verify_context

    issuers = trusted_keys(issuer_key, "issuer")
    id_issuers = trusted_keys(id_issuer_key, "id-issuer") if id_issuer_key else issuers
    if vault_url:
        warn_plain_http(vault_url, "vault")
    try:
        if vault_url and vault_url.startswith("https:"):
            verify_context(trust())  # a bad --ca fails here, not at the first assisted restore
        app, db = build(db_url or default_db(), key_path or default_key(), master_path or default_master_key(),
                        KeyManagerConfig(vault_url=vault_url, vault_ca=trust(), issuers=issuers,
                                         id_issuers=id_issuers))
    except (StorageError, ValueError) as exc:
        raise CliFail(str(exc)) from exc
    run_server("Key manager", app, db, host, port, tls)


@keymgr.command("unlock")
@click.argument("name")
@click.option("--db", "db_url", help="The key manager's database [default: under $XDG_DATA_HOME/evb].")
@json_option
def unlock_account(name: str, db_url: str | None, as_json: bool) -> None:
    """Clear a name locked by wrong passwords (administrator; written to the audit log)."""
    from servers.keymgr.repository import MIGRATIONS, KeyManagerRepository
    from servers.keymgr.server import default_db
    from servers.storage import Database

    db = Database.open(db_url or default_db(), MIGRATIONS)
    try:
        KeyManagerRepository(db).clear_failures(name, int(time.time()), event="unlocked by the administrator")
    finally:
        db.close()
    print_json({"name": name, "unlocked": True}) if as_json else console.print(f"Unlocked {name} (audited).")


@keymgr.command("statement-key")
@click.option("--key", "key_path", type=click.Path(dir_okay=False, path_type=Path),
              help="The key manager's own key, PEM; the statement key lives beside it.")
def statement_key(key_path: Path | None) -> None:
    """Print the public key the vault pins ('evb vault serve --keymgr-key …') to accept the key
    manager's statements about lost cards."""
    from keyfile import load_or_create_key, public_bytes
    from servers.keymgr.server import default_key, statement_key_path

    try:
        key = load_or_create_key(statement_key_path(key_path or default_key()))
    except ValueError as exc:  # a key file others can read, or not a key
        raise CliFail(str(exc)) from exc
    click.echo(public_bytes(key.public_key()).hex())


@keymgr.command("openapi")
def keymgr_openapi() -> None:
    """Print the key manager's OpenAPI schema (JSON)."""
    from servers.keymgr.app import openapi_schema

    click.echo(json.dumps(openapi_schema(), indent=2, sort_keys=True))


@click.group()
def tls() -> None:
    """Certificates for the servers' HTTPS."""


@tls.command("init")
@click.argument("folder", type=click.Path(file_okay=False, path_type=Path))
@click.option("--name", "names", multiple=True,
              help="A host name or IP address the servers answer on (repeatable) [default: localhost, "
                   "127.0.0.1, ::1].")
@json_option
def init(folder: Path, names: tuple[str, ...], as_json: bool) -> None:
    """Make a CA in FOLDER (or reuse the one there) and a new server certificate it signs."""
    from servers.tls import LOOPBACK_NAMES, TlsError, init_folder

    try:
        issued = init_folder(folder, names or LOOPBACK_NAMES)
    except TlsError as exc:
        raise CliFail(str(exc)) from exc
    server = issued.server
    if as_json:
        print_json({"ca_cert": str(issued.ca_cert), "ca_key": str(folder / "ca-key.pem"), "server_cert": str(server.cert),
                    "server_key": str(server.key), "names": list(names or LOOPBACK_NAMES)})
        return
    console.print(f"CA certificate {issued.ca_cert}: clients trust it with --ca {issued.ca_cert} (or EVB_CA).")
    console.print(f"CA key {folder / 'ca-key.pem'} (0600): it signs new server certificates; keep it away "
                  "from the servers.")
    console.print(f"Server certificate {server.cert} and key {server.key} (0600) for "
                  f"{', '.join(names or LOOPBACK_NAMES)}:")
    click.echo(f"  evb vault serve --tls-cert {server.cert} --tls-key {server.key}")
