"""``evb tls init DIR``: a local CA and a server certificate, for loopback or a closed network."""

from __future__ import annotations

from pathlib import Path

import click

from .errors import CliFail
from .options import json_option
from .render import console, print_json


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
